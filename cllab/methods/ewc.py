"""Elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks",
PNAS 114): Ω = the diagonal Fisher information of θ_A on task A, of the kind `importance.fisher.kind` (exact by
default: every class weighted by p(y|x)); in a sequence one penalty per past task, summed."""

from cllab.methods import FISHER_SETTINGS, Method

METHOD = Method("ewc", "EWC", "#2ca02c", omega="omega_fisher", settings="fisher", settings_schema=FISHER_SETTINGS,
                lambda_grid=(30, 100, 300, 1000, 2000, 3000, 4500), order=40)
