"""The benchmarks' own cases stay runnable models, and what they compare is equal work: `bench/` asserts nothing and
runs only by hand, so a change elsewhere (e.g. what a model asks of its penalty) could break it unnoticed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bench.precision import fingerprint, measure
from bench.sequence import ratio_quartiles, task_cases
from cllab import model, training
from cllab.runtime import set_precision


def test_the_sequence_bench_cases_train_and_the_collapsed_penalty_steps_as_the_naive_sum():
    """Each of bench.sequence's cases builds, compiles and fits; the collapsed quadratic and the per-task sum take the
    same steps (equal gradients), and both differ from the plain fit's (the penalty does something)."""
    set_precision("float64")  # as the runs; conftest restores the float type after the test
    config = model.ModelConfig(hidden_units=8, hidden_layers=2, dropout=0.0, num_classes=10)
    keras.utils.set_random_seed(0)
    theta = model.get_weights(model.build_model(config))
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 28, 28)), rng.integers(0, 10, 256)
    weights = {}
    cases = task_cases(theta, past=3, strength=1000.0, seed=0)
    assert len(cases) == 3 and list(cases.values())[0] is None
    for label, penalty in cases.items():
        keras.utils.set_random_seed(0)
        net = model.compile_model(model.build_model(config, penalty=penalty), "sgd", 0.1)
        model.set_weights(net, theta)
        training.fit(net, x, y, epochs=1, batch_size=64, verbose=0)
        weights[label] = model.get_weights(net)
    plain, collapsed, naive = weights.values()
    for name in theta:
        np.testing.assert_allclose(collapsed[name], naive[name], rtol=1e-9, atol=1e-12)
    assert any(not np.allclose(plain[n], collapsed[n]) for n in theta)


def test_the_bench_ratio_is_taken_round_by_round():
    """A slow round slows both cases of that round: the median of the per-round ratios stays 0.9 where the ratio of
    best epochs (1.0 / 1.0) would say 1."""
    plain, case = [1.0, 2.0, 2.0, 1.2, 2.4], [1.0 / 0.9, 2.0 / 0.9, 1.0, 1.2 / 0.9, 2.4 / 0.9]
    median, middle = ratio_quartiles(plain, case)
    assert median == pytest.approx(0.9) and middle == "0.900-0.900"


def test_the_precision_bench_trains_its_model_and_fingerprints_the_weights_deterministically():
    """bench.precision's measurement on a tiny model: the same run twice gives the same fingerprint, in float64 and
    in float32, and the fingerprint changes with any weight's last bit."""
    rng = np.random.default_rng(0)
    x, y = rng.random((256, 28, 28)), rng.integers(0, 10, 256)
    set_precision("float64")  # conftest restores the float type after the test
    first, again = measure(x, y, epochs=2, units=8), measure(x, y, epochs=2, units=8)
    assert len(first["seconds"]) == 2 and len(first["fingerprint"]) == 64
    assert first["fingerprint"] == again["fingerprint"]
    set_precision("float32")
    single = measure(x.astype(np.float32), y, epochs=2, units=8)
    assert single["fingerprint"] == measure(x.astype(np.float32), y, epochs=2, units=8)["fingerprint"]
    weights = {"w": np.array([1.0, 2.0])}
    nudged = {"w": np.nextafter(weights["w"], 3.0)}
    assert fingerprint(weights) != fingerprint(nudged)


def test_the_scenarios_bench_times_every_kind_of_step_and_counts_the_floor_s_flops():
    """bench.scenarios' measurement on a tiny model: every kind of step it times trains (a finite time per round),
    the step's matmuls are timed alone in both libraries, and the FLOP count of a step is 6·B·P."""
    from bench.scenarios import KINDS, measure, step_flops, step_matmul_seconds
    from cllab import model
    from cllab.scenarios import ClassBalancedMemory

    set_precision("float64")  # conftest restores the float type after the test
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28)), rng.choice([2, 3], 64).astype(np.int32)
    memory = ClassBalancedMemory(0, per_class=4)
    memory.add(rng.random((16, 28, 28)), rng.choice([0, 1], 16).astype(np.int32))
    config = model.ModelConfig(hidden_units=8, hidden_layers=1, dropout=0.0, num_classes=10)
    settings = {"optimizer": "adam", "learning_rate": 0.001, "batch_size": 16, "lambda": 1.0}
    for _, method, _ in KINDS:
        times = measure(method, config, x, y, memory.arrays(), steps=3, rounds=2, settings=settings)
        assert len(times) == 2 and all(0 < t < 60 for t in times), method
    matmuls = step_matmul_seconds(config, 16, "float64", repeats=2)
    assert set(matmuls) == {"numpy", "tensorflow"} and all(0 < t < 60 for t in matmuls.values())
    big = model.ModelConfig(hidden_units=400, hidden_layers=2, dropout=0.0, num_classes=10)
    assert step_flops(big, 128) == 6 * 128 * (784 * 400 + 400 * 400 + 400 * 10)  # 365 MFLOP


def test_the_cluster_bench_projects_a_study_by_amdahls_law():
    """bench.cluster's projection: the serial part once, then ⌈experiments / machines⌉ rounds of one experiment each;
    the speed-up is against the same experiments run one after another."""
    from bench.cluster import amdahl, projection

    assert amdahl(10, 60, 100, 1) == 10 + 100 * 60
    assert amdahl(10, 60, 100, 8) == 10 + 13 * 60  # 13 rounds: the last one 4 experiments on 8 machines
    (one, many) = projection(10, 60, 50, 100, machines=(1, 100))
    assert one[0] == 1 and one[1] == pytest.approx(6010 / 60) and one[2] == pytest.approx(5000 / 6010)
    assert many[2] == pytest.approx(5000 / 70)


def test_the_cluster_bench_starts():
    """It imports without the [cluster] extra (Dask is imported only when a study runs) and explains itself."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([sys.executable, "-m", "bench.cluster", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0 and "Amdahl" in result.stdout and "--study" in result.stdout
