"""Determinism: seeds, TF op determinism and pinned thread counts, set once per process before any TF work."""

from __future__ import annotations

import os
import random

import keras
import numpy as np
import tensorflow as tf


def set_determinism(seed: int, threads: int) -> None:
    """Seed Python, NumPy and TF; make TF ops deterministic; pin the thread counts (results depend on them)."""
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
