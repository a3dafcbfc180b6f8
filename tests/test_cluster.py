"""A study on a real cluster of separate processes (cllab.cluster, docs/cluster.md): an S3 server (`rclone serve s3`,
with credentials) as the DVC remote, a bare git repository as the git remote, a Dask scheduler and two workers, each
its own "machine" (directory, clones, DVC cache). The study is studies/tiny.yaml, real `dvc exp run`s of the two-task
pipeline. One worker is killed mid-experiment; every experiment must still land exactly once, whole, with the bytes a
serial local run gives, and a rerun must train nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import copy_project, dvc, put_mnist, run, set_param

pytest.importorskip("distributed", reason="the [cluster] extra is not installed (pip install -e '.[cluster]')")
pytest.importorskip("s3fs", reason="the [cluster] extra is not installed (pip install -e '.[cluster]')")

from bench import servers  # noqa: E402
from cllab import cluster  # noqa: E402

pytestmark = pytest.mark.slow

KEY, SECRET = "cllab-test-key", "cllab-test-secret"
STUDY = "studies/tiny.yaml"


def _run_study(world: dict, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cllab.cluster", "run", STUDY, "--scheduler", world["scheduler"],
                             *extra], cwd=world["project"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _remote_experiments(world: dict) -> list[str]:
    """Every experiment ref on the bare git remote (all bases), by name, with repeats."""
    out = run(["git", "ls-remote", str(world["origin"]), "refs/exps/*"], world["project"]).stdout
    return [line.rsplit("/", 1)[1] for line in out.splitlines()]


@pytest.fixture(scope="module")
def world(root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The S3 server, the git remote, the base commit (MNIST and the prepared data pushed) and a scheduler with two
    worker processes; all stopped at the end."""
    tmp = tmp_path_factory.mktemp("cluster")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    processes = []
    try:
        s3, s3_port, origin = servers.start_remotes(tmp, KEY, SECRET)
        processes.append(s3)
        project = tmp / "project"
        project.mkdir()
        copy_project(root, project)
        put_mnist(mnist_dir, project)
        set_param(project, "prepare.tfds_dir", str(tfds_dir))  # TFDS' copy built once per session (conftest)
        run(["git", "init", "-q", "-b", "main"], project)
        run(["git", "config", "user.name", "t"], project)
        run(["git", "config", "user.email", "t@t"], project)
        dvc(project, "remote", "add", "-d", "team", "s3://dvcstore/cl-lab")
        dvc(project, "remote", "modify", "team", "endpointurl", f"http://127.0.0.1:{s3_port}")
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "base"], project)
        dvc(project, "repro", "prepare")  # the base: MNIST and the prepared data, on the remote
        dvc(project, "push")
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", "base: MNIST and the prepared data in dvc.lock"], project)
        run(["git", "remote", "add", "origin", str(origin)], project)
        run(["git", "push", "-q", "origin", "main"], project)
        port = servers.free_port()
        processes.append(servers.start_scheduler(port, tmp / "scheduler.log"))
        scheduler = f"tcp://127.0.0.1:{port}"
        machines = {name: tmp / name for name in ("m1", "m2")}
        workers = {name: servers.start_worker(scheduler, name, directory) for name, directory in machines.items()}
        processes += workers.values()
        servers.wait_for_workers(scheduler, 2)
        yield {"tmp": tmp, "project": project, "origin": origin, "bucket": tmp / "s3" / "dvcstore" / "cl-lab",
               "scheduler": scheduler, "machines": machines, "workers": workers,
               "base": run(["git", "rev-parse", "HEAD"], project).stdout.strip()}
    finally:
        for process in reversed(processes):
            servers.stop(process)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_a_remote_that_refuses_writes_stops_the_study_with_one_line_before_any_training(world: dict):
    wrong = dict(os.environ, AWS_SECRET_ACCESS_KEY="not-the-secret")
    process = _run_study(world, env=wrong)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "the DVC remote 'team' refuses writes" in lines[0], err
    assert "signature" in lines[0], lines[0]  # the server's own reason, in the one line
    assert not _remote_experiments(world)
    assert not any((m / "experiments").exists() for m in world["machines"].values())  # no worker started one


def _md5_keyed_objects(bucket: Path) -> list[Path]:
    return [p for p in (bucket / "files" / "md5").rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def study_run(world: dict) -> dict:
    """The study, with worker m1 killed (its whole process group) once it is training an experiment."""
    process = _run_study(world)
    m1 = world["machines"]["m1"] / "experiments"
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        for log in m1.glob("*.log") if m1.exists() else []:
            if re.search(r"Running stage 'train_", log.read_text()):
                time.sleep(2)  # mid-training
                os.killpg(world["workers"]["m1"].pid, signal.SIGKILL)
                killed = log.stem
                break
        time.sleep(0.5)
    out, err = process.communicate(timeout=1800)
    assert process.returncode == 0, out + err
    return {"killed": killed, "out": out}


def test_a_killed_worker_is_replaced_and_every_experiment_lands_exactly_once(world: dict, study_run: dict):
    study = cluster.load_study(world["project"] / STUDY)
    names = [e.name for e in study.experiments]
    assert study_run["killed"] in names, study_run["out"]
    assert sorted(_remote_experiments(world)) == sorted(names)  # each exactly once
    done = re.findall(r"^(\S+): done on (\S+)", study_run["out"], re.M)
    assert sorted(n for n, _ in done) == sorted(names)  # each reported once
    rerun_on = dict(done)[study_run["killed"]]
    assert rerun_on.endswith("m2"), study_run["out"]  # the engine gave the killed worker's experiment to the other
    # no training survived its worker: the guard killed the experiment's process group
    import psutil

    time.sleep(1)
    m1 = str(world["machines"]["m1"])
    left = [p.info for p in psutil.process_iter(["pid", "cwd", "cmdline"]) if (p.info["cwd"] or "").startswith(m1)]
    assert not left, left


def test_a_stage_two_experiments_share_is_trained_once_on_the_cluster(world: dict, study_run: dict):
    """The two λ of a seed share train_joint, train_a and train_b@<seed>-none: after the kill one worker runs the rest
    in turn, so each shared stage trains in one experiment and the other restores it from the run-cache (the worker's
    own or the DVC remote's); only the λ-dependent train_b@<seed>-l2 trains in both."""
    done = re.findall(r"^(\S+): done on \S+ \(.*?\); ran \d+ stages \(([^)]*)\)(?:, restored \d+ from the run-cache "
                      r"\(([^)]*)\))?$", study_run["out"], re.M)
    assert len(done) == 4, study_run["out"]
    trained = [s for _, ran, _ in done for s in ran.split(", ") if s.startswith("train")]
    restored = [s for _, _, cached in done for s in cached.split(", ") if cached]
    for seed in (1, 2):
        shared = {f"train_joint@{seed}", f"train_a@{seed}", f"train_b@{seed}-none"}
        assert sorted(s for s in trained if s in shared) == sorted(shared), study_run["out"]  # once each
        assert sorted(s for s in restored if s in shared) == sorted(shared), study_run["out"]
        assert trained.count(f"train_b@{seed}-l2") == 2


def test_the_remote_holds_only_whole_objects(world: dict, study_run: dict):
    """Content addressing, checked: every object's MD5 is its key (a half-written upload would not be), the run-cache
    entries (if any: docs/cluster.md says which stages have them) parse, and nothing else (no probe, no temp file)
    is left in the bucket."""
    objects = _md5_keyed_objects(world["bucket"])
    assert len(objects) > 20
    for path in objects:
        key = path.parent.name + path.name.removesuffix(".dir")
        assert hashlib.md5(path.read_bytes()).hexdigest() == key, path
    runs = [p for p in (world["bucket"] / "runs").rglob("*") if p.is_file()]
    assert all(isinstance(yaml.safe_load(p.read_text()), dict) for p in runs)
    others = [p for p in world["bucket"].rglob("*") if p.is_file() and p not in set(objects) | set(runs)]
    assert not others, others
    # the same stage computed on two machines (train_a@1 of both λ, and of the killed run): the same bytes, one copy
    locks = [yaml.safe_load(run(["git", "--git-dir", str(world["origin"]), "show",
                                 f"{cluster.exp_ref(world['base'], name)}:dvc.lock"], world["project"]).stdout)
             for name in ("tiny-l2-0.1-seed1", "tiny-l2-1-seed1")]
    theta_a = {next(o["md5"] for o in lock["stages"]["train_a@1"]["outs"] if o["path"] == "models/1/theta_a.npz")
               for lock in locks}
    assert len(theta_a) == 1
    (md5,) = theta_a
    assert (world["bucket"] / "files" / "md5" / md5[:2] / md5[2:]).is_file()


def test_collected_metrics_equal_a_serial_local_run_byte_for_byte(world: dict, study_run: dict):
    project = world["project"]
    result = run([sys.executable, "-m", "cllab.cluster", "collect", STUDY], project)
    assert "4 experiments pulled" in result.stdout
    table = (project / "studies" / "tiny" / "table.csv").read_text().splitlines()
    assert table[0] == "configuration,seeds,l2.average_mean,l2.average_ci95,l2.forgetting_mean,l2.forgetting_ci95"
    assert [row.split(",")[:2] for row in table[1:]] == [["train_b.l2.lambda=0.1", "2"], ["train_b.l2.lambda=1", "2"]]
    assert (project / "studies" / "tiny" / "figure.png").read_bytes()[:4] == b"\x89PNG"
    # the same surfaces as a local run: dvc exp show lists them, dvc metrics diff compares them
    shown = json.dumps(json.loads(dvc(project, "exp", "show", "--json").stdout))
    study = cluster.load_study(project / STUDY)
    assert all(e.name in shown for e in study.experiments)
    diff = dvc(project, "metrics", "diff", "tiny-l2-0.1-seed1", "tiny-l2-1-seed1", "--json").stdout
    assert "metrics/headline/l2.json" in json.loads(diff)
    # a serial local run of one experiment (the one killed mid-way, rerun elsewhere): the same metrics, byte for byte
    experiment = next(e for e in study.experiments if e.name == study_run["killed"])
    dvc(project, "exp", "run", "-n", "serial", *[a for o in experiment.overrides for a in ("-S", o)])
    base = world["base"]
    trees = [run(["git", "rev-parse", f"{cluster.exp_ref(base, n)}:metrics"], project).stdout
             for n in ("serial", experiment.name)]
    assert trees[0] == trees[1]


def test_a_rerun_of_the_finished_study_trains_nothing(world: dict, study_run: dict):
    before = sorted(p.name for m in world["machines"].values() for p in m.glob("experiments/*"))
    process = _run_study(world)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "4 experiments, 4 already on the remote, 0 to run" in out
    assert sorted(p.name for m in world["machines"].values() for p in m.glob("experiments/*")) == before
