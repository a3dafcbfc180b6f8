"""Load and validate params.yaml before any work starts (no TensorFlow import here: errors come in milliseconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from cllab.errors import LabError

METHODS = ("none", "l2", "ewc", "ewc_sampled", "ewc_empirical", "si", "mas")
FISHER_KINDS = ("exact", "sampled", "empirical")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float64", "float32")


class ParamsError(LabError, ValueError):
    """A bad value in params.yaml; the message is one line naming the key and the value."""


@dataclass(frozen=True)
class Spec:
    """One leaf of the schema: a check and what it says when the check fails."""

    check: Callable[[Any], bool]
    expect: str


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def int_at_least(low: int) -> Spec:
    return Spec(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


def num_at_least(low: float) -> Spec:
    return Spec(lambda v: _is_num(v) and v >= low, f"a finite number >= {low:g}")


def num_positive() -> Spec:
    return Spec(lambda v: _is_num(v) and v > 0, "a finite number > 0")


def fraction() -> Spec:
    return Spec(lambda v: _is_num(v) and 0 < v < 1, "a number strictly between 0 and 1")


def one_of(*choices: str) -> Spec:
    return Spec(lambda v: v in choices, "one of " + ", ".join(choices))


def text() -> Spec:
    return Spec(lambda v: isinstance(v, str) and v != "", "a non-empty string")


def unique_list_of(item: Spec) -> Spec:
    def check(v: Any) -> bool:
        return isinstance(v, list) and len(v) > 0 and len(set(map(str, v))) == len(v) and all(item.check(x) for x in v)

    return Spec(check, f"a non-empty list without repeats, each {item.expect}")


def list_of_mappings(fields: dict[str, Spec], what: str) -> Spec:
    def check(v: Any) -> bool:
        return isinstance(v, list) and len(v) > 0 and all(
            isinstance(x, dict) and set(x) == set(fields) and all(fields[k].check(x[k]) for k in fields) for x in v
        )

    return Spec(check, f"a non-empty list of {what}")


def all_or_int() -> Spec:
    return Spec(lambda v: v == "all" or (_is_int(v) and v >= 1), "'all' or an integer >= 1")


OPTIMIZER = {"name": one_of(*OPTIMIZERS), "learning_rate": num_positive()}
TRAINING = {"epochs": int_at_least(1), "batch_size": int_at_least(1), "optimizer": OPTIMIZER}

LAMBDA = {"lambda": num_at_least(0.0)}

SCHEMA: dict[str, Any] = {
    "seeds": unique_list_of(int_at_least(0)),
    "methods": unique_list_of(one_of(*METHODS)),
    "runtime": {"threads": int_at_least(1), "precision": one_of(*PRECISIONS)},
    "prepare": {"raw_dir": text(), "tfds_dir": text(), "val_fraction": fraction(), "val_seed": int_at_least(0)},
    "model": {"hidden_units": int_at_least(1), "dropout": Spec(lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")},
    "train_joint": TRAINING,
    "train_a": TRAINING,
    "fisher": {"kind": one_of(*FISHER_KINDS), "num_examples": all_or_int(), "batch_size": int_at_least(1)},
    "mas": {"num_examples": all_or_int(), "batch_size": int_at_least(1)},
    "si": {"xi": num_positive()},
    "train_b": {
        **TRAINING,
        "none": {"lambda": Spec(lambda v: _is_num(v) and v == 0, "0 (fine-tuning has no penalty)")},
        **{method: LAMBDA for method in METHODS if method != "none"},
    },
    "sweep": {
        "seed": int_at_least(0),
        "widths": unique_list_of(int_at_least(1)),
        "optimizers": list_of_mappings(OPTIMIZER, "{name: adam|sgd, learning_rate: > 0} mappings"),
        "points": list_of_mappings({"method": one_of(*METHODS), "lambda": num_at_least(0.0)},
                                   "{method: one of " + ", ".join(METHODS) + ", lambda: >= 0} mappings"),
    },
    "plot": {"dpi": int_at_least(20), "width_in": num_positive(), "height_in": num_positive()},
}


def _validate(node: Any, schema: dict[str, Any], where: str) -> None:
    if not isinstance(node, dict):
        raise ParamsError(f"params.yaml: {where or 'top level'} must be a mapping, got {node!r}")
    for key in node:
        if key not in schema:
            known = ", ".join(schema)
            raise ParamsError(f"params.yaml: unknown key {where + '.' if where else ''}{key} (known here: {known})")
    for key, spec in schema.items():
        path = f"{where}.{key}" if where else key
        if key not in node:
            raise ParamsError(f"params.yaml: missing key {path}")
        value = node[key]
        if isinstance(spec, dict):
            _validate(value, spec, path)
        elif not spec.check(value):
            raise ParamsError(f"params.yaml: {path} must be {spec.expect}, got {value!r}")


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check every key, type and range of a params mapping; return it unchanged or raise ParamsError."""
    _validate(params, SCHEMA, "")
    return params


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the project root)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    return validate(raw)
