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
        self.dtype = dtype or keras.config.floatx()  # the weights' float type
        # Variables, not constants, so that `move_to` can re-anchor the penalty of a model whose step is traced
        self.anchor = [tf.Variable(a, dtype=self.dtype, trainable=False) for a in anchor]
        self.importance = [tf.Variable(o, dtype=self.dtype, trainable=False) for o in importance]
        self.slope = [tf.Variable(s, trainable=False) for s in self._slopes(self.importance)]

    def _slopes(self, importance: Sequence) -> list[tf.Tensor]:
        """λΩ formed as autodiff forms it, (Ω·λ/2)·2 (doubling is exact), so that the gradient is autodiff's bits."""
        half = tf.constant(0.5 * self.strength, dtype=self.dtype)
        return [(tf.convert_to_tensor(o, dtype=self.dtype) * half) * 2 for o in importance]

    def move_to(self, anchor: Sequence[np.ndarray], importance: Sequence[np.ndarray]) -> None:
        """Pull towards a new anchor with a new importance (same λ, same shapes): a sequence trains task after task
        with one model, whose traced training step reads these variables, instead of building one per task."""
        shapes = [tuple(v.shape) for v in self.anchor]
        if not len(anchor) == len(importance) == len(shapes):
            raise ValueError(f"{len(anchor)} anchor and {len(importance)} importance tensors for a penalty of "
                             f"{len(shapes)}")
        for i, (a, o) in enumerate(zip(anchor, importance)):
            if not np.shape(a) == np.shape(o) == shapes[i]:
                raise ValueError(f"tensor {i}: anchor {np.shape(a)} and importance {np.shape(o)} must have the "
                                 f"penalty's shape {shapes[i]}")
        for variable, value in zip(self.anchor, anchor):
            variable.assign(np.asarray(value, self.dtype))
        for variable, value in zip(self.importance, importance):
            variable.assign(np.asarray(value, self.dtype))
        for variable, value in zip(self.slope, self._slopes(self.importance)):
            variable.assign(value)

    def __call__(self, weights: Sequence[keras.Variable]) -> tf.Tensor:
        """The penalty, with its gradient written out: u·(λΩ·(θ − θ*)) for the upstream gradient u, where autodiff
        broadcasts u·λ/2 and multiplies by Ω and by 2(θ − θ*) every step: a third less of the penalty's work per
        training step. Bit for bit autodiff's gradient as the penalty enters the loss (u = 1; autodiff rounds
        (Ω·λ/2)·(2(θ − θ*)), and doubling is exact), and for any power of two; for another u, equal to within the
        last bit's rounding."""

        @tf.custom_gradient
        def penalty(*values: tf.Tensor):
            diffs = [w - a for w, a in zip(values, self.anchor)]
            total = tf.add_n([tf.reduce_sum(o * tf.square(d)) for d, o in zip(diffs, self.importance)])

            def gradient(upstream: tf.Tensor) -> list[tf.Tensor]:
                return [upstream * (c * d) for c, d in zip(self.slope, diffs)]

            return 0.5 * self.strength * total, gradient

        return penalty(*[tf.convert_to_tensor(w) for w in weights])


def penalty_for(
    strength: float, anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray] | None
) -> QuadraticPenalty | None:
    """λ/2·Σ Ω(θ − θ_A)² anchored at named weights (model order); None (plain fine-tuning) without an importance."""
    if importance is None:
        return None
    return QuadraticPenalty(*in_order(list(anchor), anchor, importance), strength)


def in_order(names: Sequence[str], anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray]
             ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The anchor's and the importance's tensors of the weights `names`, in that order (a model's)."""
    for what, tensors in (("anchor", anchor), ("importance", importance)):
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"the {what} has no entry for {', '.join(missing)}")
    return [anchor[n] for n in names], [importance[n] for n in names]


def collapse(
    anchors: Sequence[Mapping[str, np.ndarray]], importances: Sequence[Mapping[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One quadratic for a sum of them: Σ_t Ω_t(θ − θ_t)² = Ω̄(θ − θ̄)² + const, with Ω̄ = Σ_t Ω_t and
    θ̄ = Σ_t Ω_t θ_t / Ω̄ (θ̄ = the latest θ_t where Ω̄ = 0). So EWC with one penalty per past task (Kirkpatrick et
    al. 2017) has the gradient of a single QuadraticPenalty(θ̄, Ω̄): one term per step however many tasks.
    Returns (θ̄, Ω̄) by weight name, in float64."""
    if not anchors or len(anchors) != len(importances):
        raise ValueError(f"need as many anchors as importances (at least one), got {len(anchors)} and {len(importances)}")
    total, bar = {}, {}
    for name in anchors[-1]:
        omegas = [np.asarray(o[name], np.float64) for o in importances]
        thetas = [np.asarray(a[name], np.float64) for a in anchors]
        total[name] = np.sum(omegas, axis=0)
        weighted = np.sum([o * t for o, t in zip(omegas, thetas)], axis=0)
        bar[name] = np.where(total[name] > 0, weighted / np.where(total[name] > 0, total[name], 1.0), thetas[-1])
    return bar, total


def online_importance(
    accumulated: Mapping[str, np.ndarray] | None, new: Mapping[str, np.ndarray], gamma: float
) -> dict[str, np.ndarray]:
    """Online EWC's running importance F̃_t = γ·F̃_(t−1) + F_t, anchored at the latest θ (γ = 1: Huszár 2018's
    correction of EWC; γ < 1: Schwarz et al. 2018's decay). `accumulated` None before the first task."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if accumulated is None:
        return {name: np.asarray(v, np.float64) for name, v in new.items()}
    return {name: gamma * np.asarray(accumulated[name], np.float64) + np.asarray(new[name], np.float64) for name in new}
