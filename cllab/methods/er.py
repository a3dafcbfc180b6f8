"""Experience replay with a class-balanced memory (Chaudhry et al. 2019, "On tiny episodic memories in continual
learning", arXiv:1902.10486; as in van de Ven, Tuytelaars & Tolias 2022): each batch of the new task is followed by
one drawn from the memory, weighted (1/t)·new + (1 − 1/t)·memory. No penalty. Scenarios only."""

from cllab.methods import MEMORY, SCENARIOS_ONLY, Method
from cllab.schema import zero

METHOD = Method("er", "replay, class-balanced", "#000080", omega=None, lambda_spec=zero("replay has no penalty"),
                experiments=SCENARIOS_ONLY, options=MEMORY, memory="replay", order=150)
