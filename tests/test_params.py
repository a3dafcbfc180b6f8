"""Bad params fail before any work with one line naming the key and the value."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from cllab import params, seqparams


@pytest.fixture(scope="module")
def good(root) -> dict:
    return params.load(root / "params.yaml")


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("train_b", "ewc", "lambda"), -1, "train_b.ewc.lambda must be a finite number >= 0, got -1"),
        (("train_b", "l2", "lambda"), "big", "train_b.l2.lambda must be a finite number >= 0, got 'big'"),
        (("train_a", "epochs"), 0, "train_a.epochs must be an integer >= 1, got 0"),
        (("train_joint", "batch_size"), 0, "train_joint.batch_size must be an integer >= 1, got 0"),
        (("train_b", "batch_size"), 12.5, "train_b.batch_size must be an integer >= 1, got 12.5"),
        (("importance", "fisher", "kind"), "diagonal",
         "importance.fisher.kind must be one of exact, sampled, empirical, got 'diagonal'"),
        (("train_b", "optimizer", "name"), "rmsprop", "train_b.optimizer.name must be one of adam, sgd, got 'rmsprop'"),
        (("train_b", "optimizer", "learning_rate"), 0, "train_b.optimizer.learning_rate must be a finite number > 0"),
        (("importance", "fisher", "num_examples"), 0,
         "importance.fisher.num_examples must be 'all' or an integer >= 1, got 0"),
        (("prepare", "val_fraction"), 1.5, "prepare.val_fraction must be a number strictly between 0 and 1, got 1.5"),
        (("train_b", "none", "lambda"), 3, "train_b.none.lambda must be 0 (fine-tuning has no penalty), got 3"),
        (("runtime", "threads"), True, "runtime.threads must be an integer >= 1, got True"),
        (("importance", "si", "xi"), 0, "importance.si.xi must be a finite number > 0, got 0"),
        (("importance", "mas", "num_examples"), -5, "importance.mas.num_examples must be 'all' or an integer >= 1, got -5"),
        (("methods",), ["none", "rwalk"], "methods item 1 is 'rwalk', expected one of none, l2, ewc"),
        (("methods",), ["l2", "ewc", "l2"], "methods 'l2' appears twice"),
        (("seeds",), [0, -1], "seeds item 1 is -1, expected an integer >= 0"),
    ],
)
def test_bad_value_is_named_with_key_and_value(good, path, value, message):
    bad = copy.deepcopy(good)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(params.ParamsError) as err:
        params.validate(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_regularizer_or_key_is_rejected(good):
    bad = copy.deepcopy(good)
    bad["train_b"]["lwf"] = {"lambda": 1.0}
    with pytest.raises(params.ParamsError, match="unknown key train_b.lwf"):
        params.validate(bad)
    bad = copy.deepcopy(good)
    bad["methods"] = []
    with pytest.raises(params.ParamsError, match=r"methods must be a non-empty list without repeats, .*got \[\]"):
        params.validate(bad)
    bad = copy.deepcopy(good)
    bad["seeds"] = [0, 0]
    with pytest.raises(params.ParamsError, match=r"seeds 0 appears twice"):
        params.validate(bad)
    bad = copy.deepcopy(good)
    del bad["importance"]["fisher"]["kind"]
    with pytest.raises(params.ParamsError, match="missing key importance.fisher.kind"):
        params.validate(bad)


def test_committed_params_are_valid(root):
    seqparams.validate(yaml.safe_load((root / "params.yaml").read_text()))  # the two-task keys, then the sequence's


@pytest.mark.parametrize("stage,args", [
    ("train_b", ["--seed", "0", "--method", "ewc", "--theta-a", "models/0/theta_a.npz", "--anchor", "models/0/anchors/ewc.npz",
                 "--out", "models/0/theta_b/ewc.npz", "--curve", "c.csv", "--live-dir", "live", "--eval", "e.json"]),
    ("train", ["--task", "a", "--seed", "0", "--out", "models/0/theta_a.npz", "--live-dir", "live", "--eval", "e.json"]),
    ("evaluate", []),
    ("prepare", ["--out-dir", "data/prepared"]),
])
def test_stage_with_bad_params_exits_1_with_one_line_and_writes_nothing(root, tmp_path, good, stage, args):
    bad = copy.deepcopy(good)
    bad["train_b"]["ewc"]["lambda"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == ["error: params.yaml: train_b.ewc.lambda must be a finite number >= 0, got -1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_sweep_points_and_optimizers_are_validated(good):
    bad = copy.deepcopy(good)
    bad["sweep"]["points"].append({"method": "lwf", "lambda": 1})
    with pytest.raises(params.ParamsError, match="sweep.points must be a non-empty list of {method: one of none"):
        params.validate(bad)
    bad = copy.deepcopy(good)
    bad["sweep"]["optimizers"] = [{"name": "sgd", "learning_rate": -1}]
    with pytest.raises(params.ParamsError, match="sweep.optimizers must be a non-empty list of {name: adam|sgd"):
        params.validate(bad)


def test_params_yaml_is_in_the_layout_dvc_exp_run_writes_back(root, tmp_path):
    """`dvc exp run -S key=value` rewrites params.yaml with DVC's own YAML writer: a value set to what it already is
    must leave the file byte-identical, and a real change must touch only its own line."""
    from dvc.utils.hydra import apply_overrides

    original = (root / "params.yaml").read_text()
    current = yaml.safe_load(original)
    rewritten = tmp_path / "params.yaml"
    rewritten.write_text(original)
    seeds, strength = current["seeds"], current["train_b"]["ewc"]["lambda"]
    apply_overrides(str(rewritten), [f"seeds=[{','.join(map(str, seeds))}]", f"train_b.ewc.lambda={strength}"])
    assert rewritten.read_text() == original
    apply_overrides(str(rewritten), [f"train_b.ewc.lambda={strength + 1}"])
    changed = [(a, b) for a, b in zip(original.splitlines(), rewritten.read_text().splitlines()) if a != b]
    assert changed == [(f"  ewc: {{lambda: {strength}}}", f"  ewc: {{lambda: {strength + 1}}}")]
    assert len(rewritten.read_text().splitlines()) == len(original.splitlines())


def test_a_missing_or_malformed_params_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(params.ParamsError, match=r"nope.yaml: not found \(run from the project root\)$"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seeds: [0, 1\nmethods: [none]\n")
    with pytest.raises(params.ParamsError, match=r"params.yaml: not valid YAML at line \d+$"):
        params.load(bad)


def _with(root, tmp_path, dotted: str, value) -> "Path":
    """A copy of params.yaml with one key set (a missing parent is an error in the test, not the code)."""
    loaded = yaml.safe_load((root / "params.yaml").read_text())
    node = loaded
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(loaded, sort_keys=False))
    return path


def _cllab_check(root, params_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cllab", "check", "--params", str(params_path)], cwd=root,
                          capture_output=True, text=True, timeout=60)


def test_cllab_check_passes_the_committed_params_for_every_pipeline(root):
    done = _cllab_check(root, root / "params.yaml")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 4
    assert "sequence/paper/params.yaml" in done.stdout and "scenarios/dvc.yaml" in done.stdout


@pytest.mark.parametrize("dotted,value", [
    ("seeds", 5), ("seeds", "abc"), ("methods", "ewc"), ("sweep.widths", 128), ("sequence.seeds", 3),
    ("sequence.methods", "ewc"), ("prepare.raw_dir", "/tmp/raw"), ("prepare.raw_dir", "../raw"),
])
def test_cllab_check_names_a_scalar_where_dvc_expands_a_list_and_an_outside_raw_dir(root, tmp_path, dotted, value):
    """DVC expands these lists into stage names before any stage runs and then fails with no key named (a scalar);
    the raw directory is a DVC output and must be inside the project."""
    done = _cllab_check(root, _with(root, tmp_path, dotted, value))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"error: params.yaml: {dotted} ") and len(done.stderr.splitlines()) == 1


def test_check_params_writes_its_marker_only_when_every_value_is_valid(root, tmp_path):
    """The marker every stage depends on: constant bytes on success (the committed ones), untouched on failure, also
    for a bad value of the paper configuration (every pipeline's check reads both files)."""
    committed = (root / "params.ok").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_bytes((root / "params.yaml").read_bytes())
    (work / "sequence" / "paper").mkdir(parents=True)
    (work / "sequence" / "paper" / "params.yaml").write_bytes((root / "sequence/paper/params.yaml").read_bytes())
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    check = [sys.executable, "-m", "stages.check_params", "--out", "params.ok"]
    done = subprocess.run(check, cwd=work, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert (work / "params.ok").read_bytes() == committed
    (work / "params.ok").write_bytes(b"kept\n")
    _with(root, work, "train_b.ewc.lambda", -1)
    done = subprocess.run(check, cwd=work, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and "train_b.ewc.lambda" in done.stderr
    assert (work / "params.ok").read_bytes() == b"kept\n"
    _with(root, work, "train_b.ewc.lambda", 100)
    (work / "sequence" / "paper" / "params.yaml").write_text("sequence:\n  methods: [none]\n")
    done = subprocess.run(check, cwd=work, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "sequence.seeds" in done.stderr
    assert (work / "params.ok").read_bytes() == b"kept\n"


@pytest.mark.parametrize("dotted,value,message", [
    ("sweep.points", [{"method": "none", "lambda": 0}, {"method": "none", "lambda": 0.0}],
     "sweep.points item 1 repeats item 0"),  # one output file, {method}_{λ:g}_{optimizer}.json
    ("sweep.points", [{"method": "none", "lambda": 1}], "sweep.points item 0 (none): lambda must be 0"),
    ("sweep.optimizers", [{"name": "sgd", "learning_rate": 0.02}, {"name": "sgd", "learning_rate": 0.1}],
     "sweep.optimizers item 1 repeats item 0"),  # one name: the second would overwrite the first's files
])
def test_the_sweep_rejects_points_and_optimizers_that_would_share_an_output_file(root, tmp_path, dotted, value,
                                                                                  message):
    done = _cllab_check(root, _with(root, tmp_path, dotted, value))
    assert done.returncode == 1 and done.stderr.startswith(f"error: params.yaml: {message}"), done.stderr
