"""Benchmark of the three scenarios at params.yaml's `scenarios` settings: what a training step of each kind of method
costs (plain, a penalty, SI's path integral, LwF's teacher, replay's and A-GEM's memory batch), against the step's
matmuls timed alone in TensorFlow and against the CPU's matmul floor, and what one seed of the whole study costs.
Prints tables; asserts nothing.

    python -m bench.scenarios            # ~2.5 min on a quiet 2-core machine (5 rounds of 200 steps per kind)

The floor: a step of batch B through the MLP costs ~6·B·P FLOPs (forward 2·B·P, backward twice that; P = the
weights), so a task of I iterations costs 6·I·B·P (784-400-400-10, B 128, I 2,000: 0.73 TFLOP; five tasks 3.7
TFLOP); dividing by this machine's dense-matmul rate in the run's precision gives the time no implementation beats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.run import gemm_gflops, table, timed  # noqa: E402

# (label, method, what it adds to a step) — one method of each kind the training step hosts
KINDS = (
    ("plain (fine-tune)", "none", "the masked cross-entropy"),
    ("penalty (EWC)", "ewc", "λ/2·Σ Ω̄(θ − θ̄)²"),
    ("penalty + path integral (SI)", "si", "+ ω += −g·Δθ, a second gradient"),
    ("distillation (LwF)", "lwf", "+ the teacher's forward pass"),
    ("replay (class-balanced)", "er", "+ a memory batch of 128"),
    ("projection (A-GEM)", "agem", "+ a memory batch and its own gradient"),
)


def batches_per_step(method: str) -> int:
    """2 for a method with a memory (replay, A-GEM: a memory batch beside each new one), else 1."""
    from cllab import methods

    return 2 if methods.get(method).memory else 1


def step_flops(config, batch: int) -> float:
    """6·B·P: the forward and backward matmuls of one training step (biases and activations are noise)."""
    widths = [28 * 28, *[config.hidden_units] * config.hidden_layers, config.num_classes]
    weights = sum(a * b for a, b in zip(widths, widths[1:]))
    return 6.0 * batch * weights


def step_matmul_seconds(config, batch: int, dtype: str, repeats: int = 50) -> dict[str, float]:
    """The matmuls of one training step alone (per dense layer: x·W forward, dY·Wᵀ and xᵀ·dY backward, at the
    step's own shapes), best of `repeats`, in NumPy and in TensorFlow: the time no implementation on that library
    beats (TensorFlow's float64 matmul is Eigen's, not oneDNN's, and much slower than NumPy's BLAS)."""
    import numpy as np
    import tensorflow as tf

    widths = [28 * 28, *[config.hidden_units] * config.hidden_layers, config.num_classes]
    rng = np.random.default_rng(0)
    arrays = [(rng.random((batch, a)).astype(dtype), rng.random((a, b)).astype(dtype),
               rng.random((batch, b)).astype(dtype)) for a, b in zip(widths, widths[1:])]
    tensors = [tuple(tf.constant(v) for v in triple) for triple in arrays]

    def numpy_step() -> None:
        for x, w, dy in arrays:
            x @ w, dy @ w.T, x.T @ dy

    @tf.function
    def tf_step():
        return [(tf.matmul(x, w), tf.matmul(dy, w, transpose_b=True), tf.matmul(x, dy, transpose_a=True))
                for x, w, dy in tensors]

    out = {}
    for name, fn in (("numpy", numpy_step), ("tensorflow", tf_step)):
        fn()
        out[name] = min(timed(fn) for _ in range(repeats))
    return out


def measure(method: str, config, x, y, memory, steps: int, rounds: int, settings: dict) -> list[float]:
    """Seconds per step of `method`'s training step, one value per round after a warm-up round."""
    import keras

    from cllab import incremental, methods, model, regularizers, scenarios

    spec = methods.get(method)
    keras.utils.set_random_seed(0)
    net = incremental.build(config)
    theta = model.get_weights(net)
    penalty = (regularizers.penalty_for(settings.get("lambda", 1.0), theta, {k: abs(v) for k, v in theta.items()})
               if spec.omega is not None else None)
    net = incremental.build(config, penalty=penalty, track_path_integral=spec.omega == "omega_si",
                            memory=spec.memory, groups=5 if spec.distill else 0)
    model.compile_model(net, settings["optimizer"], settings["learning_rate"])
    scenario = scenarios.Scenario("class")
    net.set_task(incremental.live_table(scenario, 1), current_weight=0.5,
                 teacher_weights=theta if spec.distill else None,
                 teacher_units=incremental.teacher_heads(scenario, 1) if spec.distill else None, distill_weight=1.0)
    batches = incremental.TaskBatches(x, y, settings["batch_size"], steps, seed=0,
                                      memory=memory if spec.memory else None)
    times = []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        net.fit(batches, epochs=1, verbose=0)
        times.append((time.perf_counter() - start) / steps)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark of the three scenarios (prints tables).")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per kind, after a warm-up round")
    parser.add_argument("--steps", type=int, default=200, help="training steps per round")
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        raise SystemExit("error: --rounds and --steps must be at least 1")
    from cllab import cli, scenparams

    params = scenparams.load()
    section = params["scenarios"]
    cli.start(params, 0)
    from cllab import data, model
    from cllab.scenarios import ClassBalancedMemory, Scenario, SplitTasks

    mnist = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])
    tasks = SplitTasks(data.split_digits(mnist, section["val_fraction"], section["val_seed"]), Scenario("class"))
    x, y = tasks.split(1, "train")
    memory = ClassBalancedMemory(0, per_class=100)
    memory.add(*tasks.split(0, "train"))
    config = model.ModelConfig(**section["model"], num_classes=10)
    train = section["train"]
    settings = {"optimizer": train["optimizer"]["name"], "learning_rate": train["optimizer"]["learning_rate"],
                "batch_size": train["batch_size"], "lambda": 1.0}
    precision = params["runtime"]["precision"]
    floor_rate = max(gemm_gflops(dtype=precision).values())
    flops = step_flops(config, train["batch_size"])
    matmuls = step_matmul_seconds(config, train["batch_size"], precision)
    rows, per_method = [], {}
    for label, method, adds in KINDS:
        times = measure(method, config, x, y, memory.arrays(), args.steps, args.rounds, settings)
        median = statistics.median(times)
        memory_rows = batches_per_step(method)
        floor = flops * memory_rows / (floor_rate * 1e9)
        in_tf = matmuls["tensorflow"] * memory_rows
        per_method[method] = median
        rows.append([label, adds, f"{median * 1e3:.2f}", f"{in_tf * 1e3:.2f}", f"{in_tf / median:.0%}",
                     f"{floor * 1e3:.2f}", f"{floor / median:.0%}"])
    table(f"One training step, batch {train['batch_size']} (+ 128 from memory), {precision}, "
          f"{params['runtime']['threads']} threads; median of {args.rounds} rounds of {args.steps} steps",
          ["kind", "adds to the step", "ms per step", "its matmuls in TF, ms", "of the step",
           "floor ms", "of the floor"], rows)
    iterations, count = train["iterations"], len(section["order"])
    seed_total = sum(per_method.get(m, per_method["ewc"]) * iterations * count * len(section["scenarios"])
                     for m in section["methods"])
    seed_total += per_method["none"] * iterations * count * len(section["scenarios"])  # the joint models
    # batches of the seed's steps (replay and A-GEM: two from task 2 on, counted as two throughout), joint included
    batches = sum(batches_per_step(m) for m in (*section["methods"], "none"))
    batches *= iterations * count * len(section["scenarios"])
    table("One seed of the study, one stage after another (training steps only; each stage adds ~7 s of start-up "
          "and seconds of scoring)",
          ["methods x scenarios", "steps", "minutes", "its matmuls in TF (min)", "at the floor (min)"],
          [[f"{len(section['methods'])} + joint x {len(section['scenarios'])}",
            (len(section["methods"]) + 1) * len(section["scenarios"]) * iterations * count,
            f"{seed_total / 60:.1f}", f"{batches * matmuls['tensorflow'] / 60:.1f}",
            f"{batches * flops / (floor_rate * 1e9) / 60:.1f}"]])
    print(f"\nDense matmul floor: {floor_rate:.1f} GFLOP/s ({precision}); a step: {flops / 1e6:.0f} MFLOP; the step's "
          f"matmuls alone at its shapes: {matmuls['numpy'] * 1e3:.2f} ms in NumPy ({flops / matmuls['numpy'] / 1e9:.0f} "
          f"GFLOP/s), {matmuls['tensorflow'] * 1e3:.2f} ms in TensorFlow ({flops / matmuls['tensorflow'] / 1e9:.0f} "
          f"GFLOP/s)")


if __name__ == "__main__":
    main()
