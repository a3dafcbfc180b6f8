"""The one table of methods: what each is called, its colour, how its importance Ω is made and from which settings.

Adding a penalty method means one `Method` entry here, its Ω function in cllab.importance (signature
`(source, settings) -> {weight name: Ω}`) and its keys in params.yaml (`train_b.<name>.lambda`, its settings under
`importance.<settings>` if it has its own, and its name in `methods` to run it). Params validation, the importance
stage, train_b, evaluate, the plots, the report and the tests read this table; dvc.yaml names no method.

No TensorFlow here: params validation uses it and must answer in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from cllab.schema import Spec, all_or_int, int_at_least, num_at_least, num_positive, one_of, zero

FISHER_KINDS = ("exact", "sampled", "empirical")

FISHER_SETTINGS = MappingProxyType({
    "kind": one_of(*FISHER_KINDS), "num_examples": all_or_int(), "batch_size": int_at_least(1),
})
SUBSET_SETTINGS = MappingProxyType({"num_examples": all_or_int(), "batch_size": int_at_least(1)})


@dataclass(frozen=True)
class Method:
    """A way of training the new task from θ_A: the penalty λ/2·Σ Ω(θ − θ_A)² with Ω from `omega`.

    name: the id in params.yaml, file names and DVC stage names; label: what figures and tables call it;
    color: its colour in every figure and DVC plot; omega: the function in cllab.importance that makes Ω from θ_A
    (None: no penalty, plain fine-tuning); settings: the key under params.yaml's `importance` that function reads
    (None: it reads none) and settings_schema its leaves; fixed: settings the method pins whatever params.yaml says
    (ewc_sampled always uses the sampled Fisher); stage: the DVC stage that writes its anchor file (θ_A with Ω);
    lambda_spec: what its λ may be; lambda_grid: the λ values scripts/select_lambda.py tries on validation data.
    """

    name: str
    label: str
    color: str
    omega: str | None
    settings: str | None = None
    settings_schema: Mapping[str, Spec] = field(default_factory=dict)
    fixed: Mapping[str, object] = field(default_factory=dict)
    stage: str = "importance"
    lambda_spec: Spec = field(default_factory=lambda: num_at_least(0.0))
    lambda_grid: tuple[float, ...] = ()


REGISTRY: tuple[Method, ...] = (
    Method("none", "fine-tune", "#d62728", omega=None, lambda_spec=zero("fine-tuning has no penalty")),
    Method("l2", "L2", "#1f77b4", omega="omega_ones", lambda_grid=(0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0)),
    Method("ewc", "EWC", "#2ca02c", omega="omega_fisher", settings="fisher", settings_schema=FISHER_SETTINGS,
           lambda_grid=(30, 100, 300, 1000, 2000, 3000, 4500)),
    Method("ewc_sampled", "EWC, sampled F", "#8c564b", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, fixed={"kind": "sampled"}, lambda_grid=(300, 1000, 2000, 3000, 4500)),
    Method("ewc_empirical", "EWC, empirical F", "#17becf", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, fixed={"kind": "empirical"},
           lambda_grid=(300, 1000, 2000, 3000, 4500, 7000)),
    Method("si", "SI", "#9467bd", omega="omega_si", settings="si", settings_schema={"xi": num_positive()},
           lambda_grid=(30, 100, 300, 1000, 2000, 3000)),
    Method("mas", "MAS", "#ff7f0e", omega="omega_mas", settings="mas", settings_schema=SUBSET_SETTINGS,
           lambda_grid=(0.1, 0.3, 1, 2, 3, 5)),
)

BY_NAME: Mapping[str, Method] = MappingProxyType({m.name: m for m in REGISTRY})
NAMES: tuple[str, ...] = tuple(BY_NAME)

# The references every figure carries beside the methods: not trained from θ_A, so not in `methods`.
REFERENCES: Mapping[str, tuple[str, str]] = MappingProxyType({"joint": ("joint (upper bound)", "#555555")})


def get(name: str) -> Method:
    """The method called `name`; ValueError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(NAMES)})") from None


def label(name: str) -> str:
    """Readable name of a method or reference (the id itself if unknown)."""
    return BY_NAME[name].label if name in BY_NAME else REFERENCES.get(name, (name, ""))[0]


def color(name: str) -> str:
    """Colour of a method or reference (grey if unknown)."""
    return BY_NAME[name].color if name in BY_NAME else REFERENCES.get(name, ("", "#888888"))[1]


def settings_schema() -> dict[str, dict[str, Spec]]:
    """The schema of params.yaml's `importance` section: one entry per settings key the methods read."""
    schema: dict[str, dict[str, Spec]] = {}
    for method in REGISTRY:
        if method.settings is None:
            continue
        if method.settings in schema and dict(schema[method.settings]) != dict(method.settings_schema):
            raise ValueError(f"methods sharing importance.{method.settings} declare different settings")
        schema[method.settings] = dict(method.settings_schema)
    return schema


def settings_for(name: str, importance_params: Mapping[str, Mapping]) -> dict:
    """The settings the Ω function of method `name` gets: its params.yaml section with its fixed values on top."""
    method = get(name)
    base = dict(importance_params[method.settings]) if method.settings else {}
    return {**base, **method.fixed}
