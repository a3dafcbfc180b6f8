"""L2 towards the latest θ only: one pull of strength λ towards the last solution whatever the number of past tasks
(`l2` keeps one pull per past task, summed, so its anchor is the mean of the past solutions). Sequence only: the
unit-weight reference beside EWC, latest F only (README, permuted MNIST)."""

from cllab.methods import SEQUENCE_ONLY, Method

METHOD = Method("l2_latest", "L2, latest θ only", "#6baed6", omega="omega_ones", experiments=SEQUENCE_ONLY,
                carry="latest", order=30)
