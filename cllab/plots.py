"""Matplotlib figures, rendered to byte-stable PNG bytes (no creation date, no software version).

Every figure has the same look: the title above all panels (wrapped to the figure's width), the legend below the
axes, and a constrained layout that makes room for titles, tick labels, colour bars and legends, so that nothing is
clipped or drawn over the data at any figure size. Names and colours of the methods come from cllab.methods.
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

from cllab import methods  # noqa: E402

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


def _seeds_note(seeds: int) -> str:
    return "one seed" if seeds == 1 else f"mean of {seeds} seeds, 95 % interval"


@plt.rc_context(STYLE)
def accuracy_bars(rows: Sequence[Mapping], size: tuple[float, float], dpi: int) -> bytes:
    """Grouped bars: mean test accuracy on A and on B after training B per method, 95 % intervals over seeds as
    error bars; the joint model as dashed reference lines."""
    trained = [r for r in rows if r["method"] != "joint"]
    joint = next(r for r in rows if r["method"] == "joint")
    fig, (ax,) = _figure(size)
    width = 0.38
    grey = methods.color("joint")
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
        Patch(facecolor="#dddddd", edgecolor=grey, hatch="//", label="task A (old task) after training B"),
        Patch(facecolor=grey, edgecolor=grey, label="task B (new task) after training B"),
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
    ax.set_xlabel(f"penalty while training task B ({_seeds_note(int(joint['seeds']))})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _title(fig, "Split MNIST: without a penalty task A is forgotten; the penalties keep most of it")
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
    the band spans the seeds' minimum and maximum on A."""
    fig, (ax,) = _figure(size)
    grey = methods.color("joint")
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
            ax.fill_between(epochs, acc_a.min(axis=0), acc_a.max(axis=0), color=color, alpha=0.15, lw=0)
        ax.plot(epochs, acc_b.mean(axis=0), color=color, ls="--", alpha=0.6, lw=1)
    ax.axhline(joint["acc_a_after_b_mean"], color=grey, ls=":", lw=1)
    handles += [
        Line2D([], [], color=grey, marker="o", ms=4,
               label="solid: accuracy on A" + (" (band: seeds' range)" if seeds > 1 else "")),
        Line2D([], [], color=grey, ls="--", lw=1, alpha=0.6, label="dashed: accuracy on B"),
        Line2D([], [], color=grey, ls=":", lw=1, label=f"joint model on A ({joint['acc_a_after_b_mean']:.3f})"),
    ]
    ax.set_xlabel(f"epochs of training on task B (0 = θ_A; {_seeds_note(seeds).replace(', 95 % interval', '')})")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    _title(fig, "Accuracy on task A while training task B: without a penalty most of A is lost in one epoch")
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


# where a point's λ goes, in points from the marker: (dx, dy, ha, va); the first free one is taken
_SPOTS = [(3, 3, "left", "bottom"), (3, -3, "left", "top"), (-3, 3, "right", "bottom"), (-3, -3, "right", "top"),
          (5, 0, "left", "center"), (-5, 0, "right", "center"), (0, 5, "center", "bottom"), (0, -5, "center", "top"),
          (9, 9, "left", "bottom"), (9, -9, "left", "top"), (-9, 9, "right", "bottom"), (-9, -9, "right", "top")]


def _place_labels(ax: plt.Axes, notes: Sequence[tuple[float, float, str, str]], curves: Sequence[np.ndarray]) -> None:
    """Write each (x, y, text, colour) beside its point where it covers no other label, marker or line and stays
    inside the axes (else where it covers least). Works in points of the laid-out figure."""
    fig = ax.figure
    fig.draw_without_rendering()  # fixes the layout, so that data → display is final
    scale = 72 / fig.dpi
    to_pt = lambda xy: np.asarray(ax.transData.transform(xy)) * scale  # noqa: E731
    frame = ax.get_window_extent()
    frame = (frame.x0 * scale, frame.y0 * scale, frame.x1 * scale, frame.y1 * scale)
    lines = [to_pt(c) for c in curves]
    markers = [(x - 3, y - 3, x + 3, y + 3) for c in lines for x, y in c]
    taken: list[tuple[float, float, float, float]] = []
    height = NOTE_SIZE * 0.8
    for x, y, text, color in notes:
        px, py = to_pt((x, y))
        w = _width(text, NOTE_SIZE)
        best, best_cost = None, math.inf
        for dx, dy, ha, va in _SPOTS:
            x0 = px + dx - {"left": 0, "center": w / 2, "right": w}[ha]
            y0 = py + dy - {"bottom": 0, "center": height / 2, "top": height}[va]
            box = (x0, y0, x0 + w, y0 + height)
            cost = 100 * sum(_overlap(box, t) for t in taken) + 10 * sum(_overlap(box, m) for m in markers)
            cost += 10 * sum(_crosses(box, c[i], c[i + 1]) for c in lines for i in range(len(c) - 1))
            if not (box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]):
                cost += 1000
            if cost < best_cost:
                best, best_cost = (dx, dy, ha, va, box), cost
            if cost == 0:
                break
        dx, dy, ha, va, box = best
        taken.append(box)
        note = ax.annotate(text, (x, y), fontsize=NOTE_SIZE, color=color, textcoords="offset points", xytext=(dx, dy),
                           ha=ha, va=va)
        note.set_in_layout(False)  # placed in the final layout: must not change it


@plt.rc_context(STYLE)
def front(points: Sequence[Mapping], joint: Mapping[str, float], size: tuple[float, float], dpi: int) -> bytes:
    """Stability–plasticity front: test accuracy on A after B against accuracy on B, one curve per method ×
    optimizer of task B × hidden width, points labelled by λ; fine-tune (λ = 0) and joint as references."""
    groups: dict[tuple, list[Mapping]] = {}
    for q in points:
        if not q["diverged"] and q["method"] != "none":
            groups.setdefault((q["method"], q["optimizer"], q["hidden_units"]), []).append(q)
    panels = sorted({(q["optimizer"], q["hidden_units"]) for q in points})
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
            notes += [(q["test_acc_b"], q["test_acc_a"], f"{q['lambda']:g}", color) for q in curve]
        for q in points:
            if q["method"] != "none" or q["diverged"] or (q["optimizer"], q["hidden_units"]) != (optimizer, width):
                continue
            (mark,) = ax.plot(q["test_acc_b"], q["test_acc_a"], marker="X", ms=9, color=methods.color("none"), ls="")
            legend.setdefault(f"{methods.label('none')} (λ = 0)", mark)
            drawn.append(np.array([(q["test_acc_b"], q["test_acc_a"])]))
        (star,) = ax.plot(joint["acc_b"], joint["acc_a"], marker="*", ms=12, color=methods.color("joint"), ls="")
        legend.setdefault(methods.label("joint"), star)
        drawn.append(np.array([(joint["acc_b"], joint["acc_a"])]))
        title = f"task B with {optimizer.upper()}, {width} hidden units"
        for method in sorted({q["method"] for q in points}):
            failed = [q["lambda"] for q in points if q["diverged"] and q["method"] == method
                      and (q["optimizer"], q["hidden_units"]) == (optimizer, width)]
            if failed:
                title += f"\n{methods.label(method)} diverged at λ ≥ {min(failed):g}"
        ax.set_title(title)
        ax.set_xlabel(_wrap("test accuracy on B after B (plasticity)", LABEL_SIZE, slot))
        ax.grid(alpha=0.3)
        per_panel.append((ax, notes, drawn))
    axes[0].set_ylabel("test accuracy on A after B (stability)")
    _title(fig, "Stability–plasticity front (seed 0; numbers at the points: λ): up and to the right is better")
    _legend_below(fig, list(legend.values()), list(legend))
    for ax, notes, drawn in per_panel:
        _place_labels(ax, notes, drawn)
    return _png(fig, dpi)


# --- A sequence of tasks (permuted MNIST, sequence/dvc.yaml) ----------------------------------------------------------


def sequence_curve_table(curves: Mapping[str, Mapping[int, Sequence[Mapping]]], tasks_shown: int) -> list[dict]:
    """Long-form rows (method, label, color, step, task trained, acc_1..acc_k): the test accuracy of the first tasks
    after every epoch of the whole sequence, mean over seeds; step 0 is the initial model, step k the k-th epoch."""
    out = []
    for method, by_seed in curves.items():
        runs = list(by_seed.values())
        for i, row in enumerate(runs[0]):
            values = {f"acc_{j}": float(np.mean([run[i][f"acc_{j}"] for run in runs])) for j in range(1, tasks_shown + 1)}
            out.append({"method": method, "label": methods.label(method), "color": methods.color(method),
                        "step": i, "task": int(row["task"]), **values})
    return out


@plt.rc_context(STYLE)
def sequence_curves(table: Sequence[Mapping], tasks_shown: int, epochs: int, size: tuple[float, float],
                    dpi: int, seeds: int) -> bytes:
    """Kirkpatrick et al.'s Fig. 2A: one panel per early task, its test accuracy over the whole training time (all
    tasks in turn), one line per method; dotted lines where a new task starts."""
    fig, axes = plt.subplots(tasks_shown, 1, figsize=(size[0], size[1] * max(1.0, 0.45 * tasks_shown)),
                             layout="constrained", sharex=True, squeeze=False)
    methods_in = list(dict.fromkeys(r["method"] for r in table))
    last = max(r["step"] for r in table)
    for j, ax in enumerate(axes[:, 0], start=1):
        for method in methods_in:
            rows = [r for r in table if r["method"] == method]
            ax.plot([r["step"] for r in rows], [r[f"acc_{j}"] for r in rows], color=methods.color(method), lw=1.3)
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
    _title(fig, f"Permuted MNIST: test accuracy of the first tasks while the next are learned ({_seeds_note(seeds)})")
    handles = [Line2D([], [], color=methods.color(m), lw=1.5) for m in methods_in]
    _legend_below(fig, handles, [methods.label(m) for m in methods_in])
    return _png(fig, dpi)


def sequence_by_tasks_table(summary: Mapping[str, Mapping],
                            references: Mapping[str, tuple[str, str, Sequence[float]]]) -> list[dict]:
    """Long-form rows (method, label, color, tasks, average_accuracy, ci95): the average test accuracy over the tasks
    learned so far after each task, per method (mean over seeds, 95 % half-width), and per reference line
    {name: (label, colour, values)} (no interval)."""
    out = []
    for method, entry in summary.items():
        for t, stat in enumerate(entry["average_after_task"], start=1):
            out.append({"method": method, "label": methods.label(method), "color": methods.color(method), "tasks": t,
                        "average_accuracy": stat["mean"], "ci95": stat["ci95"] if stat["ci95"] is not None else ""})
    for name, (label, color, values) in references.items():
        for t, value in enumerate(values, start=1):
            out.append({"method": name, "label": label, "color": color, "tasks": t,
                        "average_accuracy": float(value), "ci95": ""})
    return out


@plt.rc_context(STYLE)
def sequence_average(table: Sequence[Mapping], references: Sequence[str], size: tuple[float, float], dpi: int,
                     seeds: int) -> bytes:
    """Kirkpatrick et al.'s Fig. 2B: average test accuracy over the tasks learned so far against their number, per
    method with its 95 % interval as a band; the `references` (joint model, single-task) dashed."""
    fig, axes = _figure(size)
    ax = axes[0]
    names = list(dict.fromkeys(r["method"] for r in table))
    handles, labels = [], []
    for name in names:
        rows = [r for r in table if r["method"] == name]
        x = np.array([r["tasks"] for r in rows])
        y = np.array([r["average_accuracy"] for r in rows])
        reference = name in references
        style = {"color": rows[0]["color"], "ls": "--" if reference else "-"}
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
    _title(fig, f"Permuted MNIST: average accuracy as tasks accumulate ({_seeds_note(seeds)})")
    _legend_below(fig, handles, labels)
    return _png(fig, dpi)


@plt.rc_context(STYLE)
def accuracy_matrices(summary: Mapping[str, Mapping], size: tuple[float, float], dpi: int, seeds: int,
                      experiment: str = "Permuted MNIST") -> bytes:
    """The accuracy matrix R (row: after training task i, column: task j; mean over seeds) of every method."""
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
    _title(fig, f"{experiment}: accuracy on task j after training task i ("
           + ("one seed" if seeds == 1 else f"mean of {seeds} seeds") + ")")
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
def scenario_bars(rows: Sequence[Mapping], scenario: str, size: tuple[float, float], dpi: int, seeds: int) -> bytes:
    """One scenario: the average test accuracy after the last task per method (bars, 95 % intervals over seeds) and
    the published range beside it (black bracket); rows from the report's summary table (method, average_mean,
    average_ci95, anchor_low, anchor_high), joint last."""
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
    ax.axhline(1 / _chance(scenario), color="#999999", ls=":", lw=1, zorder=1)
    slot = 0.9 * (size[0] - 1.0) * 72 / max(len(rows), 1)
    ax.set_xticks(range(len(rows)), [_wrap(methods.label(r["method"]), TICK_SIZE, slot, at_commas=True)
                                     for r in rows])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("average test accuracy after the last task")
    ax.set_xlabel(f"method ({_seeds_note(seeds)})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor="#bbbbbb", label="this lab"),
               Line2D([], [], color="black", lw=1.2, label="published (range over sources)"),
               Line2D([], [], color="#999999", ls=":", lw=1, label=f"chance (1/{_chance(scenario)})")]
    _title(fig, f"Split MNIST, {SCENARIO_TITLES[scenario]}: average accuracy over the 5 tasks after learning all")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)


def _chance(scenario: str) -> int:
    return 10 if scenario == "class" else 2


@plt.rc_context(STYLE)
def scenario_summary(rows: Sequence[Mapping], size: tuple[float, float], dpi: int, seeds: int) -> bytes:
    """All scenarios at once: per method, one bar per scenario (the average test accuracy after the last task,
    95 % intervals over seeds); rows as for scenario_bars with a `scenario` column."""
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
    ax.set_xlabel(f"method ({_seeds_note(seeds)})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor="#666666", alpha=[0.95, 0.65, 0.4][k % 3], hatch=SCENARIO_HATCH[s], edgecolor="white",
                     label=SCENARIO_TITLES[s]) for k, s in enumerate(scenarios)]
    _title(fig, "Split MNIST in three scenarios: average test accuracy over the 5 tasks after learning all")
    _legend_below(fig, handles, [h.get_label() for h in handles])
    return _png(fig, dpi)
