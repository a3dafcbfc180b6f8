"""Validate params.yaml's `scenarios` section (split MNIST in three scenarios, scenarios/dvc.yaml) before any work.

Its own module, as cllab/seqparams.py is for the permuted-MNIST sequence: the other pipelines' stages neither read nor
import it. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cllab import methods as methods_lib
from cllab import params as params_lib
from cllab.scenarios import SCENARIOS
from cllab.schema import Spec, fraction, half_open_fraction, int_at_least, one_of, unique_list_of


def _digit_groups(v: Any) -> bool:
    if not isinstance(v, list) or not v or not all(isinstance(g, list) for g in v):
        return False
    every = [d for g in v for d in g]
    return (all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 9 for d in every)
            and len(set(every)) == len(every) and len({len(g) for g in v}) == 1 and len(v[0]) >= 2 and len(v) >= 2)


ORDER = Spec(_digit_groups, "a list of at least 2 lists of distinct digits 0-9, all of one size >= 2")
TRAIN = {"iterations": int_at_least(1), "batch_size": int_at_least(1), "optimizer": params_lib.OPTIMIZER,
         "optimizer_state": one_of("reset", "carry")}


def method_schema(name: str) -> dict[str, Any]:
    """`scenarios.method.<name>`: per scenario, its λ (LwF: the distillation weight) and the method's options."""
    method = methods_lib.get(name)
    return {scenario: {"lambda": method.lambda_spec, **dict(method.options)} for scenario in SCENARIOS}


def schema(listed: Any = None) -> dict[str, Any]:
    """The `scenarios` section's schema: `method.<name>` for every method `listed` (all scenario methods if None)."""
    names = methods_lib.names("scenarios")
    wanted = [n for n in listed if n in names] if isinstance(listed, list) else names
    return {
        "seeds": unique_list_of(int_at_least(0)),
        "scenarios": unique_list_of(one_of(*SCENARIOS)),
        "methods": unique_list_of(one_of(*names)),
        "order": ORDER,
        "val_fraction": fraction(),
        "val_seed": int_at_least(0),
        "model": {"hidden_units": int_at_least(1), "hidden_layers": int_at_least(1), "dropout": half_open_fraction()},
        "train": TRAIN,
        "importance": methods_lib.settings_schema("scenarios"),
        "method": {name: method_schema(name) for name in wanted},
    }


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check the whole file (params.validate), then every key of `scenarios`; return params or raise ParamsError."""
    params_lib.validate(params)
    section = params["scenarios"]
    full = schema(section.get("methods"))
    if isinstance(section.get("method"), dict):
        for name in section["method"]:  # settings of methods not run now may stay, but must be right
            if name not in full["method"]:
                if name not in methods_lib.names("scenarios"):
                    raise params_lib.ParamsError(f"params.yaml: unknown key scenarios.method.{name} (known here: "
                                                 f"{', '.join(methods_lib.names('scenarios'))})")
                full["method"][name] = method_schema(name)
    params_lib._validate(section, full, "scenarios")
    return params


def load(path: str | Path = "params.yaml", overrides: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml and validate it, `scenarios` included; `overrides` as cllab.seqparams.load takes them."""
    from cllab import seqparams

    params = params_lib.load(path)
    if overrides is not None:
        params = seqparams.merge(params, seqparams.read_overrides(overrides), str(overrides), str(path))
    try:
        return validate(params)
    except params_lib.ParamsError as err:
        raise params_lib.ParamsError(f"{err} (with the overrides of {overrides})" if overrides else str(err)) from None
