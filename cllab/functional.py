"""What methods that are not a penalty on the weights add to a training step: LwF's distillation of the old model's
outputs (Li & Hoiem 2017: regularising the function, not the parameters) and A-GEM's projection of the gradient on
a memory's (Chaudhry et al. 2019). TensorFlow ops, for use inside a Keras train_step; each takes and returns
tensors (or lists of them, in the model's weight order)."""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


def distillation_loss(new_logits: tf.Tensor, old_logits: tf.Tensor, temperature: float = 2.0) -> tf.Tensor:
    """LwF's term: the cross-entropy of the new model's outputs against the old model's, both softened by
    `temperature` T, times T² (so its gradient keeps the scale of a hard-label loss; Hinton et al. 2015), averaged
    over the rows. `old_logits` are targets: no gradient flows into them. Pass only the units the old model knew."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    targets = tf.stop_gradient(tf.nn.softmax(old_logits / temperature, axis=-1))
    log_probs = tf.nn.log_softmax(new_logits / temperature, axis=-1)
    return -(temperature ** 2) * tf.reduce_mean(tf.reduce_sum(targets * log_probs, axis=-1))


def agem_project(gradients: Sequence[tf.Tensor], reference: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """A-GEM's step: the gradient g itself where it does not raise the memory's loss to first order (g·g_ref >= 0),
    else g − (g·g_ref / g_ref·g_ref)·g_ref, its projection orthogonal to the memory's gradient g_ref. The dot
    products run over all weights at once (one flat vector, as in the paper); a zero g_ref leaves g as it is."""
    if len(gradients) != len(reference):
        raise ValueError(f"{len(gradients)} gradients against {len(reference)} reference gradients")
    dot = tf.add_n([tf.reduce_sum(g * r) for g, r in zip(gradients, reference)])
    norm = tf.add_n([tf.reduce_sum(r * r) for r in reference])
    scale = tf.where((dot < 0) & (norm > 0), dot / tf.where(norm > 0, norm, tf.ones_like(norm)), tf.zeros_like(dot))
    return [g - scale * r for g, r in zip(gradients, reference)]


class LiveUnitsCrossEntropy(keras.losses.Loss):
    """Keras loss (from logits) over the live output units only: the softmax runs over `units` (the task's head in
    task-incremental learning, the digits seen so far in class-incremental; cllab.scenarios), so the dead units get
    no gradient and cannot out-vote the live ones. Labels are unit indices (y = digit). All units live: the plain
    sparse cross-entropy. Keras reduces it over the batch (and applies sample weights) as for its own losses."""

    def __init__(self, units: Sequence[int], name: str = "cross_entropy") -> None:
        units = sorted(int(u) for u in units)
        if not units or len(set(units)) != len(units) or units[0] < 0:
            raise ValueError(f"the live units must be distinct indices >= 0, got {units}")
        super().__init__(name=name)
        self.units = units

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        units = tf.constant(self.units, tf.int32)
        logits = tf.gather(y_pred, units, axis=-1)
        digits = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        labels = tf.searchsorted(units, digits)
        tf.debugging.assert_equal(tf.gather(units, tf.minimum(labels, len(self.units) - 1)), digits,
                                  message="a label is not a live unit")
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def get_config(self) -> dict:
        return {"units": self.units, "name": self.name}
