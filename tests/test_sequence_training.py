"""Training a sequence of tasks (cllab.sequence): how penalties carry over, replay's and the joint model's batches,
and whole runs on a small synthetic sequence."""

from __future__ import annotations

import copy
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cllab import data, methods, model, params, regularizers, seqparams, sequence, training


def _weights(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"hidden/kernel": rng.normal(size=(4, 3)) * scale, "hidden/bias": rng.normal(size=3) * scale}


def _omega(seed: int) -> dict[str, np.ndarray]:
    return {k: np.abs(v) for k, v in _weights(seed + 100).items()}


def _penalty_value(quadratic, theta) -> float:
    anchor, omega = quadratic
    return float(sum(np.sum(omega[k] * (theta[k] - anchor[k]) ** 2) for k in theta))


def test_sum_carry_keeps_one_quadratic_per_task_with_the_gradient_of_their_sum():
    carry = sequence.Carry("sum")
    assert carry.quadratic() is None
    thetas, omegas = [_weights(t) for t in range(3)], [_omega(t) for t in range(3)]
    for theta, omega in zip(thetas, omegas):
        carry.add(theta, omega)
    quadratic = carry.quadratic()
    theta = _weights(9)
    naive = lambda th: sum(np.sum(o[k] * (th[k] - a[k]) ** 2) for a, o in zip(thetas, omegas) for k in th)  # noqa: E731
    # same gradient everywhere (the sum and the collapsed quadratic differ by a constant)
    for k in theta:
        grad_naive = sum(2 * o[k] * (theta[k] - a[k]) for a, o in zip(thetas, omegas))
        grad_collapsed = 2 * quadratic[1][k] * (theta[k] - quadratic[0][k])
        np.testing.assert_allclose(grad_collapsed, grad_naive, rtol=1e-12, atol=1e-12)
    other = _weights(10)
    assert naive(theta) - _penalty_value(quadratic, theta) == pytest.approx(
        naive(other) - _penalty_value(quadratic, other), rel=1e-10)


def test_online_carry_decays_the_old_importance_and_anchors_at_the_latest_weights():
    carry = sequence.Carry("online", gamma=0.5)
    for t in range(3):
        carry.add(_weights(t), _omega(t))
    anchor, omega = carry.quadratic()
    for k in anchor:
        np.testing.assert_allclose(anchor[k], _weights(2)[k])
        np.testing.assert_allclose(omega[k], 0.25 * _omega(0)[k] + 0.5 * _omega(1)[k] + _omega(2)[k])
    # γ = 1 (Huszár): the same importance as one penalty per task, but all of it at the latest θ
    summed, online = sequence.Carry("sum"), sequence.Carry("online", gamma=1.0)
    for t in range(3):
        summed.add(_weights(t), _omega(t))
        online.add(_weights(t), _omega(t))
    for k in anchor:
        np.testing.assert_allclose(online.quadratic()[1][k], summed.quadratic()[1][k])
        assert not np.allclose(online.quadratic()[0][k], summed.quadratic()[0][k])


def test_latest_carry_drops_the_old_importances_and_one_task_is_the_same_for_every_carry():
    carry = sequence.Carry("latest")
    for t in range(3):
        carry.add(_weights(t), _omega(t))
    anchor, omega = carry.quadratic()
    for k in anchor:
        np.testing.assert_allclose(anchor[k], _weights(2)[k])
        np.testing.assert_allclose(omega[k], _omega(2)[k])
    firsts = []
    for kind in methods.CARRIES:
        c = sequence.Carry(kind, gamma=0.3)
        c.add(_weights(0), _omega(0))
        firsts.append(c.quadratic())
    for a, o in firsts[1:]:
        for k in a:
            np.testing.assert_allclose(a[k], firsts[0][0][k])
            np.testing.assert_allclose(o[k], firsts[0][1][k])
    with pytest.raises(ValueError, match="unknown carry 'mean'"):
        sequence.Carry("mean")
    with pytest.raises(ValueError, match="gamma must be in"):
        sequence.Carry("online", gamma=1.5)


def test_replay_batches_mix_new_and_stored_examples_and_are_seeded():
    x, y = np.arange(10.0)[:, None], np.zeros(10, np.int32)
    memory = (np.arange(100.0, 104.0)[:, None], np.ones(4, np.int32))
    batches = sequence.ReplayBatches(x, y, memory, batch_size=4, seed=0)
    assert len(batches) == 3
    seen = []
    for i in range(len(batches)):
        bx, by = batches[i]
        new = len(by) // 2
        assert np.all(by[:new] == 0) and np.all(by[new:] == 1)  # as many replayed as new examples
        assert np.all(bx[new:] >= 100)
        seen += list(bx[:new, 0])
    assert sorted(seen) == list(range(10))  # every new example once per epoch
    again = sequence.ReplayBatches(x, y, memory, batch_size=4, seed=0)
    np.testing.assert_array_equal(again[0][0], batches[0][0])
    first = batches[0][0].copy()
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][0], first)  # reshuffled and redrawn each epoch


def test_joint_batches_visit_every_task_example_once_with_its_own_permutation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 2)).astype(np.float32)
    y = np.arange(6, dtype=np.int32)
    orders = data.pixel_permutations(3, 4, seed=1)
    batches = sequence.JointBatches(x, y, orders, batch_size=5, seed=0)
    assert len(batches) == 4
    got = [(bx[i], by[i]) for k in range(len(batches)) for bx, by in [batches[k]] for i in range(len(by))]
    assert len(got) == 18
    expected = {(t, r): data.permute_pixels(x[r:r + 1], orders[t])[0] for t in range(3) for r in range(6)}
    for image, label in got:
        matches = [t for t in range(3) if np.array_equal(image, expected[(t, int(label))])]
        assert matches, "an example not permuted by any task's order"
    assert len({(tuple(img.ravel()), int(lab)) for img, lab in got}) == 18


@pytest.fixture(scope="module")
def small_tasks():
    from cllab.runtime import set_precision

    before = keras.config.floatx()
    set_precision("float64")  # Keras' float type and dtype policy, whatever an earlier test left
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    def split(n, seed):
        r = np.random.default_rng(seed)
        labels = r.integers(0, 3, size=n).astype(np.int32)
        return (centers[labels] + 0.3 * r.normal(size=(n, 16))).reshape(n, 4, 4).astype(np.float32), labels
    arrays = {}
    for name, n, seed in (("train", 240, 1), ("val", 60, 2), ("test", 90, 3)):
        arrays[f"x_{name}"], arrays[f"y_{name}"] = split(n, seed)
    yield sequence.PermutedTasks(arrays, data.pixel_permutations(3, 16, seed=0))
    set_precision(before)  # later modules build their layers in the precision they found


def _settings(strength: float, options=None, epochs: int = 2) -> sequence.RunSettings:
    importance = {"fisher": {"kind": "exact", "num_examples": "all", "batch_size": 64}, "si": {"xi": 0.1},
                  "mas": {"num_examples": "all", "batch_size": 64}}
    return sequence.RunSettings(
        config=model.ModelConfig(hidden_units=8, hidden_layers=2, dropout=0.0, num_classes=3, input_shape=(4, 4)),
        epochs=epochs, batch_size=32, optimizer="sgd", learning_rate=0.1, importance=importance, strength=strength,
        options=options or {}, curve_tasks=2, seed=0)


def test_evaluation_images_are_permuted_once_per_run_and_training_images_when_asked_for(small_tasks):
    for split in ("train", "val", "test"):
        x, y = small_tasks.split(2, split)
        np.testing.assert_array_equal(x, data.permute_pixels(small_tasks.arrays[f"x_{split}"], small_tasks.orders[2]))
        assert y is small_tasks.arrays[f"y_{split}"]
        assert (small_tasks.split(2, split)[0] is x) == (split != "train")  # val and test kept, train made anew
    assert not np.array_equal(small_tasks.split(1, "test")[0], small_tasks.split(2, "test")[0])


def test_an_accuracy_row_takes_the_values_already_known_and_measures_the_rest(small_tasks):
    keras.utils.set_random_seed(0)
    net = model.build_model(_settings(0.0).config)
    full = sequence.accuracy_row(net, small_tasks, "test")
    assert len(full) == 3 and sequence.accuracy_row(net, small_tasks, "val", upto=2) == [
        model.accuracy(net, *small_tasks.split(t, "val")) for t in range(2)]
    assert sequence.accuracy_row(net, small_tasks, "test", known=[-1.0]) == [-1.0, *full[1:]]


def test_a_run_records_every_row_of_r_and_the_variants_of_ewc_share_tasks_1_and_2(small_tasks):
    runs = {name: sequence.run_method(name, small_tasks, _settings(1.0, {"gamma": 0.5} if "online" in name else {}),
                                      log=lambda _: None)
            for name in ("ewc", "ewc_online", "ewc_latest")}
    ewc = runs["ewc"]
    assert np.array(ewc["R"]["test"]).shape == (3, 3)
    assert [len(row) for row in ewc["R"]["val"]] == [1, 2, 3]  # validation: the tasks seen so far
    assert len(ewc["initial"]["test"]) == 3 and ewc["max_importance"][0] == 0.0 < ewc["max_importance"][1]
    assert [r["task"] for r in ewc["curve"]] == [1, 1, 1, 2, 2, 3, 3] and set(ewc["curve"][0]) >= {"acc_1", "acc_2"}
    for t in range(3):  # R's first entries are the curve's last point of each task: the same model, measured once
        last = [r for r in ewc["curve"] if r["task"] == t + 1][-1]
        assert ewc["R"]["test"][t][:2] == [last["acc_1"], last["acc_2"]]
    for name in ("ewc_online", "ewc_latest"):  # one past task: every carry is EWC itself, bit for bit
        assert runs[name]["R"]["test"][:2] == ewc["R"]["test"][:2]
        assert runs[name]["R"]["test"][2] != ewc["R"]["test"][2]
    again = sequence.run_method("ewc", small_tasks, _settings(1.0), log=lambda _: None)
    assert again == ewc  # seeded inside: the same run whatever ran before in the process


def test_l2_towards_the_latest_weights_only_is_l2_until_task_2_and_then_pulls_with_unit_strength(small_tasks):
    """`l2_latest` (carry 'latest', Ω = 1) and `l2` (carry 'sum') are the same penalty with one past task; from
    task 3 on, l2 pulls with strength 2 towards the mean of θ_1 and θ_2, l2_latest with strength 1 towards θ_2."""
    runs = {name: sequence.run_method(name, small_tasks, _settings(1.0), log=lambda _: None)
            for name in ("l2", "l2_latest")}
    assert runs["l2_latest"]["R"]["test"][:2] == runs["l2"]["R"]["test"][:2]
    assert runs["l2_latest"]["R"]["test"][2] != runs["l2"]["R"]["test"][2]
    assert runs["l2"]["max_importance"] == [0.0, 1.0, 2.0] and runs["l2_latest"]["max_importance"] == [0.0, 1.0, 1.0]


def test_a_validation_only_run_scores_no_test_image_and_gives_the_same_validation_rows(small_tasks, monkeypatch):
    """What the λ selection runs (test=False): the same training and validation rows as a full run, bit for bit, and
    not one test image scored, so nothing of the test set reaches the person choosing."""
    full = sequence.run_method("si", small_tasks, _settings(1.0), log=lambda _: None)  # test rows and 2 test curves
    asked = []
    split = sequence.PermutedTasks.split
    monkeypatch.setattr(sequence.PermutedTasks, "split",
                        lambda self, t, name: asked.append(name) or split(self, t, name))
    lines = []
    val_only = sequence.run_method("si", small_tasks, dataclasses.replace(_settings(1.0), curve_tasks=0, test=False),
                                   log=lines.append)
    assert "test" not in asked and {"train", "val"} <= set(asked)
    assert val_only["R"] == {"val": full["R"]["val"]} and "test" not in val_only["initial"]
    assert val_only["max_importance"] == full["max_importance"]
    assert "val average so far" in lines[-1] and "test" not in " ".join(lines)
    with pytest.raises(ValueError, match="curve_tasks=2 records test accuracies, but test=False"):
        sequence.run_method("si", small_tasks, dataclasses.replace(_settings(1.0), test=False))


def test_a_run_builds_a_model_for_the_first_task_and_the_first_penalised_one_and_then_reuses_it(small_tasks,
                                                                                                 monkeypatch):
    """Each model built is traced anew (~2 s per task at the default size); reset and re-anchored, one model
    trains every task after the first penalised one (replay's too: its batches no longer depend on a build)."""
    built = []
    build = model.build_model
    monkeypatch.setattr(model, "build_model", lambda *args, **kwargs: built.append(kwargs.get("penalty")) or build(
        *args, **kwargs))
    runs = (("ewc", _settings(1.0, epochs=1), [None, "penalty"]), ("none", _settings(0.0, epochs=1), [None]),
            ("replay", _settings(0.0, {"per_task": 20}, epochs=1), [None]))
    for name, settings, expected in runs:
        built.clear()
        sequence.run_method(name, small_tasks, settings, log=lambda _: None)
        assert [None if p is None else "penalty" for p in built] == [None, *expected], name  # [0]: the initial model


def test_a_task_after_the_first_penalised_one_traces_no_new_step(small_tasks, monkeypatch):
    """The penalty's Python code runs only when a step that uses it is traced: a third task, on the reused model,
    must add no call (with a model per task it would trace the training and validation steps again)."""
    calls = []
    penalty_call = regularizers.QuadraticPenalty.__call__
    monkeypatch.setattr(regularizers.QuadraticPenalty, "__call__",
                        lambda self, weights: calls.append(1) or penalty_call(self, weights))
    counts = {}
    for count in (2, 3):
        calls.clear()
        tasks = sequence.PermutedTasks(small_tasks.arrays, small_tasks.orders[:count])
        sequence.run_method("ewc", tasks, _settings(1.0, epochs=1), log=lambda _: None)
        counts[count] = len(calls)
    assert counts[2] > 0 and counts[3] == counts[2]


def test_a_penalty_holds_the_first_task_better_than_fine_tuning(small_tasks):
    tuned = sequence.run_method("none", small_tasks, _settings(0.0, epochs=3), log=lambda _: None)
    held = sequence.run_method("ewc", small_tasks, _settings(3.0, epochs=3), log=lambda _: None)
    assert held["R"]["test"][2][0] > tuned["R"]["test"][2][0]


def test_replay_and_joint_runs(small_tasks, monkeypatch):
    memories = []

    class Spy(sequence.ReplayBatches):
        def __init__(self, x, y, memory, batch_size, seed):
            memories.append((len(x), len(memory[0]), batch_size, seed))
            super().__init__(x, y, memory, batch_size, seed)

    monkeypatch.setattr(sequence, "ReplayBatches", Spy)
    seed_1 = dataclasses.replace(_settings(0.0, {"per_task": 20}), seed=1)
    replay = sequence.run_method("replay", small_tasks, seed_1, log=lambda _: None)
    assert np.array(replay["R"]["test"]).shape == (3, 3) and replay["max_importance"] == [0.0, 0.0, 0.0]
    # task 1 alone; tasks 2 and 3 mixed with 20 stored examples of each past task, drawn with seed·1000 + task
    assert memories == [(240, 20, 32, 1001), (240, 40, 32, 1002)]
    joint = sequence.run_joint(small_tasks, _settings(0.0, epochs=3), log=lambda _: None)
    assert len(joint["test"]) == 3 and min(joint["test"]) > 0.6


def test_replay_and_joint_batches_do_not_hang_on_pythons_global_random(small_tasks):
    """They draw their own seeded order; Keras' shuffle would re-order their batches with Python's `random`, from
    which Keras also takes a new model's initializer seeds. So a run builds the same weights whatever drew from it."""
    import random

    x, y = small_tasks.split(1, "train")
    settings = _settings(0.0)
    trained = []
    for state in (1, 2):
        keras.utils.set_random_seed(0)
        net = model.build_model(settings.config)
        model.compile_model(net, "sgd", 0.1)
        random.seed(state)  # e.g. another model built in between
        batches = (sequence.ReplayBatches(x, y, (x[:20], y[:20]), 32, seed=1),
                   sequence.JointBatches(small_tasks.arrays["x_train"], small_tasks.arrays["y_train"],
                                         small_tasks.orders, 32, seed=1))
        for inputs in batches:
            training.fit(net, inputs, None, epochs=2, batch_size=32, verbose=0)
        trained.append(model.get_weights(net))
    for name in trained[0]:
        np.testing.assert_array_equal(trained[0][name], trained[1][name], err_msg=name)


@pytest.fixture
def good(root) -> dict:
    return seqparams.load(root / "params.yaml")


@pytest.mark.parametrize("key,value,message", [
    ("methods", ["ewc", "rwalk"], "sequence.methods item 1 is 'rwalk', expected one of none, l2"),
    ("num_tasks", 1, "sequence.num_tasks must be an integer >= 2, got 1"),
    ("curve_tasks", 11, "sequence.curve_tasks must be <= sequence.num_tasks (10), got 11"),
    ("model.hidden_layers", 0, "sequence.model.hidden_layers must be an integer >= 1, got 0"),
    ("method.ewc_decay.gamma", 1.5, "sequence.method.ewc_decay.gamma must be a number in [0, 1], got 1.5"),
    ("method.replay.per_task", 0, "sequence.method.replay.per_task must be an integer >= 1, got 0"),
    ("method.replay.lambda", 1, "sequence.method.replay.lambda must be 0 (replay has no penalty), got 1"),
    ("method.lwf", {"lambda": 1}, "unknown key sequence.method.lwf"),
])
def test_bad_sequence_params_get_one_line_naming_the_key(good, key, value, message):
    config = copy.deepcopy(good)
    node = config["sequence"]
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value
    with pytest.raises(params.ParamsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        seqparams.validate(config)


def test_overrides_replace_only_the_keys_they_name(root, tmp_path):
    """A named configuration (sequence/paper/params.yaml) changes the keys it sets; the rest stay params.yaml's."""
    base = seqparams.load(root / "params.yaml")
    overrides = tmp_path / "over.yaml"
    overrides.write_text("sequence:\n  methods: [none, ewc]\n  model: {hidden_units: 7}\n"
                         "  method: {ewc: {lambda: 5}}\n")
    got = seqparams.load(root / "params.yaml", overrides)
    seq, want = got["sequence"], copy.deepcopy(base["sequence"])
    want["methods"], want["model"]["hidden_units"], want["method"]["ewc"]["lambda"] = ["none", "ewc"], 7, 5
    assert seq == want  # hidden_layers, dropout, ewc's other options and every other key kept
    assert {k: v for k, v in got.items() if k != "sequence"} == {k: v for k, v in base.items() if k != "sequence"}
    paper = seqparams.load(root / "params.yaml", root / "sequence" / "paper" / "params.yaml")["sequence"]
    assert paper["model"]["hidden_units"] == 1000 and paper["num_tasks"] == base["sequence"]["num_tasks"]


@pytest.mark.parametrize("text,message", [
    ("sequence:\n  model: {hiden_units: 7}\n", "over.yaml: sequence.model.hiden_units is not a key of "),
    ("sequence:\n  model: {hidden_units: 0}\n",
     "sequence.model.hidden_units must be an integer >= 1, got 0 (with the overrides of "),
    ("sequence: [1, 2\n", "over.yaml: not valid YAML at line 2"),
    ("- 1\n", "over.yaml: must be a mapping of params.yaml keys, got [1]"),
])
def test_bad_overrides_get_one_line_naming_the_file_and_key(root, tmp_path, text, message):
    overrides = tmp_path / "over.yaml"
    overrides.write_text(text)
    with pytest.raises(params.ParamsError, match=message.replace("(", r"\(").replace("[", r"\[").replace("]", r"\]")):
        seqparams.load(root / "params.yaml", overrides)
    with pytest.raises(params.ParamsError, match="missing.yaml: not found"):
        seqparams.load(root / "params.yaml", tmp_path / "missing.yaml")


def test_a_method_not_run_needs_no_settings_and_the_two_task_check_ignores_the_section(good):
    config = copy.deepcopy(good)
    config["sequence"]["methods"] = ["none", "ewc"]
    del config["sequence"]["method"]["replay"]
    seqparams.validate(config)
    config["sequence"]["methods"] = ["none", "replay"]
    with pytest.raises(params.ParamsError, match="missing key sequence.method.replay"):
        seqparams.validate(config)
    config["sequence"] = {"anything": 1}
    params.validate(config)  # the two-task stages do not read it


def test_the_penalty_a_run_builds_from_its_carry_has_the_gradient_of_the_sum_over_tasks():
    """What run_method trains with, penalty_for(λ, *carry.quadratic()), after 5 tasks: one tensor per weight, and the
    gradient of Σ_t λ/2·Ω_t(θ − θ_t)²; the `latest` carry's is another (only the last task's term)."""
    keras.config.set_floatx("float64")  # restored by conftest's fixture
    gradients = {}
    theta = _weights(9)
    for kind in ("sum", "latest"):
        carry = sequence.Carry(kind)
        for t in range(5):
            carry.add(_weights(t), _omega(t))
        penalty = regularizers.penalty_for(2.0, *carry.quadratic())
        assert len(penalty.anchor) == 2 and penalty.names == list(theta)
        weights = [tf.Variable(theta[k]) for k in penalty.names]
        with tf.GradientTape() as tape:
            value = penalty(weights)
        gradients[kind] = dict(zip(penalty.names, (g.numpy() for g in tape.gradient(value, weights))))
    for k in theta:
        naive = sum(2.0 * _omega(t)[k] * (theta[k] - _weights(t)[k]) for t in range(5))
        np.testing.assert_allclose(gradients["sum"][k], naive, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gradients["latest"][k], 2.0 * _omega(4)[k] * (theta[k] - _weights(4)[k]),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("flags,message", [
    (["--epochs", "0"], "sequence.train.epochs must be an integer >= 1, got 0 (with --epochs 0)"),
    (["--grid", "rwalk=1"], "--grid method 'rwalk' is not one of none, l2"),
    (["--tasks", "11"], "--tasks must be between 2 and sequence.num_tasks (10), got 11"),
    (["--overrides", "sequence/nope.yaml"], "sequence/nope.yaml: not found"),
])
def test_the_selection_script_stops_on_a_bad_override_before_any_training(root, flags, message):
    from conftest import run_script

    grid = [] if "--grid" in flags else ["--grid", "none=0"]
    done = run_script(root, "scripts.select_sequence", *grid, *flags)
    assert done.returncode != 0 and done.stdout == ""
    assert message in done.stderr.strip().splitlines()[-1]
