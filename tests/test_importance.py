"""Each Fisher kind, by the fast Dense path and the vectorised path, equals a per-example loop on a tiny model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cllab import importance, model


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(3)
    net = model.build_model(model.ModelConfig(hidden_units=7, dropout=0.3, input_shape=(4, 3)))
    rng = np.random.default_rng(0)
    # larger weights than the initialiser gives, so that p(y|x) is far from uniform
    for w in net.trainable_weights:
        w.assign(rng.normal(scale=0.8, size=w.shape).astype(np.float32))
    x = rng.normal(size=(23, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=23)
    return net, x, y


@pytest.mark.parametrize("kind", importance.FISHER_KINDS)
@pytest.mark.parametrize("implementation", ["dense", "vectorized"])
def test_fisher_of_each_kind_equals_the_per_example_loop(tiny, kind, implementation):
    net, x, y = tiny
    reference = importance.fisher_diagonal(net, x, kind, labels=y, seed=5, implementation="loop")
    fast = importance.fisher_diagonal(net, x, kind, labels=y, seed=5, batch_size=10, implementation=implementation)
    assert list(fast) == model.weight_names(net)
    for name in reference:
        assert fast[name].shape == reference[name].shape
        np.testing.assert_allclose(fast[name], reference[name], rtol=2e-4, atol=1e-7, err_msg=name)


def test_exact_fisher_of_the_output_bias_is_p_times_one_minus_p(tiny):
    net, x, _ = tiny
    probs = importance.class_probabilities(net, x)
    fisher = importance.fisher_diagonal(net, x, "exact")
    np.testing.assert_allclose(fisher["logits/bias"], np.mean(probs * (1 - probs), axis=0), rtol=1e-5)


def test_empirical_fisher_of_the_output_bias_is_the_mean_squared_residual(tiny):
    """∂ log p(y|x)/∂b_k = onehot(y)_k − p_k: the empirical Fisher of the output bias is mean((p − onehot(y))²)."""
    net, x, y = tiny
    probs = importance.class_probabilities(net, x)
    fisher = importance.fisher_diagonal(net, x, "empirical", labels=y)
    np.testing.assert_allclose(fisher["logits/bias"], np.mean((probs - np.eye(5)[y]) ** 2, axis=0), rtol=1e-5)


def test_fisher_is_not_the_square_of_the_batch_gradient(tiny):
    import tensorflow as tf

    net, x, y = tiny
    fisher = importance.fisher_diagonal(net, x, "empirical", labels=y)
    with tf.GradientTape() as tape:
        log_lik = tf.reduce_sum(tf.gather(tf.nn.log_softmax(net(x, training=False)), y, batch_dims=1))
    batch_grad = tape.gradient(log_lik, net.trainable_weights)
    wrong = np.square(batch_grad[0].numpy()) / len(x)
    assert not np.allclose(fisher["hidden/kernel"], wrong, rtol=0.05)


def test_sampled_labels_follow_the_probabilities_and_the_seed():
    probs = np.tile([[0.1, 0.0, 0.6, 0.3, 0.0]], (20000, 1))
    w = importance.label_weights(probs, "sampled", seed=1)
    np.testing.assert_allclose(w.mean(axis=0), probs[0], atol=0.015)
    np.testing.assert_array_equal(w, importance.label_weights(probs, "sampled", seed=1))
    assert not np.array_equal(w, importance.label_weights(probs, "sampled", seed=2))
    with pytest.raises(ValueError, match="unknown Fisher kind 'fancy'"):
        importance.label_weights(probs, "fancy")


def test_mas_dense_equals_the_per_example_loop(tiny):
    net, x, _ = tiny
    reference = importance.mas_importance(net, x, implementation="loop")
    fast = importance.mas_importance(net, x, batch_size=10, implementation="dense")
    for name in reference:
        np.testing.assert_allclose(fast[name], reference[name], rtol=2e-4, atol=1e-7, err_msg=name)


def test_mas_of_the_output_bias_is_twice_the_mean_absolute_logit(tiny):
    net, x, _ = tiny
    logits = net.predict(x, verbose=0)
    mas = importance.mas_importance(net, x)
    np.testing.assert_allclose(mas["logits/bias"], np.mean(2 * np.abs(logits), axis=0), rtol=1e-5)


def _sgd_by_hand(config, x, y, start, lr, steps, pull=None):
    """Full-batch SGD on the cross-entropy (+ the penalty whose gradient is `pull(θ)`), by hand, with the path
    integrals Σ lr·g_CE·step (SI's ω) and Σ lr·step² (ω of the whole step's gradient): (θ, ω, ω_whole)."""
    import tensorflow as tf

    reference = model.build_model(config)
    theta = dict(start)
    omega = {k: np.zeros_like(v, dtype=np.float64) for k, v in start.items()}
    whole = {k: np.zeros_like(v, dtype=np.float64) for k, v in start.items()}
    for _ in range(steps):
        model.set_weights(reference, theta)
        with tf.GradientTape() as tape:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, reference(x, training=True))
        grads = dict(zip(model.weight_names(reference),
                         (g.numpy() for g in tape.gradient(loss, reference.trainable_weights))))
        extra = pull(theta) if pull else {k: 0.0 for k in theta}
        step = {k: grads[k] + extra[k] for k in theta}
        omega = {k: omega[k] + lr * grads[k].astype(np.float64) * step[k] for k in omega}
        whole = {k: whole[k] + lr * step[k].astype(np.float64) ** 2 for k in whole}
        theta = {k: theta[k] - lr * step[k] for k in theta}
    return theta, omega, whole


def test_si_path_integral_of_full_batch_sgd_is_lr_times_summed_squared_gradients():
    from cllab import training

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 4, 3)).astype(np.float32), rng.integers(0, 5, size=32)
    config = model.ModelConfig(hidden_units=5, dropout=0.0, input_shape=(4, 3))
    keras.utils.set_random_seed(0)
    tracked = model.build_model(config, track_path_integral=True)
    keras.utils.set_random_seed(0)
    plain = model.build_model(config)
    start = model.get_weights(plain)
    # independent reference: three full-batch gradient steps by hand, ω += lr·g² each
    lr = 0.1
    theta, omega, _ = _sgd_by_hand(config, x, y, start, lr, 3)
    for net in (tracked, plain):
        model.compile_model(net, "sgd", lr)
        training.fit(net, x, y, epochs=3, batch_size=32, verbose=0)
    got = tracked.path_integral_values()
    for name in omega:
        np.testing.assert_allclose(got[name], omega[name], rtol=1e-4, atol=1e-9, err_msg=name)
        # tracking the path integral does not change training itself
        np.testing.assert_array_equal(model.get_weights(tracked)[name], model.get_weights(plain)[name])
    si = importance.si_importance(got, start, model.get_weights(tracked), xi=0.1)
    want = np.maximum(omega["hidden/kernel"], 0) / ((theta["hidden/kernel"] - start["hidden/kernel"]) ** 2 + 0.1)
    np.testing.assert_allclose(si["hidden/kernel"], want, rtol=1e-3)


def test_si_path_integral_under_a_penalty_weights_each_step_by_the_task_loss_gradient_alone():
    """From task 2 on, SI trains under its own penalty: ω = Σ −g·Δθ takes g of the cross-entropy only (Zenke et
    al.'s reference code), while the step follows cross-entropy + penalty, bit for bit the step of an untracked model."""
    from cllab import regularizers, training

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(32, 4, 3)).astype(np.float32), rng.integers(0, 5, size=32)
    config = model.ModelConfig(hidden_units=5, dropout=0.0, input_shape=(4, 3))
    keras.utils.set_random_seed(0)
    start = model.get_weights(model.build_model(config))
    anchor = {k: v + rng.normal(scale=0.5, size=v.shape).astype(v.dtype) for k, v in start.items()}
    omega_old = {k: rng.uniform(0.5, 1.5, size=v.shape) for k, v in start.items()}
    lr, strength = 0.1, 2.0
    nets, histories = [], []
    for track in (True, False):
        net = model.build_model(config, penalty=regularizers.penalty_for(strength, anchor, omega_old),
                                track_path_integral=track)
        model.set_weights(net, start)
        model.compile_model(net, "sgd", lr)
        histories.append(training.fit(net, x, y, epochs=3, batch_size=32, verbose=0))
        nets.append(net)
    tracked, plain = nets
    assert histories[0] == histories[1] and histories[0]["penalty"][-1] > 0  # loss and its two terms, logged once
    # by hand: three full-batch steps on cross-entropy + penalty, ω += −g_CE·Δθ = lr·g_CE·(g_CE + g_penalty)
    def pull(theta):
        return {k: strength * omega_old[k] * (theta[k] - anchor[k]) for k in theta}

    _, omega, full = _sgd_by_hand(config, x, y, start, lr, 3, pull=pull)
    got = tracked.path_integral_values()
    for name in omega:
        np.testing.assert_allclose(got[name], omega[name], rtol=1e-4, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(model.get_weights(tracked)[name], model.get_weights(plain)[name])
    # the penalty's pull-back is large here: taking its gradient into ω would move it far
    assert not np.allclose(full["hidden/kernel"], omega["hidden/kernel"], rtol=0.1)
