"""Benchmark of the permuted-MNIST sequence at params.yaml's `sequence` settings: what training task 10 with a
penalty costs against plain training (one collapsed quadratic vs one quadratic per past task), an epoch against the
CPU's matmul floor, and where a run's time goes. Prints tables; asserts nothing.

    python -m bench.sequence            # ~4 min on 2 cores
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.run import gemm_gflops, table  # noqa: E402


def main() -> None:
    start = time.perf_counter()
    from cllab import cli, seqparams

    params = seqparams.load()
    seq = params["sequence"]
    cli.start(params, 0)
    import keras
    import numpy as np
    import tensorflow as tf

    from cllab import data, importance, methods, model, regularizers, sequence

    imported = time.perf_counter()
    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    arrays = data.split_digits(mnist, seq["val_fraction"], seq["val_seed"])
    tasks = sequence.PermutedTasks(arrays, data.pixel_permutations(seq["num_tasks"], 28 * 28, 0))
    loaded = time.perf_counter()
    config = model.ModelConfig(**seq["model"], num_classes=10)
    train = seq["train"]
    x, y = tasks.split(seq["num_tasks"] - 1, "train")
    past = seq["num_tasks"] - 1
    net = model.build_model(config)
    theta = model.get_weights(net)
    rng = np.random.default_rng(0)
    anchors = [{k: v + 0.01 * rng.normal(size=v.shape) for k, v in theta.items()} for _ in range(past)]
    omegas = [{k: rng.uniform(0, 0.03, size=v.shape) for k, v in theta.items()} for _ in range(past)]

    class SumOfPenalties:
        """One QuadraticPenalty per past task, added up each step: the naive form of Kirkpatrick's penalty."""

        def __init__(self):
            self.parts = [regularizers.penalty_for(10.0, a, o) for a, o in zip(anchors, omegas)]

        def __call__(self, weights):
            return tf.add_n([p(weights) for p in self.parts])

    carry = sequence.Carry("sum")
    for a, o in zip(anchors, omegas):
        carry.add(a, o)
    cases = {
        "plain fit (fine-tuning)": None,
        f"EWC, {past} past tasks collapsed into one quadratic (what runs)": regularizers.penalty_for(10.0, *carry.quadratic()),
        f"EWC, {past} quadratics summed each step (naive)": SumOfPenalties(),
    }
    nets = {}
    for label, penalty in cases.items():
        keras.utils.set_random_seed(0)
        nets[label] = model.compile_model(model.build_model(config, penalty=penalty), train["optimizer"]["name"],
                                          train["optimizer"]["learning_rate"])
    times = {label: [] for label in nets}
    for _ in range(3):  # the cases take turns, one epoch each, so that the machine's load hits them alike
        for label, net in nets.items():
            t = time.perf_counter()
            net.fit(x, y, batch_size=train["batch_size"], epochs=1, verbose=0)
            times[label].append(time.perf_counter() - t)
    plain = min(times["plain fit (fine-tuning)"][1:])
    table(f"Training task {seq['num_tasks']} ({len(y):,} examples, batch {train['batch_size']}, "
          f"{config.hidden_layers}×{config.hidden_units}, {keras.config.floatx()}): best epoch of 2 after a warm-up",
          ["case", "epoch (s)", "examples/s", "throughput vs plain"],
          [[label, min(t[1:]), len(y) / min(t[1:]), plain / min(t[1:])] for label, t in times.items()])

    gemm = max(gemm_gflops(dtype=keras.config.floatx()).values())
    h, layers = config.hidden_units, config.hidden_layers
    weights = 784 * h + (layers - 1) * h * h + h * 10
    flops = 3 * 2 * weights * len(y)
    table("One epoch against the machine's matmul floor", ["epoch FLOPs", "best GEMM GFLOP/s", "floor (s)",
                                                          "measured plain epoch (s)", "measured / floor"],
          [[flops, gemm, flops / gemm / 1e9, plain, plain / (flops / gemm / 1e9)]])

    net = nets["plain fit (fine-tuning)"]
    t = time.perf_counter()
    fisher = importance.omega_fisher(importance.Source(net, x, y, seed=0),
                                     methods.settings_for("ewc", seq["importance"]))
    t_fisher = time.perf_counter() - t
    t = time.perf_counter()
    sequence.accuracy_row(net, tasks, "test")
    sequence.accuracy_row(net, tasks, "val", upto=seq["num_tasks"])
    t_rows = time.perf_counter() - t
    t = time.perf_counter()
    for j in range(seq["curve_tasks"]):
        model.accuracy(net, *tasks.split(j, "test"))
    t_curve = time.perf_counter() - t
    epochs, n_tasks = train["epochs"], seq["num_tasks"]
    ewc_epoch = min(times[list(times)[1]][1:])
    start_up = (imported - start) + (loaded - imported)
    per_task = epochs * ewc_epoch + t_fisher + t_rows + epochs * t_curve
    table("Where a run's time goes (one EWC run, one seed)", ["part", "seconds", "per run of all tasks"], [
        ["import TensorFlow + validate params", imported - start, imported - start],
        ["load MNIST (TFDS, prepared copy)", loaded - imported, loaded - imported],
        [f"training: {epochs} epochs per task (EWC's rate)", epochs * ewc_epoch, n_tasks * epochs * ewc_epoch],
        [f"Fisher on {seq['importance']['fisher']['num_examples']} examples per task", t_fisher, n_tasks * t_fisher],
        ["R row: test on every task, validation on the tasks seen (at most)", t_rows, n_tasks * t_rows],
        [f"Fig. 2A points: test on {seq['curve_tasks']} tasks after each epoch", epochs * t_curve,
         n_tasks * epochs * t_curve],
    ])
    runs = len(seq["methods"]) + 1
    print(f"\nestimate: a run {start_up + n_tasks * per_task:.0f} s, ~{runs * (start_up + n_tasks * per_task) / 60:.0f} "
          f"min per seed for {runs} runs (sequence.methods and joint, all at EWC's rate: an upper bound); "
          f"benchmark took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
