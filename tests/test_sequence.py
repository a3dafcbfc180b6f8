"""Building blocks of task sequences (permuted MNIST): pixel permutations, replay's buffer, accumulated penalties."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cllab import data, regularizers


def test_permutations_start_with_plain_mnist_are_seeded_and_stable_when_tasks_are_added():
    orders = data.pixel_permutations(5, 784, seed=3)
    assert orders.shape == (5, 784) and orders.dtype == np.int32
    np.testing.assert_array_equal(orders[0], np.arange(784))
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(784))  # each a permutation
    assert len({order.tobytes() for order in orders}) == 5
    np.testing.assert_array_equal(data.pixel_permutations(5, 784, seed=3), orders)
    np.testing.assert_array_equal(data.pixel_permutations(8, 784, seed=3)[:5], orders)  # adding tasks changes none
    assert not np.array_equal(data.pixel_permutations(5, 784, seed=4)[1], orders[1])
    with pytest.raises(ValueError, match="num_tasks >= 1"):
        data.pixel_permutations(0, 784, seed=0)


def test_permute_pixels_moves_pixel_order_i_to_i_and_keeps_the_shape():
    x = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    order = np.array([8, 0, 1, 2, 3, 4, 5, 6, 7])
    out = data.permute_pixels(x, order)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out.reshape(2, -1), x.reshape(2, -1)[:, order])
    assert out[0, 0, 0] == x[0, 2, 2] and out[1, 0, 1] == x[1, 0, 0]
    inverse = np.argsort(order)
    np.testing.assert_array_equal(data.permute_pixels(out, inverse), x)
    with pytest.raises(ValueError, match="order has 4 pixels, the images 9"):
        data.permute_pixels(x, np.arange(4))


def test_replay_buffer_takes_a_seeded_sample_of_each_past_task():
    tasks = [(np.arange(100.0)[:, None] + 1000 * t, np.full(100, t)) for t in range(3)]
    x, y = data.replay_buffer(tasks, per_task=10, seed=0)
    assert x.shape == (30, 1) and list(np.bincount(y)) == [10, 10, 10]
    for t in range(3):  # drawn from its own task, without repeats
        mine = x[y == t, 0]
        assert len(set(mine)) == 10 and np.all((mine >= 1000 * t) & (mine < 1000 * t + 100))
    again, _ = data.replay_buffer(tasks, per_task=10, seed=0)
    np.testing.assert_array_equal(again, x)
    other, _ = data.replay_buffer(tasks, per_task=10, seed=1)
    assert not np.array_equal(other, x)
    small, _ = data.replay_buffer([(np.zeros((4, 1)), np.zeros(4))], per_task=10, seed=0)
    assert len(small) == 4
    with pytest.raises(ValueError, match="no past task"):
        data.replay_buffer([], per_task=10, seed=0)


def test_replay_memory_draws_a_stream_of_its_own_not_the_batch_order_of_its_task():
    """Task t's stored examples are drawn by (seed, t) apart from the order in which ReplayBatches feeds task t
    (seed·1000 + t): with one stream the memory was exactly the examples of the task's first batch."""
    from cllab.sequence import ReplayBatches

    x, y = np.arange(1000.0)[:, None], np.arange(1000)
    for seed, t in [(0, 0), (0, 3), (2, 1)]:
        stored, _ = data.replay_buffer([(x, y)], per_task=64, seed=seed, first_task=t)
        batches = ReplayBatches(x, y, (x[:5], y[:5]), batch_size=64, seed=seed * 1000 + t)
        first_batch = batches[0][0][:64, 0]
        assert len(set(stored[:, 0]) & set(first_batch)) < 16  # ~4 by chance (64·64/1000), not 64
        np.testing.assert_array_equal(stored, data.replay_buffer([(x, y)], per_task=64, seed=seed, first_task=t)[0])
    assert not np.array_equal(data.replay_buffer([(x, y)], 64, 0, first_task=1)[0],
                              data.replay_buffer([(x, y)], 64, 0, first_task=2)[0])


def _pairs(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = {"hidden/kernel": (6, 4), "hidden/bias": (4,)}
    anchors = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(count)]
    importances = [{k: rng.uniform(0, 2, size=s) for k, s in shapes.items()} for _ in range(count)]
    for omega in importances:  # where no task cares, the collapsed anchor is the latest one
        omega["hidden/bias"][0] = 0.0
    return anchors, importances


def test_one_penalty_per_task_has_the_gradient_of_the_collapsed_penalty():
    """Σ_t λ/2·Ω_t(θ − θ_t)² and λ/2·Ω̄(θ − θ̄)² differ by a constant: same gradient at any θ."""
    anchors, importances = _pairs(3)
    rng = np.random.default_rng(1)
    weights = [tf.Variable(rng.normal(size=(6, 4))), tf.Variable(rng.normal(size=(4,)))]
    names = ["hidden/kernel", "hidden/bias"]
    assert all(list(a) == names for a in anchors)  # the weights' order
    per_task = [regularizers.QuadraticPenalty(a, o, 30.0, dtype="float64") for a, o in zip(anchors, importances)]
    bar, total = regularizers.collapse(anchors, importances)
    collapsed = regularizers.QuadraticPenalty(bar, total, 30.0, dtype="float64")
    values = []
    for point in range(2):
        with tf.GradientTape(persistent=True) as tape:
            naive = tf.add_n([p(weights) for p in per_task])
            one = collapsed(weights)
        for g_naive, g_one in zip(tape.gradient(naive, weights), tape.gradient(one, weights)):
            np.testing.assert_allclose(g_one.numpy(), g_naive.numpy(), rtol=1e-10, atol=1e-12)
        values.append(float(naive) - float(one))
        for w in weights:
            w.assign_add(rng.normal(size=w.shape))
    assert values[0] == pytest.approx(values[1], rel=1e-9)  # the difference is a constant
    np.testing.assert_array_equal(bar["hidden/bias"][0], anchors[-1]["hidden/bias"][0])
    np.testing.assert_allclose(total["hidden/kernel"], sum(o["hidden/kernel"] for o in importances))


def test_collapse_of_one_task_is_that_task():
    anchors, importances = _pairs(1)
    bar, total = regularizers.collapse(anchors, importances)
    for name in anchors[0]:
        np.testing.assert_allclose(bar[name], anchors[0][name])
        np.testing.assert_allclose(total[name], importances[0][name])
    with pytest.raises(ValueError, match="as many anchors as importances"):
        regularizers.collapse(anchors, importances * 2)


def test_online_importance_accumulates_with_decay():
    f = [{"w": np.full(3, v)} for v in (1.0, 2.0, 4.0)]
    acc = None
    for new in f:
        acc = regularizers.online_importance(acc, new, gamma=1.0)
    np.testing.assert_allclose(acc["w"], 7.0)  # γ = 1 (Huszár): the plain sum
    acc = None
    for new in f:
        acc = regularizers.online_importance(acc, new, gamma=0.5)
    np.testing.assert_allclose(acc["w"], 0.25 * 1 + 0.5 * 2 + 4)  # γ < 1 (Schwarz et al.): older tasks fade
    with pytest.raises(ValueError, match="gamma must be in"):
        regularizers.online_importance(None, f[0], gamma=1.5)
