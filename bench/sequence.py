"""Benchmark of the permuted-MNIST sequence at params.yaml's `sequence` settings: what training task 10 with a
penalty costs against plain training (one collapsed quadratic vs one quadratic per past task), an epoch against the
CPU's matmul floor, and where a run's time goes. Prints tables; asserts nothing.

    python -m bench.sequence            # ~3 min on a quiet 2-core machine (12 rounds), more beside another job
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.run import gemm_gflops, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark of the permuted-MNIST sequence (prints tables).")
    parser.add_argument("--rounds", type=int, default=12, help="epochs per case, the first a warm-up (at least 2)")
    rounds = parser.parse_args().rounds
    if rounds < 2:
        raise SystemExit(f"error: --rounds must be at least 2 (one warm-up epoch and one measured), got {rounds}")
    start = time.perf_counter()
    from cllab import cli, seqparams

    params = seqparams.load()
    seq = params["sequence"]
    cli.start(params, 0)
    import keras

    from cllab import data, importance, methods, model, sequence, training

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
    cases = task_cases(theta, past, strength=10.0, seed=0)
    nets = {}
    for label, penalty in cases.items():
        keras.utils.set_random_seed(0)
        nets[label] = model.compile_model(model.build_model(config, penalty=penalty), train["optimizer"]["name"],
                                          train["optimizer"]["learning_rate"])
    times = {label: [] for label in nets}
    for _ in range(rounds):  # the cases take turns, one epoch each, so that the machine's load hits them alike
        for label, net in nets.items():
            t = time.perf_counter()
            training.fit(net, x, y, epochs=1, batch_size=train["batch_size"], verbose=0)  # as the runs call fit
            times[label].append(time.perf_counter() - t)
    plain_times = times["plain fit (fine-tuning)"][1:]
    plain = min(plain_times)
    table(f"Training task {seq['num_tasks']} ({len(y):,} examples, batch {train['batch_size']}, "
          f"{config.hidden_layers}×{config.hidden_units}, {keras.config.floatx()}): {rounds - 1} rounds after a "
          f"warm-up, the cases' epochs in turn", ["case", "best epoch (s)", "examples/s", "throughput vs plain (best "
                                                   "epochs)", "median of the rounds' ratios", "their middle half"],
          [[label, min(t[1:]), len(y) / min(t[1:]), plain / min(t[1:]), *ratio_quartiles(plain_times, t[1:])]
           for label, t in times.items()])

    gemm = max(gemm_gflops(dtype=keras.config.floatx()).values())
    h, layers = config.hidden_units, config.hidden_layers
    weights = 784 * h + (layers - 1) * h * h + h * 10
    epoch_flops = 3 * 2 * weights * len(y)
    epoch_floor = epoch_flops / gemm / 1e9
    table("One epoch against the machine's matmul floor", ["epoch FLOPs", "best GEMM GFLOP/s", "floor (s)",
                                                          "measured plain epoch (s)", "measured / floor"],
          [[epoch_flops, gemm, epoch_floor, plain, plain / epoch_floor]])

    net = nets["plain fit (fine-tuning)"]
    t = time.perf_counter()
    importance.omega_fisher(importance.Source(net, x, y, seed=0),  # timed only
                            methods.settings_for("ewc", seq["importance"]))
    t_fisher = time.perf_counter() - t
    for j in range(seq["num_tasks"]):  # a run permutes each task's validation and test images once, then keeps them
        for split in ("val", "test"):
            tasks.split(j, split)
    t = time.perf_counter()
    measured = [model.accuracy(net, *tasks.split(j, "test")) for j in range(seq["curve_tasks"])]
    t_curve = time.perf_counter() - t
    t = time.perf_counter()
    sequence.accuracy_row(net, tasks, "test", known=measured)  # as in a run: the curve's last point gives the first
    sequence.accuracy_row(net, tasks, "val", upto=seq["num_tasks"])
    t_rows = time.perf_counter() - t
    epochs, n_tasks = train["epochs"], seq["num_tasks"]
    ewc_epoch = min(times[list(times)[1]][1:])
    start_up = (imported - start) + (loaded - imported)
    per_task = epochs * ewc_epoch + t_fisher + t_rows + epochs * t_curve
    table("Where a run's time goes (one EWC run, one seed)", ["part", "seconds", "per run of all tasks"], [
        ["import TensorFlow + validate params", imported - start, imported - start],
        ["load MNIST (TFDS, prepared copy)", loaded - imported, loaded - imported],
        [f"training: {epochs} epochs per task (EWC's rate)", epochs * ewc_epoch, n_tasks * epochs * ewc_epoch],
        [f"Fisher on {seq['importance']['fisher']['num_examples']} examples per task", t_fisher, n_tasks * t_fisher],
        ["R row: test on the tasks after the curve's, validation on the tasks seen (at most)", t_rows, n_tasks * t_rows],
        [f"Fig. 2A points: test on {seq['curve_tasks']} tasks after each epoch", epochs * t_curve,
         n_tasks * epochs * t_curve],
    ])
    runs = len(seq["methods"]) + 1
    print(f"\nestimate: a run {start_up + n_tasks * per_task:.0f} s, ~{runs * (start_up + n_tasks * per_task) / 60:.0f} "
          f"min per seed for {runs} runs (sequence.methods and joint, all at EWC's best epoch: a real seed takes "
          "longer, as its epochs vary around the best, replay's batches are doubled and each fit has its set-up)")

    rows = seed_matmul_work(seq, weights, {s: len(arrays[f"y_{s}"]) for s in ("train", "val", "test")})
    total = sum(flops for _, flops in rows)
    table(f"A seed's matmul work (one seed of every method and the joint model) against the floor of {gemm:.0f} "
          f"GFLOP/s", ["part", "TFLOP", "floor (min)"],
          [[part, flops / 1e12, flops / gemm / 1e9 / 60] for part, flops in rows + [("total", total)]])
    print(f"\nthe 20-minute target is {20 * 60 * gemm * 1e9 / total:.2f}× this floor; the plain epoch above runs at "
          f"{plain / epoch_floor:.2f}× it. Not counted: the Fisher and MAS passes (timed above), start-up, "
          f"SI's path integral and the penalty's element-wise work. Benchmark took {time.perf_counter() - start:.0f} s")


def ratio_quartiles(plain: list[float], case: list[float]) -> tuple[float, str]:
    """The median of the rounds' plain/case time ratios, and their 25th-75th percentiles as text: on a shared host
    whose load comes and goes, one round's pair is taken under the same load, the best epochs need not be."""
    import numpy as np

    ratios = np.array(plain) / np.array(case)
    low, median, high = np.percentile(ratios, [25, 50, 75])
    return float(median), f"{low:.3f}-{high:.3f}"


class SumOfPenalties:
    """One QuadraticPenalty per past task, added up each step: the naive form of Kirkpatrick's penalty."""

    def __init__(self, parts: list) -> None:
        self.parts = parts
        self.names, self.shapes = parts[0].names, parts[0].shapes  # what a model checks (cllab.model.Penalty)

    def __call__(self, weights):
        import tensorflow as tf

        return tf.add_n([p(weights) for p in self.parts])


def task_cases(theta: dict, past: int, strength: float, seed: int) -> dict:
    """The three ways to train the task after `past` tasks, by label: no penalty, the past tasks' quadratics collapsed
    into one (what the runs use), and one quadratic per past task summed each step. The past anchors lie near θ and
    their importances are random in [0, 0.03) (Fisher-like sizes), seeded."""
    import numpy as np

    from cllab import regularizers, sequence

    rng = np.random.default_rng(seed)
    anchors = [{k: v + 0.01 * rng.normal(size=v.shape) for k, v in theta.items()} for _ in range(past)]
    omegas = [{k: rng.uniform(0, 0.03, size=v.shape) for k, v in theta.items()} for _ in range(past)]
    carry = sequence.Carry("sum")
    for a, o in zip(anchors, omegas):
        carry.add(a, o)
    return {
        "plain fit (fine-tuning)": None,
        f"EWC, {past} past tasks collapsed into one quadratic (what runs)":
            regularizers.penalty_for(strength, *carry.quadratic()),
        f"EWC, {past} quadratics summed each step (naive)":
            SumOfPenalties([regularizers.penalty_for(strength, a, o) for a, o in zip(anchors, omegas)]),
    }


def seed_matmul_work(seq: dict, weights: int, sizes: dict[str, int]) -> list[tuple[str, float]]:
    """FLOPs of the dense layers' matmuls in one seed of the experiment: 2 per weight and example forward, 6 with the
    backward pass; replay's batches hold as many replayed examples as new ones from task 2 on."""
    from cllab import methods

    tasks, epochs, curve = seq["num_tasks"], seq["train"]["epochs"], seq["curve_tasks"]
    names = seq["methods"]
    replaying = sum(methods.get(n).replay for n in names)
    train_examples = tasks * epochs * sizes["train"] * len(names) + (tasks - 1) * epochs * sizes["train"] * replaying
    forward = (
        tasks * sizes["test"]  # the initial model's row (FWT)
        + tasks * (tasks - curve) * sizes["test"]  # R on test after every task (the curve's last point: the first)
        + sum(t + 1 for t in range(tasks)) * sizes["val"]  # R on validation: the tasks seen
        + tasks * epochs * sizes["val"]  # fit's validation
        + (tasks * epochs + 1) * curve * sizes["test"]  # the Fig. 2A points (and the initial model's)
    ) * len(names)
    joint_forward = epochs * tasks * sizes["val"] + tasks * (sizes["val"] + sizes["test"])
    return [
        (f"training {len(names)} methods ({tasks} tasks × {epochs} epochs; replay's doubled batches)",
         6 * weights * train_examples),
        (f"evaluating them (R rows, validation each epoch, Fig. 2A points on {curve} tasks)", 2 * weights * forward),
        (f"joint model ({epochs} epochs over all {tasks} tasks, its evaluation)",
         6 * weights * epochs * tasks * sizes["train"] + 2 * weights * joint_forward),
    ]


if __name__ == "__main__":
    main()
