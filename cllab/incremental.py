"""Split MNIST in the three scenarios (cllab.scenarios): train the tasks in turn with any method of the registry and
record the accuracy matrix R as the scenario scores it.

What a method adds to a training step and carries to the next task, in one model (`IncrementalClassifier`):
- a quadratic penalty λ/2·Σ Ω̄(θ − θ̄)² (L2, EWC, online EWC, SI, MAS): the (θ_t, Ω_t) of past tasks, combined by the
  method's `carry` as for permuted MNIST (cllab.sequence.Carry), Ω_t made from the units task t trained;
- distillation (LwF, Li & Hoiem 2017): the model after the previous task is kept as a teacher, and λ times the
  softened cross-entropy of the new outputs against its outputs on the new task's inputs is added, per old head
  (task-incremental: each past task's units; otherwise the units the teacher had learned, against the student's
  live units: a class it did not know has target 0);
- a memory (`memory`: 'replay' or 'project'): a class-balanced sample of past examples (cllab.scenarios.
  ClassBalancedMemory), of which each batch carries a draw. Replay adds its loss: (1/t)·new + (1 − 1/t)·memory for
  the t-th task, as van de Ven et al.'s code weighs them; A-GEM (Chaudhry et al. 2019) projects the new batch's
  gradient when it would raise the memory batch's loss (cllab.functional.agem_project).
Every loss is a softmax over the units live for its row (`live`: the row's task's units in task-incremental
learning, the classes seen so far in class-incremental, all in domain-incremental), so dead units get no gradient.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from cllab import functional, importance, methods, model, regularizers, scenarios, training
from cllab.scenarios import ClassBalancedMemory, Scenario, SplitTasks
from cllab.sequence import Carry


class _Untracked:
    """Holds the teacher model out of Keras' attribute tracking, so that its weights are not the student's."""

    def __init__(self, teacher: keras.Model | None) -> None:
        self.teacher = teacher


class IncrementalClassifier(model.ContinualClassifier):
    """A ContinualClassifier whose training step masks each row's dead units and hosts every method's addition.

    Training data come as (x, y, source): source 1 for a row of the task being learned, 0 for a memory row.
    `memory`: None, 'replay' or 'project' (A-GEM); `teacher`: a model of the same shape for distillation, up to
    `groups` heads (None: no distillation). The variables below and the teacher's weights are set between tasks
    (`set_task`), so the step traced for the first task serves every task (distillation weighs 0 until a teacher
    has learned something).
    """

    def __init__(self, layers: Sequence[keras.layers.Layer], penalty=None, track_path_integral: bool = False,
                 memory: str | None = None, teacher: keras.Model | None = None, groups: int = 0,
                 **kwargs) -> None:
        super().__init__(layers, penalty=penalty, track_path_integral=track_path_integral, **kwargs)
        if memory not in (None, "replay", "project"):
            raise ValueError(f"memory must be None, 'replay' or 'project', got {memory!r}")
        units = self.layers[-1].units
        dtype = self.trainable_weights[0].dtype
        if (teacher is None) != (groups == 0):
            raise ValueError("distillation needs a teacher and groups >= 1 (or neither)")
        self.memory = memory
        self.groups = groups
        self.live = keras.Variable(np.ones((units, units), dtype), trainable=False, name="live")
        self.current_weight = keras.Variable(np.ones((), dtype), trainable=False, name="current_weight")
        self.distill_weight = keras.Variable(np.zeros((), dtype), trainable=False, name="distill_weight")
        self.teacher_units = keras.Variable(np.zeros((max(groups, 1), units), dtype), trainable=False,
                                            name="teacher_units")
        self._held = _Untracked(teacher)

    def set_task(self, live: np.ndarray, current_weight: float = 1.0,
                 teacher_weights: Mapping[str, np.ndarray] | None = None, teacher_units: np.ndarray | None = None,
                 distill_weight: float = 0.0) -> None:
        """The next task's live table ([label, unit] 1 where live), replay's weight of the new task's loss, and LwF's
        teacher weights with its heads ([group, unit] 1 where the group reads the unit; an all-zero row is no head)
        and weight (None: no distillation for this task)."""
        self.live.assign(np.asarray(live, self.live.dtype))
        self.current_weight.assign(current_weight)
        if teacher_weights is not None:
            if self._held.teacher is None:
                raise ValueError("this model was built without a teacher")
            model.set_weights(self._held.teacher, dict(teacher_weights), source="the teacher")
            self.teacher_units.assign(np.asarray(teacher_units, self.teacher_units.dtype))
        self.distill_weight.assign(distill_weight if teacher_weights is not None else 0.0)

    def masked(self, y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """Each row's logits with the units not live for its label set to functional.MASKED."""
        return functional.mask_units(logits, tf.gather(self.live, y) > 0)

    def _distillation(self, x: tf.Tensor, y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        """LwF's term: the mean over the teacher's heads of functional.distillation_loss, the teacher read on each
        head's units. The student is read on the same units where the head is a past task's own (task-incremental),
        and on every unit live for the row where the head shares the row's output layer (domain-incremental: the
        same units; class-incremental: the classes seen so far, the new task's included), as van de Ven & Tolias
        2019's code does: there a new class's logit competes in the softmax, and the teacher's target for it (zero:
        the teacher did not know it) pulls it down on the new task's inputs. Read on the old units alone, the
        student's softmax would not change when the new units' logits grow: nothing would hold them back, and
        class-incremental LwF stays at chance (scenarios/README.md)."""
        old = self._held.teacher(x, training=False)
        live = tf.gather(self.live, y) > 0
        terms, heads = [], []
        for g in range(self.groups):
            on = self.teacher_units[g] > 0
            shares = tf.reduce_any(on & live, axis=-1, keepdims=True)  # the head and the row share the output layer
            terms.append(functional.distillation_loss(functional.mask_units(logits, on | (live & shares)),
                                                      functional.mask_units(old, on)))
            heads.append(tf.cast(tf.reduce_any(on), logits.dtype))
        count = tf.add_n(heads)
        return tf.add_n([t * h for t, h in zip(terms, heads)]) / tf.maximum(count, 1)

    def train_step(self, data):
        x, y, source = keras.utils.unpack_x_y_sample_weight(data)
        y = tf.reshape(tf.cast(y, tf.int32), [-1])
        weights = self.trainable_weights
        with tf.GradientTape(persistent=True) as tape:
            logits = self(x, training=True)
            masked = self.masked(y, logits)
            rows = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=masked)
            current = tf.ones_like(rows) if source is None else tf.cast(tf.reshape(source, [-1]), rows.dtype)
            new_loss = tf.reduce_sum(rows * current) / tf.maximum(tf.reduce_sum(current), 1)
            memory_loss = tf.reduce_sum(rows * (1 - current)) / tf.maximum(tf.reduce_sum(1 - current), 1)
            task_loss = new_loss
            if self.memory == "replay":
                task_loss = self.current_weight * new_loss + (1 - self.current_weight) * memory_loss
            objective = task_loss
            if self.groups:
                objective = objective + self.distill_weight * self._distillation(x, y, logits)
            penalty = None if self.penalty is None else self.penalty(weights)
            if penalty is not None:
                objective = objective + penalty
        gradients = tape.gradient(objective, weights)
        if self.memory == "project":
            gradients = functional.agem_project(gradients, tape.gradient(memory_loss, weights))
        task_gradients = tape.gradient(task_loss, weights) if self.path_integral is not None else None
        del tape
        before = [tf.convert_to_tensor(w) for w in weights] if task_gradients is not None else None
        self.optimizer.apply_gradients(zip(gradients, weights))
        if task_gradients is not None:  # SI's ω = Σ −g·Δθ with g the task loss' gradient (as ContinualClassifier)
            for omega, g, w, b in zip(self.path_integral, task_gradients, weights, before):
                omega.assign_add(-g * (w - b))
        self._loss_tracker.update_state(objective, sample_weight=tf.shape(x)[0])
        if self.penalty is not None:
            self.cross_entropy_tracker.update_state(task_loss, sample_weight=tf.shape(x)[0])
            self.penalty_tracker.update_state(penalty, sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, masked, sample_weight=current)


def build(config: model.ModelConfig, penalty=None, track_path_integral: bool = False, memory: str | None = None,
          groups: int = 0) -> IncrementalClassifier:
    """A freshly initialised (seeded) IncrementalClassifier: the layers of cllab.model.build_model; groups >= 1
    gives it a teacher for distillation with that many heads (built after the model: its own draws come later)."""
    plain = model.build_model(config)
    teacher = model.build_model(config) if groups else None
    return IncrementalClassifier([keras.Input(shape=config.input_shape), *plain.layers], penalty=penalty,
                                 track_path_integral=track_path_integral, memory=memory, teacher=teacher,
                                 groups=groups, name="mlp")


class TaskBatches(keras.utils.PyDataset):
    """`steps` batches of (x, y, source), one epoch: `batch_size` rows of the task from a stream of seeded shuffled
    passes over it, then (given a memory) as many rows drawn from the memory without replacement (all of it if
    smaller), source 1 and 0. Batch k depends only on (seed, k), so a peek by Keras changes nothing. One epoch per
    task, not several: iterations, not passes, are the unit here, and Keras' epoch hooks would make batch k depend
    on how often they are called."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int,
                 memory: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        self.x, self.y, self.memory = x, y, memory
        self.batch_size, self.steps = batch_size, steps
        rng = np.random.default_rng([seed, 0])
        total = batch_size * steps
        self.order = np.concatenate([rng.permutation(len(y)) for _ in range(math.ceil(total / len(y)))])[:total]
        self.memory_seed = seed

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not 0 <= index < self.steps:
            raise IndexError(f"batch {index} of {self.steps}")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x, y = self.x[rows], self.y[rows]
        source = np.ones(len(rows), np.float32)
        if self.memory is not None:
            mx, my = self.memory
            draw = np.random.default_rng([self.memory_seed, 1, index]).permutation(len(my))[:self.batch_size]
            x, y = np.concatenate([x, mx[draw]]), np.concatenate([y, my[draw]])
            source = np.concatenate([source, np.zeros(len(draw), np.float32)])
        return x, y, source


def live_table(scenario: Scenario, task: int) -> np.ndarray:
    """[label, unit]: 1 where the unit is live for a row of that label while task `task` trains (its own task's
    units in task-incremental learning, whatever task the row comes from)."""
    n = scenario.num_outputs
    table = np.zeros((n, n))
    for label in range(n):
        if scenario.name == "task":
            units = next(sorted(g) for g in scenario.task_digits if label in g)
        else:
            units = scenario.training_units(task)
        table[label, list(units)] = 1
    return table


def teacher_heads(scenario: Scenario, learned: int) -> np.ndarray:
    """[head, unit] for distillation from a model that has learned tasks 0..learned-1: one head per past task in
    task-incremental learning, else one head of the units it had learned (all units in domain-incremental)."""
    heads = np.zeros((scenario.count, scenario.num_outputs))
    if scenario.name == "task":
        for t in range(learned):
            heads[t, list(scenario.task_digits[t])] = 1
    else:
        heads[0, list(scenario.training_units(learned - 1))] = 1
    return heads


def live_view(net: keras.Model, config: model.ModelConfig, units: Sequence[int]) -> keras.Model:
    """A plain classifier with the same hidden weights whose outputs are `units` only: the network a task trained,
    for the Ω functions (the Fisher and MAS over the live softmax, as in training)."""
    view = model.build_model(model.ModelConfig(**{**config.__dict__, "num_classes": len(units)}))
    weights = model.get_weights(net)
    for name in ("logits/kernel", "logits/bias"):
        weights[name] = weights[name][..., list(units)]
    model.set_weights(view, weights)
    return view


def scatter_units(omega: Mapping[str, np.ndarray], units: Sequence[int], outputs: int) -> dict[str, np.ndarray]:
    """An Ω of a live view put back in the full model's shapes: zero for the weights of units the view lacks."""
    out = dict(omega)
    for name in ("logits/kernel", "logits/bias"):
        full = np.zeros((*omega[name].shape[:-1], outputs), omega[name].dtype)
        full[..., list(units)] = omega[name]
        out[name] = full
    return out


def scenario_accuracy(net: keras.Model, tasks: SplitTasks, task: int, split: str, learned: int) -> float:
    """Accuracy on one split of task `task` of a model that has learned tasks 0..learned-1, read as the scenario
    says (cllab.scenarios.Scenario.test_units)."""
    x, y = tasks.split(task, split)
    # class-incremental before any task: every unit, as after the last (only FWT reads it)
    units = tasks.scenario.test_units(task, learned) or tuple(range(tasks.scenario.num_outputs))
    return scenarios.accuracy(model.predict_logits(net, x), y, units)


def accuracy_row(net: keras.Model, tasks: SplitTasks, split: str, learned: int, upto: int | None = None) -> list[float]:
    return [scenario_accuracy(net, tasks, j, split, learned) for j in range(tasks.count if upto is None else upto)]


@dataclass(frozen=True)
class Settings:
    """How a scenario run trains (params.yaml `scenarios`): architecture, iterations per task, batch size,
    optimizer, Ω settings, the method's λ and options, the seed; `test=False` scores validation data only (for
    choosing settings)."""

    config: model.ModelConfig
    iterations: int
    batch_size: int
    optimizer: str
    learning_rate: float
    importance: Mapping[str, Mapping]
    strength: float
    options: Mapping[str, object]
    seed: int
    test: bool = True
    optimizer_state: str = "reset"  # between tasks: 'reset' (a fresh optimizer per task) or 'carry' (go on)


OPTIMIZER_STATES = ("reset", "carry")


def settings_from_params(section: Mapping, scenario: Scenario, train: Mapping, own: Mapping, seed: int,
                         test: bool = True) -> Settings:
    """A run's Settings from params.yaml's `scenarios` section, the training settings and the method's own λ and
    options of the run (cllab.scenparams.run_settings)."""
    return Settings(
        config=model.ModelConfig(**section["model"], num_classes=scenario.num_outputs),
        iterations=train["iterations"], batch_size=train["batch_size"], optimizer=train["optimizer"]["name"],
        learning_rate=train["optimizer"]["learning_rate"], optimizer_state=train["optimizer_state"],
        importance=section["importance"], strength=own["lambda"],
        options={k: v for k, v in own.items() if k != "lambda"}, seed=seed, test=test)


def _carry_optimizer(source: keras.Model, target: keras.Model) -> None:
    """Give a newly compiled `target` the optimizer state of `source` (Adam's moments and step count), as one
    optimizer object kept across tasks would have it."""
    if len(source.optimizer.variables) != len(target.optimizer.variables):
        raise ValueError("the optimizers differ in their variables: no state to carry over")
    for variable, value in zip(target.optimizer.variables, source.optimizer.variables):
        variable.assign(value)


def _reset_path_integral(net: keras.Model, fresh: Sequence[np.ndarray]) -> None:
    """Reset SI's path integral only (it is per task, whatever happens to the optimizer)."""
    for variable, value in zip(net.path_integral or [], fresh[len(net.optimizer.variables):]):
        variable.assign(value)


def run_method(name: str, tasks: SplitTasks, settings: Settings, log: Callable[[str], None] = print) -> dict:
    """Train the tasks in turn with method `name`; return R on test (T×T) and validation (row t: tasks seen so far),
    the initial model's test accuracies and the largest Ω̄ of each task's penalty. `settings.optimizer_state`:
    'reset' starts each task with a fresh optimizer (as Avalanche does), 'carry' lets Adam's moments and step count
    go on across tasks (as van de Ven et al.'s and Hsu et al.'s code do by default)."""
    if settings.optimizer_state not in OPTIMIZER_STATES:
        raise ValueError(f"optimizer_state {settings.optimizer_state!r}: expected one of {OPTIMIZER_STATES}")
    method = methods.get(name)
    scenario = tasks.scenario
    keras.utils.set_random_seed(settings.seed)  # the same θ_1 for every method of a seed
    config = settings.config
    carry = Carry(method.carry, float(settings.options.get("gamma", 1.0)))
    memory = (ClassBalancedMemory(settings.seed, per_class=int(settings.options["per_class"]))
              if method.memory else None)
    net = build(config)
    result: dict = {"initial": {"test": accuracy_row(net, tasks, "test", 0)} if settings.test else {},
                    "R": {"val": [], "test": []} if settings.test else {"val": []}, "max_importance": []}
    penalty, fresh, teacher = None, None, None  # teacher: LwF's weights after the previous task
    for t in range(tasks.count):
        started = time.perf_counter()
        quadratic = carry.quadratic() if method.omega is not None else None
        result["max_importance"].append(
            0.0 if quadratic is None else float(max(np.max(v) for v in quadratic[1].values())))
        weights = model.get_weights(net)
        if fresh is None or (quadratic is not None and penalty is None):
            penalty = None if quadratic is None else regularizers.penalty_for(settings.strength, *quadratic)
            previous = net if fresh is not None else None  # a model that has trained a task
            net = build(config, penalty=penalty, track_path_integral=method.omega == "omega_si",
                        memory=method.memory, groups=scenario.count if method.distill else 0)
            model.set_weights(net, weights)
            model.compile_model(net, settings.optimizer, settings.learning_rate)
            fresh = model.fresh_training_state(net)
            if previous is not None and settings.optimizer_state == "carry":
                _carry_optimizer(previous, net)
        else:
            if quadratic is not None:
                penalty.move_to(*quadratic)
            if settings.optimizer_state == "reset":
                model.reset_training(net, fresh)
            else:
                _reset_path_integral(net, fresh)
        net.set_task(live_table(scenario, t), current_weight=1.0 / (t + 1), teacher_weights=teacher,
                     teacher_units=teacher_heads(scenario, t) if teacher is not None else None,
                     distill_weight=settings.strength if method.distill else 0.0)
        x, y = tasks.split(t, "train")
        stored = memory.arrays() if memory is not None and t > 0 else None
        batches = TaskBatches(x, y, settings.batch_size, settings.iterations, seed=settings.seed * 1000 + t,
                              memory=stored)
        training.fit(net, batches, None, epochs=1, batch_size=settings.batch_size,
                     context=f"{name} task {t + 1} (lambda={settings.strength:g})")
        trained = time.perf_counter()
        if method.omega is not None:
            units = scenario.training_units(t)  # the Fisher and MAS read the outputs the task trained, SI the path
            view = (live_view(net, config, units) if len(units) < scenario.num_outputs
                    and method.omega in ("omega_fisher", "omega_mas") else net)
            labels = np.searchsorted(np.asarray(units), y)
            source = importance.Source(
                view, x, labels, path_integral=net.path_integral_values() if net.path_integral is not None else {},
                start=weights, seed=settings.seed * 1000 + t)
            omega = importance.omega_function(method.omega)(source, methods.settings_for(name, settings.importance))
            carry.add(model.get_weights(net), scatter_units(omega, units, scenario.num_outputs)
                      if view is not net else omega)
        if memory is not None:
            memory.add(x, y, classes=tasks.digits(t, "train"))
        if method.distill:
            teacher = model.get_weights(net)
        done = time.perf_counter()
        if settings.test:
            result["R"]["test"].append(accuracy_row(net, tasks, "test", t + 1))
        result["R"]["val"].append(accuracy_row(net, tasks, "val", t + 1, upto=t + 1))
        split = "test" if settings.test else "val"
        log(f"{scenario.name}-incremental {name} task {t + 1}/{tasks.count}: fit {trained - started:.1f} s, "
            f"rest {time.perf_counter() - trained:.1f} s (importance/memory {done - trained:.1f} s); {split} average "
            f"so far {np.mean(result['R'][split][-1][:t + 1]):.4f}")
    return result


def run_joint(tasks: SplitTasks, settings: Settings, log: Callable[[str], None] = print) -> dict:
    """The upper bound: one model trained on every task at once for as many iterations as all tasks in turn, each
    row's live units as its scenario says after the last task; its accuracy on every task (one row)."""
    scenario = tasks.scenario
    keras.utils.set_random_seed(settings.seed)
    net = build(settings.config)
    model.compile_model(net, settings.optimizer, settings.learning_rate)
    net.set_task(live_table(scenario, tasks.count - 1))
    x = np.concatenate([tasks.split(t, "train")[0] for t in range(tasks.count)])
    y = np.concatenate([tasks.split(t, "train")[1] for t in range(tasks.count)])
    started = time.perf_counter()
    training.fit(net, TaskBatches(x, y, settings.batch_size, settings.iterations * tasks.count, seed=settings.seed * 1000),
                 None, epochs=1, batch_size=settings.batch_size, context="joint")
    log(f"{scenario.name}-incremental joint: fit {time.perf_counter() - started:.1f} s on {tasks.count} tasks")
    splits = ("val", "test") if settings.test else ("val",)
    return {split: accuracy_row(net, tasks, split, tasks.count) for split in splits}
