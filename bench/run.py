"""Benchmark: training throughput with and without the penalty, the epoch against the CPU's matmul floor, the Fisher
implementations, and the DVC pipeline's wall times. Prints tables; asserts nothing.

    python -m bench.run                 # everything (~10-12 min on 2 cores; needs dvc repro first)
    python -m bench.run --skip-pipeline # kernels only (~3 min)
    python -m bench.run --slow-fisher   # also the vectorised Fisher on all examples at 1,000 units (~7 min more)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a Markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(_cell(c) for c in row) + " |")
    sys.stdout.flush()


def gemm_gflops(n: int = 1024, repeats: int = 20, dtype: str = "float32") -> dict[str, float]:
    """Dense matmul throughput (GFLOP/s) of NumPy and TF on this CPU in `dtype`, best of `repeats`."""
    import numpy as np
    import tensorflow as tf

    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    ta = tf.constant(a)
    out = {}
    for name, fn in (("numpy", lambda: a @ a), ("tensorflow", lambda: tf.matmul(ta, ta).numpy())):
        fn()
        best = min(timed(fn) for _ in range(repeats))
        out[name] = 2 * n**3 / best / 1e9
    return out


def timed(fn) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_throughput(task_b, anchor_path: Path, rounds: int = 5) -> list[list]:
    """Examples/s of one epoch of task B per method, compile option and precision: the three methods of an option
    take turns, one epoch each per round (so a change in the machine's load hits all three alike), best of `rounds`
    after a warm-up round."""
    import keras
    import numpy as np

    from cllab import model, regularizers
    from cllab.runtime import set_precision

    anchor = model.load_model(anchor_path)
    theta_a, fisher = model.get_weights(anchor), model.load_importance(anchor_path)
    ones = {k: np.ones_like(v) for k, v in theta_a.items()}
    x, y = task_b["x_train"], task_b["y_train"]
    methods = (("plain fit", None, None), ("l2", 0.3, ones), ("ewc", 2000.0, fisher))
    default = {"steps_per_execution": model.STEPS_PER_EXECUTION}
    options = [
        ("one step per call", {"steps_per_execution": 1}, "float64"),
        ("`jit_compile=True`", {"steps_per_execution": 1, "jit_compile": True}, "float64"),
        (f"`steps_per_execution={model.STEPS_PER_EXECUTION}` (default)", default, "float64"),
        (f"`steps_per_execution={model.STEPS_PER_EXECUTION}`", default, "float32"),
    ]
    rows = []
    for label, kwargs, precision in options:
        set_precision(precision)
        nets = {}
        for method, strength, importance in methods:
            keras.utils.set_random_seed(0)
            net = model.load_model(anchor_path, penalty=regularizers.penalty_for(strength or 0.0, theta_a, importance))
            net.compile(optimizer=keras.optimizers.SGD(0.02), metrics=["accuracy"],
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), **kwargs)
            nets[method] = net
        times = {method: [] for method in nets}
        for _ in range(rounds + 1):
            for method, net in nets.items():
                start = time.perf_counter()
                net.fit(x, y, batch_size=128, epochs=1, verbose=0)
                times[method].append(time.perf_counter() - start)
        rates = {method: len(x) / min(t[1:]) for method, t in times.items()}
        rows += [[label, precision, method, rate, rate / rates["plain fit"]] for method, rate in rates.items()]
    set_precision("float64")
    return rows


def epoch_flops(hidden: int, n: int) -> float:
    """FLOPs of one epoch of the MLP: forward 2·(784·h + h·5) per example, backward ≈ 2× forward."""
    return 3 * 2 * (784 * hidden + hidden * 5) * n


def fisher_case(impl: str, hidden: int, n: int) -> dict[str, float]:
    """Run one Fisher computation in a fresh process; return its seconds and the process' peak RSS (MiB)."""
    code = f"""
import os, resource, time, json, sys
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
sys.path.insert(0, {str(ROOT)!r})
import numpy as np, keras
from cllab import importance, io, model
from cllab.runtime import set_determinism
set_determinism(0, 2)
x = io.load_npz({str(ROOT / 'data/prepared/task_a.npz')!r})['x_train'][:{n}]
net = model.build_model(model.ModelConfig(hidden_units={hidden}))
probs = importance.class_probabilities(net, x)
weights = importance.label_weights(probs, 'exact')
fn = {{'dense': importance.fisher_dense, 'vectorized': importance.fisher_vectorized, 'loop': importance.fisher_loop}}['{impl}']
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
fn(net, x, weights)
seconds = time.perf_counter() - start
print(json.dumps({{'seconds': seconds, 'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'base_mib': base / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        return {"seconds": float("nan"), "peak_mib": float("nan"), "error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _copy_project(tmp: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("metrics/", "plots/", "dvclive/", "sweep/")) \
                and name != "dvc.lock":
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "data" / "raw", tmp / "data" / "raw")
    if (ROOT / "data" / "tfds").is_dir():  # TFDS' prepared copy is a cache outside the pipeline's outputs
        shutil.copytree(ROOT / "data" / "tfds", tmp / "data" / "tfds")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(git + cmd, cwd=tmp, check=True)


def _set_params(tmp: Path, **values) -> None:
    import yaml

    params = yaml.safe_load((tmp / "params.yaml").read_text())
    for dotted, value in values.items():
        node = params
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _dvc(tmp: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=tmp, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return time.perf_counter() - start, out.stdout


def _ran(out: str) -> int:
    return len(re.findall(r"Running stage", out))


def pipeline_times(tmp: Path) -> list[list]:
    """Wall times of `dvc repro` in a temp copy with the default params but one seed: from an empty cache, a no-op,
    after changing EWC's λ."""
    _copy_project(tmp)
    _set_params(tmp, seeds=[0])
    rows = []
    for label, change, target in (
        ("full, 1 seed, empty cache (TFDS copy reused)", None, "≤ 120 s per seed"),
        ("no-op", None, "≤ 5 s"),
        ("after changing train_b.ewc.lambda", {"train_b__ewc__lambda": 1000}, "≤ 25 s per seed"),
    ):
        if change:
            _set_params(tmp, **change)
        seconds, out = _dvc(tmp, "repro")
        rows.append([label, seconds, _ran(out), target])
    return rows


# 1 epoch per stage; θ_A after one epoch has a larger Fisher, so EWC's λ is lowered to stay below divergence
SMALL = {"methods": ["none", "ewc"], "train_joint__epochs": 1, "train_a__epochs": 1, "train_b__epochs": 1,
         "train_b__ewc__lambda": 300}


def seed_scaling(tmp: Path) -> list[list]:
    """Pipeline wall time for 1, 2 and 4 seeds (small configuration SMALL: methods none and ewc, 1 epoch per training
    stage, so that it fits the benchmark's time): seeds are added to the cached pipeline, so the cumulative time is
    that of a run from an empty cache, plus the re-aggregation after each step."""
    _copy_project(tmp)
    rows, total = [], 0.0
    for seeds in ([0], [0, 1], [0, 1, 2, 3]):
        _set_params(tmp, seeds=seeds, **SMALL)
        seconds, out = _dvc(tmp, "repro")
        total += seconds
        rows.append([len(seeds), seconds, total, total / len(seeds), _ran(out)])
    return rows


def queue_speedup(tmp: Path, lambdas=(100, 200, 400, 800)) -> list[list]:
    """A λ sweep of EWC as queued experiments, run with 1 and with 2 workers, in the project seed_scaling left
    behind (set back to one seed)."""
    _set_params(tmp, seeds=[0], **SMALL)
    _dvc(tmp, "repro")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@l"]
    subprocess.run(["git", "add", "-A"], cwd=tmp, check=True)
    subprocess.run(git + ["commit", "-qm", "results"], cwd=tmp, check=False)
    rows = []
    # a warm-up experiment (untimed): the first queue start also starts DVC's task-queue worker machinery
    for jobs, offset, values in ((1, 7, lambdas[:1]), (1, 0, lambdas), (2, 1, lambdas)):  # offset: new λ values, so
        for value in values:                                                                # the run-cache cannot answer
            _dvc(tmp, "exp", "run", "--queue", "-S", f"train_b.ewc.lambda={value + offset}")
        start = time.perf_counter()
        _dvc(tmp, "queue", "start", "--jobs", str(jobs))
        deadline = start + 900
        while time.perf_counter() < deadline:  # `queue start` returns at once; wait until nothing is queued or running
            status = subprocess.run([sys.executable, "-m", "dvc", "queue", "status"], cwd=tmp, capture_output=True,
                                    text=True).stdout
            if not re.search(r"\b(Queued|Running)\b", status):
                break
            time.sleep(1)
        seconds = time.perf_counter() - start
        rows.append([jobs, len(values), len(re.findall(r"\bSuccess\b", status)), seconds])
    rows = rows[1:]
    base = rows[0][3]
    return [row + [base / row[3]] for row in rows]  # "succeeded" counts every finished experiment so far


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--loop-examples", type=int, default=100, help="examples for the per-example loop (slow)")
    parser.add_argument("--slow-fisher", action="store_true",
                        help="also run the vectorised Fisher on all examples at 1,000 units (~7 min more)")
    args = parser.parse_args()
    started = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from cllab.cli import filtered_stderr

    with filtered_stderr():  # TensorFlow's start-up lines (absl, oneDNN), hidden as the stages hide them
        import keras
        import tensorflow as tf
    import numpy as np

    from cllab import io
    from cllab.runtime import set_determinism

    set_determinism(0, 2)
    print(f"# Benchmark, {time.strftime('%Y-%m-%d')}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, TF {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}")

    gemm = {dtype: gemm_gflops(dtype=dtype) for dtype in ("float32", "float64")}
    table("Dense GEMM (1024×1024), best of 20", ["precision", "library", "GFLOP/s"],
          [[dtype, k, v] for dtype, rates in gemm.items() for k, v in rates.items()])

    task_b = io.load_npz(ROOT / "data/prepared/task_b.npz")
    rows = training_throughput(task_b, ROOT / "models/0/anchors/ewc.npz")
    table("Training throughput on task B (27,457 examples, batch 128, SGD)",
          ["compile option", "precision", "training", "examples/s", "ratio to plain fit"], rows)
    flops = epoch_flops(128, len(task_b["x_train"]))
    floor_rows = []
    for precision in ("float64", "float32"):
        floor = max(gemm[precision].values())
        best_plain = max(r[3] for r in rows if r[1] == precision and r[2] == "plain fit")
        floor_rows.append([precision, flops, flops / (floor * 1e9), len(task_b["x_train"]) / best_plain,
                           (len(task_b["x_train"]) / best_plain) / (flops / (floor * 1e9))])
    table("One epoch against the machine's matmul floor (of the same precision)",
          ["precision", "epoch FLOPs", "floor (s) at best GEMM rate", "measured (s), best plain fit", "measured / floor"],
          floor_rows)

    rows = []
    for hidden in (128, 1000):
        for impl, n in (("dense", 1000), ("dense", 26543), ("vectorized", 1000), ("vectorized", 26543),
                        ("loop", args.loop_examples)):
            if impl == "vectorized" and n > 1000 and hidden > 128 and not args.slow_fisher:
                rate = rows[-1][4]  # the 1,000-example run just before: ~400 s for all examples, so not run by default
                rows.append([hidden, impl, n, "not run (--slow-fisher)", rate, "", f"≈ {n / rate:,.0f} s at that rate"])
                continue
            result = fisher_case(impl, hidden, n)
            rows.append([hidden, impl, n, result["seconds"], n / result["seconds"], result["peak_mib"],
                         result.get("error", "")])
    table("Exact Fisher of θ_A (5 classes), fresh process each; peak = process RSS incl. TF and data",
          ["hidden", "implementation", "examples", "seconds", "examples/s", "peak RSS MiB", "note"], rows)

    if not args.skip_pipeline:
        with tempfile.TemporaryDirectory() as tmp:
            table("`dvc repro` wall time (temp copy, default params with 1 seed)",
                  ["run", "seconds", "stages run", "target"], pipeline_times(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            table("How the cost grows with seeds (small configuration, seeds added to the cached pipeline)",
                  ["seeds", "this run (s)", "cumulative (s)", "cumulative per seed (s)", "stages run"],
                  seed_scaling(Path(tmp)))
            try:
                rows = queue_speedup(Path(tmp))
            except RuntimeError as err:
                rows = [["failed", str(err).splitlines()[-1][:200], "", "", ""]]
            table("λ sweep of EWC as queued experiments (`dvc exp run --queue`, `dvc queue start --jobs N`)",
                  ["workers", "experiments", "succeeded so far", "seconds", "speed-up"], rows)
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
