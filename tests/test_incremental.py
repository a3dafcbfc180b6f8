"""Training in the three scenarios (cllab/incremental.py): the live units per row, the batches, and what each method
adds to the training step (masking, replay's weighting, A-GEM's projection, LwF's distillation), each step checked
against an SGD step computed apart; then whole runs on a tiny separable stand-in for split MNIST."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from cllab import functional, incremental, methods, model
from cllab.runtime import set_precision
from cllab.scenarios import Scenario, SplitTasks

CONFIG = model.ModelConfig(hidden_units=8, hidden_layers=1, dropout=0.0, num_classes=10, input_shape=(4,))
LR = 0.1


@pytest.fixture(autouse=True)
def _float64():
    set_precision("float64")  # conftest restores the float type after each test


def test_live_units_per_row_follow_the_scenario():
    task, domain, klass = Scenario("task"), Scenario("domain"), Scenario("class")
    table = incremental.live_table(task, 0)  # a row's own task's units, whatever task trains
    assert np.flatnonzero(table[5]).tolist() == [4, 5] and np.flatnonzero(table[8]).tolist() == [8, 9]
    assert incremental.live_table(domain, 3).tolist() == [[1, 1], [1, 1]]
    seen = incremental.live_table(klass, 1)  # every row: the classes seen so far
    assert all(np.flatnonzero(row).tolist() == [0, 1, 2, 3] for row in seen)
    heads = incremental.teacher_heads(task, 2)  # one head per past task
    assert [np.flatnonzero(h).tolist() for h in heads] == [[0, 1], [2, 3], [], [], []]
    assert [np.flatnonzero(h).tolist() for h in incremental.teacher_heads(klass, 2)][:2] == [[0, 1, 2, 3], []]
    assert np.flatnonzero(incremental.teacher_heads(domain, 1)[0]).tolist() == [0, 1]


def test_batches_depend_only_on_seed_and_index_and_carry_memory_rows_flagged():
    x, y = np.arange(50.0)[:, None], np.arange(50) % 2
    memory = (100 + np.arange(7.0)[:, None], np.full(7, 9))
    batches = incremental.TaskBatches(x, y, 8, 12, seed=3, memory=memory)
    again = incremental.TaskBatches(x, y, 8, 12, seed=3, memory=memory)
    first = [batches[i] for i in range(12)]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, [again[i] for i in reversed(range(12))][::-1]))
    xb, yb, source = first[0]
    assert source.tolist() == [1] * 8 + [0] * 7  # a smaller memory: all of it, once
    assert sorted(xb[8:, 0]) == list(100 + np.arange(7.0)) and (yb[8:] == 9).all()
    seen = np.concatenate([b[0][:8, 0] for b in first[:6]])  # 48 rows of the first pass: no repeats
    assert len(set(seen)) == 48
    assert not np.array_equal(first[0][0], incremental.TaskBatches(x, y, 8, 12, seed=4)[0][0])
    with pytest.raises(IndexError):
        batches[12]


def _net(memory=None, groups=0, penalty=None):
    keras.utils.set_random_seed(0)
    net = incremental.build(CONFIG, penalty=penalty, memory=memory, groups=groups)
    model.compile_model(net, "sgd", LR, steps_per_execution=1)
    return net


def _grads(net, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(net(tf.constant(X), training=False))
    return [g.numpy() for g in tape.gradient(loss, net.trainable_weights)]


def _masked_ce(logits, y, live):
    masked = functional.mask_units(logits, tf.gather(tf.constant(live) > 0, y))
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=masked)


def _step(net, y, source, expected_grads):
    before = [w.numpy().copy() for w in net.trainable_weights]
    net.fit(X, y, sample_weight=source, batch_size=len(y), epochs=1, verbose=0, shuffle=False)
    for b, w, g in zip(before, net.trainable_weights, expected_grads):
        np.testing.assert_allclose(w.numpy(), b - LR * g, rtol=1e-9, atol=1e-12)


rng = np.random.default_rng(7)
X = rng.normal(size=(6, 4))


def test_a_masked_step_moves_only_the_live_units_of_each_row():
    net = _net()
    scenario = Scenario("task")
    live = incremental.live_table(scenario, 1)
    net.set_task(live)
    y = np.array([2, 3, 2, 0, 1, 0], np.int32)  # task 2's and task 1's rows: each its own head
    source = np.ones(6)
    grads = _grads(net, lambda logits: tf.reduce_mean(_masked_ce(logits, y, live)))
    kernel_before = net.layers[-1].kernel.numpy().copy()
    _step(net, y, source, grads)
    dead = [u for u in range(10) if u not in (0, 1, 2, 3)]
    np.testing.assert_array_equal(net.layers[-1].kernel.numpy()[:, dead], kernel_before[:, dead])


def test_replay_weighs_the_new_task_by_one_over_t_and_the_memory_by_the_rest():
    net = _net(memory="replay")
    live = incremental.live_table(Scenario("class"), 2)
    net.set_task(live, current_weight=1 / 3)
    y = np.array([4, 5, 4, 0, 3, 1], np.int32)
    source = np.array([1, 1, 1, 0, 0, 0.0])
    rows = lambda logits: _masked_ce(logits, y, live)  # noqa: E731

    def loss(logits):
        r = rows(logits)
        return (1 / 3) * tf.reduce_mean(r[:3]) + (2 / 3) * tf.reduce_mean(r[3:])

    _step(net, y, source, _grads(net, loss))


def test_agem_projects_the_step_that_would_raise_the_memory_loss_and_keeps_one_that_would_not():
    live = incremental.live_table(Scenario("class"), 1)
    for y_memory, conflicts in ((np.array([0, 1, 0], np.int32), None), (np.array([2, 3, 2], np.int32), None)):
        net = _net(memory="project")
        net.set_task(live)
        y = np.concatenate([np.array([2, 3, 3], np.int32), y_memory])
        source = np.array([1, 1, 1, 0, 0, 0.0])
        g = _grads(net, lambda logits: tf.reduce_mean(_masked_ce(logits, y, live)[:3]))
        g_ref = _grads(net, lambda logits: tf.reduce_mean(_masked_ce(logits, y, live)[3:]))
        dot = sum(float(np.sum(a * b)) for a, b in zip(g, g_ref))
        if dot < 0:
            norm = sum(float(np.sum(b * b)) for b in g_ref)
            expected = [a - dot / norm * b for a, b in zip(g, g_ref)]
        else:
            expected = g
        _step(net, y, source, expected)
    # the memory of old classes conflicts with the new task (its gradient pushes the new classes down), the memory
    # of the new task's own classes agrees: both branches ran above
    net = _net(memory="project")
    net.set_task(live)
    y = np.array([2, 3, 3, 0, 1, 0], np.int32)
    g = _grads(net, lambda logits: tf.reduce_mean(_masked_ce(logits, y, live)[:3]))
    g_ref = _grads(net, lambda logits: tf.reduce_mean(_masked_ce(logits, y, live)[3:]))
    assert sum(float(np.sum(a * b)) for a, b in zip(g, g_ref)) < 0


def test_lwf_adds_lambda_times_the_distillation_per_old_head_against_the_teacher():
    scenario = Scenario("task")
    net = _net(groups=scenario.count)
    keras.utils.set_random_seed(5)
    teacher = model.build_model(CONFIG)
    heads = incremental.teacher_heads(scenario, 2)  # tasks 1 and 2: units (0, 1) and (2, 3)
    live = incremental.live_table(scenario, 2)
    net.set_task(live, teacher_weights=model.get_weights(teacher), teacher_units=heads, distill_weight=0.7)
    y = np.array([4, 5, 4, 5, 5, 4], np.int32)
    old = teacher(tf.constant(X), training=False)

    def loss(logits):
        terms = [functional.distillation_loss(functional.mask_units(logits, tf.constant(h > 0)),
                                              functional.mask_units(old, tf.constant(h > 0)), 2.0) for h in heads[:2]]
        return tf.reduce_mean(_masked_ce(logits, y, live)) + 0.7 * (terms[0] + terms[1]) / 2

    _step(net, y, np.ones(6), _grads(net, loss))
    # a teacher equal to the student adds nothing to the step: its targets are the student's own outputs
    same, plain = _net(groups=scenario.count), _net()
    same.set_task(live, teacher_weights=model.get_weights(same), teacher_units=heads, distill_weight=5.0)
    plain.set_task(live)
    for m in (same, plain):
        m.fit(X, y, batch_size=6, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(same.trainable_weights, plain.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)


def test_a_live_view_has_the_units_logits_and_its_importance_goes_back_in_place():
    net = _net()
    view = incremental.live_view(net, CONFIG, (2, 3, 7))
    np.testing.assert_allclose(model.predict_logits(view, X), model.predict_logits(net, X)[:, [2, 3, 7]], rtol=1e-12)
    omega = {name: np.ones_like(w) for name, w in model.get_weights(view).items()}
    full = incremental.scatter_units(omega, (2, 3, 7), 10)
    assert full["logits/kernel"].shape == (8, 10) and full["hidden/kernel"].shape == (4, 8)
    assert np.flatnonzero(full["logits/bias"]).tolist() == [2, 3, 7]


def _separable(per_digit: int = 40) -> dict[str, np.ndarray]:
    """Ten well-separated clusters in 4 dimensions, one per digit, for train, val and test."""
    centres = np.random.default_rng(0).normal(scale=4.0, size=(10, 4))
    out = {}
    for k, split in enumerate(("train", "val", "test")):
        g = np.random.default_rng(k + 1)
        y = np.repeat(np.arange(10, dtype=np.int32), per_digit)
        out[f"x_{split}"], out[f"y_{split}"] = (centres[y] + g.normal(size=(len(y), 4))).astype(np.float32), y
    return out


def _settings(name: str, scenario: str, **overrides) -> incremental.Settings:
    own = {"lambda": {"none": 0, "l2": 0.1, "ewc": 10, "ewc_online": 10, "si": 1, "mas": 1, "lwf": 1,
                      "ewc_er": 10}.get(name, 0)}
    if methods.get(name).memory if name != "joint" else False:
        own["per_class"] = 5
    return incremental.Settings(
        config=model.ModelConfig(hidden_units=16, hidden_layers=1, dropout=0.0,
                                 num_classes=Scenario(scenario).num_outputs, input_shape=(4,)),
        iterations=40, batch_size=16, optimizer="adam", learning_rate=0.01,
        importance={"fisher": {"kind": "exact", "num_examples": 50, "batch_size": 50}, "si": {"xi": 0.1},
                    "mas": {"num_examples": 50, "batch_size": 50}},
        strength=own["lambda"], options={k: v for k, v in own.items() if k != "lambda"}, seed=0, **overrides)


@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
def test_every_method_runs_every_scenario_and_scores_r_as_the_scenario_says(scenario):
    tasks = SplitTasks(_separable(), Scenario(scenario))
    results = {m: incremental.run_method(m, tasks, _settings(m, scenario), log=lambda _: None)
               for m in methods.names("scenarios")}
    for name, result in results.items():
        assert np.shape(result["R"]["test"]) == (5, 5), name
        assert [len(row) for row in result["R"]["val"]] == [1, 2, 3, 4, 5], name
        assert len(result["initial"]["test"]) == 5 and len(result["max_importance"]) == 5
        assert result["R"]["test"][0][0] > 0.95, name  # each task alone is easy
    first = {name: r["R"]["test"][0] for name, r in results.items()}
    assert all(row == first["none"] for row in first.values())  # task 1 is learned alike by every method
    fine = np.array(results["none"]["R"]["test"])
    if scenario == "class":  # the units of later tasks out-vote the first task's: fine-tuning forgets it entirely
        assert fine[-1][0] < 0.1 and np.all(fine[0][1:] == 0)  # a task not yet seen has no unit to be read from
        assert results["er"]["R"]["test"][-1][0] > 0.5  # replay keeps it
    joint = incremental.run_joint(tasks, _settings("none", scenario), log=lambda _: None)
    assert np.mean(joint["test"]) > 0.85  # the upper bound: every task at once


def test_validation_only_runs_read_no_test_example():
    tasks = SplitTasks(_separable(), Scenario("class"))
    result = incremental.run_method("er", tasks, _settings("er", "class", test=False), log=lambda _: None)
    assert set(result["R"]) == {"val"} and result["initial"] == {}
    assert not any(split == "test" for _, split in tasks._kept)


@pytest.mark.parametrize("name", ["none", "ewc", "si"])  # ewc: its model is rebuilt with the penalty for task 2
def test_carried_optimizer_state_goes_on_across_tasks_and_reset_starts_afresh(name, monkeypatch):
    """'carry' (van de Ven's and Hsu's default) starts task t where task t−1's optimizer stopped: Adam's step count
    and moments; 'reset' starts every task from the freshly compiled state. SI's path integral restarts either way."""
    fit = incremental.training.fit
    for state in ("carry", "reset"):
        seen = []

        def spy(net, *args, **kwargs):
            before = [v.numpy().copy() for v in net.optimizer.variables]
            path = [v.numpy().copy() for v in net.path_integral or []]
            fit(net, *args, **kwargs)
            seen.append((before, [v.numpy().copy() for v in net.optimizer.variables], path))

        monkeypatch.setattr(incremental.training, "fit", spy)
        tasks = SplitTasks(_separable(), Scenario("task"))
        incremental.run_method(name, tasks, _settings(name, "task", optimizer_state=state), log=lambda _: None)
        assert len(seen) == 5
        for t, (before, _, path) in enumerate(seen):
            assert all(np.all(p == 0) for p in path)
            step = int(before[0])  # Keras' optimizer variables start with its step count
            if state == "carry":
                assert step == 40 * t
                if t:
                    assert all(np.array_equal(a, b) for a, b in zip(before, seen[t - 1][1]))
            else:
                assert step == 0 and all(not np.any(v) for v in before[2:])  # fresh moments (index 1: lr)


def test_an_unknown_optimizer_state_is_refused():
    tasks = SplitTasks(_separable(), Scenario("task"))
    with pytest.raises(ValueError, match="optimizer_state"):
        incremental.run_method("none", tasks, _settings("none", "task", optimizer_state="keep"), log=lambda _: None)


def test_class_incremental_lwf_reads_the_student_on_every_live_unit_so_a_new_class_is_held_back():
    # class-incremental, task 3: the teacher knew digits 0-3, the rows' live units are 0-5; the student's softmax
    # spans all six, the teacher's targets are zero on 4 and 5 (van de Ven & Tolias 2019's form)
    scenario = Scenario("class")
    net = _net(groups=scenario.count)
    keras.utils.set_random_seed(5)
    teacher = model.build_model(CONFIG)
    heads = incremental.teacher_heads(scenario, 2)
    live = incremental.live_table(scenario, 2)
    assert np.flatnonzero(heads[0]).tolist() == [0, 1, 2, 3] and np.flatnonzero(live[4]).tolist() == [0, 1, 2, 3, 4, 5]
    net.set_task(live, teacher_weights=model.get_weights(teacher), teacher_units=heads, distill_weight=0.7)
    y = np.array([4, 5, 4, 5, 5, 4], np.int32)
    old = teacher(tf.constant(X), training=False)

    def loss(logits):
        term = functional.distillation_loss(functional.mask_units(logits, tf.constant(live[4] > 0)),
                                            functional.mask_units(old, tf.constant(heads[0] > 0)), 2.0)
        return tf.reduce_mean(_masked_ce(logits, y, live)) + 0.7 * term

    _step(net, y, np.ones(6), _grads(net, loss))
    # the distillation alone pushes the new classes' logits down on the new task's inputs: a student equal to the
    # teacher still learns from it (it would not, read on the old units alone)
    probe = _net(groups=scenario.count)
    probe.set_task(live, teacher_weights=model.get_weights(probe), teacher_units=heads, distill_weight=1.0)
    with tf.GradientTape() as tape:
        logits = probe(tf.constant(X), training=True)
        term = probe._distillation(tf.constant(X), tf.constant(y), logits)
    bias = probe.trainable_weights[-1]
    assert bias.name.endswith("bias") and float(term) > 0
    gradient = tape.gradient(term, bias).numpy()
    assert np.all(gradient[[4, 5]] > 0) and np.all(gradient[6:] == 0)   # descent lowers the new classes' logits
