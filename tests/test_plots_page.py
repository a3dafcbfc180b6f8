"""The `dvc plots` page works offline and the interactive plots follow `methods`: checked on the committed files."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from cllab import methods


def test_offline_page_template_is_current_and_loads_nothing_from_the_network(root):
    check = subprocess.run([sys.executable, "scripts/vendor_vega.py", "--check"], cwd=root, capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    page = (root / ".dvc" / "plots" / "offline.html").read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds no CDN script tags then
    assert "<script src=" not in page and "cdn.jsdelivr" not in page
    assert "window.vegaEmbed" in page
    config = (root / ".dvc" / "config").read_text()
    assert "html_template = plots/offline.html" in config


def test_by_method_template_colours_by_label_and_dashes_by_revision(root):
    template = json.loads((root / ".dvc" / "plots" / "by_method.json").read_text())
    text = json.dumps(template)
    for anchor in ("DATA", "X", "Y", "TITLE", "X_LABEL", "Y_LABEL"):
        assert f"<DVC_METRIC_{anchor}>" in text
    line = template["layer"][0]["encoding"]
    assert line["strokeDash"]["field"] == "rev"  # the methods' lines: one dash per revision
    assert line["color"]["field"] == "label" and line["color"]["scale"]["range"] == {"field": "_color"}
    assert template["encoding"]["x"]["axis"]["tickMinStep"] == 1  # integer epochs


def test_every_committed_figure_is_on_the_plots_page(root):
    """`dvc plots show` draws the images every pipeline's `plots:` lists: each PNG committed under a plots/ folder."""
    listed = set()
    for pipeline in ("dvc.yaml", "sweep/dvc.yaml", "sequence/dvc.yaml", "sequence/paper/dvc.yaml",
                     "scenarios/dvc.yaml"):
        base = (root / pipeline).parent
        for entry in yaml.safe_load((root / pipeline).read_text()).get("plots", []):
            if isinstance(entry, str):
                listed.add((base / entry).resolve().relative_to(root).as_posix())
    tracked = subprocess.run(["git", "ls-files", "*.png"], cwd=root, capture_output=True, text=True, check=True)
    figures = {f for f in tracked.stdout.split() if "/plots/" in f"/{f}" and "/ci/" not in f"/{f}"}
    assert figures and figures <= listed, sorted(figures - listed)


def test_interactive_plots_are_templated_and_read_long_form_tables(root):
    pipeline = yaml.safe_load((root / "dvc.yaml").read_text())
    images = [p for p in pipeline["plots"] if isinstance(p, str)]
    charts = [next(iter(p.values())) for p in pipeline["plots"] if isinstance(p, dict)]
    assert images == ["plots/accuracy.png", "plots/forgetting.png", "plots/fisher_heatmap.png"]
    assert pipeline["plots"][:3] == images  # the main figures first
    assert charts and all(c["template"] == "by_method" and c["x"] == "epoch" for c in charts)
    # DVC turns a title into the id of the chart's div and calls vegaEmbed('#<id>', ...): a quote would end that
    # JavaScript string and the chart would silently not render
    titles = [next(iter(p)) for p in pipeline["plots"] if isinstance(p, dict)]
    assert not [t for t in titles if set(t) & set("'\"\\`")]
    for chart in charts:
        (table, column), = chart["y"].items()
        header = (root / table).read_text().splitlines()[0].split(",")
        assert header[:4] == ["epoch", "method", "label", "color"] and column in header
    # the committed table holds the methods of params.yaml, each with the registry's name and colour
    params = yaml.safe_load((root / "params.yaml").read_text())
    import csv

    rows = list(csv.DictReader((root / "plots" / "forgetting.csv").open()))
    assert list(dict.fromkeys(r["method"] for r in rows)) == params["methods"]
    assert all(r["label"] == methods.label(r["method"]) and r["color"] == methods.color(r["method"]) for r in rows)
    assert sorted({int(r["epoch"]) for r in rows}) == list(range(params["train_b"]["epochs"] + 1))


def test_long_form_tables_average_over_seeds_and_read_fine_tuning_without_a_penalty():
    from cllab import plots

    curves = {"ewc": {0: [{"epoch": 0, "acc_a": 0.9, "acc_b": 0.1}, {"epoch": 1, "acc_a": 0.7, "acc_b": 0.8}],
                      1: [{"epoch": 0, "acc_a": 0.8, "acc_b": 0.2}, {"epoch": 1, "acc_a": 0.5, "acc_b": 0.6}]}}
    rows = plots.forgetting_table(curves)
    assert [r["epoch"] for r in rows] == [0, 1] and rows[0]["label"] == methods.label("ewc")
    assert rows[1]["acc_a"] == 0.6 and abs(rows[0]["acc_b"] - 0.15) < 1e-12
    penalised = {"train/loss": {1: 2.0}, "eval/loss": {1: 1.5}, "train/cross_entropy": {1: 1.2},
                 "train/penalty": {1: 0.8}, "eval/cross_entropy": {1: 1.0}, "eval/penalty": {1: 0.5},
                 "eval/accuracy": {1: 0.9}}
    plain = {"train/loss": {1: 0.4}, "eval/loss": {1: 0.3}, "eval/accuracy": {1: 0.95}}  # fine-tuning logs no terms
    ewc, none = plots.training_table({"ewc": [penalised], "none": [plain, plain]})
    assert (ewc["cross_entropy"], ewc["penalty"], ewc["val_penalty"]) == (1.2, 0.8, 0.5)
    assert (none["cross_entropy"], none["val_cross_entropy"], none["penalty"], none["val_penalty"]) == (0.4, 0.3, 0.0, 0.0)
    assert none["color"] == methods.color("none") and none["val_accuracy"] == 0.95
