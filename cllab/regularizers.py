"""Quadratic penalties that pull weights towards an anchor: λ/2·Σ_i Ω_i(θ_i − θ*_i)².

Fine-tuning, L2, EWC, SI and MAS differ only in the importance Ω (cllab/methods/ says how each is made): none, all
ones, the diagonal Fisher, SI's path integral, MAS' output sensitivity.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf


class QuadraticPenalty:
    """λ/2·Σ Ω(θ − θ*)² over a model's trainable weights, anchor and importance given by weight name in the model's
    order (`cllab.model.get_weights` gives it; the model checks names and shapes against its own weights, see
    cllab.model.ContinualClassifier)."""

    def __init__(self, anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray], strength: float,
                 dtype: str | None = None) -> None:
        self.names = list(anchor)
        self.shapes = [tuple(np.shape(anchor[n])) for n in self.names]
        self.strength = float(strength)
        self.dtype = dtype or keras.config.floatx()  # the weights' float type
        # Variables, not constants, so that `move_to` can re-anchor the penalty of a model whose step is traced.
        # Not trainable: the custom gradient below is taken with respect to the weights only (tf.custom_gradient
        # would want a `variables` argument for trainable variables it reads), and no optimizer may touch them.
        anchors, importances = self._checked(anchor, importance)
        self.anchor = [tf.Variable(a, trainable=False) for a in anchors]
        self.importance = [tf.Variable(o, trainable=False) for o in importances]
        self.slope = [tf.Variable(s, trainable=False) for s in self._slopes(importances)]

    def _checked(self, anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray]
                 ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """The anchor's and importance's tensors in the penalty's order and float type (TF's cast, the same at build
        and at a move), or an error naming the weight that is missing, extra or of another shape."""
        for what, tensors in (("anchor", anchor), ("importance", importance)):
            if sorted(tensors) != sorted(self.names):
                raise ValueError(f"the {what} has weights {sorted(tensors)}, the penalty {sorted(self.names)}")
            for name, shape in zip(self.names, self.shapes):
                if tuple(np.shape(tensors[name])) != shape:
                    raise ValueError(f"{what} {name}: shape {tuple(np.shape(tensors[name]))}, the weight's is {shape}")
        return ([tf.cast(anchor[n], self.dtype) for n in self.names],
                [tf.cast(importance[n], self.dtype) for n in self.names])

    def _slopes(self, importance: Sequence) -> list[tf.Tensor]:
        """λΩ formed as autodiff forms it, (Ω·λ/2)·2 (doubling is exact), so that the gradient is autodiff's bits."""
        half = tf.constant(0.5 * self.strength, dtype=self.dtype)
        return [(tf.convert_to_tensor(o, dtype=self.dtype) * half) * 2 for o in importance]

    def move_to(self, anchor: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray]) -> None:
        """Pull towards a new anchor with a new importance (same λ, same weights): a sequence trains task after task
        with one model, whose traced training step reads these variables, instead of building one per task."""
        anchors, importances = self._checked(anchor, importance)
        for variables, values in ((self.anchor, anchors), (self.importance, importances),
                                  (self.slope, self._slopes(importances))):
            for variable, value in zip(variables, values):
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
    return QuadraticPenalty(anchor, importance, strength)


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
    correction of EWC; γ < 1: Schwarz et al. 2018's decay). `accumulated` None before the first task. The penalty
    uses F̃_t as it is; Schwarz et al. multiply it by γ once more there, so λ here = γ·λ of their paper."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if accumulated is None:
        return {name: np.asarray(v, np.float64) for name, v in new.items()}
    return {name: gamma * np.asarray(accumulated[name], np.float64) + np.asarray(new[name], np.float64) for name in new}
