"""The methods: one module per method in this package, each defining `METHOD = Method(...)`; this file holds what they
share (the `Method` fields, the settings schemas, the lookups) and finds them.

A module per method, as Mammoth and Avalanche keep one per model or plugin, so that a method's own DVC stages depend on
its own file: adding or editing a method reruns its stages, the check_params stages (they validate every method) and
the stages that aggregate or plot every method, and nothing else, in every pipeline (tests/test_method_modules.py).

Adding a method (the one place that says what it needs; README "Adding a method"):
- `cllab/methods/<name>.py`: a docstring saying what the method is (with its paper) and `METHOD = Method(name=<name>,
  ...)`, the module named after the method, with its own colour and `order` (its place in every list, legend and
  error message: between the neighbours it should sit with). A penalty whose importance Ω is none of cllab.importance's
  brings its own Ω function in the same module (`omega=<function>`, signature `(source: importance.Source, settings)
  -> {weight name: Ω}`, TensorFlow imported inside the function so that this package stays light).
- params.yaml, per experiment it belongs to (`experiments`): two-task study `train_b.<name>.lambda` (its settings
  under `importance.<settings>` if it has its own) and its name in `methods` to run it; permuted MNIST
  `sequence.method.<name>` (settings under `sequence.importance.<settings>`) and its name in `sequence.methods`; the
  three scenarios `scenarios.method.<name>.<scenario>` for each scenario and its name in `scenarios.methods`.
No dvc.yaml names a method: params validation, train_b, the sequence and scenario runs, evaluate, the plots, the
reports and the tests read the registry.

Three experiments read it: the two-task study (dvc.yaml), the permuted-MNIST sequence (sequence/dvc.yaml) and split
MNIST in three scenarios (scenarios/dvc.yaml). A method says which it belongs to (`experiments`), how the importances
of past tasks carry over to the next task (`carry`), and what a method that is not a penalty adds to each training
step (`replay`, `memory`, `distill`).

No TensorFlow here, nor in any method module at import: params validation imports the whole registry and must answer
in milliseconds.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from cllab.schema import Spec, all_or_int, int_at_least, num_at_least, one_of

FISHER_KINDS = ("exact", "sampled", "empirical")

FISHER_SETTINGS = MappingProxyType({
    "kind": one_of(*FISHER_KINDS), "num_examples": all_or_int(), "batch_size": int_at_least(1),
})
SUBSET_SETTINGS = MappingProxyType({"num_examples": all_or_int(), "batch_size": int_at_least(1)})

EXPERIMENTS = ("two_task", "sequence", "scenarios")
# How a sequence's penalty for task t+1 is made from the (θ_s, Ω_s) of the tasks s ≤ t learned so far:
CARRIES = (
    "sum",     # one penalty per past task, Σ_s Ω_s(θ − θ_s)² (Kirkpatrick et al. 2017), trained as one collapsed quadratic
    "online",  # one penalty at the latest θ_t with the running Ω̃_t = γ·Ω̃_(t−1) + Ω_t (Huszár 2018; Schwarz et al. 2018)
    "latest",  # only the latest task's Ω_t at θ_t: the old Ω's are dropped
)
GAMMA = Spec(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, "a number in [0, 1]")
SEQUENCE_ONLY = ("sequence",)
SCENARIOS_ONLY = ("scenarios",)
MEMORY = MappingProxyType({"per_class": int_at_least(1)})


@dataclass(frozen=True)
class Method:
    """A way of training the new task from θ_A: the penalty λ/2·Σ Ω(θ − θ_A)² with Ω from `omega`.

    name: the id in params.yaml, file names and DVC stage names (and its module's name); label: what figures and tables
    call it; color: its colour in every figure and DVC plot; omega: how Ω is made from θ_A, the name of a function of
    cllab.importance or a function `(source, settings) -> {weight name: Ω}` of the method's own module (None: no
    penalty, plain fine-tuning); settings: the key under params.yaml's `importance` that function reads (None: it reads
    none) and settings_schema its leaves; fixed: settings the method pins whatever params.yaml says (ewc_sampled always
    uses the sampled Fisher); lambda_spec: what its λ may be; lambda_grid: the λ values scripts/select_lambda.py tries
    on validation data. experiments: the experiments it runs in (EXPERIMENTS); carry: how a sequence combines the Ω's
    of past tasks (CARRIES); options: the method's own keys beside `lambda` in params.yaml's `sequence.method.<name>`
    (γ of online carrying, replay's buffer size); replay: whether each batch mixes in stored examples of past tasks
    (the permuted-MNIST sequence's per-task memory). For the three scenarios (cllab/incremental.py), what a method that
    is not a penalty adds to each training step: memory 'replay' (train on a class-balanced memory too) or 'project'
    (A-GEM: project the gradient on the memory's), distill (LwF: λ times the distillation loss against the model after
    the previous task). order: its place in the registry, which `names`, params.yaml's error messages and every table
    follow (a number, so that a new method goes between two others without renumbering them).
    """

    name: str
    label: str
    color: str
    omega: str | Callable[..., Mapping] | None
    settings: str | None = None
    settings_schema: Mapping[str, Spec] = field(default_factory=dict)
    fixed: Mapping[str, object] = field(default_factory=dict)
    lambda_spec: Spec = field(default_factory=lambda: num_at_least(0.0))
    lambda_grid: tuple[float, ...] = ()
    experiments: tuple[str, ...] = EXPERIMENTS
    carry: str = "sum"
    options: Mapping[str, Spec] = field(default_factory=dict)
    replay: bool = False
    memory: str | None = None
    distill: bool = False
    order: float = field(kw_only=True)


def discover(path: Iterable[str], package: str) -> tuple[Method, ...]:
    """The `METHOD` of every module of a package (its `__path__` and dotted name), in `order`; ValueError naming the
    module and the fix if one defines no Method, names it otherwise than itself, or shares another's order."""
    found: list[Method] = []
    for module_info in sorted(pkgutil.iter_modules(list(path)), key=lambda info: info.name):
        where = f"{package.replace('.', '/')}/{module_info.name}.py"
        method = getattr(importlib.import_module(f"{package}.{module_info.name}"), "METHOD", None)
        if not isinstance(method, Method):
            raise ValueError(f"{where}: defines no METHOD = Method(...) (every module of {package} is one method)")
        if method.name != module_info.name:
            raise ValueError(f"{where}: METHOD.name is {method.name!r}, expected {module_info.name!r} (a method's "
                             f"module is named after it)")
        if isinstance(method.order, bool) or not isinstance(method.order, (int, float)) \
                or not math.isfinite(method.order):
            raise ValueError(f"{where}: METHOD.order must be a finite number, got {method.order!r}")
        unknown = [e for e in method.experiments if e not in EXPERIMENTS]
        if unknown or method.carry not in CARRIES:
            raise ValueError(f"{where}: experiments must be among {', '.join(EXPERIMENTS)} and carry one of "
                             f"{', '.join(CARRIES)}, got {method.experiments!r} and {method.carry!r}")
        found.append(method)
    by_order: dict[float, str] = {}
    for method in found:
        if method.order in by_order:
            raise ValueError(f"{package}: methods {by_order[method.order]} and {method.name} share order "
                             f"{method.order:g} (give each its own place)")
        by_order[method.order] = method.name
    return tuple(sorted(found, key=lambda m: m.order))


# Every module beside this file, in `order` (that of params.yaml's method lists): `names` and every error message that
# lists the known methods follow it.
REGISTRY: tuple[Method, ...] = discover(__path__, __name__)
BY_NAME: Mapping[str, Method] = MappingProxyType({m.name: m for m in REGISTRY})
NAMES: tuple[str, ...] = tuple(BY_NAME)


def names(experiment: str) -> tuple[str, ...]:
    """The methods of one experiment ('two_task', 'sequence' or 'scenarios'), in registry order."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r} (expected one of {', '.join(EXPERIMENTS)})")
    return tuple(m.name for m in REGISTRY if experiment in m.experiments)

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


def settings_schema(experiment: str = "two_task") -> dict[str, dict[str, Spec]]:
    """The schema of an experiment's `importance` section: one entry per settings key its methods read."""
    schema: dict[str, dict[str, Spec]] = {}
    for method in REGISTRY:
        if method.settings is None or experiment not in method.experiments:
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
