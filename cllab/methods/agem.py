"""Averaged gradient episodic memory (Chaudhry et al. 2019, "Efficient lifelong learning with A-GEM", ICLR): a
class-balanced memory of past tasks; each step's gradient is projected so that it does not raise the memory batch's
loss. No penalty. Scenarios only."""

from cllab.methods import MEMORY, SCENARIOS_ONLY, Method
from cllab.schema import zero

METHOD = Method("agem", "A-GEM", "#31a354", omega=None, lambda_spec=zero("A-GEM has no penalty"),
                experiments=SCENARIOS_ONLY, options=MEMORY, memory="project", order=140)
