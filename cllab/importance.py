"""Diagonal Fisher information of a classifier: F_i = E_x Σ_y w(y|x) (∂ log p(y|x, θ)/∂θ_i)².

The weight w over labels decides the kind: `exact` w = p(y|x) (all classes), `sampled` w = one-hot of y ~ p(y|x),
`empirical` w = one-hot of the true label. Gradients are per example: squaring the gradient of a batch's summed
log-likelihood is not the Fisher.

Three implementations of the same quantity:
- `fisher_dense`: for Flatten/Dropout/Dense networks, per-example squared gradients of a Dense kernel summed over
  examples are one matmul, (A∘A)ᵀ(w·Δ∘Δ), with A the layer's inputs and Δ the gradients w.r.t. its outputs from
  an ordinary batched backward pass. Fast; the default.
- `fisher_vectorized`: per-example gradients with `tf.vectorized_map` (any model; the general fallback).
- `fisher_loop`: one GradientTape per example and class; slow, the test reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from cllab import methods
from cllab.data import subset
from cllab.methods import FISHER_KINDS  # one list, shared with the params schema
from cllab.model import predict_logits, weight_names


def label_weights(probs: np.ndarray, kind: str, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The weight w(y|x) of each (example, class) term [N, C] for a Fisher kind."""
    n, c = probs.shape
    if kind == "exact":
        return probs.astype(np.float64)
    if kind == "empirical":
        if labels is None:
            raise ValueError("the empirical Fisher needs the true labels")
        chosen = np.asarray(labels)
    elif kind == "sampled":
        rng = np.random.default_rng(seed)
        cdf = np.cumsum(probs.astype(np.float64), axis=1)
        u = rng.random(n)[:, None] * cdf[:, -1:]
        chosen = np.minimum((u >= cdf).sum(axis=1), c - 1)
    else:
        raise ValueError(f"unknown Fisher kind {kind!r} (expected one of {', '.join(FISHER_KINDS)})")
    weights = np.zeros((n, c))
    weights[np.arange(n), chosen] = 1.0
    return weights


def class_probabilities(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """p(y|x) [N, C] in inference mode."""
    logits = predict_logits(model, x, batch_size)
    return np.asarray(tf.nn.softmax(logits.astype(np.float64), axis=-1))


def fisher_diagonal(
    model: keras.Model,
    x: np.ndarray,
    kind: str,
    labels: np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    implementation: str = "auto",
) -> dict[str, np.ndarray]:
    """Diagonal Fisher {weight name: array like the weight} of `model` over inputs x [N, ...]."""
    weights = label_weights(class_probabilities(model, x, batch_size), kind, labels, seed)
    if implementation == "auto":
        implementation = "dense" if supports_dense_path(model) else "vectorized"
    compute: dict[str, Callable[..., dict[str, np.ndarray]]] = {
        "dense": fisher_dense, "vectorized": fisher_vectorized, "loop": fisher_loop,
    }
    if implementation not in compute:
        raise ValueError(f"unknown Fisher implementation {implementation!r} (expected dense, vectorized or loop)")
    return compute[implementation](model, x, weights, batch_size=batch_size)


def supports_dense_path(model: keras.Model) -> bool:
    """Whether every layer is Flatten, Dropout or Dense (so that `fisher_dense` applies)."""
    allowed = (keras.layers.Flatten, keras.layers.Dropout, keras.layers.Dense)
    return all(isinstance(layer, allowed) for layer in model.layers)


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _named(model: keras.Model, arrays: list[np.ndarray], n: int) -> dict[str, np.ndarray]:
    dtype = model.trainable_weights[0].dtype  # stored in the model's precision
    return {name: (a / n).astype(dtype) for name, a in zip(weight_names(model), arrays)}


def _sum_batches(batch_sums: Callable, x: np.ndarray, weights: np.ndarray | None, batch_size: int) -> list[np.ndarray]:
    """Σ over batches of batch_sums(x_batch[, weights_batch]), accumulated in float64."""
    totals = None
    for rows in _batches(len(x), batch_size):
        args = [tf.constant(x[rows], keras.config.floatx())]
        if weights is not None:
            args.append(tf.constant(weights[rows], keras.config.floatx()))
        part = [p.numpy().astype(np.float64) for p in batch_sums(*args)]
        totals = part if totals is None else [t + p for t, p in zip(totals, part)]
    return totals


def _spec(x: np.ndarray) -> tf.TensorSpec:
    """A batch of x's examples (Keras' float type), of any length: full batches and the last share one trace."""
    return tf.TensorSpec([None, *x.shape[1:]], keras.config.floatx())


def _dense_forward(model: keras.Model, x: tf.Tensor) -> tuple[list[tf.Tensor], list[tf.Tensor], tf.Tensor]:
    """Inference forward pass keeping each Dense layer's input and pre-activation output; returns them and the logits."""
    a = x
    inputs, outputs = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            inputs.append(a)
            z = tf.matmul(a, layer.kernel)
            if layer.use_bias:
                z = z + layer.bias
            outputs.append(z)
            a = layer.activation(z)
        else:
            a = layer(a, training=False)
    return inputs, outputs, a


def _add_layer_sums(sums, dense, inputs, weighted, phi):
    """Add Σ_i φ(a_i) ⊗ w_i = φ(A)ᵀW per kernel (and Σ_i w_i per bias) to sums, W = the per-example weighted φ(δ_i).

    Σ_i φ(a_i ⊗ δ_i) = φ(A)ᵀφ(Δ) for φ = square and φ = abs, which factor over the outer product.
    """
    sums = list(sums)
    i = 0
    for layer, inp, w in zip(dense, inputs, weighted):
        sums[i] += tf.matmul(phi(inp), w, transpose_a=True)
        i += 1
        if layer.use_bias:
            sums[i] += tf.reduce_sum(w, axis=0)
            i += 1
    return sums


def fisher_dense(model: keras.Model, x: np.ndarray, weights: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Fisher by per-layer matmuls of squared layer inputs and squared output gradients (Dense networks only)."""
    if not supports_dense_path(model):
        raise ValueError("fisher_dense needs a model of Flatten, Dropout and Dense layers only")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    num_classes = weights.shape[1]
    one_hot = weights.max(axis=1) == weights.sum(axis=1)  # at most one class per example
    classes = [None] if bool(np.all(one_hot)) else list(range(num_classes))

    @tf.function(input_signature=[_spec(x), tf.TensorSpec([None, num_classes], keras.config.floatx())])  # one trace, any batch
    def batch_sums(xb, wb):
        with tf.GradientTape(persistent=True) as tape:
            inputs, outputs, logits = _dense_forward(model, xb)
            probs = tf.nn.softmax(logits)
        # A layer's input a_i does not depend on the class, so Σ_k w_ik (a_i ⊗ δ_ik)² = a_i² ⊗ Σ_k w_ik δ_ik²:
        # one backward pass per class for the δ's (cheap), then one matmul per layer whatever the number of classes.
        squared = [tf.zeros_like(z) for z in outputs]
        for k in classes:
            if k is None:  # one pass: each example's own label, weight 1
                target = wb
                scale = tf.ones_like(wb[:, 0])
            else:  # one pass per class k, each example weighted by w(k|x)
                target = tf.one_hot(tf.fill(tf.shape(wb)[:1], k), num_classes, dtype=wb.dtype)
                scale = wb[:, k]
            deltas = tape.gradient(logits, outputs, output_gradients=target - probs)
            squared = [total + tf.square(d) * scale[:, None] for total, d in zip(squared, deltas)]
        del tape
        sums = [tf.zeros_like(v) for layer in dense for v in layer.trainable_weights]
        return _add_layer_sums(sums, dense, inputs, squared, tf.square)

    return _named(model, _sum_batches(batch_sums, x, weights, batch_size), len(x))


def fisher_vectorized(
    model: keras.Model, x: np.ndarray, weights: np.ndarray, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Fisher from per-example gradients computed with tf.vectorized_map (any differentiable model)."""
    variables = model.trainable_weights
    num_classes = weights.shape[1]

    def one_example(args):
        xi, wi = args
        with tf.GradientTape(persistent=True) as tape:
            log_p = tf.nn.log_softmax(model(xi[None], training=False))[0]
            terms = [log_p[k] for k in range(num_classes)]
        squared = [tf.zeros_like(v) for v in variables]
        for k in range(num_classes):
            grads = tape.gradient(terms[k], variables)
            squared = [s + wi[k] * tf.square(g) for s, g in zip(squared, grads)]
        del tape
        return squared

    @tf.function(reduce_retracing=True)
    def batch_sums(xb, wb):
        per_example = tf.vectorized_map(one_example, (xb, wb))
        return [tf.reduce_sum(p, axis=0) for p in per_example]

    return _named(model, _sum_batches(batch_sums, x, weights, batch_size), len(x))


def fisher_loop(model: keras.Model, x: np.ndarray, weights: np.ndarray, batch_size: int = 1) -> dict[str, np.ndarray]:
    """Fisher from one GradientTape per example and class: slow and obviously right; the test reference."""
    variables = model.trainable_weights
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    for i in range(len(x)):
        for k in range(weights.shape[1]):
            if weights[i, k] == 0:
                continue
            with tf.GradientTape() as tape:
                log_p = tf.nn.log_softmax(model(x[i : i + 1], training=False))[0, k]
            grads = tape.gradient(log_p, variables)
            for total, g in zip(totals, grads):
                total += weights[i, k] * np.square(g.numpy().astype(np.float64))
    return _named(model, totals, len(x))


# --- MAS (Aljundi et al. 2018): Ω = E_x |∂‖f(x)‖²/∂θ|, f = the logits; no labels needed. -----------------------------


def mas_importance(
    model: keras.Model, x: np.ndarray, batch_size: int = 1024, implementation: str = "auto"
) -> dict[str, np.ndarray]:
    """MAS importance {weight name: array}: mean over inputs of the absolute gradient of the squared logit norm."""
    if implementation == "auto":
        implementation = "dense" if supports_dense_path(model) else "loop"
    if implementation == "dense":
        return mas_dense(model, x, batch_size)
    if implementation == "loop":
        return mas_loop(model, x)
    raise ValueError(f"unknown MAS implementation {implementation!r} (expected dense or loop)")


def mas_dense(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """MAS by per-layer matmuls |A|ᵀ|Δ| (per-example gradients of a Dense kernel are outer products)."""
    if not supports_dense_path(model):
        raise ValueError("mas_dense needs a model of Flatten, Dropout and Dense layers only")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]

    @tf.function(input_signature=[_spec(x)])  # one trace, any batch
    def batch_sums(xb):
        with tf.GradientTape() as tape:
            inputs, outputs, logits = _dense_forward(model, xb)
        deltas = tape.gradient(logits, outputs, output_gradients=2.0 * logits)  # ∂‖z‖²/∂z = 2z
        sums = [tf.zeros_like(v) for layer in dense for v in layer.trainable_weights]
        return _add_layer_sums(sums, dense, inputs, [tf.abs(d) for d in deltas], tf.abs)

    return _named(model, _sum_batches(batch_sums, x, None, batch_size), len(x))


def mas_loop(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """MAS from one GradientTape per example: the slow reference."""
    variables = model.trainable_weights
    totals = [np.zeros(v.shape, dtype=np.float64) for v in variables]
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            norm = tf.reduce_sum(tf.square(model(x[i : i + 1], training=False)))
        for total, g in zip(totals, tape.gradient(norm, variables)):
            total += np.abs(g.numpy().astype(np.float64))
    return _named(model, totals, len(x))


# --- SI (Zenke et al. 2017): Ω = max(0, ω) / (Δ² + ξ), ω = Σ_steps −g·Δθ accumulated while training task A. ---------


def si_importance(
    path_integral: dict[str, np.ndarray], start: dict[str, np.ndarray], end: dict[str, np.ndarray], xi: float
) -> dict[str, np.ndarray]:
    """SI importance from the accumulated path integral ω, the weights before (start) and after (end) task A, and ξ > 0.

    Negative ω (steps that went uphill on the loss) give no importance: ω is clipped at 0. The penalty is
    λ/2·Σ Ω(θ − θ*)², so λ/2 stands where Zenke et al. write c (λ = 2c).
    """
    if xi <= 0:
        raise ValueError(f"SI's xi must be > 0, got {xi}")
    return {
        name: (np.maximum(path_integral[name], 0.0) / (np.square(end[name] - start[name]) + xi)).astype(end[name].dtype)
        for name in end
    }


# --- Each method's Ω (the `omega` of its module in cllab.methods): (source, settings) -> {weight name: Ω}. -----------


@dataclass(frozen=True)
class Source:
    """What an Ω function may use: θ_A's model, task A's training set, the path integral and start weights of
    training task A (SI), and the seed of subsets and sampled labels."""

    model: keras.Model
    x: np.ndarray
    y: np.ndarray
    path_integral: Mapping[str, np.ndarray] = field(default_factory=dict)
    start: Mapping[str, np.ndarray] = field(default_factory=dict)
    seed: int = 0

    def theta(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(w) for name, w in zip(weight_names(self.model), self.model.trainable_weights)}


def omega_ones(source: Source, settings: Mapping) -> dict[str, np.ndarray]:
    """L2: Ω = 1 for every weight."""
    return {name: np.ones_like(w) for name, w in source.theta().items()}


def omega_fisher(source: Source, settings: Mapping) -> dict[str, np.ndarray]:
    """EWC: the diagonal Fisher of `settings.kind` on `settings.num_examples` of task A's training set."""
    x, y = subset(source.x, source.y, settings["num_examples"], source.seed)
    return fisher_diagonal(source.model, x, settings["kind"], labels=y, seed=source.seed, batch_size=settings["batch_size"])


def omega_si(source: Source, settings: Mapping) -> dict[str, np.ndarray]:
    """SI: the path integral of training task A with damping `settings.xi`."""
    return si_importance(dict(source.path_integral), dict(source.start), source.theta(), settings["xi"])


def omega_mas(source: Source, settings: Mapping) -> dict[str, np.ndarray]:
    """MAS: output sensitivity on `settings.num_examples` of task A's inputs (labels unused)."""
    x, _ = subset(source.x, source.y, settings["num_examples"], source.seed)
    return mas_importance(source.model, x, batch_size=settings["batch_size"])


def method_importance(name: str, source: Source, settings: Mapping) -> dict[str, np.ndarray] | None:
    """The importance Ω of method `name` (cllab.methods) for the penalty λ/2·Σ Ω(θ−θ_A)² around source.model (θ_A),
    with `settings` from cllab.methods.settings_for; None for a method without a penalty (fine-tuning)."""
    method = methods.get(name)
    if method.omega is None:
        return None
    return omega_function(method.omega)(source, settings)


def omega_function(omega: str | Callable[[Source, Mapping], dict[str, np.ndarray]]
                   ) -> Callable[[Source, Mapping], dict[str, np.ndarray]]:
    """The Ω function a method's `omega` gives: a function of its own module as it is, or the name of one of this
    module's (omega_ones, omega_fisher, omega_si, omega_mas); ValueError if this module has none of that name."""
    if callable(omega):
        return omega
    function = globals().get(omega) if isinstance(omega, str) else None
    if not isinstance(omega, str) or not omega.startswith("omega_") or not callable(function):
        raise ValueError(f"cllab.importance has no Ω function {omega!r}")
    return function
