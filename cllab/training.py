"""Keras-native training: `model.fit` with callbacks for forgetting curves, DVCLive and NaN guards."""

from __future__ import annotations

import math
import os
import sys
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from cllab.errors import LabError
from cllab.model import accuracy


class NonFiniteLossError(LabError, RuntimeError):
    """Training diverged: the loss became NaN or infinite."""


class FailOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with an error naming the context (e.g. the λ) and epoch when the loss is NaN or inf."""

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"{self.context}: loss became {float(loss)} in epoch {epoch + 1}; lower the learning rate or λ"
            )


class TaskAccuracyCurve(keras.callbacks.Callback):
    """Record test accuracy on each task before training and after every epoch (the forgetting curve).

    The values also go into the epoch logs as `acc_<task>` so DVCLive and the progress bar show them.
    """

    def __init__(self, tasks: Mapping[str, tuple[np.ndarray, np.ndarray]], batch_size: int = 1024) -> None:
        super().__init__()
        self.tasks = dict(tasks)
        self.batch_size = batch_size
        self.rows: list[dict[str, float]] = []

    def _measure(self, epoch: int) -> dict[str, float]:
        row = {"epoch": epoch}
        for name, (x, y) in self.tasks.items():
            row[f"acc_{name}"] = accuracy(self.model, x, y, self.batch_size)
        self.rows.append(row)
        return row

    def on_train_begin(self, logs=None):
        self.rows = []
        self._measure(0)

    def on_epoch_end(self, epoch, logs=None):
        row = self._measure(epoch + 1)
        if logs is not None:
            logs.update({k: v for k, v in row.items() if k != "epoch"})


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    context: str = "training",
    verbose: int | None = None,
) -> dict[str, list[float]]:
    """`model.fit` with shuffling, a NaN guard and the given callbacks; returns the per-epoch history.

    verbose None: a live progress bar on a terminal, one line per epoch in logs (CI, `dvc repro > log`).
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, validation_data=validation,
        callbacks=[FailOnNonFiniteLoss(context), *(callbacks or [])], verbose=verbose,
    )
    for name, values in history.history.items():
        if not all(math.isfinite(v) for v in values):
            raise NonFiniteLossError(f"{context}: {name} became non-finite ({values})")
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def dvclive_callback(directory: str | os.PathLike) -> keras.callbacks.Callback:
    """A DVCLive callback logging every epoch's metrics under `directory` (no dvc.yaml edits, no experiment commits)."""
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    return DVCLiveCallback(live=Live(str(directory), save_dvc_exp=False, dvcyaml=False, report=None))
