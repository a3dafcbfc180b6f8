"""Quadratic penalties that pull weights towards an anchor: λ/2·Σ_i Ω_i(θ_i − θ*_i)².

Fine-tuning, L2, EWC, SI and MAS differ only in the importance Ω (cllab/methods.py says how each is made): none, all
ones, the diagonal Fisher, SI's path integral, MAS' output sensitivity.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf


class QuadraticPenalty:
    """λ/2·Σ Ω(θ − θ*)² over a model's trainable weights, given in the model's order."""

    def __init__(
        self, anchor: Sequence[np.ndarray], importance: Sequence[np.ndarray], strength: float, dtype: str | None = None
    ) -> None:
        if len(anchor) != len(importance):
            raise ValueError(f"{len(anchor)} anchor tensors but {len(importance)} importance tensors")
        for i, (a, o) in enumerate(zip(anchor, importance)):
            if a.shape != o.shape:
                raise ValueError(f"tensor {i}: anchor shape {a.shape} != importance shape {o.shape}")
        self.strength = float(strength)
        dtype = dtype or keras.config.floatx()  # the weights' float type
        self.anchor = [tf.constant(a, dtype=dtype) for a in anchor]
        self.importance = [tf.constant(o, dtype=dtype) for o in importance]

    def __call__(self, weights: Sequence[keras.Variable]) -> tf.Tensor:
        total = tf.add_n(
            [tf.reduce_sum(o * tf.square(w - a)) for w, a, o in zip(weights, self.anchor, self.importance)]
        )
        return 0.5 * self.strength * total


def penalty_for(
    strength: float, anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray] | None
) -> QuadraticPenalty | None:
    """λ/2·Σ Ω(θ − θ_A)² anchored at named weights (model order); None (plain fine-tuning) without an importance."""
    if importance is None:
        return None
    missing = [n for n in anchor if n not in importance]
    if missing:
        raise ValueError(f"the importance has no entry for {', '.join(missing)}")
    return QuadraticPenalty([anchor[n] for n in anchor], [importance[n] for n in anchor], strength)
