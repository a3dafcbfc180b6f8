"""Which precision is both fast and the same bytes on every CPU, for the three-scenario study's model (issue 30): the
784-400-400-10 MLP trained with Adam (lr 0.001, batch 128) on MNIST's training images for a few epochs, in float64,
in float32, and in float32 with oneDNN's ops off (TF_ENABLE_ONEDNN_OPTS=0: TF's own Eigen kernels, compiled rather
than dispatched by the CPU's ISA), and both precisions with oneDNN told to use only AVX2 (ONEDNN_MAX_CPU_ISA: the
kernels another CPU would run). Each setting runs in its own process (TF reads the variable at import) and prints
its best epoch and the SHA-256 fingerprint of the weights after training. Fingerprints equal across hosts make a
setting reproducible: record this table per host in bench/README.md. Prints tables; asserts nothing.

    python -m bench.precision                  # 5 settings × 4 epochs of 60,000 images, ~2 min on 2 cores
    python -m bench.precision --epochs 2 --examples 10000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.run import ROOT, table  # noqa: E402

# setting -> (precision, environment)
SETTINGS: dict[str, tuple[str, dict[str, str]]] = {
    "float64": ("float64", {}),
    "float32": ("float32", {}),
    "float32, oneDNN off": ("float32", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "float32, oneDNN as on an AVX2 CPU": ("float32", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),  # another CPU, emulated
    "float64, oneDNN as on an AVX2 CPU": ("float64", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
}


def fingerprint(weights: dict) -> str:
    """SHA-256 of the weights' bytes, in model order, with their names, shapes and dtypes."""
    digest = hashlib.sha256()
    for name, array in weights.items():
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def measure(x, y, epochs: int, units: int = 400, seed: int = 0) -> dict:
    """Train the MLP on (x, y) one epoch at a time in Keras' current float type; each epoch's seconds and the
    fingerprint of the weights after the last."""
    import keras

    from cllab import model, training

    keras.utils.set_random_seed(seed)
    config = model.ModelConfig(hidden_units=units, hidden_layers=2, dropout=0.0, num_classes=10)
    net = model.compile_model(model.build_model(config), "adam", 0.001)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        training.fit(net, x, y, epochs=1, batch_size=128, verbose=0)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "fingerprint": fingerprint(model.get_weights(net))}


def run_one(setting: str, epochs: int, examples: int) -> dict:
    """This process's part: one setting on MNIST's first `examples` training images."""
    from cllab import cli, data

    params = cli.load_params()
    precision, _ = SETTINGS[setting]
    cli.start({**params, "runtime": {**params["runtime"], "precision": precision}}, seed=0)
    train_images, digits = data.load_mnist(params["prepare"]["raw_dir"], params["prepare"]["tfds_dir"])["train"]
    x = train_images[:examples].astype(precision) / 255.0
    return {"setting": setting, **measure(x, digits[:examples], epochs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--examples", type=int, default=60000)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--one", choices=list(SETTINGS), help=argparse.SUPPRESS)  # a child process's setting
    args = parser.parse_args()
    if args.epochs < 2:
        raise SystemExit(f"error: --epochs must be at least 2 (the first is a warm-up), got {args.epochs}")
    if args.one:
        print(json.dumps(run_one(args.one, args.epochs, args.examples)))
        return
    results = []
    for setting in args.settings:
        env = {**os.environ, **SETTINGS[setting][1]}
        done = subprocess.run([sys.executable, "-m", "bench.precision", "--one", setting, "--epochs", str(args.epochs),
                               "--examples", str(args.examples)], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"error: {setting}: {done.stderr.strip().splitlines()[-1:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = min(results[0]["seconds"][1:])
    from cllab import provenance

    cpu = provenance.cpu_facts()["model"]
    table(f"784-400-400-10 MLP, Adam, batch 128, {args.examples:,} images, {args.epochs} epochs (the first a warm-up) "
          f"on {os.cpu_count()} cores ({cpu})", ["setting", "best epoch (s)", f"speed vs {results[0]['setting']}",
                                                 "weights fingerprint (SHA-256, first 16)"],
          [[r["setting"], min(r["seconds"][1:]), base / min(r["seconds"][1:]), r["fingerprint"][:16]]
           for r in results])


if __name__ == "__main__":
    main()
