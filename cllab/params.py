"""Load and validate params.yaml before any work starts (no TensorFlow import here: errors come in milliseconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cllab import methods as methods_lib
from cllab.errors import LabError
from cllab.methods import FISHER_KINDS  # noqa: F401  (re-exported: the kinds of Fisher a method can use)
from cllab.schema import (
    Spec, fraction, half_open_fraction, int_at_least, list_of_mappings, num_at_least, num_positive, one_of, problem,
    project_path, text, unique_list_of,
)

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float64", "float32")


class ParamsError(LabError, ValueError):
    """A bad value in params.yaml; the message is one line naming the key and the value."""


OPTIMIZER = {"name": one_of(*OPTIMIZERS), "learning_rate": num_positive()}
TRAINING = {"epochs": int_at_least(1), "batch_size": int_at_least(1), "optimizer": OPTIMIZER}

# The permuted-MNIST sequence's and the three scenarios' sections are checked by their own pipelines' modules
# (cllab/seqparams.py, cllab/scenparams.py): the two-task stages neither read nor import them.
SEPARATE_SECTION = Spec(lambda v: isinstance(v, dict), "a mapping (its keys: cllab/seqparams.py)")
SCENARIOS_SECTION = Spec(lambda v: isinstance(v, dict), "a mapping (its keys: cllab/scenparams.py)")


def schema() -> dict[str, Any]:
    """The whole params.yaml schema; the methods' parts (train_b.<method>.lambda, importance.<settings>) come from
    cllab.methods, so a new method is validated as soon as it is in that table."""
    two_task = methods_lib.names("two_task")
    return {
        "seeds": unique_list_of(int_at_least(0)),
        "methods": unique_list_of(one_of(*two_task)),
        "runtime": {"threads": int_at_least(1), "precision": one_of(*PRECISIONS)},
        "prepare": {"raw_dir": project_path(), "tfds_dir": text(), "val_fraction": fraction(), "val_seed": int_at_least(0)},
        "model": {"hidden_units": int_at_least(1), "dropout": half_open_fraction()},
        "train_joint": TRAINING,
        "train_a": TRAINING,
        "importance": methods_lib.settings_schema(),  # each method's Ω settings (cllab/methods/)
        "train_b": {**TRAINING, **{name: {"lambda": methods_lib.get(name).lambda_spec} for name in two_task}},
        "sweep": {
            "seed": int_at_least(0),
            "widths": unique_list_of(int_at_least(1)),
            "optimizers": list_of_mappings(OPTIMIZER, "{name: adam|sgd, learning_rate: > 0} mappings"),
            "points": list_of_mappings({"method": one_of(*two_task), "lambda": num_at_least(0.0)},
                                       "{method: one of " + ", ".join(two_task) + ", lambda: >= 0} mappings"),
        },
        "sequence": SEPARATE_SECTION,
        "scenarios": SCENARIOS_SECTION,
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
            raise ParamsError(f"params.yaml: {path} {problem(spec, value)}")


def _validate_sweep(sweep: dict[str, Any]) -> None:
    """What the sweep's lists must also be: each point's λ one its method allows, and no point or optimizer twice."""
    for i, point in enumerate(sweep["points"]):
        spec = methods_lib.get(point["method"]).lambda_spec
        if not spec.check(point["lambda"]):
            raise ParamsError(f"params.yaml: sweep.points item {i} ({point['method']}): lambda must be {spec.expect}, "
                              f"got {point['lambda']!r}")
    # each point writes {method}_{λ:g}_{optimizer}.json (stages/sweep_width.py): two entries that name the same file
    # are one point (0 and 0.0 alike); two optimizers of one name would overwrite each other's files
    for key, identity in (("points", lambda e: (e["method"], f"{e['lambda']:g}")), ("optimizers", lambda e: e["name"])):
        seen: dict[Any, int] = {}
        for i, entry in enumerate(sweep[key]):
            if identity(entry) in seen:
                raise ParamsError(f"params.yaml: sweep.{key} item {i} repeats item {seen[identity(entry)]} "
                                  f"({entry!r}), expected each {key[:-1]} once")
            seen[identity(entry)] = i


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check every key, type and range of a params mapping; return it unchanged or raise ParamsError."""
    _validate(params, schema(), "")
    _validate_sweep(params["sweep"])
    return params


def read_yaml(path: str | Path, hint: str) -> Any:
    """A YAML file's content, or a one-line error naming the file: not found (with `hint`), or not valid YAML (with
    the line)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found ({hint})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml."""
    return validate(read_yaml(path, "run from the project root"))
