"""The three-scenario pipeline (scenarios/dvc.yaml) on a tiny configuration in a temp copy: it runs end to end (a
stage per seed, scenario and method, the joint models, the report), a second repro is a no-op, one method's λ in one
scenario reruns only that stage and the report, adding a scenario runs only its stages, a bad value stops at
check_params with every output in place, and a variant runs only its own stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import without_variants
from test_pipeline import changed_stages, dvc, put_mnist, ran_stages, run, set_param
from test_sequence_pipeline import copy_sources

pytestmark = pytest.mark.slow
P = "scenarios/dvc.yaml"


@pytest.fixture(scope="module")
def project(root: Path, mnist_dir: Path, tfds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("scenarios_project")
    # only this pipeline here
    copy_sources(root, work, keep=("scenarios/dvc.yaml", "scenarios/anchors.yaml", "scenarios/variants/README.md"))
    put_mnist(mnist_dir, work)
    for key, value in {
        "prepare.tfds_dir": str(tfds_dir), "scenarios.seeds": [0], "scenarios.scenarios": ["task", "class"],
        "scenarios.methods": ["none", "ewc", "er"], "scenarios.model.hidden_units": 16,
        "scenarios.model.hidden_layers": 1, "scenarios.train.iterations": 20,
        "scenarios.importance.fisher.num_examples": 200, "scenarios.importance.fisher.batch_size": 200,
        "scenarios.method.er.task.per_class": 10, "scenarios.method.er.class.per_class": 10, "plot.dpi": 40,
    }.items():
        set_param(work, key, value)
    params = yaml.safe_load((work / "params.yaml").read_text())  # no variant runs here; a test below runs one
    (work / "params.yaml").write_text(yaml.safe_dump(without_variants(params), sort_keys=False))
    run(["git", "init", "-q"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], work)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], work)
    result = dvc(work, "repro", P)
    assert ran_stages(result.stdout) == {f"{P}:{s}" for s in (
        "check_params", "run@0-task-none", "run@0-task-ewc", "run@0-task-er", "run@0-class-none", "run@0-class-ewc",
        "run@0-class-er", "joint@0-task", "joint@0-class", "report")}
    return work


def test_repro_writes_the_headline_per_scenario_the_table_figures_and_report(project: Path):
    shown = json.loads(dvc(project, "metrics", "show", "--json").stdout)[""]["data"]
    assert set(shown) == {f"scenarios/metrics/headline/{s}/{m}.json" for s in ("task", "class")
                          for m in ("none", "ewc", "er", "joint")}
    assert set(shown["scenarios/metrics/headline/class/ewc.json"]["data"]) == {"average", "forgetting", "seeds"}
    run_file = json.loads((project / "scenarios/runs/class/0/ewc.json").read_text())
    chosen = yaml.safe_load((project / "params.yaml").read_text())["scenarios"]["method"]["ewc"]["class"]["lambda"]
    assert len(run_file["R"]["test"]) == 5 and run_file["scenario"] == "class" and run_file["lambda"] == chosen
    assert all(v == 0 for v in run_file["R"]["test"][0][1:])  # class-IL: no unit of a class not yet seen is read
    rows = (project / "scenarios/metrics/summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4 and any(r.startswith("class,er,") for r in rows)
    for png in ("summary", "task", "class", "matrices_task", "matrices_class"):
        assert (project / "scenarios/plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "| replay, class-balanced |" in (project / "scenarios/report.md").read_text()
    plots = dvc(project, "plots", "show", "--json")
    assert "WARNING" not in plots.stdout + plots.stderr


def test_second_repro_is_a_no_op(project: Path):
    assert changed_stages(project) == set()
    assert ran_stages(dvc(project, "repro", P).stdout) == set()


def test_one_lambda_in_one_scenario_reruns_that_stage_and_the_report_only(project: Path):
    runs = project / "scenarios/runs"
    before = {f: f.read_bytes() for f in runs.rglob("*.json")}
    set_param(project, "scenarios.method.ewc.class.lambda", 1000)
    expected = {f"{P}:check_params", f"{P}:run@0-class-ewc", f"{P}:report"}
    assert changed_stages(project) == expected
    assert ran_stages(dvc(project, "repro", P).stdout) == expected
    moved = {f for f, data in before.items() if f.read_bytes() != data}
    assert moved == {runs / "class/0/ewc.json"}


def test_adding_a_scenario_runs_only_its_stages_and_the_report(project: Path):
    set_param(project, "scenarios.scenarios", ["task", "class", "domain"])
    assert ran_stages(dvc(project, "repro", P).stdout) == {f"{P}:{s}" for s in (
        "check_params", "run@0-domain-none", "run@0-domain-ewc", "run@0-domain-er", "joint@0-domain", "report")}
    assert (project / "scenarios/metrics/headline/domain/er.json").is_file()


def test_a_bad_value_stops_at_check_params_with_every_output_in_place(project: Path):
    runs = {f: f.read_bytes() for f in (project / "scenarios/runs").rglob("*.json")}
    set_param(project, "scenarios.method.er.class.per_class", 0)
    result = dvc(project, "repro", P, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "scenarios.method.er.class.per_class must be an integer >= 1, got 0" in output
    assert ran_stages(output) == {f"{P}:check_params"} and "task 1/" not in output
    assert all(f.read_bytes() == data for f, data in runs.items())  # DVC deleted none of them
    set_param(project, "scenarios.method.er.class.per_class", 10)


def test_a_variant_runs_only_its_own_stages_beside_the_main_runs_and_the_report(project: Path):
    runs = {f: f.read_bytes() for f in (project / "scenarios/runs").rglob("*.json")}
    set_param(project, "scenarios.variants.sgd.scenarios", ["task"])
    set_param(project, "scenarios.variants.sgd.methods", ["ewc"])
    set_param(project, "scenarios.variants.sgd.method", {"ewc": {"task": {"lambda": 10}}})
    expected = {f"{P}:check_params", f"{P}:run_sgd@0-task-ewc", f"{P}:report"}
    assert ran_stages(dvc(project, "repro", P).stdout) == expected
    made = json.loads((project / "scenarios/variants/sgd/task/0/ewc.json").read_text())
    assert made["variant"] == "sgd" and made["train"]["optimizer"]["name"] == "sgd" and made["lambda"] == 10
    assert all(f.read_bytes() == data for f, data in runs.items())  # the main runs did not run again
    full = json.loads((project / "scenarios/metrics/full.json").read_text())
    assert full["variants"]["sgd"]["task"]["paired_to_main"]["ewc"]["seeds"] == 1
    set_param(project, "scenarios.variants.sgd.method.ewc.task.lambda", 20)  # its own λ: its stage and the report
    assert changed_stages(project) == {f"{P}:check_params", f"{P}:run_sgd@0-task-ewc", f"{P}:report"}
