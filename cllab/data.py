"""MNIST via TFDS (online, or offline from the four original files) and the split into tasks A and B."""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import urllib.request
from pathlib import Path
from typing import Mapping

import numpy as np

from cllab.errors import LabError

# The four original files, as TFDS' mnist builder downloads them: name -> (size in bytes, sha256).
MNIST_FILES: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
MNIST_HOST = ("storage.googleapis.com", 443)
# Where TFDS' mnist builder downloads them from; CLLAB_MNIST_URL overrides it (a mirror, or the tests' local server).
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
TASK_DIGITS = {"a": (0, 2, 4, 6, 8), "b": (1, 3, 5, 7, 9)}
NUM_CLASSES = 5
SPLITS = ("train", "val", "test")


class DataError(LabError, RuntimeError):
    """MNIST cannot be had: missing, corrupt or not downloadable. The message says what to do."""


def check_raw_files(raw_dir: str | Path) -> bool:
    """True if all four original MNIST files are in raw_dir and match their canonical checksums.

    False if none is there; DataError naming the file if some are missing, truncated or corrupt.
    """
    raw_dir = Path(raw_dir)
    present = [name for name in MNIST_FILES if (raw_dir / name).is_file()]
    if not present:
        return False
    missing = [name for name in MNIST_FILES if name not in present]
    if missing:
        raise DataError(f"{raw_dir}/ has only some MNIST files: missing {', '.join(missing)}")
    for name, (size, sha256) in MNIST_FILES.items():
        _verify(str(raw_dir / name), (raw_dir / name).read_bytes(), size, sha256, "replace it with the original")
    return True


def fetch_raw_files(raw_dir: str | Path, base_url: str = MNIST_URL, timeout_s: float = 60.0) -> list[str]:
    """Make raw_dir hold the four original MNIST files: each one present is verified, each one absent is downloaded
    from `base_url` and verified before it is renamed into place. Returns the names downloaded.

    A present file that is truncated or corrupt is a DataError naming it (it is not replaced: a file the user put
    there is never overwritten); a failed download leaves nothing behind and says where to put the files instead."""
    raw_dir = Path(raw_dir)
    fetched = []
    for name, (size, sha256) in MNIST_FILES.items():
        path = raw_dir / name
        if path.is_file():
            _verify(str(path), path.read_bytes(), size, sha256,
                    "`dvc checkout -f mnist` restores the verified copy where DVC's cache has it, or delete it and rerun to download it")
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                body = response.read()
        except (OSError, ValueError, http.client.HTTPException) as err:  # IncompleteRead: a cut-off download
            names = ", ".join(MNIST_FILES)
            raise DataError(f"{name} is not in {raw_dir}/ and cannot be downloaded from {url} ({err}): "
                            f"put {names} in {raw_dir}/") from None
        _verify(url, body, size, sha256, "the server's copy is not the original file; nothing was written")
        raw_dir.mkdir(parents=True, exist_ok=True)
        from cllab import io

        io.write_bytes(path, body)
        fetched.append(name)
    return fetched


def _verify(where: str, body: bytes, size: int, sha256: str, fix: str) -> None:
    """DataError naming `where` (a path or URL) unless `body` has the original file's size and SHA-256."""
    if len(body) != size:
        raise DataError(f"{where}: {len(body)} bytes, expected {size} (truncated or not the original file: {fix})")
    if hashlib.sha256(body).hexdigest() != sha256:
        raise DataError(f"{where}: sha256 checksum mismatch (corrupt or not the original file: {fix})")


def network_reachable(host: tuple[str, int] = MNIST_HOST, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the MNIST download host succeeds within timeout_s."""
    try:
        with socket.create_connection(host, timeout=timeout_s):
            return True
    except OSError:
        return False


def _not_an_unbuilt_folder(record: logging.LogRecord) -> bool:
    return "has no dataset_info.json" not in record.getMessage()


def load_mnist(raw_dir: str | Path, tfds_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST as {"train": (images uint8 [N,28,28], digits int64 [N]), "test": ...} via tfds.load.

    Builds from the original files in raw_dir when they are there (checksums verified first), otherwise downloads;
    fails within seconds with a one-line DataError when neither is possible.
    """
    have_files = check_raw_files(raw_dir)  # before the slow import: a bad file fails in milliseconds
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    builder = tfds.builder("mnist", data_dir=str(tfds_dir))
    kwargs = {}
    if have_files:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=str(raw_dir))
        }
    elif not builder.is_prepared() and not network_reachable():
        names = ", ".join(MNIST_FILES)
        raise DataError(f"MNIST is not in {raw_dir}/ and {MNIST_HOST[0]} is unreachable: put {names} in {raw_dir}/")
    # TFDS warns (through absl) that the folder it has just made for the build holds no dataset_info.json yet: the
    # normal state before the first build, nothing for the user to do, so it is dropped.
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_not_an_unbuilt_folder)
    try:
        splits = tfds.load(
            "mnist", data_dir=str(tfds_dir), split=["train", "test"], batch_size=-1, as_supervised=True,
            shuffle_files=False, **kwargs,
        )
    finally:
        absl_log.removeFilter(_not_an_unbuilt_folder)
    out = {}
    for name, (images, digits) in zip(("train", "test"), splits):
        out[name] = (np.asarray(images)[..., 0].astype(np.uint8), np.asarray(digits).astype(np.int64))
    return out


def task_of(digits: np.ndarray, task: str) -> np.ndarray:
    """Boolean mask of the examples that belong to task 'a' (even digits) or 'b' (odd digits)."""
    return np.isin(digits, TASK_DIGITS[task])


def split_tasks(
    mnist: Mapping[str, tuple[np.ndarray, np.ndarray]], val_fraction: float, val_seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Split MNIST into tasks A and B, with label = digit // 2 and pixels scaled to [0, 1] (float32).

    Each task gets x_/y_/digit_ arrays for train, val (a seeded random `val_fraction` of that task's
    training set, for choosing hyper-parameters) and test.
    """
    train_images, train_digits = mnist["train"]
    test_images, test_digits = mnist["test"]
    order = np.random.default_rng(val_seed).permutation(len(train_digits))
    tasks: dict[str, dict[str, np.ndarray]] = {}
    for task in TASK_DIGITS:
        shuffled = order[task_of(train_digits[order], task)]
        n_val = int(round(val_fraction * len(shuffled)))
        index = {"train": np.sort(shuffled[n_val:]), "val": np.sort(shuffled[:n_val])}
        arrays: dict[str, np.ndarray] = {}
        for split, rows in index.items():
            arrays.update(_arrays(split, train_images[rows], train_digits[rows]))
        mask = task_of(test_digits, task)
        arrays.update(_arrays("test", test_images[mask], test_digits[mask]))
        tasks[task] = arrays
    return tasks


def _arrays(split: str, images: np.ndarray, digits: np.ndarray) -> dict[str, np.ndarray]:
    return {
        f"x_{split}": (images.astype(np.float32) / np.float32(255.0)),
        f"y_{split}": (digits // 2).astype(np.int32),
        f"digit_{split}": digits.astype(np.uint8),
    }


def split_digits(
    mnist: Mapping[str, tuple[np.ndarray, np.ndarray]], val_fraction: float, val_seed: int
) -> dict[str, np.ndarray]:
    """All ten digits (label = digit, int32; pixels in [0, 1], float32) with a seeded random `val_fraction` of the
    training set held out for validation: x_/y_ arrays for train, val and test (the permuted-MNIST sequence's data)."""
    train_images, train_digits = mnist["train"]
    test_images, test_digits = mnist["test"]
    order = np.random.default_rng(val_seed).permutation(len(train_digits))
    n_val = int(round(val_fraction * len(order)))
    rows = {"train": np.sort(order[n_val:]), "val": np.sort(order[:n_val])}
    arrays: dict[str, np.ndarray] = {}
    for split, (images, digits) in {**{s: (train_images[r], train_digits[r]) for s, r in rows.items()},
                                    "test": (test_images, test_digits)}.items():
        arrays[f"x_{split}"] = images.astype(np.float32) / np.float32(255.0)
        arrays[f"y_{split}"] = digits.astype(np.int32)
    return arrays


def task_arrays_names() -> list[str]:
    """The arrays every prepared task file holds, in file order."""
    return [f"{kind}_{split}" for split in SPLITS for kind in ("x", "y", "digit")]


def joint(task_a: Mapping[str, np.ndarray], task_b: Mapping[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    """The joint (multi-task) data of one split: tasks A and B concatenated."""
    x = np.concatenate([task_a[f"x_{split}"], task_b[f"x_{split}"]])
    y = np.concatenate([task_a[f"y_{split}"], task_b[f"y_{split}"]])
    return x, y


def subset(x: np.ndarray, y: np.ndarray, count: int | str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All examples (count 'all' or at least len(y)), or a seeded random subset of `count`, in the original order."""
    if count == "all" or count >= len(y):
        return x, y
    rows = np.sort(np.random.default_rng(seed).permutation(len(y))[:count])
    return x[rows], y[rows]


# --- Permuted MNIST (Kirkpatrick et al. 2017, Fig. 2): task t sees every image with its pixels in a fixed order ----


def pixel_permutations(num_tasks: int, num_pixels: int, seed: int) -> np.ndarray:
    """Pixel orders [num_tasks, num_pixels] (int32): task 0 is plain MNIST (the identity), task t > 0 a permutation
    from a generator seeded by (seed, t), so that adding tasks leaves the earlier ones as they were. Stored as
    indices: the permuted images are made batch by batch (`permute_pixels`), never written to disk."""
    if num_tasks < 1 or num_pixels < 1:
        raise ValueError(f"need num_tasks >= 1 and num_pixels >= 1, got {num_tasks} and {num_pixels}")
    orders = [np.arange(num_pixels)]
    orders += [np.random.default_rng([seed, t]).permutation(num_pixels) for t in range(1, num_tasks)]
    return np.stack(orders).astype(np.int32)


def permute_pixels(x: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Images x [N, ...] with their pixels (row-major) rearranged by `order`: pixel i of the result is pixel order[i]
    of the input; the shape is kept."""
    flat = x.reshape(len(x), -1)
    if flat.shape[1] != len(order):
        raise ValueError(f"the order has {len(order)} pixels, the images {flat.shape[1]}")
    return flat[:, order].reshape(x.shape)


MEMORY_STREAM = 1  # the third word of the memory's seed: its draws are a stream of their own (see replay_buffer)


def replay_buffer(
    tasks: list[tuple[np.ndarray, np.ndarray]], per_task: int, seed: int, first_task: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Experience replay's memory: `per_task` examples of each past task (x, y) drawn without replacement by a
    generator seeded by (seed, t, MEMORY_STREAM), where t = first_task + the task's index in `tasks`, concatenated in
    task order (all of a task when it has fewer). The stream is the memory's own: the batch order of the same task
    (ReplayBatches, seeded by the integer seed·1000 + t) never repeats its draws (an integer seed n and [n, 0] are
    the same stream in NumPy, so seeding both by one integer once made the stored examples the task's first batches)."""
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    xs, ys = [], []
    for t, (x, y) in enumerate(tasks):
        take = min(per_task, len(y))
        rows = np.sort(np.random.default_rng([seed, first_task + t, MEMORY_STREAM]).permutation(len(y))[:take])
        xs.append(x[rows])
        ys.append(y[rows])
    if not xs:
        raise ValueError("no past task to replay")
    return np.concatenate(xs), np.concatenate(ys)
