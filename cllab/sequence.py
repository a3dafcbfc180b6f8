"""Task sequences (permuted MNIST, Kirkpatrick et al. 2017 Fig. 2): train T tasks in turn with `model.fit`, carrying
each method's penalty (or replay memory) from task to task, and record the accuracy matrix R on validation and test.

Task t (0-based) is MNIST with its pixels in the order `orders[t]` (task 0: the identity). After training task t the
method's importance Ω_t is made from θ_t and task t's own training data (cllab.importance, the same Ω functions as
the two-task study), and the penalty for task t+1 is λ/2·Σ Ω̄(θ − θ̄)² with (θ̄, Ω̄) from the method's `carry`:
sum (one quadratic per past task, collapsed into one: cllab.regularizers.collapse), online (γ-decayed running Ω at
the latest θ) or latest (the latest Ω only). Whatever the number of past tasks, each step pays for one quadratic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from cllab import data, importance, methods, model, regularizers, training


@dataclass(frozen=True)
class PermutedTasks:
    """Plain MNIST (x_/y_ arrays for train, val, test from data.split_digits) and one pixel order per task; the
    permuted images of a task are made when asked for, never written to disk. A task's training images are made
    anew each time (once per task trained); its validation and test images, read after every task, are made once
    and kept in memory for the run (~50 MB per task in float32)."""

    arrays: Mapping[str, np.ndarray]
    orders: np.ndarray
    _kept: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def count(self) -> int:
        return len(self.orders)

    def split(self, task: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one split of task `task`, pixels permuted by its order."""
        if split == "train":
            return data.permute_pixels(self.arrays["x_train"], self.orders[task]), self.arrays["y_train"]
        if (task, split) not in self._kept:
            self._kept[task, split] = data.permute_pixels(self.arrays[f"x_{split}"], self.orders[task])
        return self._kept[task, split], self.arrays[f"y_{split}"]


@dataclass
class Carry:
    """What a method has kept from the tasks learned so far, and the one quadratic it trains the next task with.

    kind: 'sum' keeps every (θ_t, Ω_t) and collapses them (Σ_t Ω_t(θ − θ_t)² = Ω̄(θ − θ̄)² + const); 'online'
    keeps Ω̃_t = γ·Ω̃_(t−1) + Ω_t at the latest θ_t; 'latest' keeps only (θ_t, Ω_t)."""

    kind: str
    gamma: float = 1.0
    anchors: list[dict[str, np.ndarray]] = field(default_factory=list)
    importances: list[dict[str, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in methods.CARRIES:
            raise ValueError(f"unknown carry {self.kind!r} (expected one of {', '.join(methods.CARRIES)})")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")

    def add(self, theta: Mapping[str, np.ndarray], omega: Mapping[str, np.ndarray]) -> None:
        """Fold in the task just learned: its weights θ_t and importance Ω_t."""
        theta = {k: np.asarray(v, np.float64) for k, v in theta.items()}
        if self.kind == "sum":
            self.anchors.append(theta)
            self.importances.append({k: np.asarray(v, np.float64) for k, v in omega.items()})
        elif self.kind == "online":
            previous = self.importances[-1] if self.importances else None
            self.anchors, self.importances = [theta], [regularizers.online_importance(previous, omega, self.gamma)]
        else:
            self.anchors, self.importances = [theta], [{k: np.asarray(v, np.float64) for k, v in omega.items()}]

    def quadratic(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """(θ̄, Ω̄) of the penalty for the next task; None before any task was added."""
        if not self.anchors:
            return None
        return regularizers.collapse(self.anchors, self.importances)


class ReplayBatches(keras.utils.PyDataset):
    """Experience replay's batches: each holds `batch_size` examples of the new task (shuffled each epoch) followed
    by as many drawn uniformly from the memory of past tasks; the draws come from a generator seeded by `seed`."""

    def __init__(self, x: np.ndarray, y: np.ndarray, memory: tuple[np.ndarray, np.ndarray], batch_size: int,
                 seed: int) -> None:
        super().__init__()
        self.x, self.y, (self.memory_x, self.memory_y) = x, y, memory
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        self.order = self.rng.permutation(len(self.y))
        self.replayed = self.rng.integers(0, len(self.memory_y), size=len(self.y))

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        new, old = self.order[rows], self.replayed[rows]
        return (np.concatenate([self.x[new], self.memory_x[old]]),
                np.concatenate([self.y[new], self.memory_y[old]]))

    def on_epoch_end(self) -> None:
        self._draw()


class JointBatches(keras.utils.PyDataset):
    """All tasks at once (the multi-task upper bound): batches of (task, example) pairs shuffled each epoch by a
    generator seeded by `seed`, each example permuted by its own task's order as the batch is made."""

    def __init__(self, x: np.ndarray, y: np.ndarray, orders: np.ndarray, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.orders = x.reshape(len(x), -1), y, orders
        self.shape = x.shape[1:]
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.total = len(y) * len(orders)
        self._draw()

    def _draw(self) -> None:
        self.pairs = self.rng.permutation(self.total)

    def __len__(self) -> int:
        return math.ceil(self.total / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = self.pairs[index * self.batch_size:(index + 1) * self.batch_size]
        tasks, rows = np.divmod(pairs, len(self.y))
        x = np.take_along_axis(self.x[rows], self.orders[tasks], axis=1)
        return x.reshape(len(rows), *self.shape), self.y[rows]

    def on_epoch_end(self) -> None:
        self._draw()


def accuracy_row(net: keras.Model, tasks: PermutedTasks, split: str, upto: int | None = None,
                 known: Sequence[float] = ()) -> list[float]:
    """Accuracy on every task of the sequence (one row of R), or on the first `upto` tasks; the first len(known) are
    given (already measured on this very model, e.g. by the Fig. 2A curve after the last epoch), the rest measured."""
    return [*known, *(model.accuracy(net, *tasks.split(t, split))
                      for t in range(len(known), tasks.count if upto is None else upto))]


@dataclass(frozen=True)
class RunSettings:
    """How a sequence is trained: architecture, optimisation (params.yaml `sequence.train`), Ω settings, the method's
    λ and options, the tasks whose test accuracy is recorded every epoch, and the seed. `test=False` measures
    validation accuracy only (no test image is scored: for choosing settings, scripts/select_sequence.py)."""

    config: model.ModelConfig
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    importance: Mapping[str, Mapping]
    strength: float
    options: Mapping[str, object]
    curve_tasks: int
    seed: int
    test: bool = True


def run_method(name: str, tasks: PermutedTasks, settings: RunSettings,
               log: Callable[[str], None] = print) -> dict:
    """Train the tasks in turn with method `name` (cllab.methods); return R on test (T×T) and validation (row t:
    the tasks seen so far), the initial model's test accuracies (for FWT), the per-epoch test accuracies of the first
    `curve_tasks` tasks and, per task, the largest Ω̄ of its penalty (SGD diverges near learning_rate × λ × max Ω̄ ≈ 2)."""
    method = methods.get(name)
    if not settings.test and settings.curve_tasks:
        raise ValueError(f"curve_tasks={settings.curve_tasks} records test accuracies, but test=False")
    keras.utils.set_random_seed(settings.seed)  # the same θ_1 for every method of a seed, whatever ran before
    carry = Carry(method.carry, float(settings.options.get("gamma", 1.0)))
    curve_tasks = {str(j + 1): tasks.split(j, "test") for j in range(settings.curve_tasks)}
    net = model.build_model(settings.config)
    result: dict = {
        "initial": {"test": accuracy_row(net, tasks, "test")} if settings.test else {},
        "R": {"val": [], "test": []} if settings.test else {"val": []}, "curve": [], "max_importance": [],
    }
    memory: list[tuple[np.ndarray, np.ndarray]] = []
    penalty, fresh = None, None
    for t in range(tasks.count):
        started = time.perf_counter()
        quadratic = carry.quadratic() if method.omega is not None else None
        result["max_importance"].append(
            0.0 if quadratic is None else float(max(np.max(v) for v in quadratic[1].values())))
        weights = model.get_weights(net)  # θ at the task's start (SI's path integral is measured from it)
        if fresh is None or (quadratic is not None and penalty is None):
            # A model for the first task and one more for the first penalised task; every later task reuses it
            # (penalty re-anchored, optimizer and path integral reset), so its step is traced once, not per task.
            penalty = None if quadratic is None else regularizers.penalty_for(settings.strength, *quadratic)
            net = model.build_model(settings.config, penalty=penalty, track_path_integral=method.omega == "omega_si")
            model.set_weights(net, weights)
            model.compile_model(net, settings.optimizer, settings.learning_rate)
            fresh = model.fresh_training_state(net)
        else:
            if quadratic is not None:
                penalty.move_to(*quadratic)
            model.reset_training(net, fresh)
        x, y = tasks.split(t, "train")
        curve = training.TaskAccuracyCurve(curve_tasks, measure_start=t == 0)  # later: the last R row measured it
        inputs: tuple = (x, y)
        if method.replay and memory:
            memory_xy = (np.concatenate([m[0] for m in memory]), np.concatenate([m[1] for m in memory]))
            inputs = (ReplayBatches(x, y, memory_xy, settings.batch_size, seed=settings.seed * 1000 + t), None)
        training.fit(net, *inputs, epochs=settings.epochs, batch_size=settings.batch_size,
                     validation=tasks.split(t, "val"), callbacks=[curve],
                     context=f"{name} task {t + 1} (lambda={settings.strength:g})")
        for row in curve.rows:
            result["curve"].append({"task": t + 1, **row})
        trained = time.perf_counter()
        if method.omega is not None:
            source = importance.Source(
                net, x, y, path_integral=net.path_integral_values() if net.path_integral is not None else {},
                start=weights, seed=settings.seed * 1000 + t)
            settings_for = methods.settings_for(name, settings.importance)
            carry.add(model.get_weights(net), importance.omega_function(method.omega)(source, settings_for))
        if method.replay:
            memory.append(data.replay_buffer([(x, y)], int(settings.options["per_task"]), settings.seed, first_task=t))
        omega_done = time.perf_counter()
        if settings.test:
            measured = [curve.rows[-1][f"acc_{j}"] for j in curve_tasks]  # the curve's last point is this model's
            result["R"]["test"].append(accuracy_row(net, tasks, "test", known=measured))  # all tasks: FWT needs them
        result["R"]["val"].append(accuracy_row(net, tasks, "val", upto=t + 1))  # the tasks seen: for choosing
        split = "test" if settings.test else "val"
        log(f"{name} task {t + 1}/{tasks.count}: fit {trained - started:.1f} s, importance {omega_done - trained:.1f} s,"
            f" accuracies {time.perf_counter() - omega_done:.1f} s; {split} average so far "
            f"{np.mean(result['R'][split][-1][:t + 1]):.4f}")
    return result


def run_joint(tasks: PermutedTasks, settings: RunSettings, log: Callable[[str], None] = print) -> dict:
    """The multi-task upper bound: one model trained on all tasks at once (epochs over their union); its accuracy on
    every task (one row), on validation and test."""
    keras.utils.set_random_seed(settings.seed)
    net = model.build_model(settings.config)
    model.compile_model(net, settings.optimizer, settings.learning_rate)
    started = time.perf_counter()
    x_val = np.concatenate([tasks.split(t, "val")[0] for t in range(tasks.count)])
    y_val = np.tile(tasks.arrays["y_val"], tasks.count)
    batches = JointBatches(tasks.arrays["x_train"], tasks.arrays["y_train"], tasks.orders, settings.batch_size,
                           seed=settings.seed)
    training.fit(net, batches, None, epochs=settings.epochs, batch_size=settings.batch_size,
                 validation=(x_val, y_val), context="joint")
    log(f"joint: fit {time.perf_counter() - started:.1f} s on {tasks.count} tasks")
    return {split: accuracy_row(net, tasks, split) for split in ("val", "test")}
