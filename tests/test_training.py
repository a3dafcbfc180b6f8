"""Regularised training goes through model.fit and moves the weights by exactly -lr·(∇CE + λΩ(θ−θ_A))."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from cllab import model, regularizers, training


def _net(seed: int, penalty=None):
    keras.utils.set_random_seed(seed)
    return model.build_model(model.ModelConfig(hidden_units=6, dropout=0.0, input_shape=(3, 3)), penalty=penalty)


def _batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 3, 3)).astype(np.float32), rng.integers(0, 5, size=16)


@pytest.mark.parametrize("method,strength", [("none", 0.0), ("l2", 0.5), ("ewc", 40.0)])
def test_one_sgd_step_of_fit_moves_weights_by_the_penalised_gradient(method, strength):
    x, y = _batch()
    anchor = model.get_weights(_net(1))
    rng = np.random.default_rng(7)
    fisher = {k: rng.uniform(0, 0.05, size=v.shape).astype(np.float32) for k, v in anchor.items()}
    omega = {"none": {k: 0 * v for k, v in fisher.items()}, "l2": {k: 1 + 0 * v for k, v in fisher.items()}}.get(method, fisher)
    net = _net(2, regularizers.penalty_for(strength, anchor, None if method == "none" else omega))
    before = model.get_weights(net)
    # independent expectation: cross-entropy gradient by a tape, penalty gradient by hand
    with tf.GradientTape() as tape:
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, net(x, training=True))
    grads = dict(zip(model.weight_names(net), (g.numpy() for g in tape.gradient(ce, net.trainable_weights))))
    lr = 0.1
    model.compile_model(net, "sgd", lr)
    training.fit(net, x, y, epochs=1, batch_size=len(x), verbose=0)
    after = model.get_weights(net)
    for name in before:
        expected = before[name] - lr * (grads[name] + strength * omega[name] * (before[name] - anchor[name]))
        np.testing.assert_allclose(after[name], expected, rtol=1e-4, atol=1e-6, err_msg=name)


def test_fit_reports_the_penalty_and_the_forgetting_curve_per_epoch():
    x, y = _batch()
    anchor = model.get_weights(_net(1))
    net = _net(2, regularizers.penalty_for(1.0, anchor, {k: np.ones_like(v) for k, v in anchor.items()}))
    model.compile_model(net, "adam", 1e-2)
    curve = training.TaskAccuracyCurve({"a": (x, y), "b": (x[:8], y[:8])})
    history = training.fit(net, x, y, epochs=3, batch_size=8, validation=(x, y), callbacks=[curve], verbose=0)
    assert history["penalty"][0] > 0
    assert [row["epoch"] for row in curve.rows] == [0, 1, 2, 3]
    assert history["test_acc_a"] == [row["acc_a"] for row in curve.rows[1:]]
    assert curve.rows[-1]["acc_a"] == model.accuracy(net, x, y)  # the same measurement: callers may reuse it
    # the objective and its two terms, named apart, in training and validation alike
    for prefix in ("", "val_"):
        for loss, ce, penalty in zip(history[f"{prefix}loss"], history[f"{prefix}cross_entropy"], history[f"{prefix}penalty"]):
            assert loss == pytest.approx(ce + penalty, rel=1e-5)
    # validation's penalty is the penalty at the weights after the epoch, not a flat 0
    after = model.get_weights(net)
    want = 0.5 * sum(float(np.sum((after[k].astype(np.float64) - anchor[k]) ** 2)) for k in anchor)
    assert history["val_penalty"][-1] == pytest.approx(want, rel=1e-5) and min(history["val_penalty"]) > 0


def test_a_curve_told_not_to_measure_the_start_records_epochs_from_1():
    x, y = _batch()
    net = _net(2)
    model.compile_model(net, "sgd", 1e-2)
    curve = training.TaskAccuracyCurve({"a": (x, y)}, measure_start=False)
    history = training.fit(net, x, y, epochs=2, batch_size=8, callbacks=[curve], verbose=0)
    assert [row["epoch"] for row in curve.rows] == [1, 2]
    assert history["test_acc_a"] == [row["acc_a"] for row in curve.rows]


@pytest.mark.parametrize("batch_size", [5, 16, 1024])
def test_predict_logits_are_the_eager_calls_bit_for_bit(batch_size):
    keras.utils.set_random_seed(3)
    net = model.build_model(model.ModelConfig(hidden_units=6, dropout=0.5, input_shape=(3, 3)))
    x = np.random.default_rng(1).normal(size=(16, 3, 3)).astype(np.float32)
    eager = np.concatenate([np.asarray(net(x[i:i + batch_size], training=False)) for i in range(0, 16, batch_size)])
    got = model.predict_logits(net, x, batch_size)
    assert got.shape == (16, 5) and got.dtype == eager.dtype
    np.testing.assert_array_equal(got, eager)  # compiled, dropout off: the same numbers, not merely close
    np.testing.assert_array_equal(model.predict_logits(net, x[:0]), np.zeros((0, 5)))


def test_dvclive_steps_are_epochs_and_metrics_are_filed_by_split(tmp_path):
    from cllab import io

    x, y = _batch()
    anchor = model.get_weights(_net(1))
    net = _net(2, regularizers.penalty_for(1.0, anchor, {k: np.ones_like(v) for k, v in anchor.items()}))
    model.compile_model(net, "sgd", 1e-2)
    curve = training.TaskAccuracyCurve({"a": (x, y), "b": (x[:8], y[:8])})
    live = tmp_path / "live"
    history = training.fit(net, x, y, epochs=2, batch_size=8, validation=(x[:8], y[:8]),
                           callbacks=[curve, training.LiveEpochs(live, curve)], verbose=0)
    logged = sorted(str(p.relative_to(live / "plots" / "metrics")) for p in live.rglob("*.tsv"))
    assert logged == sorted([
        "eval/accuracy.tsv", "eval/cross_entropy.tsv", "eval/loss.tsv", "eval/penalty.tsv",
        "test/acc_a.tsv", "test/acc_b.tsv",
        "train/accuracy.tsv", "train/cross_entropy.tsv", "train/loss.tsv", "train/penalty.tsv",
    ])
    # step 0 is the starting model (test accuracies only), step k the end of epoch k, as in the curve's rows
    assert io.load_live_metric(live, "test/acc_a") == {r["epoch"]: pytest.approx(r["acc_a"]) for r in curve.rows}
    assert io.load_live_metric(live, "train/loss") == {1: pytest.approx(history["loss"][0]), 2: pytest.approx(history["loss"][1])}
    assert io.load_live_metric(live, "eval/penalty") == {k + 1: pytest.approx(v) for k, v in enumerate(history["val_penalty"])}
    assert io.load_live_metric(live, "train/no_such_metric") == {}
    assert training.live_name("val_loss") == "eval/loss" and training.live_name("test_acc_b") == "test/acc_b"
    assert training.live_name("penalty") == "train/penalty"


def test_diverging_loss_stops_with_lambda_and_epoch_in_the_message():
    x, y = _batch()
    anchor = {k: v + 1.0 for k, v in model.get_weights(_net(1)).items()}
    # λ = 1e300 overflows within the first epoch in float32 and in float64 alike (1e30 took 3 epochs in float64)
    net = _net(2, regularizers.penalty_for(1e300, anchor, {k: np.ones_like(v) for k, v in anchor.items()}))
    model.compile_model(net, "sgd", 0.1)
    with pytest.raises(training.DivergedError, match=r"lambda=1e\+300\): loss became (nan|inf) in epoch 1"):
        training.fit(net, x, y, epochs=3, batch_size=8, verbose=0, context="train_b@l2 (lambda=1e+300)")


def test_a_loss_that_explodes_but_stays_finite_in_float64_stops_in_the_same_epoch():
    """λ = 1e30 takes float64 three epochs to overflow; its first epoch's loss is finite but far past
    DIVERGED_LOSS, so the run stops there, as float32's overflow would stop it."""
    from cllab.runtime import set_precision

    before = keras.config.floatx()
    set_precision("float64")
    try:
        x, y = _batch()
        anchor = {k: v + 1.0 for k, v in model.get_weights(_net(1)).items()}
        net = _net(2, regularizers.penalty_for(1e30, anchor, {k: np.ones_like(v) for k, v in anchor.items()}))
        model.compile_model(net, "sgd", 0.1)
        assert net.trainable_weights[0].dtype == "float64"
        with pytest.raises(training.DivergedError) as caught:
            training.fit(net, x, y, epochs=3, batch_size=8, verbose=0, context="train_b@l2 (lambda=1e+30)")
    finally:
        set_precision(before)
    loss = float(re.search(r"loss became (\S+) in epoch 1 \(diverged\)", str(caught.value)).group(1))
    assert training.DIVERGED_LOSS < loss < float("inf")


def test_a_validation_loss_past_the_bound_stops_training_though_the_training_loss_is_fine():
    """The guard reads every value an epoch logs: validation images scaled by 1e14 give a finite val_loss far past
    DIVERGED_LOSS while the training loss stays ordinary, and the run stops in epoch 1 naming val_loss."""
    x, y = _batch()
    net = _net(3)
    model.compile_model(net, "sgd", 0.01)
    with pytest.raises(training.DivergedError, match=r"scaled: val_loss became \S+ in epoch 1 \(diverged\)") as caught:
        training.fit(net, x, y, epochs=3, batch_size=8, validation=(x * 1e14, y), verbose=0, context="scaled")
    value = float(re.search(r"val_loss became (\S+) in", str(caught.value)).group(1))
    assert training.DIVERGED_LOSS < value < float("inf")
    assert training.diverged(float("nan")) and training.diverged(-1e13) and not training.diverged(2.2)


def test_saved_model_reloads_in_one_call_with_identical_predictions(tmp_path):
    x, _ = _batch()
    net = _net(4)
    config = model.ModelConfig(hidden_units=6, dropout=0.0, input_shape=(3, 3))
    model.save_model(tmp_path / "m.npz", net, config)
    again = model.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(model.predict_logits(net, x), model.predict_logits(again, x))
    model.save_model(tmp_path / "m2.npz", again, config)
    assert (tmp_path / "m.npz").read_bytes() == (tmp_path / "m2.npz").read_bytes()


def test_tampered_model_file_fails_naming_the_file_and_the_weight(tmp_path):
    from cllab import io

    config = model.ModelConfig(hidden_units=6, dropout=0.0, input_shape=(3, 3))
    model.save_model(tmp_path / "m.npz", _net(4), config)
    arrays = io.load_npz(tmp_path / "m.npz")
    arrays["hidden/kernel"] = arrays["hidden/kernel"][:5]
    io.save_npz(tmp_path / "tampered.npz", arrays)
    with pytest.raises(io.ArtifactError, match=r"tampered.npz: hidden/kernel has shape \(5, 6\), model expects \(9, 6\)"):
        model.load_model(tmp_path / "tampered.npz")
    del arrays["logits/bias"]
    io.save_npz(tmp_path / "missing.npz", arrays)
    with pytest.raises(io.ArtifactError, match="missing.npz: weights .* do not match"):
        model.load_model(tmp_path / "missing.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all")
    with pytest.raises(io.ArtifactError, match="garbage.npz: not a valid .npz file"):
        model.load_model(tmp_path / "garbage.npz")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_steps_per_execution_changes_speed_not_numbers(optimizer):
    """The default of running 16 steps per compiled call must give the very bits of one step per call: same batches,
    same dropout draws, same SI path integral (10 steps per epoch, not a multiple of 16 or 3)."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 3, 3)).astype(np.float32), rng.integers(0, 5, size=40)
    config = model.ModelConfig(hidden_units=6, dropout=0.3, input_shape=(3, 3))
    results = {}
    for steps in (1, 3, model.STEPS_PER_EXECUTION):
        keras.utils.set_random_seed(5)
        net = model.build_model(config, track_path_integral=True)
        model.compile_model(net, optimizer, 0.05, steps_per_execution=steps)
        assert net.steps_per_execution == steps
        training.fit(net, x, y, epochs=2, batch_size=4, verbose=0)
        results[steps] = {**model.get_weights(net), **{f"omega/{k}": v for k, v in net.path_integral_values().items()}}
    assert model.STEPS_PER_EXECUTION > 1
    for steps, arrays in results.items():
        for name, values in arrays.items():
            np.testing.assert_array_equal(values, results[1][name], err_msg=f"steps_per_execution={steps}: {name}")
    assert np.abs(results[1]["omega/hidden/kernel"]).sum() > 0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_reset_model_trains_the_next_task_as_a_newly_compiled_one_bit_for_bit(optimizer):
    """A sequence trains every task after the first penalised one with the same compiled model: its penalty moved to
    the new anchor and importance, reset_training returns its optimizer (Adam's moments and step count) and SI's path
    integral to where compile left them. Validation runs too (the reused model's evaluation step)."""
    rng = np.random.default_rng(8)
    (x1, y1), (x2, y2) = [(rng.normal(size=(40, 3, 3)).astype(np.float32), rng.integers(0, 5, size=40))
                          for _ in range(2)]
    config = model.ModelConfig(hidden_units=6, dropout=0.0, input_shape=(3, 3))
    keras.utils.set_random_seed(5)
    first = model.get_weights(model.build_model(config))
    omegas = [{k: rng.uniform(0, 1, size=v.shape) for k, v in first.items()} for _ in range(2)]
    penalty = regularizers.penalty_for(3.0, first, omegas[0])
    net = model.compile_model(model.build_model(config, penalty=penalty, track_path_integral=True), optimizer, 0.05)
    fresh = model.fresh_training_state(net)
    training.fit(net, x1, y1, epochs=2, batch_size=8, validation=(x2, y2), verbose=0)  # the first task
    after_first = model.get_weights(net)
    anew = model.build_model(config, penalty=regularizers.penalty_for(3.0, after_first, omegas[1]),
                             track_path_integral=True)
    model.set_weights(anew, after_first)
    model.compile_model(anew, optimizer, 0.05)
    penalty.move_to(after_first, omegas[1])
    model.reset_training(net, fresh)
    histories = [training.fit(trained, x2, y2, epochs=2, batch_size=8, validation=(x1, y1), verbose=0)
                 for trained in (net, anew)]  # the next task: the same model moved and reset, and a new one
    assert histories[0] == histories[1] and histories[0]["penalty"][-1] > 0
    for name, values in model.get_weights(net).items():
        np.testing.assert_array_equal(values, model.get_weights(anew)[name], err_msg=name)
    for name, values in net.path_integral_values().items():
        np.testing.assert_array_equal(values, anew.path_integral_values()[name], err_msg=f"path integral {name}")
    with pytest.raises(ValueError, match=f"a training state of {len(fresh) - 1} variables for a model with "
                                         f"{len(fresh)}"):
        model.reset_training(net, fresh[1:])
    with pytest.raises(ValueError, match="the optimizer has taken 10 steps: a fresh training state is taken before"):
        model.fresh_training_state(net)  # a trained model's state is not where compile left it


def test_predict_logits_are_keras_predict_bit_for_bit():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2500, 3, 3)).astype(np.float32)  # three batches of 1024, the last one partial
    net = model.build_model(model.ModelConfig(hidden_units=6, dropout=0.5, input_shape=(3, 3)))
    np.testing.assert_array_equal(model.predict_logits(net, x), net.predict(x, batch_size=1024, verbose=0))
    assert model.predict_logits(net, x[:0]).shape == (0, 5)


def test_task_accuracies_cover_val_and_test_of_every_task():
    x, y = _batch()
    net = _net(4)
    arrays = {"x_val": x[:8], "y_val": y[:8], "x_test": x, "y_test": y}
    acc = model.task_accuracies(net, {"a": arrays, "b": {**arrays, "y_test": (y + 1) % 5}})
    assert set(acc) == {"val", "test"} and set(acc["test"]) == {"a", "b"}
    assert acc["test"]["a"] == model.accuracy(net, x, y) and acc["val"]["a"] == model.accuracy(net, x[:8], y[:8])
    assert acc["test"]["a"] + acc["test"]["b"] <= 1.0  # a label and its shifted copy cannot both be right


@pytest.fixture
def float64():
    """Keras' float type set to float64 (runtime.precision's default) for one test, then restored."""
    from cllab.runtime import set_precision

    before = keras.config.floatx()
    set_precision("float64")
    yield
    set_precision(before)


def test_float64_precision_trains_penalises_and_measures_importance_in_float64(float64):
    from cllab import importance
    from cllab.runtime import set_precision

    x, y = _batch()  # float32 pixels, as prepare writes them
    anchor = model.get_weights(_net(1))
    assert all(v.dtype == np.float64 for v in anchor.values())
    fisher = importance.fisher_diagonal(_net(1), x, "exact")
    assert all(v.dtype == np.float64 for v in fisher.values())
    net = _net(2, regularizers.penalty_for(10.0, anchor, fisher))
    start = model.get_weights(net)
    assert net.penalty(net.trainable_weights).dtype == tf.float64
    model.compile_model(net, "sgd", 0.1)
    history = training.fit(net, x, y, epochs=2, batch_size=len(x), verbose=0)
    after64 = model.get_weights(net)
    assert history["penalty"][0] > 0 and all(v.dtype == np.float64 for v in after64.values())
    # the same two steps from the same start in float32 round differently: the precision is real, not a label
    set_precision("float32")
    net32 = _net(2, regularizers.penalty_for(10.0, anchor, fisher))
    model.set_weights(net32, start)
    model.compile_model(net32, "sgd", 0.1)
    training.fit(net32, x, y, epochs=2, batch_size=len(x), verbose=0)
    after32 = model.get_weights(net32)
    assert all(v.dtype == np.float32 for v in after32.values())
    assert any(not np.array_equal(after32[k].astype(np.float64), after64[k]) for k in after64)
    for k in after64:
        np.testing.assert_allclose(after32[k], after64[k], rtol=1e-4, atol=1e-5)
