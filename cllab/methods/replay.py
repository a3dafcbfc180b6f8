"""Replay on permuted MNIST: `per_task` stored examples of each past task (`data.replay_buffer`), each batch of the
new task followed by as many drawn from that memory (experience replay, e.g. Rolnick et al. 2019, "Experience replay
for continual learning", NeurIPS). No penalty. Sequence only (the scenarios' class-balanced replay is `er`)."""

from cllab.methods import SEQUENCE_ONLY, Method
from cllab.schema import int_at_least, zero

METHOD = Method("replay", "replay", "#000080", omega=None, lambda_spec=zero("replay has no penalty"),
                experiments=SEQUENCE_ONLY, options={"per_task": int_at_least(1)}, replay=True, order=120)
