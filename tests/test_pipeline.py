"""The DVC pipeline on a tiny configuration in a temp copy: it runs, a second repro is a no-op, and changing one
param invalidates exactly the stages that read it (`dvc status`) and reruns exactly those and what depends on them."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MNIST_NAMES

pytestmark = pytest.mark.slow

METHODS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["methods"]


def seed_stages(seed: int, methods=METHODS) -> set[str]:
    return {f"train_joint@{seed}", f"train_a@{seed}"} | {f"train_b@{seed}-{m}" for m in methods}


ALL_STAGES = {"check_params", "mnist", "prepare", "evaluate", "plot"} | seed_stages(0)


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def changed_stages(cwd: Path) -> set[str]:
    return set(json.loads(dvc(cwd, "status", "--json").stdout or "{}"))


def copy_project(root: Path, dest: Path) -> None:
    """The project's source files (tracked or new, not ignored), without any results and without the on-demand
    pipelines (sweep/dvc.yaml: the last test adds it, with a grid small enough to run; sequence/dvc.yaml and
    scenarios/dvc.yaml: see tests/test_sequence_pipeline.py) but with sequence/paper/params.yaml, which every check_params reads."""
    files = run(["git", "ls-files", "-co", "--exclude-standard"], root).stdout.split()
    for name in files:
        if name == "dvc.lock" or name.startswith(("metrics/", "plots/", "dvclive/", "sweep/", "sequence/",
                                                              "scenarios/")) \
                and name != "sequence/paper/params.yaml" or not (root / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)


def put_mnist(mnist_dir: Path, dest: Path) -> None:
    """The four MNIST files in the copy's data/raw/ (the default `prepare.raw_dir`): the mnist stage's output, which
    must be inside the project (DVC tracks it)."""
    (dest / "data" / "raw").mkdir(parents=True, exist_ok=True)
    for name in MNIST_NAMES:
        shutil.copy2(mnist_dir / name, dest / "data" / "raw" / name)


def set_param(cwd: Path, dotted: str, value) -> None:
    params = yaml.safe_load((cwd / "params.yaml").read_text())
    node = params
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("project")
    copy_project(root, work)
    put_mnist(mnist_dir, work)
    for key, value in {
        "prepare.tfds_dir": str(tfds_dir), "model.hidden_units": 16,
        "train_joint.epochs": 1, "train_a.epochs": 1, "train_b.epochs": 1, "importance.fisher.num_examples": 500,
        "train_b.ewc.lambda": 100, "train_b.ewc_sampled.lambda": 100, "train_b.ewc_empirical.lambda": 100,
        "train_b.si.lambda": 10, "train_b.mas.lambda": 0.1, "importance.mas.num_examples": 500, "plot.dpi": 40, "seeds": [0],
    }.items():
        set_param(work, key, value)
    run(["git", "init", "-q"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], work)
    result = dvc(work, "repro")
    assert ran_stages(result.stdout) == ALL_STAGES
    # quiet stages: none of TensorFlow's start-up lines (absl, oneDNN, CPU features) in a whole run
    assert not re.search(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard", result.stdout + result.stderr)
    return work


def test_repro_writes_metrics_and_plots(project: Path):
    report = json.loads((project / "metrics" / "test.json").read_text())
    assert set(report["methods"]) == set(METHODS) and report["seeds"] == 1
    for numbers in report["methods"].values():
        assert 0 <= numbers["acc_a_after_b"]["mean"] <= 1 and numbers["forgetting"]["mean"] == pytest.approx(
            numbers["acc_a_after_a"]["mean"] - numbers["acc_a_after_b"]["mean"], abs=2e-6)
        assert numbers["acc_a_after_b"]["ci95"] is None  # one seed: no interval
    for png in ("accuracy", "forgetting", "fisher_heatmap"):
        assert (project / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| EWC | 100 |" in (project / "report.md").read_text()
    # the headline: one file of means per method and the joint model, no interval from one seed (no NaN either)
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)[""]["data"]
    assert set(shown) == {f"metrics/headline/{m}.json" for m in [*METHODS, "joint"]}
    for path, entry in shown.items():
        assert set(entry["data"]) == ({"average", "A_after_B", "B_after_B", "seeds"} if path.endswith("joint.json")
                                      else {"average", "A_after_B", "B_after_B", "forgetting", "seeds"})
    per_seed = json.loads((project / "metrics/seeds/0/ewc.json").read_text())
    assert per_seed["average"] == pytest.approx(shown["metrics/headline/ewc.json"]["data"]["average"], abs=1e-6)
    # the interactive plots' tables hold exactly the methods of `methods`, with readable names
    header, *rows = csv.reader((project / "plots" / "forgetting.csv").read_text().splitlines())
    assert header == ["epoch", "method", "label", "color", "acc_a", "acc_b"]
    assert all(len(row) == 6 for row in rows)  # a label with a comma is quoted
    assert {row[1] for row in rows} == set(METHODS)
    assert {row[2] for row in rows if row[1] == "ewc_sampled"} == {"EWC, sampled F"}
    plots = dvc(project, "plots", "show", "--json")
    assert "WARNING" not in plots.stdout + plots.stderr


def test_plots_page_is_offline_and_puts_the_figures_first(project: Path):
    result = dvc(project, "plots", "show", "-o", "page")
    assert "WARNING" not in result.stdout + result.stderr
    page = (project / "page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page  # Vega is inside the page
    assert "order: -1" in page or "order:-1" in page  # the page's CSS puts the image plots first
    for method in ("fine-tune", "EWC, sampled F", "MAS"):
        assert f'"label": "{method}"' in page


def test_second_repro_is_a_no_op(project: Path):
    assert changed_stages(project) == set()
    assert ran_stages(dvc(project, "repro").stdout) == set()


@pytest.mark.parametrize(
    "param,value,invalidated,rerun",
    [
        ("train_b.ewc.lambda", 30, {"train_b@0-ewc", "plot"}, {"train_b@0-ewc", "evaluate", "plot"}),
        ("train_b.l2.lambda", 0.5, {"train_b@0-l2", "plot"}, {"train_b@0-l2", "evaluate", "plot"}),
        # each train_b stage makes its own anchor and reads all of `importance` (DVC cannot name the one settings key
        # of a matrix item's method), so an Ω setting reruns every method's train_b of every seed
        ("importance.fisher.kind", "empirical", {f"train_b@0-{m}" for m in METHODS},
         {f"train_b@0-{m}" for m in METHODS} | {"evaluate", "plot"}),
        ("importance.si.xi", 0.5, {f"train_b@0-{m}" for m in METHODS},
         {f"train_b@0-{m}" for m in METHODS} | {"evaluate", "plot"}),
        ("importance.mas.num_examples", 400, {f"train_b@0-{m}" for m in METHODS},
         {f"train_b@0-{m}" for m in METHODS} | {"evaluate", "plot"}),
        # dropping methods: their stages go, nothing trains; without any Fisher the heat map shows another method's
        # Ω (a declared output, always written)
        ("methods", ["none", "l2"], {"evaluate", "plot"}, {"evaluate", "plot"}),
        # bringing methods back: their train_b stages kept their lock entries and outputs (anchors included), so
        # DVC reruns none of them
        ("methods", [m for m in METHODS if m != "mas"], {"evaluate", "plot"}, {"evaluate", "plot"}),
        ("plot.dpi", 50, {"plot"}, {"plot"}),
        ("seeds", [0, 1], {"evaluate", "plot"} | seed_stages(1, [m for m in METHODS if m != "mas"]),
         {"evaluate", "plot"} | seed_stages(1, [m for m in METHODS if m != "mas"])),
    ],
)
def test_changing_one_param_reruns_only_what_depends_on_it(project: Path, param, value, invalidated, rerun):
    set_param(project, param, value)
    assert changed_stages(project) == invalidated | {"check_params"}  # it reads every key of the pipeline
    assert ran_stages(dvc(project, "repro").stdout) == rerun | {"check_params"}
    assert changed_stages(project) == set()


def test_adding_a_method_runs_only_its_own_stages(project: Path):
    """After the cases above `methods` lacks mas and `seeds` is [0, 1]: adding mas back (with a new λ, so that a
    lock entry kept from before cannot hide the rerun) runs only mas's train_b, for each seed (each makes its anchor
    too), and the aggregate. (A new method module reruns no other method either: tests/test_method_modules.py.)"""
    set_param(project, "train_b.mas.lambda", 0.2)
    set_param(project, "methods", METHODS)
    result = dvc(project, "repro")
    assert ran_stages(result.stdout) == {"check_params", "train_b@0-mas", "train_b@1-mas", "evaluate", "plot"}
    assert (project / "models/1/anchors/mas.npz").is_file()
    assert changed_stages(project) == set()


@pytest.mark.parametrize("param,value,message", [
    ("methods", ["none", "l2", "rwalk"], "methods item 2 is 'rwalk', expected one of none, l2, ewc"),
    ("train_b.ewc.lambda", -1, "train_b.ewc.lambda must be a finite number >= 0, got -1"),
    ("seeds", [-1], "seeds item 0 is -1, expected an integer >= 0"),  # not argparse's usage lines
    ("seeds", [], "seeds"),
])
def test_a_bad_value_stops_at_check_params_with_one_line_and_every_output_in_place(project: Path, param, value,
                                                                                    message):
    """DVC deletes a stage's outputs before it runs the stage, so the check must come before any other stage."""
    outputs = ("models/0/anchors/none.npz", "models/0/theta_b/ewc.npz", "plots/curves/0/ewc.csv",
               "dvclive/0/train_b_ewc", "evals/0/ewc.json", "metrics/headline/ewc.json", "report.md")
    before = {name: sorted(p.read_bytes() for p in ([project / name] if (project / name).is_file()
                                                      else (project / name).rglob("*.*"))) for name in outputs}
    committed = (project / "params.yaml").read_text()
    set_param(project, param, value)
    result = dvc(project, "repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ran_stages(result.stdout) == {"check_params"}
    assert f"error: params.yaml: {message}" in output and "No such file" not in output and "usage:" not in output
    for name in outputs:
        now = [project / name] if (project / name).is_file() else (project / name).rglob("*.*")
        assert sorted(p.read_bytes() for p in now) == before[name], name
    (project / "params.yaml").write_text(committed)
    assert changed_stages(project) == set()


def _flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _git(cwd: Path, *args: str) -> str:
    return run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd).stdout


def test_metrics_diff_between_branches_reports_exactly_the_changed_metrics(project: Path):
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "results")
    _git(project, "branch", "-M", "main")
    _git(project, "checkout", "-qb", "stronger-l2")
    set_param(project, "train_b.l2.lambda", 2.0)
    assert ran_stages(dvc(project, "repro").stdout) == {f"train_b@{s}-l2" for s in (0, 1)} | {"check_params", "evaluate",
                                                                                            "plot"}

    params_diff = json.loads(dvc(project, "params", "diff", "main", "--json").stdout)
    assert params_diff == {"params.yaml": {"train_b.l2.lambda": {"old": 0.5, "new": 2.0, "diff": 1.5}}}

    for name in ("test", "validation"):
        old = _flatten(json.loads(_git(project, "show", f"main:metrics/{name}.json")))
        new = _flatten(json.loads((project / "metrics" / f"{name}.json").read_text()))
        changed = {key for key in new if new[key] != old[key]}
        # L2's own numbers move, and so does every method's paired difference to L2; nothing else
        assert changed and all(key.startswith(("methods.l2.", "paired_vs_l2.")) for key in changed)
        assert not any(key.startswith("paired_vs_l2.l2") for key in new)
        assert "methods.l2.acc_a_after_b.mean" in changed
        assert "methods.l2.acc_a_after_a.mean" not in changed  # θ_A did not change
    # `dvc metrics diff` (the headline) reports exactly L2's numbers, with the values of the files
    reported = json.loads(dvc(project, "metrics", "diff", "main", "--json").stdout)
    assert set(reported) == {"metrics/headline/l2.json", "metrics/headline/l2.ci95.json"}
    for path, keys in reported.items():
        old, new = json.loads(_git(project, "show", f"main:{path}")), json.loads((project / path).read_text())
        assert set(keys) == {k for k in new if new[k] != old[k]} and "seeds" not in keys
        assert all(keys[k]["old"] == old[k] and keys[k]["new"] == new[k] for k in keys)
    # seed by seed: seed 0 meets seed 0
    by_seed = json.loads(dvc(project, "metrics", "diff", "main", "--targets", "metrics/seeds/0", "--json").stdout)
    assert set(by_seed) == {"metrics/seeds/0/l2.json"}
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "stronger l2")
    # λ set back and forth: DVC's run-cache restores the training stages it ran before (every output of a training
    # stage is cached, so DVC run-caches it), nothing trains, and the results are each branch's again, byte for byte
    for value, branch in ((0.5, "main"), (2.0, "stronger-l2")):
        set_param(project, "train_b.l2.lambda", value)
        back = dvc(project, "repro").stdout
        assert ran_stages(back) == {"check_params", "evaluate", "plot"}, back
        assert all(f"Stage 'train_b@{s}-l2' is cached - skipping run" in back for s in (0, 1)), back
        assert _git(project, "diff", "--stat", branch, "--", "params.yaml", "dvc.lock", "metrics", "plots",
                    "report.md") == ""


def test_diverging_training_fails_naming_lambda_and_epoch_and_writes_nothing(project: Path):
    set_param(project, "train_b.ewc.lambda", 1e30)
    result = dvc(project, "repro", "train_b@0-ewc", check=False)
    assert result.returncode != 0
    assert re.search(r"error: train_b@0-ewc \(lambda=1e\+30\): loss became (nan|inf|[0-9.]+e\+\d+) in epoch 1 \(diverged\)",
                     result.stdout + result.stderr)
    for output in ("models/0/theta_b/ewc.npz", "plots/curves/0/ewc.csv", "dvclive/0/train_b_ewc"):
        assert not (project / output).exists(), output
    # back to the committed state: git has the params and the lock (check_params ran first, and passed: the value is
    # valid, training diverged), DVC's cache the stage's outputs (model, curve, DVCLive log)
    _git(project, "checkout", "--", "params.yaml", "dvc.lock")
    dvc(project, "checkout", "train_b@0-ewc")
    assert changed_stages(project) == set()


def test_killed_stage_is_reported_changed_and_rerun(project: Path):
    """A stage killed while it trains leaves none of its outputs (DVC removed them before it started; that a killed
    writer never leaves a half-written file is tests/test_io.py's) and the next `dvc repro` runs it again."""
    import os
    import signal
    import time

    set_param(project, "train_b.l2.lambda", 0.7)
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train_b@0-l2"], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((project / "dvclive" / "0").glob(".tmp-train_b_l2-*")) and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the stage has loaded its inputs and is about to train
    assert proc.poll() is None, "the stage finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / "models/0/theta_b/l2.npz").exists()
    assert not (project / "plots/curves/0/l2.csv").exists()
    assert not (project / "dvclive/0/train_b_l2").exists()
    assert "train_b@0-l2" in changed_stages(project)
    # check_params had finished (and been locked) before the stage was killed: only the rest runs now
    assert ran_stages(dvc(project, "repro").stdout) == {"train_b@0-l2", "train_b@1-l2", "evaluate", "plot"}
    assert changed_stages(project) == set()


def test_a_clone_pulls_every_result_from_a_remote_and_recomputes_nothing(root: Path, project: Path, tmp_path: Path):
    # the on-demand λ sweep too, on a tiny grid: its committed state must not make plain `dvc status` complain
    (project / "sweep").mkdir(exist_ok=True)
    shutil.copy2(root / "sweep" / "dvc.yaml", project / "sweep" / "dvc.yaml")
    for key, value in {"sweep.widths": [8], "sweep.optimizers": [{"name": "sgd", "learning_rate": 0.02}],
                       "sweep.points": [{"method": "none", "lambda": 0}, {"method": "ewc", "lambda": 10}]}.items():
        set_param(project, key, value)
    swept = ran_stages(dvc(project, "repro", "sweep/dvc.yaml").stdout)
    # ./dvc.yaml's check too: the sweep's stages read its outputs, and every check reads the whole params.yaml
    assert swept == {"check_params", "sweep/dvc.yaml:check_params", "sweep/dvc.yaml:width@8", "sweep/dvc.yaml:front"}
    assert changed_stages(project) == set()  # plain `dvc status`: every pipeline of the repo
    remote = tmp_path / "team-remote"  # a local-directory remote; S3, GCS, SSH… work the same way
    dvc(project, "remote", "add", "-d", "team", str(remote))
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "results and remote")
    dvc(project, "push", "--run-cache")
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    dvc(clone, "pull")
    dvc(clone, "checkout")
    assert changed_stages(clone) == set()
    assert ran_stages(dvc(clone, "repro").stdout) == set()
    assert ran_stages(dvc(clone, "repro", "sweep/dvc.yaml").stdout) == set()
