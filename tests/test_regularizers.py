"""Penalties equal the hand computation λ/2·Σ Ω(θ−θ_A)² (numpy, float64)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cllab import regularizers


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"hidden/kernel": rng.normal(size=(6, 4)).astype(np.float32), "hidden/bias": rng.normal(size=4).astype(np.float32)}


def test_l2_penalty_equals_half_lambda_times_squared_distance():
    anchor, theta = _weights(0), _weights(1)
    penalty = regularizers.penalty_for(0.7, anchor, {k: np.ones_like(v) for k, v in anchor.items()})
    got = float(penalty([tf.constant(v) for v in theta.values()]))
    want = 0.7 / 2 * sum(np.sum((theta[k].astype(np.float64) - anchor[k]) ** 2) for k in anchor)
    assert got == pytest.approx(want, rel=1e-5)


def test_ewc_penalty_weights_each_squared_distance_by_its_fisher():
    anchor, theta = _weights(0), _weights(1)
    fisher = {k: np.abs(v) for k, v in _weights(2).items()}
    penalty = regularizers.penalty_for(30.0, anchor, fisher)
    got = float(penalty([tf.constant(v) for v in theta.values()]))
    want = 30.0 / 2 * sum(np.sum(fisher[k] * (theta[k].astype(np.float64) - anchor[k]) ** 2) for k in anchor)
    assert got == pytest.approx(want, rel=1e-5)


def test_penalty_is_zero_at_the_anchor_and_fine_tuning_has_none():
    anchor = _weights(0)
    ones = {k: np.ones_like(v) for k, v in anchor.items()}
    assert float(regularizers.penalty_for(5.0, anchor, ones)([tf.constant(v) for v in anchor.values()])) == 0.0
    assert regularizers.penalty_for(0.0, anchor, None) is None


def test_importance_not_matching_the_weights_fails_clearly():
    with pytest.raises(ValueError, match=r"the importance has weights \['hidden/kernel'\], the penalty "
                                         r"\['hidden/bias', 'hidden/kernel'\]"):
        regularizers.penalty_for(1.0, _weights(0), {"hidden/kernel": np.ones((6, 4))})
    with pytest.raises(ValueError, match=r"importance hidden/kernel: shape \(4,\), the weight's is \(6, 4\)"):
        regularizers.penalty_for(1.0, _weights(0), {"hidden/kernel": np.ones(4), "hidden/bias": np.ones(4)})


def test_a_penalty_in_another_order_than_the_models_weights_is_refused():
    """A QuadraticPenalty pairs its tensors with the model's weights by position: the model checks the names."""
    from cllab import model

    config = model.ModelConfig(hidden_units=4, dropout=0.0, input_shape=(6,), num_classes=3)
    theta = model.get_weights(model.build_model(config))
    ones = {k: np.ones_like(v) for k, v in theta.items()}
    assert model.build_model(config, penalty=regularizers.penalty_for(1.0, theta, ones)).penalty is not None
    backwards = dict(reversed(list(theta.items())))
    with pytest.raises(ValueError, match=r"the penalty's weights \['logits/bias', .* are not the model's "
                                         r"\['hidden/kernel', .* in order"):
        model.build_model(config, penalty=regularizers.penalty_for(1.0, backwards, ones))
    narrow = {**theta, "hidden/bias": theta["hidden/bias"][:1]}  # (1,) would broadcast against (4,)
    with pytest.raises(ValueError, match=r"the penalty's shapes \[\(6, 4\), \(1,\), \(4, 3\), \(3,\)\] are not "
                                         r"the model's weights' \[\(6, 4\), \(4,\), \(4, 3\), \(3,\)\]"):
        model.build_model(config, penalty=regularizers.penalty_for(1.0, narrow, {**ones, "hidden/bias": np.ones(1)}))


class _AutodiffPenalty(regularizers.QuadraticPenalty):
    """The formula with its gradient left to autodiff: the reference for the written-out gradient."""

    def __call__(self, weights):
        return 0.5 * self.strength * tf.add_n(
            [tf.reduce_sum(o * tf.square(w - a)) for w, a, o in zip(weights, self.anchor, self.importance)])


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("weight", [1.0, 0.25, 0.37])  # the penalty's weight in the loss: the upstream gradient
@pytest.mark.parametrize("strength", [0.001, 0.3, 10.0, 2000.0])
def test_written_out_gradient_is_autodiffs_bit_for_bit(strength, weight, traced):
    import keras

    rng = np.random.default_rng(3)
    shapes = [(30, 20), (20,), (20, 10)]
    anchor = {f"w{i}": rng.normal(size=s) for i, s in enumerate(shapes)}
    omega = {f"w{i}": rng.uniform(0, 1, size=s) ** 6 for i, s in enumerate(shapes)}  # ~1 down to tiny, as a Fisher
    weights = [keras.Variable(a + rng.normal(size=a.shape), dtype="float64") for a in anchor.values()]
    new = regularizers.QuadraticPenalty(anchor, omega, strength, dtype="float64")
    reference = _AutodiffPenalty(anchor, omega, strength, dtype="float64")

    def gradients(penalty):
        with tf.GradientTape() as tape:
            other = tf.reduce_sum(tf.sin(weights[0])) + tf.reduce_sum(weights[2] ** 2)  # a loss sharing the weights
            loss = other + weight * penalty(weights)
        return tape.gradient(loss, weights), penalty(weights)

    step = tf.function(gradients, reduce_retracing=True) if traced else gradients
    (mine, value), (theirs, reference_value) = step(new), step(reference)
    for g_mine, g_theirs in zip(mine, theirs):
        if weight in (1.0, 0.25):  # as in training (1), or any power of two: autodiff's bits
            np.testing.assert_array_equal(g_mine.numpy(), g_theirs.numpy())
        else:  # rounded once in another order
            np.testing.assert_allclose(g_mine.numpy(), g_theirs.numpy(), rtol=1e-12, atol=1e-15)
    assert float(value) == float(reference_value)
    with tf.GradientTape() as tape:  # the written-out gradient is the one used: λΩ(θ − θ*)
        alone = new(weights)
    slope = tape.gradient(alone, weights)[1].numpy()
    np.testing.assert_allclose(slope, strength * omega["w1"] * (weights[1].numpy() - anchor["w1"]), rtol=1e-12)
    new.slope = [2 * c for c in new.slope]
    with tf.GradientTape() as tape:
        alone = new(weights)
    np.testing.assert_array_equal(tape.gradient(alone, weights)[1].numpy(), 2 * slope)


def test_a_moved_penalty_is_the_new_penalty_bit_for_bit_and_a_traced_step_follows_the_move():
    """A sequence re-anchors one penalty per task instead of building a model per task: after move_to, the traced
    step (not retraced) gives the value and gradient of a penalty made anew at the new anchor and importance."""
    import keras

    rng = np.random.default_rng(5)
    shapes = [(30, 20), (20,)]
    names = ["hidden/kernel", "hidden/bias"]
    quadratics = [({n: rng.normal(size=s) for n, s in zip(names, shapes)},
                   {n: rng.uniform(0, 1, size=s) ** 6 for n, s in zip(names, shapes)}) for _ in range(2)]
    weights = [keras.Variable(rng.normal(size=s), dtype="float64") for s in shapes]

    @tf.function
    def step(penalty):
        with tf.GradientTape() as tape:
            value = penalty(weights)
        return value, tape.gradient(value, weights)

    moved = regularizers.QuadraticPenalty(*quadratics[0], 30.0, dtype="float64")
    before = step(moved)
    moved.move_to(*quadratics[1])
    after = step(moved)
    assert step.experimental_get_tracing_count() == 1
    anew = step(regularizers.QuadraticPenalty(*quadratics[1], 30.0, dtype="float64"))
    assert float(after[0]) == float(anew[0]) != float(before[0])
    for mine, theirs in zip(after[1], anew[1]):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(ValueError, match=r"anchor hidden/bias: shape \(3,\), the weight's is \(20,\)"):
        moved.move_to({**quadratics[0][0], "hidden/bias": np.zeros(3)}, quadratics[0][1])
    with pytest.raises(ValueError, match=r"the anchor has weights \['hidden/kernel'\], the penalty "):
        moved.move_to({"hidden/kernel": quadratics[0][0]["hidden/kernel"]}, quadratics[0][1])
    with pytest.raises(ValueError, match=r"the importance has weights \['extra', 'hidden/bias', 'hidden/kernel'\]"):
        moved.move_to(quadratics[0][0], {**quadratics[0][1], "extra": np.ones(2)})
    assert float(step(moved)[0]) == float(after[0])  # a refused move leaves the penalty as it was
    backwards = [dict(reversed(list(q.items()))) for q in quadratics[0]]  # matched by name, not by position
    moved.move_to(*backwards)
    back = step(moved)
    assert float(back[0]) == float(before[0])
    for mine, theirs in zip(back[1], before[1]):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
