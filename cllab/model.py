"""The MLP classifier, its penalised training step, and byte-stable weight files loadable in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import keras
import numpy as np
import tensorflow as tf

from cllab import checkpoint, io
from cllab.checkpoint import (  # noqa: F401  (the file format, re-exported: model.load_importance etc.)
    CONFIG_KEY, EXTRA_PREFIXES, IMPORTANCE_PREFIX, SI_OMEGA_PREFIX, SI_START_PREFIX, ModelConfig, importance_extras,
    load_extras, load_importance, read_config,
)


class Penalty(Protocol):
    """What a ContinualClassifier adds to its loss: a scalar function of its trainable weights, which names the
    weights it expects, in model order, and their shapes (cllab.regularizers.QuadraticPenalty is one)."""

    names: list[str]
    shapes: list[tuple[int, ...]]

    def __call__(self, weights: Sequence[keras.Variable]) -> tf.Tensor: ...


class ContinualClassifier(keras.Sequential):
    """A Sequential classifier whose training loss adds an optional penalty on its trainable weights.

    The penalty (e.g. EWC's λ/2·Σ F(θ−θ_A)²) enters `compute_loss`, so `fit` keeps its progress bar, callbacks and
    metrics. With a penalty, `loss` is the objective (cross-entropy + penalty) in training and in evaluation alike,
    and the two terms are reported apart as `cross_entropy` and `penalty` (in validation: `val_cross_entropy`, and
    `val_penalty`, the penalty at the weights being evaluated).
    """

    def __init__(
        self,
        layers: Sequence[keras.layers.Layer],
        penalty: Penalty | None = None,
        track_path_integral: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(layers, **kwargs)
        self.penalty = penalty
        if penalty is not None:  # the penalty's tensors meet the weights by position (see `_loss_terms`)
            names, shapes = weight_names(self), [tuple(w.shape) for w in self.trainable_weights]
            if penalty.names != names:
                raise ValueError(f"the penalty's weights {penalty.names} are not the model's {names} in order")
            if penalty.shapes != shapes:  # a size-1 dimension would otherwise broadcast silently
                raise ValueError(f"the penalty's shapes {penalty.shapes} are not the model's weights' {shapes}")
            self.cross_entropy_tracker = keras.metrics.Mean(name="cross_entropy")
            self.penalty_tracker = keras.metrics.Mean(name="penalty")
        # SI's ω = Σ_steps −g·Δθ, accumulated by train_step when asked for: g is the gradient of the task's loss
        # alone, as in Zenke et al.'s reference code, not of the penalty the step also follows (from task 2 on)
        self.path_integral = (
            [keras.Variable(np.zeros(w.shape, w.dtype), trainable=False, name=f"omega_{i}")
             for i, w in enumerate(self.trainable_weights)]
            if track_path_integral else None
        )

    def train_step(self, data):
        if self.path_integral is None:
            return super().train_step(data)
        # Keras' own TF train_step, plus the path integral of the step applied, weighted by the cross-entropy's
        # gradient. With a penalty, its gradient is taken apart and added: the sum autodiff forms for the
        # objective (one rounding either way), so the step is the same bits as without taking it apart.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape(persistent=self.penalty is not None) as tape:
            y_pred = self(x, training=True)
            cross_entropy, penalty = self._loss_terms(x, y, y_pred, sample_weight, training=True)
            loss = cross_entropy if penalty is None else cross_entropy + penalty
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        weights = self.trainable_weights
        task_gradients = tape.gradient(cross_entropy, weights)
        gradients = task_gradients
        if penalty is not None:
            gradients = [g + p for g, p in zip(task_gradients, tape.gradient(penalty, weights))]
        del tape
        before = [tf.convert_to_tensor(w) for w in weights]
        self.optimizer.apply_gradients(zip(gradients, weights))
        for omega, g, w, b in zip(self.path_integral, task_gradients, weights, before):
            omega.assign_add(-g * (w - b))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def path_integral_values(self) -> dict[str, np.ndarray]:
        """SI's accumulated ω by weight name (requires track_path_integral=True)."""
        return dict(zip(weight_names(self), (np.asarray(v) for v in self.path_integral)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        cross_entropy, penalty = self._loss_terms(x, y, y_pred, sample_weight, training)
        return cross_entropy if penalty is None else cross_entropy + penalty

    def _loss_terms(self, x, y, y_pred, sample_weight, training) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Keras' loss (the cross-entropy) and the penalty at the current weights (None without one), each recorded
        by its tracker."""
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if self.penalty is None:
            return loss, None
        penalty = self.penalty(self.trainable_weights)
        examples = tf.shape(y_pred)[0]  # weighted like Keras' own loss tracker, so loss = cross_entropy + penalty
        self.cross_entropy_tracker.update_state(loss, sample_weight=examples)
        self.penalty_tracker.update_state(penalty, sample_weight=examples)
        return loss, penalty


def build_model(
    config: ModelConfig, penalty: Penalty | None = None, track_path_integral: bool = False
) -> ContinualClassifier:
    """A freshly initialised (seeded by keras.utils.set_random_seed) classifier."""
    hidden = []
    for i in range(config.hidden_layers):  # layer names hidden, hidden_2, ...: weight names stay stable
        suffix = "" if i == 0 else f"_{i + 1}"
        hidden += [keras.layers.Dense(config.hidden_units, activation="relu", name=f"hidden{suffix}"),
                   keras.layers.Dropout(config.dropout, name=f"dropout{suffix}")]
    model = ContinualClassifier(
        [keras.Input(shape=config.input_shape), keras.layers.Flatten(name="flatten"), *hidden,
         keras.layers.Dense(config.num_classes, name="logits")],
        penalty=penalty,
        track_path_integral=track_path_integral,
        name="mlp",
    )
    return model


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam or plain SGD (no momentum) with the given learning rate."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r} (expected adam or sgd)")


# Steps run per call of the compiled training function. It changes speed only, not numbers: 16 steps per call give
# bit-identical weights to 1 (same batches, same ops, same RNG draws; tests/test_training.py checks it) and cut
# Keras' per-step Python overhead, ~1.7x faster epochs for this small MLP on 2 cores (bench/run.py).
STEPS_PER_EXECUTION = 16


def compile_model(
    model: keras.Model, optimizer: str, learning_rate: float, steps_per_execution: int = STEPS_PER_EXECUTION
) -> keras.Model:
    """Compile for integer labels and logits outputs."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )
    return model


def _training_variables(model: keras.Model) -> list[keras.Variable]:
    return [*model.optimizer.variables, *(getattr(model, "path_integral", None) or [])]


def fresh_training_state(model: keras.Model) -> list[np.ndarray]:
    """What a compiled model's training starts from: its optimizer's variables (step count, learning rate, slots such
    as Adam's moments; built now if need be) and SI's path integral, before any step. `reset_training` puts them
    back, so that the same model, its training step traced once, trains the next task as a newly compiled one."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if int(model.optimizer.iterations) != 0:
        raise ValueError(f"the optimizer has taken {int(model.optimizer.iterations)} steps: a fresh training state "
                         "is taken before the first")
    return [v.numpy() for v in _training_variables(model)]  # copies


def reset_training(model: keras.Model, state: Sequence[np.ndarray]) -> None:
    """Return a compiled model's optimizer and path integral to `state` (from fresh_training_state); the weights,
    and the penalty, stay as they are."""
    variables = _training_variables(model)
    if len(variables) != len(state):
        raise ValueError(f"a training state of {len(state)} variables for a model with {len(variables)}")
    for variable, value in zip(variables, state):
        variable.assign(value)


def weight_names(model: keras.Model) -> list[str]:
    """Stable names of the trainable weights, in model order: 'hidden/kernel', 'hidden/bias', ..."""
    return [f"{layer.name}/{w.name}" for layer in model.layers for w in layer.trainable_weights]


def get_weights(model: keras.Model) -> dict[str, np.ndarray]:
    """The trainable weights as {name: array}, in model order."""
    return dict(zip(weight_names(model), (np.asarray(w) for w in model.trainable_weights)))


def set_weights(model: keras.Model, weights: dict[str, np.ndarray], source: str = "weights") -> None:
    """Assign named weights; error naming the source if names or shapes do not match the model."""
    names = weight_names(model)
    if sorted(names) != sorted(weights):
        raise io.ArtifactError(f"{source}: weights {sorted(weights)} do not match the model's {sorted(names)}")
    for name, var in zip(names, model.trainable_weights):
        if tuple(var.shape) != weights[name].shape:
            raise io.ArtifactError(f"{source}: {name} has shape {weights[name].shape}, model expects {tuple(var.shape)}")
        var.assign(weights[name])


def save_model(
    path: str | Path, model: keras.Model, config: ModelConfig, extras: dict[str, np.ndarray] | None = None
) -> None:
    """Save config, weights (model order) and extras as one byte-stable .npz (see cllab.checkpoint.save)."""
    checkpoint.save(path, config, get_weights(model), extras)


def load_model(path: str | Path, penalty: Penalty | None = None) -> ContinualClassifier:
    """Rebuild a saved classifier in one call: `model = load_model("models/0/theta_a.npz")`."""
    config, weights = checkpoint.load(path)
    model = build_model(config, penalty=penalty)
    set_weights(model, weights, source=str(path))
    return model


def load_penalized(path: str | Path, strength: float) -> ContinualClassifier:
    """θ_A from an anchor file, trained further with the penalty λ/2·Σ Ω(θ − θ_A)² of the Ω stored beside it
    (plain fine-tuning when the file holds no importance)."""
    from cllab.regularizers import penalty_for

    anchor = load_model(path)
    return load_model(path, penalty=penalty_for(strength, get_weights(anchor), load_importance(path)))


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits [N, classes] in inference mode (dropout off).

    `predict_on_batch` on slices, not `model.predict`: predict builds a dataset and traces a function per call (~0.15 s
    for a 5,000-example test set). predict_on_batch runs the model's compiled predict function, traced once per model:
    the same logits, bit for bit, as calling the model eagerly on the same batches, and ~1.3-1.5x faster (the
    sequences evaluate ~2 million images per run; bench/README.md).
    """
    return np.concatenate(
        [model.predict_on_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    ) if len(x) else np.zeros((0, model.output_shape[-1]), keras.config.floatx())


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Fraction of examples whose arg-max logit equals the label."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) == y))


def task_accuracies(model: keras.Model, tasks: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Accuracy on every task's validation and test split: {"val": {"a": …, "b": …}, "test": {…}}."""
    return {split: {name: accuracy(model, arrays[f"x_{split}"], arrays[f"y_{split}"]) for name, arrays in tasks.items()}
            for split in ("val", "test")}
