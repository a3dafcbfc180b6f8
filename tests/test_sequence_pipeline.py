"""The permuted-MNIST pipeline (sequence/dvc.yaml) on a tiny configuration in a temp copy: it runs end to end, a
second repro is a no-op, one method's λ reruns only that method's stages and the report, and adding a method runs
only its stages and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_pipeline import changed_stages, dvc, put_mnist, ran_stages, run, set_param

pytestmark = pytest.mark.slow


def copy_sources(root: Path, dest: Path, keep: tuple[str, ...]) -> None:
    """The project's files (tracked or new, not ignored) without the main pipeline (dvc.yaml) and without the
    on-demand pipelines' files (sequence/, sweep/) other than `keep`."""
    for name in run(["git", "ls-files", "-co", "--exclude-standard"], root).stdout.split():
        if name == "dvc.yaml" or name.startswith(("sequence/", "sweep/", "scenarios/")) and name not in keep \
                and name != "sequence/paper/params.yaml" \
                or not (root / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)


@pytest.fixture(scope="module")
def project(root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("sequence_project")
    copy_sources(root, work, keep=("sequence/dvc.yaml",))  # only the sequence's pipeline here
    put_mnist(mnist_dir, work)
    for key, value in {
        "prepare.tfds_dir": str(tfds_dir), "sequence.seeds": [0],
        "sequence.methods": ["none", "ewc", "replay"], "sequence.num_tasks": 2, "sequence.curve_tasks": 2,
        "sequence.model.hidden_units": 16, "sequence.train.epochs": 1, "sequence.importance.fisher.num_examples": 500,
        "plot.dpi": 40,
    }.items():
        set_param(work, key, value)
    run(["git", "init", "-q"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], work)
    result = dvc(work, "repro", "sequence/dvc.yaml")
    assert ran_stages(result.stdout) == {f"sequence/dvc.yaml:{s}" for s in
                                         ("check_params", "run@0-none", "run@0-ewc", "run@0-replay", "joint@0", "report")}
    return work


def test_repro_writes_the_headline_the_full_metrics_figures_and_report(project: Path):
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)[""]["data"]
    assert set(shown) == {f"sequence/metrics/headline/{m}.json" for m in ("none", "ewc", "replay", "joint")}
    assert set(shown["sequence/metrics/headline/ewc.json"]["data"]) == {"average", "forgetting", "seeds"}
    seed0 = {f.stem: json.loads(f.read_text()) for f in (project / "sequence/metrics/seeds/0").glob("*.json")}
    assert set(seed0) == {"none", "ewc", "replay", "joint"} and set(seed0["ewc"]) == {"average", "forgetting"}
    headline = shown["sequence/metrics/headline/ewc.json"]["data"]  # one seed: its numbers are the headline's
    assert seed0["ewc"] == {k: headline[k] for k in ("average", "forgetting")}
    full = json.loads((project / "sequence/metrics/full.json").read_text())
    assert len(full["methods"]["ewc"]["accuracy_matrix_mean"]) == 2 and full["seeds"] == 1
    for png in ("fig2a", "fig2b", "matrices"):
        assert (project / "sequence/plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    report = (project / "sequence/report.md").read_text()
    assert "| EWC | λ 10 |" in report and "## Task C" in report
    run_file = json.loads((project / "sequence/runs/0/ewc.json").read_text())
    assert run_file["lambda"] == 10 and len(run_file["R"]["test"]) == 2
    plots = dvc(project, "plots", "show", "--json")
    assert "WARNING" not in plots.stdout + plots.stderr


def test_second_repro_is_a_no_op(project: Path):
    assert changed_stages(project) == set()
    assert ran_stages(dvc(project, "repro", "sequence/dvc.yaml").stdout) == set()


def test_one_lambda_reruns_that_method_and_the_report_only(project: Path):
    seed0 = project / "sequence/metrics/seeds/0"
    before = {m: (seed0 / f"{m}.json").read_bytes() for m in ("none", "ewc")}
    set_param(project, "sequence.method.ewc.lambda", 3)
    assert changed_stages(project) == {"sequence/dvc.yaml:check_params", "sequence/dvc.yaml:run@0-ewc",
                                       "sequence/dvc.yaml:report"}
    assert ran_stages(dvc(project, "repro", "sequence/dvc.yaml").stdout) == {
        "sequence/dvc.yaml:check_params", "sequence/dvc.yaml:run@0-ewc", "sequence/dvc.yaml:report"}
    # seed by seed, a method that was not rerun does not move
    assert (seed0 / "none.json").read_bytes() == before["none"] and (seed0 / "ewc.json").read_bytes() != before["ewc"]


def test_adding_a_method_runs_only_it_and_the_report(project: Path):
    set_param(project, "sequence.methods", ["none", "ewc", "replay", "ewc_online"])
    assert ran_stages(dvc(project, "repro", "sequence/dvc.yaml").stdout) == {
        "sequence/dvc.yaml:check_params", "sequence/dvc.yaml:run@0-ewc_online", "sequence/dvc.yaml:report"}
    assert (project / "sequence/metrics/headline/ewc_online.json").is_file()


def test_a_bad_value_stops_at_check_params_with_every_output_in_place(project: Path):
    set_param(project, "sequence.methods", ["none", "ewc", "replay", "ewc_online"])  # as the test before leaves it
    runs = {f: f.read_bytes() for f in (project / "sequence/runs/0").glob("*.json")}
    set_param(project, "sequence.method.ewc_online.gamma", 2)
    result = dvc(project, "repro", "sequence/dvc.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sequence.method.ewc_online.gamma must be a number in [0, 1], got 2" in output
    assert ran_stages(output) == {"sequence/dvc.yaml:check_params"} and "task 1/" not in output
    assert len(runs) == 5 and all(f.read_bytes() == data for f, data in runs.items())  # DVC deleted none of them
    set_param(project, "sequence.method.ewc_online.gamma", 1.0)


PAPER = """sequence:
  seeds: [0]
  methods: [none, ewc]
  model: {hidden_units: 16, hidden_layers: 1, dropout: 0.0}
  train: {epochs: 1, batch_size: 128, optimizer: {name: adam, learning_rate: 0.001}}
  method: {none: {lambda: 0}, ewc: {lambda: LAMBDA}}
"""


def test_a_named_configuration_reads_the_keys_it_sets_from_its_own_file(
        root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path: Path):
    """sequence/paper/dvc.yaml: the stages of sequence/dvc.yaml with --overrides sequence/paper/params.yaml. A key the
    file sets is tracked there (params.yaml's value of it reruns only the check); the others come from params.yaml."""
    copy_sources(root, tmp_path, keep=("sequence/paper/dvc.yaml", "sequence/paper/params.yaml"))
    put_mnist(mnist_dir, tmp_path)
    for key, value in {"prepare.tfds_dir": str(tfds_dir), "sequence.num_tasks": 2,
                       "sequence.curve_tasks": 2, "sequence.importance.fisher.num_examples": 500, "plot.dpi": 40}.items():
        set_param(tmp_path, key, value)
    overrides = tmp_path / "sequence" / "paper" / "params.yaml"
    overrides.write_text(PAPER.replace("LAMBDA", "100"))
    run(["git", "init", "-q"], tmp_path)
    stages = {f"sequence/paper/dvc.yaml:{s}" for s in ("run@0-none", "run@0-ewc", "joint@0", "report")}
    check = "sequence/paper/dvc.yaml:check_params"
    assert ran_stages(dvc(tmp_path, "repro", "sequence/paper/dvc.yaml").stdout) == stages | {check}
    ewc = json.loads((tmp_path / "sequence/paper/runs/0/ewc.json").read_text())
    assert ewc["lambda"] == 100 and len(ewc["R"]["test"]) == 2
    assert "MLP 1×16 (ReLU), adam learning rate 0.001" in (tmp_path / "sequence/paper/report.md").read_text()
    assert set(json.loads(dvc(tmp_path, "metrics", "show", "--json").stdout)[""]["data"]) == {
        f"sequence/paper/metrics/headline/{m}.json" for m in ("none", "ewc", "joint")}

    set_param(tmp_path, "sequence.model.hidden_units", 5)  # overridden: the configuration does not read it
    set_param(tmp_path, "sequence.method.ewc.lambda", 7)
    assert changed_stages(tmp_path) == {check}  # only the check, which reads every key of both files
    overrides.write_text(PAPER.replace("LAMBDA", "30"))
    assert changed_stages(tmp_path) == {check, "sequence/paper/dvc.yaml:run@0-ewc", "sequence/paper/dvc.yaml:report"}
    set_param(tmp_path, "sequence.val_seed", 1)  # not overridden: read from params.yaml
    assert changed_stages(tmp_path) == stages | {check}  # every run and joint (the report: by the λ above)
