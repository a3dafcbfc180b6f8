"""L2 towards the old weights: Ω = 1 for every weight, the uniform pull EWC is compared with in Kirkpatrick et al.
2017, Fig. 2 ("Overcoming catastrophic forgetting in neural networks", PNAS 114). In a sequence one pull per past
task, summed (`l2_latest` keeps only the latest)."""

from cllab.methods import Method

METHOD = Method("l2", "L2", "#1f77b4", omega="omega_ones", lambda_grid=(0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0), order=20)
