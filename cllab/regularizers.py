"""Quadratic penalties that pull weights towards an anchor: λ/2·Σ_i Ω_i(θ_i − θ*_i)².

Fine-tuning, L2 and EWC differ only in the importance Ω: none, all ones, or the diagonal Fisher.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf


class QuadraticPenalty:
    """λ/2·Σ Ω(θ − θ*)² over a model's trainable weights, given in the model's order."""

    def __init__(self, anchor: Sequence[np.ndarray], importance: Sequence[np.ndarray], strength: float) -> None:
        if len(anchor) != len(importance):
            raise ValueError(f"{len(anchor)} anchor tensors but {len(importance)} importance tensors")
        for i, (a, o) in enumerate(zip(anchor, importance)):
            if a.shape != o.shape:
                raise ValueError(f"tensor {i}: anchor shape {a.shape} != importance shape {o.shape}")
        self.strength = float(strength)
        self.anchor = [tf.constant(a, dtype=tf.float32) for a in anchor]
        self.importance = [tf.constant(o, dtype=tf.float32) for o in importance]

    def __call__(self, weights: Sequence[keras.Variable]) -> tf.Tensor:
        total = tf.add_n(
            [tf.reduce_sum(o * tf.square(w - a)) for w, a, o in zip(weights, self.anchor, self.importance)]
        )
        return 0.5 * self.strength * total


def penalty_for(
    method: str, strength: float, anchor: Mapping[str, np.ndarray], fisher: Mapping[str, np.ndarray] | None = None
) -> QuadraticPenalty | None:
    """The penalty of a method ('none', 'l2' or 'ewc') anchored at named weights (model order)."""
    names = list(anchor)
    if method == "none":
        return None
    if method == "l2":
        importance = [np.ones_like(anchor[n]) for n in names]
    elif method == "ewc":
        if fisher is None:
            raise ValueError("EWC needs the Fisher information of the anchor model")
        missing = [n for n in names if n not in fisher]
        if missing:
            raise ValueError(f"the Fisher has no entry for {', '.join(missing)}")
        importance = [fisher[n] for n in names]
    else:
        raise ValueError(f"unknown regularizer {method!r} (expected none, l2 or ewc)")
    return QuadraticPenalty([anchor[n] for n in names], importance, strength)
