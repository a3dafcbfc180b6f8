"""Validate params.yaml's `scenarios` section (split MNIST in three scenarios, scenarios/dvc.yaml) before any work.

Its own module, as cllab/seqparams.py is for the permuted-MNIST sequence: the other pipelines' stages neither read nor
import it. No TensorFlow here.
"""

from __future__ import annotations

import re
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


VARIANT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _known(value: Any, choices: Any) -> list:
    return [v for v in value if isinstance(v, str) and v in choices] if isinstance(value, list) else []


def variant_schema(variant: Any) -> dict[str, Any]:
    """`scenarios.variants.<name>`: the keys of `scenarios.train` it replaces (any of them, each whole), the scenarios
    and methods it runs, and its own λ and options for each of those (`method.<method>.<scenario>`; entries for
    others may stay, but must be right)."""
    variant = variant if isinstance(variant, dict) else {}
    train, own = variant.get("train"), variant.get("method")
    own = own if isinstance(own, dict) else {}
    names = methods_lib.names("scenarios")
    wanted: dict[str, list[str]] = {m: _known(variant.get("scenarios"), SCENARIOS)
                                    for m in _known(variant.get("methods"), names)}
    for m, entries in own.items():
        if m in names:
            wanted.setdefault(m, []).extend(s for s in (entries if isinstance(entries, dict) else ()) if s in SCENARIOS)
    return {
        "train": {k: TRAIN[k] for k in train if k in TRAIN} if isinstance(train, dict) else TRAIN,
        "scenarios": unique_list_of(one_of(*SCENARIOS), empty=True),  # empty: the variant is not run
        "methods": unique_list_of(one_of(*names), empty=True),
        "method": {m: {s: method_schema(m)[s] for s in dict.fromkeys(ss)} for m, ss in wanted.items()},
    }


def schema(listed: Any = None, variants: Any = None) -> dict[str, Any]:
    """The `scenarios` section's schema: `method.<name>` for every method `listed` (all scenario methods if None),
    `variants.<name>` for every variant in `variants`."""
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
        "variants": {name: variant_schema(v) for name, v in variants.items()} if isinstance(variants, dict) else {},
    }


def validate(params: dict[str, Any]) -> dict[str, Any]:
    """Check the whole file (params.validate), then every key of `scenarios`; return params or raise ParamsError."""
    params_lib.validate(params)
    section = params["scenarios"]
    variants = section.get("variants")
    full = schema(section.get("methods"), variants)
    for name, variant in variants.items() if isinstance(variants, dict) else ():
        where = f"scenarios.variants.{name}"
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise params_lib.ParamsError(f"params.yaml: {where}: a variant's name must be lower-case letters, digits "
                                         "and _ (it names its stages and files)")
        own = variant.get("method") if isinstance(variant, dict) else None
        for method in own if isinstance(own, dict) else ():
            if method not in methods_lib.names("scenarios"):
                raise params_lib.ParamsError(f"params.yaml: unknown key {where}.method.{method} (known here: "
                                             f"{', '.join(methods_lib.names('scenarios'))})")
        train = variant.get("train") if isinstance(variant, dict) else None
        for key in train if isinstance(train, dict) else ():
            if key not in TRAIN:
                raise params_lib.ParamsError(f"params.yaml: unknown key {where}.train.{key} (a variant replaces keys "
                                             f"of scenarios.train: {', '.join(TRAIN)})")
    if isinstance(section.get("method"), dict):
        for name in section["method"]:  # settings of methods not run now may stay, but must be right
            if name not in full["method"]:
                if name not in methods_lib.names("scenarios"):
                    raise params_lib.ParamsError(f"params.yaml: unknown key scenarios.method.{name} (known here: "
                                                 f"{', '.join(methods_lib.names('scenarios'))})")
                full["method"][name] = method_schema(name)
    params_lib._validate(section, full, "scenarios")
    return params


def run_settings(section: dict[str, Any], scenario: str, method: str,
                 variant: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training settings (`scenarios.train`) and the method's own λ and options of one run in `scenario`: the
    main runs', or those of `variant` (the keys of `train` it names replaced, its own λ); joint: no λ. Raises
    ParamsError if the variant does not exist or does not run that method in that scenario."""
    if variant is None:
        return section["train"], section["method"].get(method, {}).get(scenario, {"lambda": 0})
    where = f"scenarios.variants.{variant}"
    if variant not in section["variants"]:
        raise params_lib.ParamsError(f"params.yaml: no {where} (variants: {', '.join(section['variants']) or 'none'})")
    own = section["variants"][variant]
    if scenario not in own["scenarios"] or method not in own["methods"]:
        raise params_lib.ParamsError(f"params.yaml: {where} does not run {method} in {scenario} (its scenarios: "
                                     f"{own['scenarios']}, methods: {own['methods']})")
    return {**section["train"], **own["train"]}, own["method"][method][scenario]


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
