"""The method registry (one module per method in cllab/methods/) is the one place a method is defined: validation, Ω,
plots and the pipeline all read it."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from cllab import methods, params
from cllab.schema import num_positive


@pytest.fixture
def good(root) -> dict:
    return params.load(root / "params.yaml")


def test_every_method_has_its_own_name_label_and_colour():
    names = [m.name for m in methods.REGISTRY]
    assert len(set(names)) == len(names) and names[0] == "none"
    labels = [m.label for m in methods.REGISTRY] + [methods.REFERENCES["joint"][0]]
    assert len(set(labels)) == len(labels)
    for experiment in methods.EXPERIMENTS:  # replay (sequence) and er (scenarios) share navy: never in one figure
        colors = [methods.color(m) for m in methods.names(experiment)] + [methods.REFERENCES["joint"][1]]
        assert len(set(colors)) == len(colors), experiment
    assert all(re.fullmatch(r"#[0-9a-f]{6}", m.color) for m in methods.REGISTRY)
    assert methods.label("joint") == "joint (upper bound)" and methods.label("ewc_sampled") == "EWC, sampled F"


# The registry's order: the order it had before it was split into one module per method, methods added since at their
# place; params.yaml's method lists and every error message follow it, so the modules' `order` must give it exactly.
ORDER = ("none", "l2", "l2_latest", "ewc", "ewc_sampled", "ewc_empirical", "ewc_online", "ewc_decay",
                          "ewc_latest", "si", "mas", "replay", "lwf", "agem", "er", "ewc_er")


def test_the_registry_is_every_module_of_the_package_in_its_order(root):
    modules = sorted(p.stem for p in (root / "cllab" / "methods").glob("*.py") if p.stem != "__init__")
    assert sorted(methods.NAMES) == modules
    assert methods.NAMES == ORDER
    assert methods.names("two_task") == ("none", "l2", "ewc", "ewc_sampled", "ewc_empirical", "si", "mas")
    assert methods.names("scenarios") == ("none", "l2", "ewc", "ewc_sampled", "ewc_empirical", "ewc_online", "si",
                                          "mas", "lwf", "agem", "er", "ewc_er")
    for method in methods.REGISTRY:
        module = sys.modules[f"cllab.methods.{method.name}"]
        assert module.METHOD is method and module.__doc__, method.name  # each says what the method is


def test_the_registry_imports_no_tensorflow(root):
    """Params validation imports every method module: none may pull in TensorFlow (seconds instead of milliseconds)."""
    code = "import sys, cllab.params; print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "[]", run.stderr


def _package(tmp_path, monkeypatch, name: str, modules: dict[str, str]) -> tuple[list[str], str]:
    """A throw-away package of method modules (name: source) on sys.path, for `methods.discover`."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return [str(package)], name


def test_a_module_that_is_not_a_method_stops_the_registry_naming_it(tmp_path, monkeypatch):
    method = 'from cllab.methods import Method\nMETHOD = Method({name!r}, "{name}", "#123456", omega=None, order={order})\n'
    found = methods.discover(*_package(tmp_path, monkeypatch, "fine", {
        "b_first": method.format(name="b_first", order=1), "a_second": method.format(name="a_second", order=2.5)}))
    assert [m.name for m in found] == ["b_first", "a_second"]  # by order, not by file name
    for package, modules, message in [
        ("helper", {"helper": "X = 1\n"}, r"helper/helper\.py: defines no METHOD = Method\(\.\.\.\)"),
        ("renamed", {"ewc2": method.format(name="ewc", order=1)},
         r"renamed/ewc2\.py: METHOD\.name is 'ewc', expected 'ewc2'"),
        ("tied", {"one": method.format(name="one", order=3), "two": method.format(name="two", order=3)},
         r"tied: methods one and two share order 3 \(give each its own place\)"),
        ("unordered", {"one": method.format(name="one", order="float('nan')")},
         r"unordered/one\.py: METHOD\.order must be a finite number, got nan"),
    ]:
        with pytest.raises(ValueError, match=message):
            methods.discover(*_package(tmp_path, monkeypatch, package, modules))


def test_every_omega_names_a_function_of_cllab_importance():
    from cllab import importance

    for method in methods.REGISTRY:
        if method.omega is not None:
            assert callable(importance.omega_function(method.omega)), method.name
    with pytest.raises(ValueError, match="no Ω function 'fisher_diagonal'"):
        importance.omega_function("fisher_diagonal")  # a function, but not an Ω function


def test_params_schema_follows_the_registry(good):
    schema = params.schema()
    two_task = methods.names("two_task")
    assert set(schema["train_b"]) - {"epochs", "batch_size", "optimizer"} == set(two_task)
    assert set(schema["importance"]) == {methods.get(m).settings for m in two_task if methods.get(m).settings}
    assert set(good["methods"]) <= set(two_task)
    assert set(methods.names("sequence")) - set(two_task) == {
        "ewc_online", "ewc_decay", "ewc_latest", "l2_latest", "replay"}


def test_sequence_only_methods_are_not_accepted_by_the_two_task_study(good):
    config = copy.deepcopy(good)
    config["methods"] = [*good["methods"], "replay"]
    with pytest.raises(params.ParamsError, match="methods item 7 is 'replay', expected one of none, l2"):
        params.validate(config)
    with pytest.raises(ValueError, match="unknown experiment 'three_task'"):
        methods.names("three_task")
    assert all(m.carry in methods.CARRIES for m in methods.REGISTRY)


def test_a_method_added_to_the_registry_is_validated_without_touching_params_py(good, monkeypatch):
    rwalk = methods.Method("rwalk", "RWalk", "#e377c2", omega="omega_ones", settings="rwalk",
                           settings_schema={"alpha": num_positive()}, order=105)
    registry = (*methods.REGISTRY, rwalk)
    monkeypatch.setattr(methods, "REGISTRY", registry)
    monkeypatch.setattr(methods, "BY_NAME", {m.name: m for m in registry})
    monkeypatch.setattr(methods, "NAMES", tuple(m.name for m in registry))
    config = copy.deepcopy(good)
    config["methods"] = [*good["methods"], "rwalk"]
    with pytest.raises(params.ParamsError, match="missing key importance.rwalk"):
        params.validate(config)
    config["importance"]["rwalk"] = {"alpha": 0}
    config["train_b"]["rwalk"] = {"lambda": 1.0}
    with pytest.raises(params.ParamsError, match="importance.rwalk.alpha must be a finite number > 0, got 0"):
        params.validate(config)
    config["importance"]["rwalk"] = {"alpha": 0.5}
    params.validate(config)
    assert methods.settings_for("rwalk", config["importance"]) == {"alpha": 0.5}
    assert methods.label("rwalk") == "RWalk" and methods.color("rwalk") == "#e377c2"


def test_fixed_settings_override_params(good):
    assert methods.settings_for("ewc", good["importance"])["kind"] == good["importance"]["fisher"]["kind"]
    changed = copy.deepcopy(good["importance"])
    changed["fisher"]["kind"] = "exact"
    assert methods.settings_for("ewc_sampled", changed)["kind"] == "sampled"
    assert methods.settings_for("ewc_empirical", changed)["kind"] == "empirical"
    assert methods.settings_for("l2", changed) == {} and methods.settings_for("none", changed) == {}
    with pytest.raises(ValueError, match="unknown method 'rwalk' \\(known: none, l2, l2_latest, ewc"):
        methods.get("rwalk")


def test_methods_sharing_settings_must_agree_on_them(monkeypatch):
    odd = dataclasses.replace(methods.BY_NAME["ewc_sampled"], settings_schema={"kind": num_positive()})
    monkeypatch.setattr(methods, "REGISTRY", (*methods.REGISTRY, dataclasses.replace(odd, name="odd")))
    with pytest.raises(ValueError, match="methods sharing importance.fisher declare different settings"):
        methods.settings_schema()


def test_each_method_makes_its_anchor_in_its_own_train_b_stage(root):
    """A method's anchor (θ_A with its Ω) is an output of its own train_b stage, made from θ_A: no stage makes the
    anchors of several methods, which a new method would rerun (and with it every method's anchor)."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]

    def paths(entries):
        return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]

    train_b = pipeline["train_b"]
    assert "models/${item.seed}/anchors/${item.method}.npz" in paths(train_b["outs"])
    assert {"models/${item.seed}/theta_a.npz", "cllab/methods/${item.method}.py"} <= set(train_b["deps"])
    assert "--theta-a models/${item.seed}/theta_a.npz" in train_b["cmd"]
    for name, stage in pipeline.items():
        made = [p for p in paths(stage.get("outs", [])) if "anchors" in p]
        assert made in ([], ["models/${item.seed}/anchors/${item.method}.npz"]), name


def test_pipeline_files_name_no_method(root):
    """dvc.yaml and the stage scripts take the methods from params.yaml and cllab/methods/, never by name."""
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    text = yaml.safe_dump(pipeline)  # comments dropped
    for name in methods.NAMES:
        if name != "none":
            assert not re.search(rf"\b{name}\b", text), name
    for script in [*sorted((root / "stages").glob("*.py")), root / "cllab" / "plots.py"]:
        source = script.read_text()
        for name in methods.NAMES:
            if name not in ("none", "l2"):  # l2 is evaluate's paired baseline, none the plots' reference
                assert not re.search(rf"[\"']{name}[\"']|\.startswith\([\"']{name}", source), (script.name, name)


def test_each_method_gets_the_importance_its_paper_defines():
    import keras

    from cllab import importance, model

    keras.utils.set_random_seed(0)
    net = model.build_model(model.ModelConfig(hidden_units=4, dropout=0.0, input_shape=(2, 2)))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2, 2)).astype(np.float32), rng.integers(0, 5, size=8)
    theta = model.get_weights(net)
    omega = {k: rng.uniform(size=v.shape) for k, v in theta.items()}
    start = {k: v - 0.5 for k, v in theta.items()}
    source = importance.Source(net, x, y, path_integral=omega, start=start)
    settings = {"fisher": {"kind": "exact", "num_examples": "all", "batch_size": 1024}, "si": {"xi": 0.1},
                "mas": {"num_examples": "all", "batch_size": 1024}}

    def of(method, kind="exact"):
        config = copy.deepcopy(settings)
        config["fisher"]["kind"] = kind
        return importance.method_importance(method, source, methods.settings_for(method, config))

    assert of("none") is None
    assert all(np.all(v == 1) for v in of("l2").values())
    for method, kind in (("ewc", "exact"), ("ewc_sampled", "sampled"), ("ewc_empirical", "empirical")):
        want = importance.fisher_diagonal(net, x, kind, labels=y)
        np.testing.assert_array_equal(of(method)["hidden/kernel"], want["hidden/kernel"])
    np.testing.assert_array_equal(of("ewc", "empirical")["logits/bias"], of("ewc_empirical")["logits/bias"])
    np.testing.assert_allclose(of("si")["logits/bias"], omega["logits/bias"] / (0.25 + 0.1), rtol=1e-6)
    np.testing.assert_array_equal(of("mas")["hidden/bias"], importance.mas_importance(net, x)["hidden/bias"])
    assert of("lwf") is None  # distillation, not a penalty on the weights
    with pytest.raises(ValueError, match="unknown method 'rwalk'"):
        of("rwalk")


def test_a_method_module_can_bring_its_own_omega_function(tmp_path, monkeypatch):
    """A new penalty need not touch cllab/importance.py: its module defines its Ω function and names it in METHOD."""
    from cllab import importance, model

    source_code = '''"""Half of L2 per unit of alpha: a made-up Ω to show where a method's own function lives."""
import numpy as np
from cllab.methods import Method
from cllab.schema import num_positive


def omega_scaled(source, settings):
    return {name: np.full_like(w, 0.5 * settings["alpha"]) for name, w in source.theta().items()}


METHOD = Method("scaled", "scaled L2", "#123456", omega=omega_scaled, settings="scaled",
                settings_schema={"alpha": num_positive()}, order=25)
'''
    (scaled,) = methods.discover(*_package(tmp_path, monkeypatch, "own_omega", {"scaled": source_code}))
    registry = (*methods.REGISTRY, scaled)
    monkeypatch.setattr(methods, "REGISTRY", registry)
    monkeypatch.setattr(methods, "BY_NAME", {m.name: m for m in registry})
    assert importance.omega_function(scaled.omega) is scaled.omega
    net = model.build_model(model.ModelConfig(hidden_units=3, dropout=0.0, input_shape=(2, 2)))
    source = importance.Source(net, np.zeros((4, 2, 2)), np.zeros(4, int))
    omega = importance.method_importance("scaled", source, methods.settings_for("scaled", {"scaled": {"alpha": 4.0}}))
    assert set(omega) == set(model.weight_names(net))
    assert all(np.all(values == 2.0) for values in omega.values())
    for bad in ("fisher_diagonal", "omega_nothing", 3):
        with pytest.raises(ValueError, match="cllab.importance has no Ω function"):
            importance.omega_function(bad)
