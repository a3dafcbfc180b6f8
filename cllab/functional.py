"""What methods that are not a penalty on the weights add to a training step, and the masking of dead output units: LwF's distillation of the old model's
outputs (Li & Hoiem 2017: regularising the function, not the parameters) and A-GEM's projection of the gradient on
a memory's (Chaudhry et al. 2019). TensorFlow ops, for use inside a Keras train_step; each takes and returns
tensors (or lists of them, in the model's weight order)."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

TEMPERATURE = 2.0  # LwF's softening (Li & Hoiem 2017; Hinton et al. 2015)


def distillation_loss(new_logits: tf.Tensor, old_logits: tf.Tensor, temperature: float = TEMPERATURE) -> tf.Tensor:
    """LwF's term: the cross-entropy of the new model's outputs against the old model's, both softened by
    `temperature` T, times T² (so its gradient keeps the scale of a hard-label loss; Hinton et al. 2015), averaged
    over the rows. `old_logits` are targets: no gradient flows into them. Mask what is compared (`mask_units`): a unit
    masked in `old_logits` and live in `new_logits` is one the old model did not know, with target 0."""
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


MASKED = -1e9  # the logit of a unit that is not live: exp(MASKED − max) is exactly 0 in float32 and float64


def mask_units(logits: tf.Tensor, live: tf.Tensor) -> tf.Tensor:
    """`logits` with the units where `live` is False set to MASKED: a softmax (a cross-entropy, a distillation) over
    the result is one over the live units only, and the dead units get no gradient (tf.where passes none to them).
    `live` broadcasts against `logits`: one row of units for all, or one per row (a head per task)."""
    return tf.where(live, logits, tf.constant(MASKED, logits.dtype))
