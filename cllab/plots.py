"""Matplotlib figures, rendered to byte-stable PNG bytes (no creation date, no software version).

Every figure has the same look: the title above all panels (wrapped to the figure's width), the legend below the
axes, and a constrained layout that makes room for titles, tick labels, colour bars and legends, so that nothing is
clipped or drawn over the data at any figure size. Names and colours of the methods come from cllab.methods; the
references (joint model, chance, a task just learned) are black, dashed or dotted, never a method's colour. Every
title says what its numbers are over the seeds: one seed, or their mean and, where drawn, the 95 % t-interval of the
mean (cllab.metrics.mean_ci95) as error bars or bands; the permuted-MNIST and scenario figures also say which
configuration (optimizer, layers × units) they show (tests/test_figures.py checks all this on the committed results).
"""

from __future__ import annotations

import io
import math
import re
from typing import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402

from cllab import methods, metrics  # noqa: E402

# Font sizes in points, shared by every figure.
TITLE_SIZE = 11
PANEL_TITLE_SIZE = 8.5
LABEL_SIZE = 9
TICK_SIZE = 8
LEGEND_SIZE = 8
NOTE_SIZE = 6.5  # numbers written at bars and at points
NOTE_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"}  # a reference line may pass behind
STYLE = {
    "figure.titlesize": TITLE_SIZE, "axes.titlesize": PANEL_TITLE_SIZE, "axes.labelsize": LABEL_SIZE,
    "xtick.labelsize": TICK_SIZE, "ytick.labelsize": TICK_SIZE, "legend.fontsize": LEGEND_SIZE,
    "figure.constrained_layout.h_pad": 0.06, "figure.constrained_layout.w_pad": 0.06,
}

_TEXT = TextToPath()


def _width(text: str, size: float) -> float:
    """Width of one line of text in points."""
    return _TEXT.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0]


def _greedy(tokens: Sequence[str], size: float, width: float) -> list[str]:
    lines: list[str] = []
    for token in tokens:
        if lines and _width(f"{lines[-1]} {token}", size) <= width:
            lines[-1] += f" {token}"
        else:
            lines.append(token)
    return lines


def _wrap(text: str, size: float, width: float, at_commas: bool = False) -> str:
    """`text` broken into as few lines as fit `width` points at font `size`, the lines balanced in length.
    at_commas: break after ", " before breaking between other words (method names: 'EWC,' / 'empirical F')."""
    if _width(text, size) <= width:
        return text
    tokens = re.split(r"(?<=,) ", text) if at_commas else text.split(" ")
    if at_commas and any(_width(t, size) > width for t in tokens):
        tokens = text.split(" ")
    lines = _greedy(tokens, size, width)
    best = lines
    trial = width
    while len(lines) > 1:  # shrink the width while the line count stays: balanced lines
        trial *= 0.95
        lines = _greedy(tokens, size, trial)
        if len(lines) != len(best) or any(_width(line, size) > trial for line in lines):
            break
        best = lines
    return "\n".join(best)


def _figure(
    size: tuple[float, float], ncols: int = 1, layout: str = "constrained", **kwargs
) -> tuple[plt.Figure, np.ndarray]:
    fig, axes = plt.subplots(1, ncols, figsize=size, layout=layout, squeeze=False, **kwargs)
    return fig, axes[0]


def _title(fig: plt.Figure, text: str) -> None:
    """The figure's title above all panels, wrapped to the figure's width."""
    fig.suptitle(_wrap(text, TITLE_SIZE, 0.94 * fig.get_figwidth() * 72))


def _legend_below(fig: plt.Figure, handles: Sequence, labels: Sequence[str]) -> None:
    """One legend for the figure, centred below the axes, in as many columns as fit the figure's width."""
    column = max(_width(t, LEGEND_SIZE) for t in labels) + 4.5 * LEGEND_SIZE  # handle, padding and spacing
    ncol = max(1, min(len(labels), int(0.95 * fig.get_figwidth() * 72 // column)))
    rows = math.ceil(len(labels) / ncol)
    ncol = math.ceil(len(labels) / rows)  # the same rows, balanced columns
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


def _png(fig: plt.Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _err(row: Mapping, column: str) -> float:
    value = row[f"{column}_ci95"]
    return 0.0 if value is None else value  # None: a single seed, no interval


# References are drawn in black (dashed, dotted): no method has black, so none can be taken for one.
REFERENCE_COLOR = "#000000"
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}


def optimizer_name(name: str) -> str:
    """An optimizer as written in prose: 'sgd' → 'SGD', 'adam' → 'Adam'."""
    return OPTIMIZER_NAMES.get(name, name)


def configuration(model: Mapping, train: Mapping) -> str:
    """The configuration a figure shows, from its params: e.g. 'SGD, 2×400 units' or 'Adam, 2×1,000 units'."""
    return (f"{optimizer_name(train['optimizer']['name'])}, {model.get('hidden_layers', 1)}×{model['hidden_units']:,} "
            f"units")


def interval_note(seeds: int, drawn: str | None = None) -> str:
    """What a figure's numbers are over seeds: 'one seed, no interval', 'mean of 3 seeds' (no interval drawn) or
    'mean of 3 seeds; bands: 95 % t-interval' (drawn: what shows the interval, e.g. 'bands', 'error bars')."""
    if seeds == 1:
        return "one seed, no interval"
    return f"mean of {seeds} seeds" + (f"; {drawn}: 95 % t-interval" if drawn else "")


def ci95(values: np.ndarray) -> np.ndarray:
    """Half-width of the 95 % t-interval of the mean over axis 0 ([seeds, ...] → [...]; zeros for one seed):
    cllab.metrics.mean_ci95 element by element."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    halves = [metrics.mean_ci95(flat[:, k])["ci95"] or 0.0 for k in range(flat.shape[1])]
    return np.asarray(halves, dtype=np.float64).reshape(values.shape[1:])


@plt.rc_context(STYLE)
def accuracy_bars(rows: Sequence[Mapping], size: tuple[float, float], dpi: int) -> bytes:
    """Grouped bars: mean test accuracy on A and on B after training B per method, 95 % intervals over seeds as
    error bars; the joint model as dashed reference lines."""
    trained = [r for r in rows if r["method"] != "joint"]
    joint = next(r for r in rows if r["method"] == "joint")
    fig, (ax,) = _figure(size)
    width = 0.38
    grey = REFERENCE_COLOR
    for i, r in enumerate(trained):
        color = methods.color(r["method"])
        for dx, column, style in ((-width / 2, "acc_a_after_b", {"alpha": 0.55, "hatch": "//"}),
                                  (width / 2, "acc_b_after_b", {})):
            value = r[f"{column}_mean"]
            error = {"yerr": _err(r, column), "capsize": 3} if _err(r, column) else {}  # none from a single seed
            ax.bar(i + dx, value, width, color=color, edgecolor=color, **error, **style)
            ax.text(i + dx, value + _err(r, column) + 0.01, f"{value:.2f}", ha="center", va="bottom",
                    fontsize=NOTE_SIZE, zorder=4, bbox=NOTE_BOX)
    ax.axhline(joint["acc_a_after_b_mean"], color=grey, ls="--", lw=1, zorder=1)
    ax.axhline(joint["acc_b_after_b_mean"], color=grey, ls=":", lw=1, zorder=1)
    handles = [
        Patch(facecolor="#dddddd", edgecolor="#555555", hatch="//", label="task A (old task) after training B"),
        Patch(facecolor="#555555", edgecolor="#555555", label="task B (new task) after training B"),
        Line2D([], [], color=grey, ls="--", lw=1, label=f"joint model on A ({joint['acc_a_after_b_mean']:.3f})"),
        Line2D([], [], color=grey, ls=":", lw=1, label=f"joint model on B ({joint['acc_b_after_b_mean']:.3f})"),
    ]
    # tick labels wrapped to the width of one group of bars (the axes take about the figure's width less 1 inch)
    slot = 0.9 * (size[0] - 1.0) * 72 / max(len(trained), 1)
    ax.set_xticks(range(len(trained)), [_wrap(methods.label(r["method"]), TICK_SIZE, slot, at_commas=True)
                                        for r in trained])
    ax.set_xlim(-0.6, len(trained) - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_xlabel("penalty while training task B")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _title(fig, "Split MNIST: without a penalty task A is forgotten; the penalties keep most of it "
                f"({interval_note(int(joint['seeds']), 'error bars')})")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)


def mean_curves(curves: Mapping[int, Sequence[Mapping[str, float]]], column: str) -> tuple[list[float], np.ndarray]:
    """Epochs and the [seeds, epochs] matrix of one column of per-seed curves."""
    seeds = list(curves)
    epochs = [r["epoch"] for r in curves[seeds[0]]]
    return epochs, np.array([[r[column] for r in curves[s]] for s in seeds])


# --- Long-form tables for `dvc plots` (template by_method): one row per (epoch, method), means over seeds -------------

TABLE_KEYS = ["epoch", "method", "label", "color"]
# column of plots/training_b.csv -> the DVCLive metric it averages
TRAINING_TERMS = {"cross_entropy": "train/cross_entropy", "penalty": "train/penalty",
                  "val_cross_entropy": "eval/cross_entropy", "val_penalty": "eval/penalty", "val_accuracy": "eval/accuracy"}


def _keys(method: str, epoch: int) -> dict:
    return {"epoch": epoch, "method": method, "label": methods.label(method), "color": methods.color(method)}


def forgetting_table(curves: Mapping[str, Mapping[int, Sequence[Mapping[str, float]]]]) -> list[dict]:
    """Rows (epoch, method, label, colour, acc_a, acc_b) of the per-seed forgetting curves {method: {seed: rows}},
    the accuracies averaged over seeds; epoch 0 is the model training started from."""
    table = []
    for method, per_seed in curves.items():
        epochs, acc_a = mean_curves(per_seed, "acc_a")
        acc_b = mean_curves(per_seed, "acc_b")[1]
        table += [{**_keys(method, int(e)), "acc_a": float(a), "acc_b": float(b)}
                  for e, a, b in zip(epochs, acc_a.mean(axis=0), acc_b.mean(axis=0))]
    return table


def training_table(logs: Mapping[str, Sequence[Mapping[str, Mapping[int, float]]]]) -> list[dict]:
    """Rows (epoch, method, label, colour, TRAINING_TERMS...) from DVCLive logs {method: [one run per seed:
    {metric name: {step: value}}]}, averaged over seeds. A run without a penalty (fine-tuning) logs no
    cross-entropy or penalty: its cross-entropy is its loss and its penalty 0."""
    table = []
    for method, runs in logs.items():
        def term(run: Mapping[str, Mapping[int, float]], name: str) -> Mapping[int, float]:
            if run.get(name):
                return run[name]
            if name.endswith("/cross_entropy"):
                return run[name.replace("cross_entropy", "loss")]
            return {step: 0.0 for step in run["train/loss"]}  # a penalty that is not there

        for epoch in sorted(runs[0]["train/loss"]):
            values = {column: sum(term(run, name)[epoch] for run in runs) / len(runs)
                      for column, name in TRAINING_TERMS.items()}
            table.append({**_keys(method, epoch), **values})
    return table


@plt.rc_context(STYLE)
def forgetting_curves(
    curves: Mapping[str, Mapping[int, Sequence[Mapping[str, float]]]], joint: Mapping, size: tuple[float, float], dpi: int
) -> bytes:
    """Mean test accuracy on A (solid) and B (dashed) after each epoch of training B, one colour per method;
    the band on A is the 95 % t-interval of the mean over seeds."""
    fig, (ax,) = _figure(size)
    grey = REFERENCE_COLOR
    handles = []
    seeds = 1
    for method, per_seed in curves.items():
        color = methods.color(method)
        epochs, acc_a = mean_curves(per_seed, "acc_a")
        _, acc_b = mean_curves(per_seed, "acc_b")
        seeds = len(acc_a)
        (line,) = ax.plot(epochs, acc_a.mean(axis=0), color=color, marker="o", ms=4, label=methods.label(method))
        handles.append(line)
        if seeds > 1:
            mean, half = acc_a.mean(axis=0), ci95(acc_a)
            ax.fill_between(epochs, mean - half, mean + half, color=color, alpha=0.15, lw=0)
        ax.plot(epochs, acc_b.mean(axis=0), color=color, ls="--", alpha=0.6, lw=1)
    ax.axhline(joint["acc_a_after_b_mean"], color=grey, ls=":", lw=1)
    handles += [
        Line2D([], [], color="#555555", marker="o", ms=4,
               label="solid: accuracy on A" + (" (band: 95 % t-interval)" if seeds > 1 else "")),
        Line2D([], [], color="#555555", ls="--", lw=1, alpha=0.6, label="dashed: accuracy on B"),
        Line2D([], [], color=grey, ls=":", lw=1, label=f"joint model on A ({joint['acc_a_after_b_mean']:.3f})"),
    ]
    ax.set_xlabel("epochs of training on task B (0 = θ_A)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    _title(fig, "Accuracy on task A while training task B: without a penalty most of A is lost in one epoch "
                f"({interval_note(seeds, 'bands')})")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)


@plt.rc_context(STYLE)
def importance_heatmap(first_layer: np.ndarray, title: str, size: tuple[float, float], dpi: int) -> bytes:
    """Importance of each input pixel: the first Dense kernel's importance [784, hidden] summed over hidden units."""
    per_pixel = first_layer.sum(axis=1).reshape(28, 28)
    # "compressed": the constrained layout for fixed-aspect axes; it makes the colour bar as tall as the image
    fig, (ax,) = _figure((size[1] * 1.1, size[1]), layout="compressed")
    image = ax.imshow(per_pixel, cmap="magma")
    fig.colorbar(image, ax=ax, label="Σ over hidden units of Ω (per input pixel)")
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    _title(fig, title)
    return _png(fig, dpi)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _crosses(box: tuple[float, float, float, float], p: np.ndarray, q: np.ndarray) -> bool:
    """Whether the segment p–q passes through the box (sampled: enough for boxes of a few points)."""
    for t in np.linspace(0.0, 1.0, 25):
        x, y = p + t * (q - p)
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return True
    return False


def lambda_text(value: float) -> str:
    """λ as written at a point: 0.03, 3000, and from 10⁴ on as a power of ten (3·10⁴, 10⁶): short, so that a crowd of
    points still has room for its labels."""
    if value < 1e4:
        return f"{value:g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    power = "10" + str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return power if mantissa == "1" else f"{mantissa}·{power}"


def _segments_cross(p: np.ndarray, q: np.ndarray, r: np.ndarray, s: np.ndarray) -> bool:
    """Whether the segments p–q and r–s cross (touching ends do not count)."""
    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return side(p, q, r) * side(p, q, s) < 0 and side(r, s, p) * side(r, s, q) < 0


def _gap(box: tuple[float, float, float, float], point: np.ndarray) -> float:
    """Distance from a point to a box (0 inside it)."""
    return math.hypot(max(box[0] - point[0], 0.0, point[0] - box[2]), max(box[1] - point[1], 0.0, point[1] - box[3]))


# where a point's label may go, in points from the marker: rings of growing radius, eight directions each (the
# nearest free spot wins); beyond the first ring a thin leader line joins label and point
_DIRECTIONS = [(1, 1, "left", "bottom"), (1, -1, "left", "top"), (-1, 1, "right", "bottom"),
               (-1, -1, "right", "top"), (1, 0, "left", "center"), (-1, 0, "right", "center"),
               (0, 1, "center", "bottom"), (0, -1, "center", "top")]
_RADII = (5.5, 11.0, 18.0, 27.0, 38.0, 50.0)
_LEADER_FROM = 8.0  # radius (points) from which a label gets a leader line
_PAD = (3.0, 1.5)  # points kept free beside and above/below a label: two labels never read as one


def _place_labels(ax: plt.Axes, notes: Sequence[tuple[float, float, str, str]], curves: Sequence[np.ndarray]) -> None:
    """Write each (x, y, text, colour) near its point: inside the axes, over no other label or marker, nearer to its
    own point than to any other (else joined to it by a leader line), crossing as few lines as it can; the nearest such
    spot wins. Works in points of the laid-out figure; the most crowded points are placed first."""
    fig = ax.figure
    fig.draw_without_rendering()  # fixes the layout, so that data → display is final
    scale = 72 / fig.dpi
    to_pt = lambda xy: np.asarray(ax.transData.transform(xy), dtype=float) * scale  # noqa: E731
    frame = ax.get_window_extent()
    frame = (frame.x0 * scale, frame.y0 * scale, frame.x1 * scale, frame.y1 * scale)
    lines = [to_pt(c) for c in curves]
    segments = [(c[i], c[i + 1]) for c in lines for i in range(len(c) - 1)]
    points = np.array([p for c in lines for p in c])
    markers = [(x - 2.5, y - 2.5, x + 2.5, y + 2.5) for x, y in points]  # ms=4: 2 pt radius
    height = NOTE_SIZE * 1.2  # ascent and descent of one line
    crowd = [sum(np.hypot(*(to_pt((x, y)) - p)) < 30 for p in points) for x, y, _, _ in notes]
    taken: list[tuple[float, float, float, float]] = []
    leaders: list[tuple[np.ndarray, np.ndarray]] = []
    for k in sorted(range(len(notes)), key=lambda k: -crowd[k]):
        x, y, text, color = notes[k]
        own = to_pt((x, y))
        w = _width(text, NOTE_SIZE)
        best, best_cost = None, math.inf
        for radius in _RADII:
            for ux, uy, ha, va in _DIRECTIONS:
                norm = math.hypot(ux, uy)
                dx, dy = radius * ux / norm, radius * uy / norm
                x0 = own[0] + dx - {"left": 0, "center": w / 2, "right": w}[ha]
                y0 = own[1] + dy - {"bottom": 0, "center": height / 2, "top": height}[va]
                box = (x0, y0, x0 + w, y0 + height)
                padded = (x0 - _PAD[0], y0 - _PAD[1], x0 + w + _PAD[0], y0 + height + _PAD[1])
                anchor = np.array([own[0] + dx, own[1] + dy])
                leader = (anchor, own) if radius >= _LEADER_FROM else None
                cost = radius  # nearer is better
                if not (box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]):
                    cost += 10_000
                cost += 10_000 * sum(_overlap(padded, t) > 0 for t in taken)
                cost += 10_000 * sum(_overlap(padded, m) > 0 for m in markers)
                cost += 1_000 * sum(_crosses(padded, p, q) for p, q in leaders)
                if leader is None:
                    mine = _gap(box, own)
                    cost += 1_000 * any(_gap(box, p) < mine + 4 and np.hypot(*(p - own)) > 0.5 for p in points)
                else:
                    cost += 1_000 * sum(_crosses(t, *leader) for t in taken)
                    cost += 1_000 * sum(_crosses(m, *leader) for m, q in zip(markers, points)
                                        if np.hypot(*(q - own)) > 0.5)  # past another point
                    cost += 1_000 * sum(_segments_cross(*leader, p, q) for p, q in leaders)
                    cost += 10 * sum(_segments_cross(*leader, p, q) for p, q in segments)
                cost += 40 * sum(_crosses(padded, p, q) for p, q in segments)  # text on a line: worse than a leader
                if cost < best_cost:
                    best, best_cost = (dx, dy, ha, va, box, leader), cost
        dx, dy, ha, va, box, leader = best
        taken.append(box)
        arrow = None
        if leader is not None:
            leaders.append(leader)
            corner = ({"left": 0.0, "center": 0.5, "right": 1.0}[ha], {"bottom": 0.0, "center": 0.5, "top": 1.0}[va])
            arrow = {"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.8, "shrinkA": 0.5, "shrinkB": 2.5,
                     "relpos": corner}
        note = ax.annotate(text, (x, y), fontsize=NOTE_SIZE, color=color, textcoords="offset points", xytext=(dx, dy),
                           ha=ha, va=va, arrowprops=arrow)
        note.set_in_layout(False)  # placed in the final layout: must not change it


@plt.rc_context(STYLE)
def front(points: Sequence[Mapping], joint: Mapping[str, float], size: tuple[float, float], dpi: int,
          default: tuple[str, int], seed: int) -> bytes:
    """Stability–plasticity front: test accuracy on A after B against accuracy on B, one curve per method ×
    optimizer of task B × hidden width, points labelled by λ; fine-tune (λ = 0) and joint as references.
    default: the main experiment's (optimizer of task B, hidden units), whose panel comes first and says so; the
    others follow, that optimizer's first. seed: the sweep's."""
    groups: dict[tuple, list[Mapping]] = {}
    for q in points:
        if not q["diverged"] and q["method"] != "none":
            groups.setdefault((q["method"], q["optimizer"], q["hidden_units"]), []).append(q)
    panels = sorted({(q["optimizer"], q["hidden_units"]) for q in points},
                    key=lambda panel: (panel[0] != default[0], panel[1] != default[1], panel))
    fig, axes = _figure(size, len(panels), sharex=True, sharey=True)
    legend: dict[str, object] = {}
    per_panel = []
    slot = 0.9 * (size[0] - 0.8) * 72 / len(panels)  # about one panel's width, for its axis label
    for ax, (optimizer, width) in zip(axes, panels):
        notes, drawn = [], []
        for (method, opt, hidden), curve in sorted(groups.items()):
            if (opt, hidden) != (optimizer, width):
                continue
            curve = sorted(curve, key=lambda q: q["lambda"])
            color = methods.color(method)
            xy = np.array([(q["test_acc_b"], q["test_acc_a"]) for q in curve])
            (line,) = ax.plot(xy[:, 0], xy[:, 1], marker="o", ms=4, color=color)
            legend.setdefault(methods.label(method), line)
            drawn.append(xy)
            notes += [(q["test_acc_b"], q["test_acc_a"], lambda_text(q["lambda"]), color) for q in curve]
        for q in points:
            if q["method"] != "none" or q["diverged"] or (q["optimizer"], q["hidden_units"]) != (optimizer, width):
                continue
            (mark,) = ax.plot(q["test_acc_b"], q["test_acc_a"], marker="X", ms=9, color=methods.color("none"), ls="")
            legend.setdefault(f"{methods.label('none')} (λ = 0)", mark)
            drawn.append(np.array([(q["test_acc_b"], q["test_acc_a"])]))
        (star,) = ax.plot(joint["acc_b"], joint["acc_a"], marker="*", ms=12, color=REFERENCE_COLOR, ls="")
        legend.setdefault(methods.label("joint"), star)
        drawn.append(np.array([(joint["acc_b"], joint["acc_a"])]))
        title = f"task B with {optimizer_name(optimizer)}, {width:,} hidden units"
        if (optimizer, width) == tuple(default):
            title += " (default)"
        for method in sorted({q["method"] for q in points}):
            failed = [q["lambda"] for q in points if q["diverged"] and q["method"] == method
                      and (q["optimizer"], q["hidden_units"]) == (optimizer, width)]
            if failed:
                title += f"\n{methods.label(method)} diverged at λ ≥ {lambda_text(min(failed))}"
        ax.set_title(title)
        ax.set_xlabel(_wrap("test accuracy on B after B (plasticity)", LABEL_SIZE, slot))
        ax.grid(alpha=0.3)
        per_panel.append((ax, notes, drawn))
    axes[0].set_ylabel("test accuracy on A after B (stability)")
    _title(fig, f"Stability–plasticity front (seed {seed}; numbers at the points: λ): up and to the right is better")
    _legend_below(fig, list(legend.values()), list(legend))
    for ax, notes, drawn in per_panel:
        _place_labels(ax, notes, drawn)
    return _png(fig, dpi)


# --- A sequence of tasks (permuted MNIST, sequence/dvc.yaml) ----------------------------------------------------------


def sequence_curve_columns(tasks_shown: int) -> list[str]:
    """The columns of sequence_curve_table's rows, in order."""
    tasks = range(1, tasks_shown + 1)
    return ["method", "label", "color", "step", "task", *[f"acc_{j}" for j in tasks], *[f"acc_{j}_ci95" for j in tasks]]


def sequence_curve_table(curves: Mapping[str, Mapping[int, Sequence[Mapping]]], tasks_shown: int) -> list[dict]:
    """Long-form rows (method, label, color, step, task trained, acc_1..acc_k, acc_1_ci95..acc_k_ci95): the test
    accuracy of the first tasks after every epoch of the whole sequence, mean over seeds and the half-width of its 95 %
    t-interval ('' for one seed); step 0 is the initial model, step k the k-th epoch."""
    out = []
    for method, by_seed in curves.items():
        runs = list(by_seed.values())
        for i, row in enumerate(runs[0]):
            per_seed = {j: np.array([run[i][f"acc_{j}"] for run in runs]) for j in range(1, tasks_shown + 1)}
            values = {f"acc_{j}": float(np.mean(v)) for j, v in per_seed.items()}
            halves = {f"acc_{j}_ci95": float(ci95(v)) if len(runs) > 1 else "" for j, v in per_seed.items()}
            out.append({"method": method, "label": methods.label(method), "color": methods.color(method),
                        "step": i, "task": int(row["task"]), **values, **halves})
    return out


@plt.rc_context(STYLE)
def sequence_curves(table: Sequence[Mapping], tasks_shown: int, epochs: int, size: tuple[float, float],
                    dpi: int, seeds: int, setting: str) -> bytes:
    """Kirkpatrick et al.'s Fig. 2A: one panel per early task, its test accuracy over the whole training time (all
    tasks in turn), one line per method with its 95 % t-interval over seeds as a band; dotted lines where a new task
    starts. setting: the configuration shown (`configuration`)."""
    fig, axes = plt.subplots(tasks_shown, 1, figsize=(size[0], size[1] * max(1.0, 0.45 * tasks_shown)),
                             layout="constrained", sharex=True, squeeze=False)
    methods_in = list(dict.fromkeys(r["method"] for r in table))
    last = max(r["step"] for r in table)
    for j, ax in enumerate(axes[:, 0], start=1):
        for method in methods_in:
            rows = [r for r in table if r["method"] == method]
            steps = np.array([r["step"] for r in rows])
            mean = np.array([r[f"acc_{j}"] for r in rows])
            ax.plot(steps, mean, color=methods.color(method), lw=1.3)
            half = np.array([r[f"acc_{j}_ci95"] or 0.0 for r in rows], dtype=float)
            if half.any():
                ax.fill_between(steps, mean - half, mean + half, color=methods.color(method), alpha=0.12, lw=0)
        for boundary in range(0, last + 1, epochs):
            ax.axvline(boundary, color="#bbbbbb", lw=0.6, ls=":")
        ax.axvspan((j - 1) * epochs, j * epochs, color="#eeeeee", zorder=0)
        ax.set_ylabel(f"task {j}")
        learned = [r[f"acc_{j}"] for r in table if r["step"] >= j * epochs]  # once task j is learned
        low = min(learned) if learned else 0.0
        ax.set_ylim(max(0.0, math.floor((low - 0.01) * 50) / 50), 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xlabel(f"epochs of training ({epochs} per task; grey: while training that task)")
    axes[-1, 0].set_xlim(0, last)
    _title(fig, f"Permuted MNIST ({setting}): test accuracy of the first tasks while the next are learned "
                f"({interval_note(seeds, 'bands')})")
    handles = [Line2D([], [], color=methods.color(m), lw=1.5) for m in methods_in]
    _legend_below(fig, handles, [methods.label(m) for m in methods_in])
    return _png(fig, dpi)


SEQUENCE_BY_TASKS_COLUMNS = ["method", "label", "color", "kind", "tasks", "average_accuracy", "ci95"]


def sequence_by_tasks_table(summary: Mapping[str, Mapping],
                            references: Mapping[str, tuple[str, Sequence[float]]]) -> list[dict]:
    """Long-form rows (SEQUENCE_BY_TASKS_COLUMNS): the average test accuracy over the tasks learned so far after each
    task, per method (kind 'method': mean over seeds, 95 % half-width) and per reference line {name: (label, values)}
    (kind 'reference', black, no interval)."""
    out = []
    for method, entry in summary.items():
        for t, stat in enumerate(entry["average_after_task"], start=1):
            out.append({"method": method, "label": methods.label(method), "color": methods.color(method),
                        "kind": "method", "tasks": t, "average_accuracy": stat["mean"],
                        "ci95": stat["ci95"] if stat["ci95"] is not None else ""})
    for name, (label, values) in references.items():
        for t, value in enumerate(values, start=1):
            out.append({"method": name, "label": label, "color": REFERENCE_COLOR, "kind": "reference", "tasks": t,
                        "average_accuracy": float(value), "ci95": ""})
    return out


REFERENCE_DASHES = ("--", ":", "-.")  # the first, second, third reference line


@plt.rc_context(STYLE)
def sequence_average(table: Sequence[Mapping], size: tuple[float, float], dpi: int, seeds: int, setting: str) -> bytes:
    """Kirkpatrick et al.'s Fig. 2B: average test accuracy over the tasks learned so far against their number, per
    method with its 95 % t-interval over seeds as a band; the references (rows of kind 'reference': joint model, each
    task just learned) black, dashed or dotted. setting: the configuration shown (`configuration`)."""
    fig, axes = _figure(size)
    ax = axes[0]
    names = list(dict.fromkeys(r["method"] for r in table))
    references = list(dict.fromkeys(r["method"] for r in table if r["kind"] == "reference"))
    handles, labels = [], []
    for name in names:
        rows = [r for r in table if r["method"] == name]
        x = np.array([r["tasks"] for r in rows])
        y = np.array([r["average_accuracy"] for r in rows])
        reference = name in references
        style = {"color": rows[0]["color"],
                 "ls": REFERENCE_DASHES[references.index(name) % len(REFERENCE_DASHES)] if reference else "-"}
        ax.plot(x, y, lw=1.3 if reference else 1.6, marker=None if reference else "o", ms=3, **style)
        ci = np.array([r["ci95"] if r["ci95"] not in ("", None) else 0.0 for r in rows], dtype=float)
        if ci.any():
            ax.fill_between(x, y - ci, y + ci, color=rows[0]["color"], alpha=0.12, lw=0)
        handles.append(Line2D([], [], **style))
        labels.append(rows[0]["label"])
    ax.set_xlabel("number of tasks learned")
    ax.set_ylabel("average test accuracy over those tasks")
    ax.set_xticks(sorted({r["tasks"] for r in table}))
    ax.grid(alpha=0.3)
    _title(fig, f"Permuted MNIST ({setting}): average accuracy as tasks accumulate ({interval_note(seeds, 'bands')})")
    _legend_below(fig, handles, labels)
    return _png(fig, dpi)


@plt.rc_context(STYLE)
def accuracy_matrices(summary: Mapping[str, Mapping], size: tuple[float, float], dpi: int, seeds: int,
                      experiment: str) -> bytes:
    """The accuracy matrix R (row: after training task i, column: task j; mean over seeds) of every method;
    experiment: what the title calls it, with its configuration (e.g. 'Permuted MNIST (SGD, 2×400 units)')."""
    names = list(summary)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0], size[1] * 0.62 * nrows), layout="constrained",
                             squeeze=False)
    image = None
    for ax, name in zip(axes.flat, names):
        r = np.array(summary[name]["accuracy_matrix_mean"])
        image = ax.imshow(r, vmin=0.0, vmax=1.0, cmap="viridis")
        ticks = np.arange(len(r))
        ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=6)
        ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=6)
        ax.set_title(methods.label(name))
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("task j")
    for ax in axes[:, 0]:
        ax.set_ylabel("after task i")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="test accuracy R[i][j]")
    _title(fig, f"{experiment}: accuracy on task j after training task i ({interval_note(seeds)})")
    return _png(fig, dpi)


# --- Split MNIST in three scenarios -------------------------------------------------------------------------------

SCENARIO_TITLES = {"task": "task-incremental", "domain": "domain-incremental", "class": "class-incremental"}
SCENARIO_HATCH = {"task": "", "domain": "//", "class": ".."}


def _anchor_box(ax: plt.Axes, x: float, width: float, anchor: Sequence[float] | None) -> None:
    """The published range [low, high] as a black bracket of `width` centred at x (a dash where low = high)."""
    if anchor is None:
        return
    low, high = anchor
    ax.plot([x - width / 2, x + width / 2], [low, low], color="black", lw=1.4, zorder=5, solid_capstyle="butt")
    if high > low:
        ax.plot([x - width / 2, x + width / 2], [high, high], color="black", lw=1.4, zorder=5, solid_capstyle="butt")
        ax.plot([x, x], [low, high], color="black", lw=1.4, zorder=5)


@plt.rc_context(STYLE)
def scenario_bars(rows: Sequence[Mapping], scenario: str, size: tuple[float, float], dpi: int, seeds: int,
                  setting: str, tasks: int) -> bytes:
    """One scenario: the average test accuracy after the last task per method (bars, 95 % t-intervals over seeds) and
    the published range beside it (black bracket); rows from the report's summary table (method, average_mean,
    average_ci95, anchor_low, anchor_high), joint last. setting: the configuration shown (`configuration`); tasks:
    how many tasks were learned."""
    fig, (ax,) = _figure(size)
    width = 0.55  # the bar; the published bracket stands just right of it
    for i, r in enumerate(rows):
        color = methods.color(r["method"])
        err = r["average_ci95"] or 0.0
        ax.bar(i, r["average_mean"], width, color=color, alpha=0.85, yerr=err or None, capsize=3 if err else 0)
        ax.text(i, min(r["average_mean"] + err + 0.015, 1.03), f"{r['average_mean']:.2f}", ha="center",
                va="bottom", fontsize=NOTE_SIZE, zorder=6, bbox=NOTE_BOX)
        low, high = r.get("anchor_low"), r.get("anchor_high")
        _anchor_box(ax, i + width / 2 + 0.1, 0.14, None if low is None else (low, high))
    ax.axhline(1 / _chance(scenario), color=REFERENCE_COLOR, ls=":", lw=1, zorder=1)
    slot = 0.9 * (size[0] - 1.0) * 72 / max(len(rows), 1)
    ax.set_xticks(range(len(rows)), [_wrap(methods.label(r["method"]), TICK_SIZE, slot, at_commas=True)
                                     for r in rows])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("average test accuracy after the last task")
    ax.set_xlabel("method")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor="#bbbbbb", label="this lab"),
               Line2D([], [], color="black", lw=1.2, label="published (range over sources)"),
               Line2D([], [], color=REFERENCE_COLOR, ls=":", lw=1, label=f"chance (1/{_chance(scenario)})")]
    _title(fig, f"Split MNIST, {SCENARIO_TITLES[scenario]} ({setting}): average accuracy over the {tasks} tasks "
                f"after learning all ({interval_note(seeds, 'error bars')})")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)


def _chance(scenario: str) -> int:
    return 10 if scenario == "class" else 2


@plt.rc_context(STYLE)
def scenario_summary(rows: Sequence[Mapping], size: tuple[float, float], dpi: int, seeds: int, setting: str,
                     tasks: int) -> bytes:
    """All scenarios at once: per method, one bar per scenario (the average test accuracy after the last task,
    95 % t-intervals over seeds); rows as for scenario_bars with a `scenario` column; setting and tasks as there."""
    names = list(dict.fromkeys(r["method"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    by = {(r["scenario"], r["method"]): r for r in rows}
    fig, (ax,) = _figure(size)
    width = 0.8 / len(scenarios)
    for k, scenario in enumerate(scenarios):
        for i, name in enumerate(names):
            r = by.get((scenario, name))
            if r is None:
                continue
            err = r["average_ci95"] or 0.0
            x = i + (k - (len(scenarios) - 1) / 2) * width
            ax.bar(x, r["average_mean"], width, color=methods.color(name), alpha=[0.95, 0.65, 0.4][k % 3],
                   hatch=SCENARIO_HATCH[scenario], edgecolor="white", yerr=err or None, capsize=2 if err else 0)
    slot = 0.9 * (size[0] - 1.0) * 72 / max(len(names), 1)
    ax.set_xticks(range(len(names)), [_wrap(methods.label(n), TICK_SIZE, slot, at_commas=True) for n in names])
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("average test accuracy after the last task")
    ax.set_xlabel("method")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor="#666666", alpha=[0.95, 0.65, 0.4][k % 3], hatch=SCENARIO_HATCH[s], edgecolor="white",
                     label=SCENARIO_TITLES[s]) for k, s in enumerate(scenarios)]
    _title(fig, f"Split MNIST in {len(scenarios)} scenarios ({setting}): average test accuracy over the {tasks} tasks "
                f"after learning all ({interval_note(seeds, 'error bars')})")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)
