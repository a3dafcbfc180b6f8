"""Determinism: seeds, TF op determinism and pinned thread counts, set once per process before any TF work."""

from __future__ import annotations

import os
import random

import keras
import numpy as np
import tensorflow as tf


def set_determinism(seed: int, threads: int, precision: str = "float64") -> None:
    """Seed Python, NumPy and TF; make TF ops deterministic; pin the thread counts (results depend on them); set
    Keras' float type (`precision`: float64 gives the same bytes on every x86-64 CPU measured, float32 does not)."""
    set_precision(precision)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised in this process (tests): fine if it has the same setting
        if tf.config.threading.get_intra_op_parallelism_threads() != threads:
            raise


def set_precision(precision: str) -> None:
    """Build every later Keras layer in `precision` ('float64' or 'float32'): Keras' float type and its global dtype
    policy (which Keras otherwise fixes at its first use, ignoring a later set_floatx)."""
    keras.config.set_floatx(precision)
    keras.config.set_dtype_policy(precision)
