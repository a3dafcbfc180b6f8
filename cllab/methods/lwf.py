"""Learning without forgetting (Li & Hoiem 2017, "Learning without forgetting", TPAMI 40): no penalty on the
weights; λ times the distillation loss between the new model's outputs and those of the model after the previous
task, on the new task's inputs. Scenarios only."""

from cllab.methods import SCENARIOS_ONLY, Method
from cllab.schema import num_positive

METHOD = Method("lwf", "LwF", "#e6550d", omega=None, lambda_spec=num_positive(), experiments=SCENARIOS_ONLY,
                distill=True, order=130)
