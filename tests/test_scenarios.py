"""The three scenarios on split MNIST: labels, live output units and predictions per scenario, the task source, and
replay's class-balanced memory; LwF's distillation and A-GEM's projection against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cllab import functional
from cllab.scenarios import ClassBalancedMemory, Scenario, SplitTasks, accuracy, predict


def _arrays(per_digit: int = 6) -> dict[str, np.ndarray]:
    """A tiny stand-in for data.split_digits: `per_digit` examples of each digit per split, x holding the row's id."""
    out = {}
    for offset, split in enumerate(("train", "val", "test")):
        y = np.tile(np.arange(10, dtype=np.int32), per_digit)
        out[f"y_{split}"] = y
        out[f"x_{split}"] = (np.arange(len(y), dtype=np.float32) + 1000 * offset)[:, None]
    return out


def test_labels_are_the_digit_except_in_domain_incremental_where_they_are_the_place_in_the_task():
    digits = np.array([4, 5, 5, 4])
    assert Scenario("task").labels(digits, 2).tolist() == [4, 5, 5, 4]
    assert Scenario("class").labels(digits, 2).tolist() == [4, 5, 5, 4]
    assert Scenario("domain").labels(digits, 2).tolist() == [0, 1, 1, 0]  # digit mod 2 for the default order
    assert Scenario("domain", ((7, 3), (1, 9))).labels(np.array([3, 7]), 0).tolist() == [0, 1]  # sorted places
    assert [Scenario(s).num_outputs for s in ("task", "domain", "class")] == [10, 2, 10]
    with pytest.raises(ValueError, match="task 1 holds digits"):
        Scenario("task").labels(digits, 1)


def test_live_units_per_scenario_in_training_and_testing():
    task, domain, klass = Scenario("task"), Scenario("domain"), Scenario("class")
    assert task.training_units(2) == task.test_units(2, learned=5) == (4, 5)  # the task's own head, always
    assert domain.training_units(3) == domain.test_units(0, learned=1) == (0, 1)
    assert klass.training_units(0) == (0, 1) and klass.training_units(2) == (0, 1, 2, 3, 4, 5)  # all seen so far
    assert klass.test_units(0, learned=3) == (0, 1, 2, 3, 4, 5) and klass.test_units(4, learned=5) == tuple(range(10))


def test_a_prediction_is_read_from_the_live_units_only():
    logits = np.array([[0.0, 1.0, 9.0, 0.5], [3.0, 0.0, 1.0, 2.0]])  # unit 2 would win row 0 if it were live
    assert predict(logits, (0, 1)).tolist() == [1, 0]
    assert predict(logits, (1, 3)).tolist() == [1, 3]
    assert accuracy(logits, np.array([1, 3]), (0, 1)) == 0.5


def test_split_tasks_hold_each_tasks_digits_with_the_scenarios_labels():
    arrays = _arrays()
    for name in ("task", "domain", "class"):
        tasks = SplitTasks(arrays, Scenario(name))
        assert tasks.count == 5
        seen = []
        for t in range(5):
            x, y = tasks.split(t, "train")
            digits = tasks.digits(t, "train")
            assert sorted(set(digits.tolist())) == [2 * t, 2 * t + 1] and len(x) == len(y) == 12
            np.testing.assert_array_equal(arrays["y_train"][x[:, 0].astype(int)], digits)  # the rows of those digits
            np.testing.assert_array_equal(y, digits % 2 if name == "domain" else digits)
            seen += x[:, 0].tolist()
        assert sorted(seen) == list(range(60))  # every training example in exactly one task
        assert tasks.split(1, "test") is tasks.split(1, "test")  # selected once


@pytest.mark.parametrize("tasks", [((0, 1), (1, 2)), ((0, 1, 2), (3, 4)), ((0,), (1,)), ((0, 10),), ()])
def test_tasks_must_be_disjoint_groups_of_one_size_of_digits(tasks):
    with pytest.raises(ValueError):
        Scenario("class", tasks)
    with pytest.raises(ValueError, match="unknown scenario"):
        Scenario("instance")


def test_class_balanced_memory_stores_as_many_of_each_class_and_shrinks_by_prefix():
    x = np.arange(300.0)[:, None]
    digits = np.repeat(np.arange(3), 100)
    fixed = ClassBalancedMemory(seed=0, per_class=10)
    fixed.add(x[:200], digits[:200])
    fixed.add(x[200:], digits[200:])
    mx, my = fixed.arrays()
    assert np.bincount(my).tolist() == [10, 10, 10] and len(set(mx[:, 0])) == 30
    assert all(np.all((mx[my == c, 0] >= 100 * c) & (mx[my == c, 0] < 100 * (c + 1))) for c in range(3))

    budget = ClassBalancedMemory(seed=0, total=60)
    budget.add(x[:200], digits[:200])  # two classes in one call: 30 each
    assert np.bincount(budget.arrays()[1]).tolist() == [30, 30]
    before = budget.arrays()[0][:30, 0].copy()
    budget.add(x[200:], digits[200:])  # three: 20 each, the earlier classes keep a prefix of their sample
    bx, by = budget.arrays()
    assert np.bincount(by).tolist() == [20, 20, 20]
    np.testing.assert_array_equal(bx[:20, 0], before[:20])
    np.testing.assert_array_equal(bx[by == 0, 0][:10], mx[my == 0, 0])  # the same seed's draw: a longer prefix

    other = ClassBalancedMemory(seed=1, per_class=10)
    other.add(x, digits)
    assert not np.array_equal(other.arrays()[0], mx)
    labelled = ClassBalancedMemory(seed=0, per_class=5)
    labelled.add(x[:200], digits[:200] % 2, classes=digits[:200])  # domain-IL: balanced by digit, labels kept
    assert np.bincount(labelled.arrays()[1]).tolist() == [5, 5]
    with pytest.raises(ValueError, match="class 0 is stored already"):
        labelled.add(x, digits)  # classes 0 and 1 again, 2 new: nothing is stored
    assert np.bincount(labelled.arrays()[1]).tolist() == [5, 5] and 2 not in labelled._samples


def test_agem_projects_a_gradient_that_would_raise_the_memory_loss_and_leaves_others_untouched():
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (2,)]
    reference = [rng.normal(size=s) for s in shapes]
    flat_ref = np.concatenate([r.ravel() for r in reference])
    conflicting = [-r + 0.1 * rng.normal(size=r.shape) for r in reference]  # g·g_ref < 0
    flat_g = np.concatenate([g.ravel() for g in conflicting])
    assert flat_g @ flat_ref < 0
    projected = functional.agem_project([tf.constant(g) for g in conflicting], [tf.constant(r) for r in reference])
    flat_p = np.concatenate([p.numpy().ravel() for p in projected])
    expected = flat_g - (flat_g @ flat_ref) / (flat_ref @ flat_ref) * flat_ref
    np.testing.assert_allclose(flat_p, expected, rtol=1e-12)
    assert abs(flat_p @ flat_ref) < 1e-12  # the memory's loss no longer rises to first order
    agreeing = [r + 0.1 * rng.normal(size=r.shape) for r in reference]
    kept = functional.agem_project([tf.constant(g) for g in agreeing], [tf.constant(r) for r in reference])
    for g, k in zip(agreeing, kept):
        np.testing.assert_array_equal(k.numpy(), g)
    zero = functional.agem_project([tf.constant(g) for g in conflicting], [tf.zeros(s, tf.float64) for s in shapes])
    for g, k in zip(conflicting, zero):
        np.testing.assert_array_equal(k.numpy(), g)


def test_lwf_distillation_is_the_softened_cross_entropy_times_t_squared_with_no_gradient_into_the_targets():
    rng = np.random.default_rng(1)
    new, old = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    t = 2.0

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    expected = -t * t * np.mean(np.sum(softmax(old / t) * np.log(softmax(new / t)), axis=1))
    new_v, old_v = tf.Variable(new), tf.Variable(old)
    with tf.GradientTape() as tape:
        loss = functional.distillation_loss(new_v, old_v, temperature=t)
    grad_new, grad_old = tape.gradient(loss, [new_v, old_v])
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    assert grad_old is None
    # d/dz_new = T·(softmax(new/T) − softmax(old/T)) / rows: zero where the new model matches the old one
    np.testing.assert_allclose(grad_new.numpy(), t * (softmax(new / t) - softmax(old / t)) / 4, rtol=1e-10)
    with tf.GradientTape() as tape:
        same = tf.Variable(old)
        loss_same = functional.distillation_loss(same, tf.constant(old), temperature=t)
    np.testing.assert_allclose(tape.gradient(loss_same, same).numpy(), 0.0, atol=1e-15)
    with pytest.raises(ValueError, match="temperature"):
        functional.distillation_loss(new_v, old_v, temperature=0)


def test_masking_makes_the_cross_entropy_that_of_the_live_units_softmax_and_leaves_dead_units_alone():
    rng = np.random.default_rng(2)
    logits, digits = rng.normal(size=(5, 10)), np.array([4, 5, 5, 4, 4])
    units = Scenario("task").training_units(2)  # (4, 5)
    live_logits = logits[:, list(units)]
    log_softmax = live_logits - np.log(np.exp(live_logits).sum(axis=1, keepdims=True))
    expected = -np.mean(log_softmax[np.arange(5), digits - 4])
    live = np.isin(np.arange(10), units)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        masked = functional.mask_units(variable, tf.constant(live))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=digits, logits=masked))
    assert float(loss) == pytest.approx(expected, rel=1e-12)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(gradient[:, ~live] == 0) and np.all(gradient[:, live] != 0)  # dead units: untouched
    per_row = np.zeros((5, 10), bool)  # one row of live units per example (a head per task)
    per_row[:2, [0, 1]], per_row[2:, [4, 5]] = True, True
    rows = functional.mask_units(tf.constant(logits), tf.constant(per_row)).numpy()
    assert np.all(rows[per_row] == logits[per_row]) and np.all(rows[~per_row] == functional.MASKED)
