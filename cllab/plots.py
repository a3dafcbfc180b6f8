"""Matplotlib figures, rendered to byte-stable PNG bytes (no creation date, no software version)."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

COLORS = {"none": "#d62728", "l2": "#1f77b4", "ewc": "#2ca02c", "joint": "#555555"}
LABELS = {"none": "fine-tune (no penalty)", "l2": "L2 to θ_A", "ewc": "EWC", "joint": "joint (upper bound)"}


def _png(fig: plt.Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def accuracy_bars(rows: Sequence[Mapping], size: tuple[float, float], dpi: int) -> bytes:
    """Grouped bars: test accuracy on A and on B after training B, per method; joint as dashed reference lines."""
    methods = [r for r in rows if r["method"] != "joint"]
    joint = next(r for r in rows if r["method"] == "joint")
    fig, ax = plt.subplots(figsize=size)
    width = 0.38
    for i, r in enumerate(methods):
        color = COLORS.get(r["method"], "#888888")
        ax.bar(i - width / 2, r["acc_a_after_b"], width, color=color, alpha=0.55, edgecolor=color, hatch="//")
        ax.bar(i + width / 2, r["acc_b_after_b"], width, color=color, edgecolor=color)
        for dx, v in ((-width / 2, r["acc_a_after_b"]), (width / 2, r["acc_b_after_b"])):
            ax.text(i + dx, v + 0.01, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(joint["acc_a_after_b"], color=COLORS["joint"], ls="--", lw=1, label=f"joint model on A ({joint['acc_a_after_b']:.3f})")
    ax.axhline(joint["acc_b_after_b"], color=COLORS["joint"], ls=":", lw=1, label=f"joint model on B ({joint['acc_b_after_b']:.3f})")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Patch(facecolor="#dddddd", edgecolor="#555555", hatch="//", label="task A (old task) after training B"),
        Patch(facecolor="#555555", edgecolor="#555555", label="task B (new task) after training B"),
    ]
    ax.set_xticks(range(len(methods)), [LABELS.get(r["method"], r["method"]) for r in methods])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_xlabel("penalty while training task B")
    ax.set_title("Split MNIST: without a penalty task A is forgotten; EWC and L2 keep it")
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)


def forgetting_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]], joint: Mapping, size: tuple[float, float], dpi: int
) -> bytes:
    """Test accuracy on A (solid) and B (dashed) after each epoch of training B, one colour per method."""
    fig, ax = plt.subplots(figsize=size)
    for method, rows in curves.items():
        color = COLORS.get(method, "#888888")
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r["acc_a"] for r in rows], color=color, marker="o", label=f"{LABELS.get(method, method)}: task A")
        ax.plot(epochs, [r["acc_b"] for r in rows], color=color, ls="--", marker=".", alpha=0.7,
                label=f"{LABELS.get(method, method)}: task B")
    ax.axhline(joint["acc_a_after_b"], color=COLORS["joint"], ls=":", lw=1, label="joint model on A")
    ax.set_xlabel("epochs of training on task B (0 = θ_A)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Accuracy on task A while training task B: without a penalty most of A is lost in the first epoch")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, dpi)
