"""Matplotlib figures, rendered to byte-stable PNG bytes (no creation date, no software version)."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

COLORS = {
    "none": "#d62728", "l2": "#1f77b4", "ewc": "#2ca02c", "ewc_sampled": "#98df8a", "ewc_empirical": "#17becf",
    "si": "#9467bd", "mas": "#ff7f0e", "joint": "#555555",
}
LABELS = {
    "none": "fine-tune", "l2": "L2", "ewc": "EWC (exact F)", "ewc_sampled": "EWC (sampled F)",
    "ewc_empirical": "EWC (empirical F)", "si": "SI", "mas": "MAS", "joint": "joint (upper bound)",
}


def label(method: str) -> str:
    return LABELS.get(method, method)


def _png(fig: plt.Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _err(row: Mapping, column: str) -> float:
    value = row[f"{column}_ci95"]
    return 0.0 if np.isnan(value) else value


def accuracy_bars(rows: Sequence[Mapping], size: tuple[float, float], dpi: int) -> bytes:
    """Grouped bars: mean test accuracy on A and on B after training B per method, 95 % intervals over seeds as
    error bars; the joint model as dashed reference lines."""
    methods = [r for r in rows if r["method"] != "joint"]
    joint = next(r for r in rows if r["method"] == "joint")
    fig, ax = plt.subplots(figsize=size)
    width = 0.38
    for i, r in enumerate(methods):
        color = COLORS.get(r["method"], "#888888")
        for dx, column, style in ((-width / 2, "acc_a_after_b", {"alpha": 0.55, "hatch": "//"}), (width / 2, "acc_b_after_b", {})):
            value = r[f"{column}_mean"]
            ax.bar(i + dx, value, width, yerr=_err(r, column), capsize=3, color=color, edgecolor=color, **style)
            ax.text(i + dx, value + _err(r, column) + 0.01, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(joint["acc_a_after_b_mean"], color=COLORS["joint"], ls="--", lw=1,
               label=f"joint model on A ({joint['acc_a_after_b_mean']:.3f})")
    ax.axhline(joint["acc_b_after_b_mean"], color=COLORS["joint"], ls=":", lw=1,
               label=f"joint model on B ({joint['acc_b_after_b_mean']:.3f})")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Patch(facecolor="#dddddd", edgecolor="#555555", hatch="//", label="task A (old task) after training B"),
        Patch(facecolor="#555555", edgecolor="#555555", label="task B (new task) after training B"),
    ]
    ax.set_xticks(range(len(methods)), [label(r["method"]) for r in methods], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_xlabel(f"penalty while training task B (mean of {int(joint['seeds'])} seeds, 95 % interval)")
    ax.set_title("Split MNIST: without a penalty task A is forgotten; the penalties keep most of it")
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)


def mean_curves(curves: Mapping[int, Sequence[Mapping[str, float]]], column: str) -> tuple[list[float], np.ndarray]:
    """Epochs and the [seeds, epochs] matrix of one column of per-seed curves."""
    seeds = list(curves)
    epochs = [r["epoch"] for r in curves[seeds[0]]]
    return epochs, np.array([[r[column] for r in curves[s]] for s in seeds])


def forgetting_curves(
    curves: Mapping[str, Mapping[int, Sequence[Mapping[str, float]]]], joint: Mapping, size: tuple[float, float], dpi: int
) -> bytes:
    """Mean test accuracy on A (solid) and B (dashed) after each epoch of training B, one colour per method;
    the band spans the seeds' minimum and maximum on A."""
    fig, ax = plt.subplots(figsize=size)
    for method, per_seed in curves.items():
        color = COLORS.get(method, "#888888")
        epochs, acc_a = mean_curves(per_seed, "acc_a")
        _, acc_b = mean_curves(per_seed, "acc_b")
        ax.plot(epochs, acc_a.mean(axis=0), color=color, marker="o", ms=4, label=f"{label(method)}: A")
        ax.fill_between(epochs, acc_a.min(axis=0), acc_a.max(axis=0), color=color, alpha=0.15, lw=0)
        ax.plot(epochs, acc_b.mean(axis=0), color=color, ls="--", alpha=0.6, lw=1)
    ax.axhline(joint["acc_a_after_b_mean"], color=COLORS["joint"], ls=":", lw=1, label="joint model on A")
    ax.plot([], [], color="#555555", ls="--", lw=1, alpha=0.6, label="dashed: same method on B")
    ax.set_xlabel("epochs of training on task B (0 = θ_A)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Accuracy on task A while training task B: without a penalty most of A is lost in one epoch")
    ax.legend(fontsize=7, loc="lower left", ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)


def importance_heatmap(first_layer: np.ndarray, title: str, size: tuple[float, float], dpi: int) -> bytes:
    """Importance of each input pixel: the first Dense kernel's importance [784, hidden] summed over hidden units."""
    per_pixel = first_layer.sum(axis=1).reshape(28, 28)
    fig, ax = plt.subplots(figsize=(size[1] * 1.1, size[1]))
    image = ax.imshow(per_pixel, cmap="magma")
    fig.colorbar(image, ax=ax, label="Σ over hidden units of F (per input pixel)")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("pixel column")
    ax.set_ylabel("pixel row")
    fig.tight_layout()
    return _png(fig, dpi)


def front(points: Sequence[Mapping], joint: Mapping[str, float], size: tuple[float, float], dpi: int) -> bytes:
    """Stability–plasticity front: test accuracy on A after B against accuracy on B, one curve per method ×
    optimizer of task B × hidden width, points labelled by λ; fine-tune (λ = 0) and joint as references."""
    groups: dict[tuple, list[Mapping]] = {}
    for q in points:
        if not q["diverged"] and q["method"] != "none":
            groups.setdefault((q["method"], q["optimizer"], q["hidden_units"]), []).append(q)
    panels = sorted({(q["optimizer"], q["hidden_units"]) for q in points})
    fig, axes = plt.subplots(1, len(panels), figsize=size, sharex=True, sharey=True, squeeze=False)
    for ax, (optimizer, width) in zip(axes[0], panels):
        for (method, opt, hidden), curve in sorted(groups.items()):
            if (opt, hidden) != (optimizer, width):
                continue
            curve = sorted(curve, key=lambda q: q["lambda"])
            color = COLORS.get(method, "#888888")
            ax.plot([q["test_acc_b"] for q in curve], [q["test_acc_a"] for q in curve], marker="o", ms=4, color=color,
                    label=label(method))
            for q in curve:
                ax.annotate(f"{q['lambda']:g}", (q["test_acc_b"], q["test_acc_a"]), fontsize=6, color=color,
                            textcoords="offset points", xytext=(3, 3))
        for q in points:
            if q["method"] == "none" and not q["diverged"] and (q["optimizer"], q["hidden_units"]) == (optimizer, width):
                ax.plot(q["test_acc_b"], q["test_acc_a"], marker="X", ms=9, color=COLORS["none"], ls="", label="fine-tune")
        ax.plot(joint["acc_b"], joint["acc_a"], marker="*", ms=12, color=COLORS["joint"], ls="", label="joint")
        title = f"task B with {optimizer.upper()}, {width} hidden units"
        for method in sorted({q["method"] for q in points}):
            failed = [q["lambda"] for q in points if q["diverged"] and q["method"] == method
                      and (q["optimizer"], q["hidden_units"]) == (optimizer, width)]
            if failed:
                title += f"\n{label(method)} diverged at λ ≥ {min(failed):g}"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("test accuracy on B after B (plasticity)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy on A after B (stability)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Stability–plasticity front (seed 0; labels: λ): up and to the right is better")
    fig.tight_layout()
    return _png(fig, dpi)
