"""Keras-native training: `model.fit` with callbacks for forgetting curves, DVCLive and NaN guards."""

from __future__ import annotations

import os
import sys
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from cllab.errors import LabError
from cllab.model import accuracy


# An epoch's mean loss past this means training diverged. float32 overflows to inf on the way there, but float64 can
# carry a diverging run for epochs without a NaN (permuted MNIST, SI at λ = 3: ~1e156 at the end of task 10, the
# model at chance), so without a finite bound the two precisions would tell a divergence apart differently. No run
# that learns comes near it (the committed DVCLive logs' largest epoch loss is 2.2).
DIVERGED_LOSS = 1e12


def diverged(value: float) -> bool:
    """NaN, ±inf or past DIVERGED_LOSS in size: what both guards of `fit` call diverged (no accuracy, loss or
    penalty of a run that learns comes near the bound)."""
    return not abs(float(value)) <= DIVERGED_LOSS  # NaN fails every comparison


class DivergedError(LabError, RuntimeError):
    """Training diverged: a value `fit` logs (the loss, validation loss, penalty, ...) became NaN, infinite or larger
    than DIVERGED_LOSS."""


class FailOnDivergence(keras.callbacks.Callback):
    """Stop training with an error naming the context (e.g. the λ) and epoch when an epoch's loss, or any other value
    it logs (validation loss, penalty, ...), is NaN, inf or past DIVERGED_LOSS."""

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name in sorted(logs, key=lambda n: n != "loss"):  # the training loss first: it names the usual cause
            if diverged(logs[name]):
                self.model.stop_training = True
                raise DivergedError(
                    f"{self.context}: {name} became {float(logs[name]):.3g} in epoch {epoch + 1} (diverged); lower "
                    "the learning rate or λ"
                )


class TaskAccuracyCurve(keras.callbacks.Callback):
    """Record test accuracy on each task before training and after every epoch (the forgetting curve).

    `rows` holds epoch k (0 = the model training starts from) as {"epoch": k, "acc_<task>": ...}; with
    measure_start=False epoch 0 is skipped (a caller that has just measured that model). The values also go into the
    epoch logs as `test_acc_<task>`, so the progress bar shows them and LiveEpochs files them under test/.
    """

    def __init__(self, tasks: Mapping[str, tuple[np.ndarray, np.ndarray]], batch_size: int = 1024,
                 measure_start: bool = True) -> None:
        super().__init__()
        self.tasks = dict(tasks)
        self.batch_size = batch_size
        self.measure_start = measure_start
        self.rows: list[dict[str, float]] = []

    def _measure(self, epoch: int) -> dict[str, float]:
        row = {"epoch": epoch}
        for name, (x, y) in self.tasks.items():
            row[f"acc_{name}"] = accuracy(self.model, x, y, self.batch_size)
        self.rows.append(row)
        return row

    def on_train_begin(self, logs=None):
        self.rows = []
        if self.measure_start:
            self._measure(0)

    def on_epoch_end(self, epoch, logs=None):
        row = self._measure(epoch + 1)
        if logs is not None:
            logs.update({f"test_{k}": v for k, v in row.items() if k != "epoch"})


def live_name(log_key: str) -> str:
    """Where DVCLive files a Keras log entry: val_x -> eval/x (validation split), test_x -> test/x, x -> train/x."""
    for prefix, folder in (("val_", "eval"), ("test_", "test")):
        if log_key.startswith(prefix):
            return f"{folder}/{log_key[len(prefix):]}"
    return f"train/{log_key}"


class LiveEpochs(keras.callbacks.Callback):
    """DVCLive logging whose step is the epoch: step 0 is the model training starts from (the test accuracies of a
    TaskAccuracyCurve, when given, so they line up with its rows), step k the end of epoch k. Training metrics go
    under train/, validation under eval/, test accuracies under test/. No dvc.yaml edits, no experiment commits."""

    def __init__(self, directory: str | os.PathLike, curve: TaskAccuracyCurve | None = None) -> None:
        super().__init__()
        from dvclive import Live

        self.live = Live(str(directory), save_dvc_exp=False, dvcyaml=False, report=None)
        self.curve = curve

    def on_train_begin(self, logs=None):
        if self.curve is not None and self.curve.rows:
            self.live.step = 0
            for key, value in self.curve.rows[0].items():
                if key != "epoch":
                    self.live.log_metric(live_name(f"test_{key}"), float(value))
            self.live.next_step()

    def on_epoch_end(self, epoch, logs=None):
        self.live.step = epoch + 1
        for key, value in (logs or {}).items():
            self.live.log_metric(live_name(key), float(value))
        self.live.next_step()

    def on_train_end(self, logs=None):
        self.live.end()


def fit(
    model: keras.Model,
    x: np.ndarray | keras.utils.PyDataset,
    y: np.ndarray | None,
    epochs: int,
    batch_size: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    context: str = "training",
    verbose: int | None = None,
) -> dict[str, list[float]]:
    """`model.fit` with shuffling, a divergence guard and the given callbacks; returns the per-epoch history.

    x, y: arrays, shuffled each epoch by Keras (seeded by keras.utils.set_random_seed); or x a keras PyDataset (y
    None) that draws its own seeded order each epoch and is read in its order. verbose None: a live progress bar on a
    terminal, one line per epoch in logs (CI, `dvc repro > log`).
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    # Arrays go in as tensors: Keras makes a NumPy array a constant of its input pipeline's graph (~1.5-2 s for the
    # 54,000 images of a permuted-MNIST task, per fit), a tensor it takes as it is. Same batches, same weights.
    x, y = (tf.convert_to_tensor(a) if isinstance(a, np.ndarray) else a for a in (x, y))
    if validation is not None:
        validation = tuple(tf.convert_to_tensor(a) for a in validation)
    # Keras would shuffle a PyDataset's batches with Python's global `random`, which other code draws from too (Keras
    # takes a new model's initializer seeds from it), so the batches would hang on what ran before: a PyDataset keeps
    # its own seeded order.
    shuffle = not isinstance(x, keras.utils.PyDataset)
    history = model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, validation_data=validation,
        callbacks=[FailOnDivergence(context), *(callbacks or [])], verbose=verbose,
    )
    for name, values in history.history.items():
        if any(diverged(v) for v in values):  # e.g. a value the callback's epoch logs did not carry
            raise DivergedError(f"{context}: {name} diverged ({values})")
    return {name: [float(v) for v in values] for name, values in history.history.items()}
