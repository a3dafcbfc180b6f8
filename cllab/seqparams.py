"""Validate params.yaml's `sequence` section (the permuted-MNIST experiment, sequence/dvc.yaml) before any work.

A separate module so that the two-task stages, which never read this section, do not depend on its schema: editing
it reruns only the sequence pipeline. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cllab import methods as methods_lib
from cllab import params as params_lib
from cllab.schema import fraction, half_open_fraction, int_at_least, unique_list_of, one_of


def method_schema(name: str) -> dict[str, Any]:
    """`sequence.method.<name>`: its λ and the method's own options (cllab/methods/<name>.py)."""
    method = methods_lib.get(name)
    return {"lambda": method.lambda_spec, **dict(method.options)}


def schema(listed: Any = None) -> dict[str, Any]:
    """The `sequence` section's schema; per-method keys come from cllab.methods: `method.<name>` for every method
    `listed` (those of `sequence.methods`; all sequence methods when None)."""
    names = methods_lib.names("sequence")
    wanted = [n for n in listed if n in names] if isinstance(listed, list) else names
    return {
        "seeds": unique_list_of(int_at_least(0)),
        "methods": unique_list_of(one_of(*names)),
        "num_tasks": int_at_least(2),
        "curve_tasks": int_at_least(1),
        "val_fraction": fraction(),
        "val_seed": int_at_least(0),
        "model": {"hidden_units": int_at_least(1), "hidden_layers": int_at_least(1), "dropout": half_open_fraction()},
        "train": params_lib.TRAINING,
        "importance": methods_lib.settings_schema("sequence"),
        "method": {name: method_schema(name) for name in wanted},
    }


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check the whole file (params.validate) and then every key of `sequence`; return params or raise ParamsError."""
    params_lib.validate(params)
    section = params["sequence"]
    full = schema(section.get("methods"))
    extra = {k: v for k, v in section.get("method", {}).items() if k not in full["method"]} \
        if isinstance(section.get("method"), dict) else {}
    for name in extra:  # λ of methods not run now may stay in the file, but must be right for when they are
        if name not in methods_lib.names("sequence"):
            raise params_lib.ParamsError(f"params.yaml: unknown key sequence.method.{name} (known here: "
                                         f"{', '.join(methods_lib.names('sequence'))})")
        full["method"][name] = method_schema(name)
    params_lib._validate(section, full, "sequence")
    if section["curve_tasks"] > section["num_tasks"]:
        raise params_lib.ParamsError(
            f"params.yaml: sequence.curve_tasks must be <= sequence.num_tasks ({section['num_tasks']}), "
            f"got {section['curve_tasks']}")
    return params


def load(path: str | Path = "params.yaml", overrides: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml and validate it, `sequence` included. `overrides`: a YAML file of params.yaml keys to replace
    (nested like params.yaml; mappings are merged key by key, anything else replaced), the way a named configuration
    such as sequence/paper/params.yaml changes the experiment; every key it names must exist in params.yaml."""
    params = params_lib.load(path)
    if overrides is None:
        return validate(params)
    merged = merge(params, read_overrides(overrides), str(overrides), str(path))
    try:
        return validate(merged)
    except params_lib.ParamsError as err:
        raise params_lib.ParamsError(f"{err} (with the overrides of {overrides})") from None


def read_overrides(path: str | Path) -> dict[str, Any]:
    """An overrides file: a mapping, as params.yaml is; one-line errors for a missing or malformed file."""
    raw = params_lib.read_yaml(path, "an overrides file of params.yaml keys")
    if not isinstance(raw, dict):
        raise params_lib.ParamsError(f"{path}: must be a mapping of params.yaml keys, got {raw!r}")
    return raw


def merge(base: dict[str, Any], overrides: dict[str, Any], source: str = "overrides",
          target: str = "params.yaml", where: str = "") -> dict[str, Any]:
    """A copy of `base` with `overrides` applied: mappings merged key by key, other values replaced. A key that
    `base` lacks is an error naming it (a typo would otherwise be ignored silently)."""
    out = dict(base)
    for key, value in overrides.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in base:
            raise params_lib.ParamsError(f"{source}: {dotted} is not a key of {target}")
        out[key] = (merge(base[key], value, source, target, dotted)
                    if isinstance(value, dict) and isinstance(base[key], dict) else value)
    return out
