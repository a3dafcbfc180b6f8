"""The MLP classifier, its penalised training step, and byte-stable weight files loadable in one call."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cllab import io
from cllab.data import NUM_CLASSES

CONFIG_KEY = "__config__"
IMPORTANCE_PREFIX = "importance/"
SI_OMEGA_PREFIX = "si/omega/"
SI_START_PREFIX = "si/start/"
EXTRA_PREFIXES = (IMPORTANCE_PREFIX, "si/")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: Flatten -> Dense(hidden_units, relu) -> Dropout(dropout) -> Dense(num_classes) logits."""

    hidden_units: int = 128
    dropout: float = 0.2
    num_classes: int = NUM_CLASSES
    input_shape: tuple[int, int] = (28, 28)


Penalty = Callable[[Sequence[keras.Variable]], tf.Tensor]


class ContinualClassifier(keras.Sequential):
    """A Sequential classifier whose training loss adds an optional penalty on its trainable weights.

    The penalty (e.g. EWC's λ/2·Σ F(θ−θ_A)²) enters `compute_loss` only when training, so `fit` keeps its
    progress bar, callbacks and metrics; `evaluate` reports the plain cross-entropy. The penalty's value per
    epoch is reported as the metric `penalty`.
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
        self.penalty_tracker = keras.metrics.Mean(name="penalty") if penalty is not None else None
        # SI's ω = Σ_steps −g·Δθ, accumulated by train_step when asked for (training task A)
        self.path_integral = (
            [keras.Variable(np.zeros(w.shape, np.float32), trainable=False, name=f"omega_{i}")
             for i, w in enumerate(self.trainable_weights)]
            if track_path_integral else None
        )

    def train_step(self, data):
        if self.path_integral is None:
            return super().train_step(data)
        # Keras' own TF train_step, plus the path integral of the very gradient and step applied.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        weights = self.trainable_weights
        gradients = tape.gradient(loss, weights)
        before = [tf.convert_to_tensor(w) for w in weights]
        self.optimizer.apply_gradients(zip(gradients, weights))
        for omega, g, w, b in zip(self.path_integral, gradients, weights, before):
            omega.assign_add(-g * (w - b))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def path_integral_values(self) -> dict[str, np.ndarray]:
        """SI's accumulated ω by weight name (requires track_path_integral=True)."""
        return dict(zip(weight_names(self), (np.asarray(v) for v in self.path_integral)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training and self.penalty is not None:
            penalty = self.penalty(self.trainable_weights)
            self.penalty_tracker.update_state(penalty)
            loss = loss + penalty
        return loss



def build_model(
    config: ModelConfig, penalty: Penalty | None = None, track_path_integral: bool = False
) -> ContinualClassifier:
    """A freshly initialised (seeded by keras.utils.set_random_seed) classifier."""
    model = ContinualClassifier(
        [
            keras.Input(shape=config.input_shape),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(config.hidden_units, activation="relu", name="hidden"),
            keras.layers.Dropout(config.dropout, name="dropout"),
            keras.layers.Dense(config.num_classes, name="logits"),
        ],
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


def compile_model(model: keras.Model, optimizer: str, learning_rate: float) -> keras.Model:
    """Compile for integer labels and logits outputs."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


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
    """Save config and weights as one byte-stable .npz (the config as a JSON string array).

    `extras` are arrays stored beside the weights under a known prefix: `importance/<weight>` (the importance Ω
    of these weights, so that an anchor θ* and its Ω travel in one file) or `si/...` (SI's path integral).
    """
    arrays: dict[str, np.ndarray] = {CONFIG_KEY: np.array(json.dumps(asdict(config), sort_keys=True))}
    arrays.update(get_weights(model))
    for key, values in (extras or {}).items():
        if not key.startswith(EXTRA_PREFIXES):
            raise ValueError(f"extra array {key!r} must start with one of {EXTRA_PREFIXES}")
        arrays[key] = values
    io.save_npz(path, arrays)


def importance_extras(importance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Name an importance Ω {weight name: array} for `save_model(..., extras=...)`."""
    return {IMPORTANCE_PREFIX + name: values for name, values in importance.items()}


def load_extras(path: str | Path, prefix: str) -> dict[str, np.ndarray]:
    """The extra arrays stored with a model under `prefix`, keyed by the rest of their name ({} if none)."""
    arrays = io.load_npz(path, required=[CONFIG_KEY])
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_importance(path: str | Path) -> dict[str, np.ndarray] | None:
    """The importance Ω stored with a model, by weight name; None if the file has none (fine-tuning's anchor)."""
    return load_extras(path, IMPORTANCE_PREFIX) or None


def _config_from(arrays: dict[str, np.ndarray], path: str | Path) -> ModelConfig:
    try:
        raw = json.loads(str(arrays[CONFIG_KEY]))
        raw["input_shape"] = tuple(raw["input_shape"])
        return ModelConfig(**raw)
    except (ValueError, TypeError, KeyError) as err:
        raise io.ArtifactError(f"{path}: unreadable model config ({err})") from None


def read_config(path: str | Path) -> ModelConfig:
    """The architecture stored in a model file."""
    return _config_from(io.load_npz(path, required=[CONFIG_KEY]), path)


def load_model(path: str | Path, penalty: Penalty | None = None) -> ContinualClassifier:
    """Rebuild a saved classifier in one call: `model = load_model("models/theta_a.npz")`."""
    arrays = io.load_npz(path, required=[CONFIG_KEY])
    model = build_model(_config_from(arrays, path), penalty=penalty)
    weights = {k: v for k, v in arrays.items() if k != CONFIG_KEY and not k.startswith(EXTRA_PREFIXES)}
    set_weights(model, weights, source=str(path))
    return model


def load_penalized(path: str | Path, strength: float) -> ContinualClassifier:
    """θ_A from an anchor file, trained further with the penalty λ/2·Σ Ω(θ − θ_A)² of the Ω stored beside it
    (plain fine-tuning when the file holds no importance)."""
    from cllab.regularizers import penalty_for

    anchor = load_model(path)
    return load_model(path, penalty=penalty_for(strength, get_weights(anchor), load_importance(path)))


def predict_logits(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits [N, classes] in inference mode (dropout off)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Fraction of examples whose arg-max logit equals the label."""
    return float(np.mean(np.argmax(predict_logits(model, x, batch_size), axis=1) == y))
