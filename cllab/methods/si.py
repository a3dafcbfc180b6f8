"""Synaptic intelligence (Zenke, Poole & Ganguli 2017, "Continual learning through synaptic intelligence", ICML):
Ω = max(0, ω) / (Δθ² + ξ), ω the path integral −g·Δθ summed over the steps of training the task. Its importance
accumulates over tasks at the latest θ, as the paper does (γ = 1)."""

from cllab.methods import Method
from cllab.schema import num_positive

METHOD = Method("si", "SI", "#9467bd", omega="omega_si", settings="si", settings_schema={"xi": num_positive()},
                lambda_grid=(30, 100, 300, 1000, 2000, 3000), carry="online", order=100)
