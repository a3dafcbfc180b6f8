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


def test_fisher_is_not_the_square_of_the_batch_gradient(tiny):
    import tensorflow as tf

    net, x, y = tiny
    fisher = importance.fisher_diagonal(net, x, "empirical", labels=y)
    with tf.GradientTape() as tape:
        log_lik = tf.reduce_sum(tf.gather(tf.nn.log_softmax(net(x, training=False)), y, batch_dims=1))
    batch_grad = tape.gradient(log_lik, net.trainable_weights)
    wrong = np.square(batch_grad[0].numpy()) / len(x)
    assert not np.allclose(fisher["hidden/kernel"], wrong, rtol=0.05)


def test_sampled_labels_follow_the_model_and_are_seeded(tiny):
    net, x, _ = tiny
    probs = np.tile([[0.1, 0.0, 0.6, 0.3, 0.0]], (20000, 1))
    w = importance.label_weights(probs, "sampled", seed=1)
    np.testing.assert_allclose(w.mean(axis=0), probs[0], atol=0.015)
    np.testing.assert_array_equal(w, importance.label_weights(probs, "sampled", seed=1))
    with pytest.raises(ValueError, match="unknown Fisher kind 'fancy'"):
        importance.label_weights(probs, "fancy")
