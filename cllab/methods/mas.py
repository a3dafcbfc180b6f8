"""Memory aware synapses (Aljundi et al. 2018, "Memory aware synapses: learning what (not) to forget", ECCV):
Ω = the mean over the task's inputs of |∂‖f(x)‖²/∂θ|, f the logits, no labels needed. Its importance accumulates
over tasks at the latest θ, as the paper does (γ = 1)."""

from cllab.methods import SUBSET_SETTINGS, Method

METHOD = Method("mas", "MAS", "#ff7f0e", omega="omega_mas", settings="mas", settings_schema=SUBSET_SETTINGS,
                lambda_grid=(0.1, 0.3, 1, 2, 3, 5), carry="online", order=110)
