"""Model files without TensorFlow: the architecture and named weights (plus extras such as an importance Ω) in one
byte-stable .npz, so that stages which only read numbers (plot, evaluate) do not pay TensorFlow's start-up."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cllab import io
from cllab.data import NUM_CLASSES

CONFIG_KEY = "__config__"
IMPORTANCE_PREFIX = "importance/"
SI_OMEGA_PREFIX = "si/omega/"
SI_START_PREFIX = "si/start/"
EXTRA_PREFIXES = (IMPORTANCE_PREFIX, "si/")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: Flatten -> hidden_layers × [Dense(hidden_units, relu) -> Dropout(dropout)] -> Dense(num_classes)
    logits."""

    hidden_units: int = 128
    dropout: float = 0.2
    num_classes: int = NUM_CLASSES
    input_shape: tuple[int, int] = (28, 28)
    hidden_layers: int = 1


def _config_json(config: ModelConfig) -> str:
    """The config as stored: `hidden_layers` only when it is not 1, so one-layer files keep the bytes they had
    before the field existed (and load the same either way)."""
    fields = asdict(config)
    if fields["hidden_layers"] == 1:
        del fields["hidden_layers"]
    return json.dumps(fields, sort_keys=True)


def save(
    path: str | Path, config: ModelConfig, weights: dict[str, np.ndarray], extras: dict[str, np.ndarray] | None = None
) -> None:
    """Write config (a JSON string array), weights in model order, then extras, as one byte-stable .npz.

    `extras` are arrays stored beside the weights under a known prefix: `importance/<weight>` (the importance Ω
    of these weights, so that an anchor θ* and its Ω travel in one file) or `si/...` (SI's path integral).
    """
    arrays: dict[str, np.ndarray] = {CONFIG_KEY: np.array(_config_json(config))}
    arrays.update(weights)
    for key, values in (extras or {}).items():
        if not key.startswith(EXTRA_PREFIXES):
            raise ValueError(f"extra array {key!r} must start with one of {EXTRA_PREFIXES}")
        arrays[key] = values
    io.save_npz(path, arrays)


def _config_from(arrays: dict[str, np.ndarray], path: str | Path) -> ModelConfig:
    try:
        raw = json.loads(str(arrays[CONFIG_KEY]))
        raw["input_shape"] = tuple(raw["input_shape"])
        return ModelConfig(**raw)
    except (ValueError, TypeError, KeyError) as err:
        raise io.ArtifactError(f"{path}: unreadable model config ({err})") from None


def load(path: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """The architecture and the named weights (no extras) of a model file."""
    arrays = io.load_npz(path, required=[CONFIG_KEY])
    weights = {k: v for k, v in arrays.items() if k != CONFIG_KEY and not k.startswith(EXTRA_PREFIXES)}
    return _config_from(arrays, path), weights


def read_config(path: str | Path) -> ModelConfig:
    """The architecture stored in a model file."""
    return _config_from(io.load_npz(path, required=[CONFIG_KEY]), path)


def importance_extras(importance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Name an importance Ω {weight name: array} for `save(..., extras=...)`."""
    return {IMPORTANCE_PREFIX + name: values for name, values in importance.items()}


def load_extras(path: str | Path, prefix: str) -> dict[str, np.ndarray]:
    """The extra arrays stored with a model under `prefix`, keyed by the rest of their name ({} if none)."""
    arrays = io.load_npz(path, required=[CONFIG_KEY])
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_importance(path: str | Path) -> dict[str, np.ndarray] | None:
    """The importance Ω stored with a model, by weight name; None if the file has none (fine-tuning's anchor)."""
    return load_extras(path, IMPORTANCE_PREFIX) or None
