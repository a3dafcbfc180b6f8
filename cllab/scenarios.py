"""Split MNIST in the three scenarios of continual learning (van de Ven & Tolias 2019; van de Ven, Tuytelaars &
Tolias 2022): what a task's labels are, which output units are live in training and in testing, how a prediction
is read, and replay's class-balanced memory. No TensorFlow here.

- task-incremental ("task"): the task is known at test time. Ten outputs, one per digit; training and testing on
  task t use only the two units of t's digits (a head per task, as 10 outputs of which the task's two are live).
- domain-incremental ("domain"): the task is not known; one shared head of two units, label = the digit's place in
  its task (digit mod 2 for the default order), all units live.
- class-incremental ("class"): the task is not known and every digit is its own class: ten outputs, label = digit.
  Training task t uses the units of every digit seen so far (tasks 0..t), as the anchors do; a model that has
  learned tasks 0..t is tested on the units of those digits (it cannot know the others), all ten after the last.

`SplitTasks` has the interface of cllab.sequence.PermutedTasks (`count`, `split(task, split) -> (x, y)`), so the
sequence runner can train on either kind of task source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

SCENARIOS = ("task", "domain", "class")
DEFAULT_ORDER: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
MEMORY_STREAM = 2  # the third word of a class memory's seed (cllab.data.MEMORY_STREAM is replay's per-task memory)


@dataclass(frozen=True)
class Scenario:
    """One of SCENARIOS over tasks of digits (`task_digits`: disjoint groups of equal size, in training order)."""

    name: str
    task_digits: tuple[tuple[int, ...], ...] = DEFAULT_ORDER

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r} (expected one of {', '.join(SCENARIOS)})")
        groups = [tuple(int(d) for d in group) for group in self.task_digits]
        every = [d for group in groups for d in group]
        if not groups or len({len(g) for g in groups}) != 1 or len(groups[0]) < 2:
            raise ValueError(f"tasks must be groups of the same size >= 2, got {self.task_digits!r}")
        if len(set(every)) != len(every) or not all(0 <= d <= 9 for d in every):
            raise ValueError(f"tasks must hold distinct digits 0-9, got {self.task_digits!r}")
        object.__setattr__(self, "task_digits", tuple(groups))

    @property
    def count(self) -> int:
        return len(self.task_digits)

    @property
    def num_outputs(self) -> int:
        """Output units of the model: one per digit, or (domain-incremental) one per place in a task."""
        return len(self.task_digits[0]) if self.name == "domain" else 10

    def labels(self, digits: np.ndarray, task: int) -> np.ndarray:
        """The training and test labels of task `task`'s examples (`digits` all of that task), int32."""
        digits = np.asarray(digits)
        group = self.task_digits[task]
        if not np.isin(digits, group).all():
            raise ValueError(f"task {task} holds digits {group}, got others")
        if self.name == "domain":
            return np.searchsorted(np.array(sorted(group)), digits).astype(np.int32)
        return digits.astype(np.int32)

    def training_units(self, task: int) -> tuple[int, ...]:
        """The output units live while task `task` trains (the others are masked out of the softmax)."""
        if self.name == "task":
            return tuple(sorted(self.task_digits[task]))
        if self.name == "domain":
            return tuple(range(self.num_outputs))
        return tuple(sorted(d for group in self.task_digits[:task + 1] for d in group))

    def test_units(self, task: int, learned: int) -> tuple[int, ...]:
        """The output units read when task `task` is tested on a model that has learned tasks 0..learned-1."""
        if self.name == "task":
            return tuple(sorted(self.task_digits[task]))
        if self.name == "domain":
            return tuple(range(self.num_outputs))
        return tuple(sorted(d for group in self.task_digits[:learned] for d in group))


def predict(logits: np.ndarray, units: Sequence[int]) -> np.ndarray:
    """The predicted label of each row of `logits` [N, outputs]: the live unit with the largest logit."""
    units = np.asarray(sorted(units))
    return units[np.argmax(np.asarray(logits)[:, units], axis=1)].astype(np.int32)


def accuracy(logits: np.ndarray, labels: np.ndarray, units: Sequence[int]) -> float:
    """Fraction of rows whose prediction over the live `units` is the label."""
    return float(np.mean(predict(logits, units) == np.asarray(labels)))


@dataclass
class SplitTasks:
    """MNIST split into tasks of digits (x_/y_ arrays for train, val, test from data.split_digits, y = digit), with
    the labels of a scenario. Each task's arrays are selected once and kept (all of MNIST once in all)."""

    arrays: Mapping[str, np.ndarray]
    scenario: Scenario

    def __post_init__(self) -> None:
        self._kept: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def count(self) -> int:
        return self.scenario.count

    def digits(self, task: int, split: str) -> np.ndarray:
        """The digits of task `task`'s examples of one split, in the split's order."""
        y = self.arrays[f"y_{split}"]
        return y[np.isin(y, self.scenario.task_digits[task])]

    def split(self, task: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, labels) of one split of task `task`, labels as its scenario says."""
        if (task, split) not in self._kept:
            rows = np.isin(self.arrays[f"y_{split}"], self.scenario.task_digits[task])
            x = self.arrays[f"x_{split}"][rows]
            self._kept[task, split] = x, self.scenario.labels(self.arrays[f"y_{split}"][rows], task)
        return self._kept[task, split]


class ClassBalancedMemory:
    """Replay's memory with the same number of examples of every class stored so far: `per_class` each, or, with a
    `total` budget, total // classes (the earlier classes then keep a prefix of their sample, so a class's stored
    examples only ever shrink). Each class's sample is a permutation drawn by a generator seeded by
    (seed, class, MEMORY_STREAM), a stream of its own."""

    def __init__(self, seed: int, per_class: int | None = None, total: int | None = None) -> None:
        if (per_class is None) == (total is None):
            raise ValueError("give exactly one of per_class and total")
        if (per_class or total or 0) < 1:
            raise ValueError(f"the budget must be >= 1, got per_class={per_class}, total={total}")
        self.seed, self.per_class, self.total = seed, per_class, total
        self._samples: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # class -> (x, y) in drawn order

    def add(self, x: np.ndarray, y: np.ndarray, classes: np.ndarray | None = None) -> None:
        """Store a sample of each class of (x, y); `classes` says which class each row is (default: y itself).
        Nothing is stored if one of them is stored already."""
        classes = np.asarray(y if classes is None else classes)
        new = [int(c) for c in np.unique(classes)]
        again = [c for c in new if c in self._samples]
        if again:
            raise ValueError(f"class {again[0]} is stored already")
        each = self.budget(len(self._samples) + len(new))  # the same for every class stored so far
        for c in new:
            rows = np.flatnonzero(classes == c)
            order = np.random.default_rng([self.seed, c, MEMORY_STREAM]).permutation(len(rows))
            keep = rows[order[:each]]
            self._samples[c] = x[keep], y[keep]

    def budget(self, classes: int) -> int:
        """Examples kept per class when `classes` classes are stored."""
        return self.per_class if self.per_class is not None else max(self.total // max(classes, 1), 1)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored example (x, y), class by class in the order stored."""
        if not self._samples:
            raise ValueError("the memory is empty")
        each = self.budget(len(self._samples))
        xs, ys = zip(*((x[:each], y[:each]) for x, y in self._samples.values()))
        return np.concatenate(xs), np.concatenate(ys)
