"""The one table of methods: what each is called, its colour, how its importance Ω is made and from which settings.

Adding a penalty method means one `Method` entry here, its Ω function in cllab.importance (signature
`(source, settings) -> {weight name: Ω}`) and its keys in params.yaml (`train_b.<name>.lambda`, its settings under
`importance.<settings>` if it has its own, and its name in `methods` to run it; for the task sequence,
`sequence.method.<name>`, its settings under `sequence.importance.<settings>` and its name in `sequence.methods`;
`experiments=("two_task",)` keeps it out of the sequence). Params validation, the importance stages, train_b,
the sequence runs, evaluate, the plots, the reports and the tests read this table; no dvc.yaml names a method.

Three experiments read it: the two-task study (dvc.yaml), the permuted-MNIST sequence (sequence/dvc.yaml) and split
MNIST in three scenarios (scenarios/dvc.yaml, params.yaml `scenarios.method.<name>.<scenario>`). A method says which
it belongs to (`experiments`), how the importances of past tasks carry over to the next task (`carry`), and what a
method that is not a penalty adds to each training step (`replay`, `memory`, `distill`).

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

EXPERIMENTS = ("two_task", "sequence", "scenarios")
# How a sequence's penalty for task t+1 is made from the (θ_s, Ω_s) of the tasks s ≤ t learned so far:
CARRIES = (
    "sum",     # one penalty per past task, Σ_s Ω_s(θ − θ_s)² (Kirkpatrick et al. 2017), trained as one collapsed quadratic
    "online",  # one penalty at the latest θ_t with the running Ω̃_t = γ·Ω̃_(t−1) + Ω_t (Huszár 2018; Schwarz et al. 2018)
    "latest",  # only the latest task's Ω_t at θ_t: the old Ω's are dropped
)
GAMMA = Spec(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1, "a number in [0, 1]")


@dataclass(frozen=True)
class Method:
    """A way of training the new task from θ_A: the penalty λ/2·Σ Ω(θ − θ_A)² with Ω from `omega`.

    name: the id in params.yaml, file names and DVC stage names; label: what figures and tables call it;
    color: its colour in every figure and DVC plot; omega: the function in cllab.importance that makes Ω from θ_A
    (None: no penalty, plain fine-tuning); settings: the key under params.yaml's `importance` that function reads
    (None: it reads none) and settings_schema its leaves; fixed: settings the method pins whatever params.yaml says
    (ewc_sampled always uses the sampled Fisher); stage: the DVC stage that writes its anchor file (θ_A with Ω);
    lambda_spec: what its λ may be; lambda_grid: the λ values scripts/select_lambda.py tries on validation data.
    experiments: the experiments it runs in (EXPERIMENTS); carry: how a sequence combines the Ω's of past tasks
    (CARRIES); options: the method's own keys beside `lambda` in params.yaml's `sequence.method.<name>` (γ of online
    carrying, replay's buffer size); replay: whether each batch mixes in stored examples of past tasks (the
    permuted-MNIST sequence's per-task memory). For the three scenarios (cllab/incremental.py), what a method that
    is not a penalty adds to each training step: memory 'replay' (train on a class-balanced memory too) or
    'project' (A-GEM: project the gradient on the memory's), distill (LwF: λ times the distillation loss against the
    model after the previous task).
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
    experiments: tuple[str, ...] = EXPERIMENTS
    carry: str = "sum"
    options: Mapping[str, Spec] = field(default_factory=dict)
    replay: bool = False
    memory: str | None = None
    distill: bool = False


SEQUENCE_ONLY = ("sequence",)
SCENARIOS_ONLY = ("scenarios",)
MEMORY = MappingProxyType({"per_class": int_at_least(1)})

# In the order of params.yaml's method lists (two-task `methods`, `sequence.methods`): `names` and every error message
# that lists the known methods follow it.
REGISTRY: tuple[Method, ...] = (
    Method("none", "fine-tune", "#d62728", omega=None, lambda_spec=zero("fine-tuning has no penalty")),
    Method("l2", "L2", "#1f77b4", omega="omega_ones", lambda_grid=(0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0)),
    # L2 towards the latest θ only, strength λ whatever the number of past tasks (`l2` sums one pull per past task)
    Method("l2_latest", "L2, latest θ only", "#6baed6", omega="omega_ones", experiments=SEQUENCE_ONLY,
           carry="latest"),
    Method("ewc", "EWC", "#2ca02c", omega="omega_fisher", settings="fisher", settings_schema=FISHER_SETTINGS,
           lambda_grid=(30, 100, 300, 1000, 2000, 3000, 4500)),
    Method("ewc_sampled", "EWC, sampled F", "#8c564b", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, fixed={"kind": "sampled"}, lambda_grid=(300, 1000, 2000, 3000, 4500)),
    Method("ewc_empirical", "EWC, empirical F", "#17becf", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, fixed={"kind": "empirical"},
           lambda_grid=(300, 1000, 2000, 3000, 4500, 7000)),
    # Sequence-only EWC variants: with two tasks each is EWC itself (one past task: every carry gives Ω_A at θ_A)
    Method("ewc_online", "online EWC", "#bcbd22", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, experiments=("sequence", "scenarios"), carry="online",
           options={"gamma": GAMMA}),
    Method("ewc_decay", "online EWC, decayed", "#7f7f7f", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, experiments=SEQUENCE_ONLY, carry="online", options={"gamma": GAMMA}),
    Method("ewc_latest", "EWC, latest F only", "#e377c2", omega="omega_fisher", settings="fisher",
           settings_schema=FISHER_SETTINGS, experiments=SEQUENCE_ONLY, carry="latest"),
    # SI and MAS accumulate their importance over tasks at the latest θ, as their papers do (γ = 1)
    Method("si", "SI", "#9467bd", omega="omega_si", settings="si", settings_schema={"xi": num_positive()},
           lambda_grid=(30, 100, 300, 1000, 2000, 3000), carry="online"),
    Method("mas", "MAS", "#ff7f0e", omega="omega_mas", settings="mas", settings_schema=SUBSET_SETTINGS,
           lambda_grid=(0.1, 0.3, 1, 2, 3, 5), carry="online"),
    Method("replay", "replay", "#000080", omega=None, lambda_spec=zero("replay has no penalty"),
           experiments=SEQUENCE_ONLY, options={"per_task": int_at_least(1)}, replay=True),
    # Not penalties on the weights (the three scenarios): distillation of the old outputs, a memory's gradient, replay
    Method("lwf", "LwF", "#e6550d", omega=None, lambda_spec=num_positive(), experiments=SCENARIOS_ONLY, distill=True),
    Method("agem", "A-GEM", "#31a354", omega=None, lambda_spec=zero("A-GEM has no penalty"),
           experiments=SCENARIOS_ONLY, options=MEMORY, memory="project"),
    Method("er", "replay, class-balanced", "#000080", omega=None, lambda_spec=zero("replay has no penalty"),
           experiments=SCENARIOS_ONLY, options=MEMORY, memory="replay"),
)

BY_NAME: Mapping[str, Method] = MappingProxyType({m.name: m for m in REGISTRY})
NAMES: tuple[str, ...] = tuple(BY_NAME)


def names(experiment: str) -> tuple[str, ...]:
    """The methods of one experiment ('two_task' or 'sequence'), in table order."""
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
