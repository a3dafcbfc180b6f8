"""Which settings give the same bytes on other CPUs: one seed of the pipeline in a temp copy per setting (precision ×
oneDNN ISA, oneDNN off, thread count), each compared file by file with the native run of the same precision, with
the largest differences of the metrics. `ONEDNN_MAX_CPU_ISA` makes oneDNN run the kernels of an older CPU, so one
machine emulates others. Prints a table; asserts nothing. ~2 min per setting on 2 cores at 2 epochs.

    python -m bench.portability                                  # the default matrix (10 settings, ~20 min)
    python -m bench.portability --epochs 5 --settings float64:native float64:AVX2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import ROOT, _copy_project, _set_params, table

# setting name -> (environment, runtime.threads)
SETTINGS: dict[str, tuple[dict[str, str], int]] = {
    "native": ({}, 2),
    "AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 2),
    "AVX": ({"ONEDNN_MAX_CPU_ISA": "AVX"}, 2),
    "SSE41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, 2),
    "4 threads": ({}, 4),
    "1 thread": ({}, 1),
}
DEFAULT = [f"float64:{name}" for name in SETTINGS] + ["float32:native", "float32:AVX2", "float32:SSE41"]
# the metrics whose largest per-seed difference the table reports (the reproduction check compares every result file)
METRICS = ("metrics/test.json", "metrics/validation.json", "metrics/test_per_seed.csv",
           "metrics/validation_per_seed.csv")


def metrics_of(work: Path) -> dict:
    """Every number of METRICS in a run's copy, by '<file>:<key>'."""
    from cllab import reproduction

    return {name: value for path in METRICS
            for name, value in reproduction.file_values(path, (work / path).read_bytes()).values.items()}


def run_setting(work: Path, precision: str, setting: str, epochs: int, tfds_dir: Path) -> tuple[float, dict, dict]:
    """dvc repro of one seed under a setting; returns seconds, {file: sha256} of models/ and evals/, and the metrics."""
    env_extra, threads = SETTINGS[setting]
    _copy_project(work)
    _set_params(work, seeds=[0], runtime__precision=precision, runtime__threads=threads,
                prepare__tfds_dir=str(tfds_dir), train_a__epochs=epochs, train_joint__epochs=epochs,
                train_b__epochs=epochs)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", **env_extra,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{precision}:{setting}: dvc repro failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    hashes = {str(p.relative_to(work)): hashlib.sha256(p.read_bytes()).hexdigest()
              for folder in ("models", "evals") for p in sorted((work / folder).rglob("*")) if p.suffix in (".npz", ".json")}
    return seconds, hashes, metrics_of(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every training stage (default 2)")
    parser.add_argument("--settings", nargs="+", default=DEFAULT, help="precision:setting, from " + ", ".join(SETTINGS))
    args = parser.parse_args()
    for item in args.settings:
        precision, _, setting = item.partition(":")
        if precision not in ("float64", "float32") or setting not in SETTINGS:
            raise SystemExit(f"bench.portability: unknown setting {item!r} (precision:setting, settings: {', '.join(SETTINGS)})")
    sys.path.insert(0, str(ROOT))
    from cllab import reproduction

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tfds_dir = Path(tmp) / "tfds"
        for item in args.settings:
            precision, _, setting = item.partition(":")
            results[item] = run_setting(Path(tmp) / item.replace(":", "-").replace(" ", "_"), precision, setting,
                                        args.epochs, tfds_dir)
            print(f"{item}: {results[item][0]:.0f} s", flush=True)
    rows = []
    for item, (seconds, hashes, metrics) in results.items():
        precision = item.partition(":")[0]
        reference = results.get(f"{precision}:native")
        if reference is None or item == f"{precision}:native":
            rows.append([item, seconds, len(hashes), "(reference)", ""])
            continue
        differ = sum(hashes[name] != reference[1].get(name) for name in hashes)
        spread = reproduction.spread_by_kind(reproduction.compare(reference[2], metrics))
        rows.append([item, seconds, len(hashes), differ, f"{spread.get('per_seed', 0.0):.4f}"])
    table(f"One seed, {args.epochs} epochs per training stage: files that differ from the native run of the same "
          "precision", ["precision:setting", "dvc repro (s)", "model/eval files", "files that differ",
                        "largest metric difference"], rows)


if __name__ == "__main__":
    main()
