"""Every committed figure reads: no text drawn over another or cut at the figure's edge, a title that says which
configuration and which interval, and the interactive charts' legends wide enough for their longest label.

The matplotlib figures are made by the stages themselves, in-process, from the committed results (outputs to a
temporary directory); `plots._png` is wrapped to measure each figure's drawn text before it is saved.
"""

from __future__ import annotations

import colorsys
import csv
import importlib
import json
import sys
from pathlib import Path

import matplotlib
import matplotlib.collections
import matplotlib.text
import numpy as np
import pytest
import yaml

from cllab import methods, plots

PIPELINES = ["dvc.yaml", "sweep/dvc.yaml", "sequence/dvc.yaml", "sequence/paper/dvc.yaml", "scenarios/dvc.yaml"]


def drawn_texts(fig: matplotlib.figure.Figure) -> list[tuple[str, matplotlib.transforms.Bbox]]:
    """(text, box in pixels) of every text the figure draws: titles, axis and tick labels, legend entries, notes.
    The box is the text's own (an annotation's leader line is not part of it)."""
    seen: list[tuple[str, matplotlib.transforms.Bbox]] = []
    original = matplotlib.text.Text.draw

    def draw(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            seen.append((self.get_text(), matplotlib.text.Text.get_window_extent(self, renderer)))

    matplotlib.text.Text.draw = draw
    try:
        fig.canvas.draw()
    finally:
        matplotlib.text.Text.draw = original
    return seen


def text_problems(fig: matplotlib.figure.Figure) -> list[str]:
    """Texts outside the figure and pairs of texts that overlap (more than a sliver of half a pixel)."""
    texts = drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    problems = [f"outside the figure: {t!r} at {b.bounds}" for t, b in texts
                if b.x0 < -0.5 or b.y0 < -0.5 or b.x1 > width + 0.5 or b.y1 > height + 0.5]
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > 0.5 and dy > 0.5:
                problems.append(f"overlap: {a!r} and {b!r}")
    return problems


def test_the_text_check_sees_overlapping_and_clipped_text():
    """The control: the measure below finds what it is meant to find."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    ax.set_xticks([0.0, 0.02], ["first tick", "second tick"])  # too close: the labels run into each other
    fig.suptitle("a title far too long to fit into a figure three inches wide")
    problems = text_problems(fig)
    plt.close(fig)
    assert any(p.startswith("overlap: 'first tick' and 'second tick'") for p in problems), problems
    assert any(p.startswith("outside the figure: 'a title far too long") for p in problems), problems


def ambiguous_notes(fig: matplotlib.figure.Figure) -> list[str]:
    """Notes written at a point (annotations: the front's λ) without a leader line that stand nearer to another
    marker than to their own point: a reader would give them to the wrong point."""
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:
        markers = np.array([p for line in ax.lines if line.get_marker() not in (None, "None", "")
                            for p in ax.transData.transform(np.column_stack(line.get_data()))])
        for note in ax.texts:
            if not isinstance(note, matplotlib.text.Annotation) or note.arrow_patch is not None:
                continue
            box = matplotlib.text.Text.get_window_extent(note, renderer)
            own = ax.transData.transform(note.xy)

            def gap(p):
                return np.hypot(max(box.x0 - p[0], 0, p[0] - box.x1), max(box.y0 - p[1], 0, p[1] - box.y1))

            others = [gap(p) for p in markers if np.hypot(*(p - own)) > 0.5]
            if others and min(others) < gap(own):
                out.append(f"{ax.get_title().splitlines()[0]}: {note.get_text()!r}")
    return out


class Figures:
    """What one stage drew: per figure (in order) its title, its text problems and whether it draws an interval."""

    def __init__(self) -> None:
        self.drawn: list[dict] = []

    def capture(self, original):
        def png(fig, dpi):
            fig.set_dpi(dpi)
            title = fig._suptitle.get_text() if fig._suptitle is not None else ""
            title = " ".join(title.split())  # unwrapped
            intervals = any(isinstance(c, (matplotlib.collections.PolyCollection, matplotlib.collections.LineCollection))
                            for ax in fig.axes for c in ax.collections)
            self.drawn.append({"title": title, "problems": text_problems(fig), "intervals": intervals,
                               "panels": [ax.get_title() for ax in fig.axes], "ambiguous": ambiguous_notes(fig)})
            return original(fig, dpi)
        return png


def run_stage(module: str, argv: list[str], root: Path, monkeypatch, tmp_path: Path) -> list[dict]:
    """Run a stage's main in-process in the project (its outputs to tmp_path); the figures it drew."""
    figures = Figures()
    monkeypatch.chdir(root)
    monkeypatch.setattr(plots, "_png", figures.capture(plots._png))
    monkeypatch.setattr(sys, "argv", [module, *argv])
    importlib.import_module(module).main()
    assert figures.drawn, module
    return figures.drawn


def _per_seed_curves(root: Path, dest: Path) -> Path:
    """Per-seed forgetting curves where a fresh clone has none (they are DVC-cached outputs): the committed means over
    seeds (plots/forgetting.csv), seed k moved by 0.01·(k − 2), so that the 95 % bands have a width."""
    from cllab import io

    params = yaml.safe_load((root / "params.yaml").read_text())
    means = list(csv.DictReader((root / "plots" / "forgetting.csv").read_text().splitlines()))
    for k, seed in enumerate(params["seeds"]):
        for method in params["methods"]:
            rows = [{"epoch": int(r["epoch"]), **{c: float(r[c]) + 0.01 * (k - 2) for c in ("acc_a", "acc_b")}}
                    for r in means if r["method"] == method]
            io.save_csv(dest / str(seed) / f"{method}.csv", rows, ["epoch", "acc_a", "acc_b"])
    return dest


@pytest.fixture
def main_figures(root, monkeypatch, tmp_path):
    from cllab import checkpoint

    # the heat map reads a DVC-cached anchor and the curves are DVC-cached too (both absent on a fresh clone): any Ω
    # of the first layer's shape will do, and curves around the committed means; no DVCLive logs (a table, no figure)
    monkeypatch.setattr(checkpoint, "load_importance",
                        lambda path: {"hidden/kernel": np.random.default_rng(0).random((28 * 28, 128))})
    curves = _per_seed_curves(root, tmp_path / "curves")
    return run_stage("stages.plot", ["--out-dir", str(tmp_path / "plots"), "--report", str(tmp_path / "report.md"),
                                     "--curves-dir", str(curves), "--live-dir", str(tmp_path / "no-logs")],
                     root, monkeypatch, tmp_path)


@pytest.fixture
def front_figure(root, monkeypatch, tmp_path):
    return run_stage("stages.front", ["--points", "sweep/points", "--out-csv", str(tmp_path / "front.csv"),
                                      "--out-png", str(tmp_path / "front.png")], root, monkeypatch, tmp_path)


def sequence_figures(root, monkeypatch, tmp_path, configuration: str) -> list[dict]:
    base = "sequence" if configuration == "default" else "sequence/paper"
    overrides = [] if configuration == "default" else ["--overrides", "sequence/paper/params.yaml"]
    return run_stage("stages.sequence_report", [*overrides, "--runs", f"{base}/runs", "--out-dir", str(tmp_path / base)],
                     root, monkeypatch, tmp_path)


@pytest.fixture
def scenario_figures(root, monkeypatch, tmp_path):
    return run_stage("stages.scenario_report", ["--runs", "scenarios/runs", "--anchors", "scenarios/anchors.yaml",
                                                "--out-dir", str(tmp_path / "scenarios")], root, monkeypatch, tmp_path)


def assert_readable(figures: list[dict]) -> None:
    problems = [f"{f['title'][:60]}…: {p}" for f in figures for p in f["problems"]]
    problems += [f"{f['title'][:60]}…: nearer to another point than to its own: {p}" for f in figures
                 for p in f["ambiguous"]]
    assert not problems, "\n".join(problems)
    for f in figures:
        assert "seed" in f["title"], f"the title does not say over how many seeds: {f['title']}"
        if "95 %" in f["title"]:  # an interval promised is an interval drawn
            assert f["intervals"], f"promises a 95 % interval it does not draw: {f['title']}"


def test_the_two_task_figures_have_no_clipped_or_overlapping_text(main_figures):
    assert_readable(main_figures)


def test_the_front_s_lambda_labels_overlap_nothing_and_the_default_panel_comes_first(front_figure, root):
    assert_readable(front_figure)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (front,) = front_figure
    first = front["panels"][0]
    assert plots.optimizer_name(params["train_b"]["optimizer"]["name"]) in first, first
    assert f"{params['model']['hidden_units']:,} hidden units (default)" in first, first
    assert sum("(default)" in panel for panel in front["panels"]) == 1


@pytest.mark.parametrize("configuration", ["default", "paper"])
def test_the_permuted_mnist_figures_have_no_clipped_or_overlapping_text(configuration, root, monkeypatch, tmp_path):
    assert_readable(sequence_figures(root, monkeypatch, tmp_path, configuration))


def test_the_default_and_paper_scale_figures_say_which_configuration_they_show(root, monkeypatch, tmp_path):
    default = [f["title"] for f in sequence_figures(root, monkeypatch, tmp_path / "d", "default")]
    paper = [f["title"] for f in sequence_figures(root, monkeypatch, tmp_path / "p", "paper")]
    assert len(default) == len(paper)
    same = [t for t in default if t in paper]
    assert not same, f"the same title on both configurations' figures: {same}"


def test_the_scenario_figures_have_no_clipped_or_overlapping_text(scenario_figures):
    assert_readable(scenario_figures)


# --- The interactive charts (`dvc plots show`, Vega-Lite template .dvc/plots/by_method.json) ---------------------------


def label_width(text: str, font_px: float) -> float:
    """Width in pixels of `text` in DejaVu Sans (wider than the browsers' usual sans-serif: an upper bound)."""
    return plots._width(text, font_px)


def charts(root: Path) -> list[tuple[str, dict, Path]]:
    """(title, definition, table) of every templated chart of every pipeline's `plots:`."""
    out = []
    for pipeline in PIPELINES:
        plots_section = yaml.safe_load((root / pipeline).read_text()).get("plots", [])
        for entry in plots_section:
            if isinstance(entry, dict):
                (title, chart), = entry.items()
                (table, _), = chart["y"].items()
                out.append((title, chart, (root / pipeline).parent / table))
    return out


def test_the_t_interval_drawn_is_the_one_the_metrics_report():
    from cllab import metrics

    per_seed = np.array([[0.91, 0.52], [0.88, 0.61], [0.95, 0.47], [0.90, 0.55]])
    for column in range(2):
        assert plots.ci95(per_seed)[column] == pytest.approx(metrics.mean_ci95(per_seed[:, column])["ci95"], rel=1e-12)
    assert not plots.ci95(per_seed[:1]).any()  # one seed: no interval
    assert plots.interval_note(1, "bands") == "one seed, no interval"
    assert plots.interval_note(3) == "mean of 3 seeds"
    assert plots.interval_note(3, "bands") == "mean of 3 seeds; bands: 95 % t-interval"


def grey(color: str) -> bool:
    """Whether a colour is a grey (or black/white): too little saturation to tell it from a reference line."""
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[2] < 0.2


def test_the_reference_lines_are_black_and_dashed_in_a_legend_of_their_own(root):
    template = json.loads((root / ".dvc" / "plots" / "by_method.json").read_text())
    palette = template["transform"][2]["calculate"]
    fallback = [c.strip(" '") for c in palette[palette.index("[") + 1:palette.index("]")].split(",")]
    assert len(fallback) == 10 and not [c for c in fallback if grey(c)], fallback
    references = [layer for layer in template["layer"] if layer["transform"] == [{"filter": "datum._reference"}]]
    (reference,) = references
    assert reference["mark"]["color"] == "#000000" and reference["encoding"]["strokeDash"]["field"] == "label"
    assert all(len(dash) > 1 for dash in reference["encoding"]["strokeDash"]["scale"]["range"])  # dashed, not solid
    # a chart without references has an empty reference legend: without a title Vega gives it infinite bounds and
    # draws the whole chart broken (seen in headless Chromium)
    assert reference["encoding"]["strokeDash"]["title"] not in (None, "")
    methods_layers = [layer for layer in template["layer"] if layer is not reference]
    assert all(layer["transform"] == [{"filter": "!datum._reference"}] for layer in methods_layers)
    assert template["resolve"]["legend"]["strokeDash"] == "independent"
    # the committed tables mark their reference rows (the permuted-MNIST average: joint model, each task just learned)
    for table in ("sequence/metrics/by_tasks.csv", "sequence/paper/metrics/by_tasks.csv"):
        rows = list(csv.DictReader((root / table).open()))
        kinds = {r["method"]: r["kind"] for r in rows}
        assert kinds.pop("joint") == "reference" and set(kinds.values()) <= {"method", "reference"}
        assert {r["color"] for r in rows if r["kind"] == "reference"} == {plots.REFERENCE_COLOR}
        assert all(r["color"] == methods.color(r["method"]) for r in rows if r["kind"] == "method")


def test_no_method_is_drawn_in_grey():
    assert not [m.name for m in methods.REGISTRY if grey(m.color)]


def test_every_legend_label_of_the_interactive_charts_fits_its_legend(root):
    template = json.loads((root / ".dvc" / "plots" / "by_method.json").read_text())
    legend = template.get("config", {}).get("legend", {})
    limit, size = legend.get("labelLimit", 160), legend.get("labelFontSize", 10)  # Vega-Lite's defaults
    found = charts(root)
    assert found
    for title, chart, table in found:
        assert chart["template"] == "by_method", title
        labels = {row["label"] for row in csv.DictReader(table.open())}
        widest = max(labels, key=lambda t: label_width(t, size))
        assert label_width(widest, size) <= limit, f"{table}: {widest!r} is cut at labelLimit {limit}"
