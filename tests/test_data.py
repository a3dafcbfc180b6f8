"""The split: A = even digits, B = odd digits, label = digit // 2, canonical counts; and clear data errors."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from cllab import data


def test_task_sizes_match_the_canonical_mnist_counts(tasks):
    sizes = {t: (len(a["y_train"]) + len(a["y_val"]), len(a["y_test"])) for t, a in tasks.items()}
    assert sizes == {"a": (29492, 4926), "b": (30508, 5074)}


def test_task_a_is_even_digits_and_task_b_is_odd_with_label_digit_over_two(tasks):
    for task, parity in (("a", 0), ("b", 1)):
        for split in data.SPLITS:
            digits = tasks[task][f"digit_{split}"].astype(int)
            assert set(np.unique(digits) % 2) == {parity}
            assert set(np.unique(digits)) == set(data.TASK_DIGITS[task])
            np.testing.assert_array_equal(tasks[task][f"y_{split}"], digits // 2)
            assert set(np.unique(tasks[task][f"y_{split}"])) == set(range(5))


def test_pixels_are_float32_in_unit_interval_and_are_the_loaded_images_over_255(mnist, tasks):
    raw_test_images, raw_test_digits = mnist["test"]
    x = tasks["a"]["x_test"]
    assert x.dtype == np.float32 and x.shape[1:] == (28, 28)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x, raw_test_images[raw_test_digits % 2 == 0] / np.float32(255))


def test_validation_split_is_disjoint_from_train_and_about_the_requested_fraction(tasks):
    for arrays in tasks.values():
        n_val, n_train = len(arrays["y_val"]), len(arrays["y_train"])
        assert abs(n_val / (n_val + n_train) - 0.1) < 1e-3
        train_keys = {row.tobytes() for row in (arrays["x_train"] * 255).astype(np.uint8).reshape(n_train, -1)}
        val_rows = (arrays["x_val"] * 255).astype(np.uint8).reshape(n_val, -1)
        overlap = sum(row.tobytes() in train_keys for row in val_rows)
        assert overlap < 5  # MNIST has a handful of exact duplicate images; rows themselves are disjoint


def test_loaded_images_and_labels_are_those_of_the_idx_files(mnist, mnist_dir):
    """Decoded by hand from the original files (TFDS orders the examples its own way): the same (image, label)
    pairs, so a transposed, flipped or mislabelled decode would fail."""
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    loaded_images, loaded_labels = mnist["test"]
    assert loaded_images.shape == images.shape == (10000, 28, 28) and loaded_images.dtype == np.uint8
    pairs = lambda xs, ys: sorted(x.tobytes() + bytes([y]) for x, y in zip(xs, ys))  # noqa: E731
    assert pairs(loaded_images, loaded_labels) == pairs(images, labels)


def _copy_raw(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in data.MNIST_FILES:
        shutil.copy(src / name, dst / name)
    return dst


def test_missing_raw_file_is_named(mnist_dir, tmp_path):
    raw = _copy_raw(mnist_dir, tmp_path / "raw")
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        data.check_raw_files(raw)


def test_truncated_raw_file_is_named(mnist_dir, tmp_path):
    raw = _copy_raw(mnist_dir, tmp_path / "raw")
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz: 1000 bytes, expected 9912422"):
        data.check_raw_files(raw)


def test_corrupt_raw_file_of_right_size_fails_its_checksum(mnist_dir, tmp_path):
    raw = _copy_raw(mnist_dir, tmp_path / "raw")
    path = raw / "train-labels-idx1-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte.gz: sha256 checksum mismatch"):
        data.load_mnist(raw, tmp_path / "tfds")


def test_empty_raw_dir_reports_no_files(tmp_path):
    assert data.check_raw_files(tmp_path) is False


def test_no_files_and_no_network_fails_within_seconds_saying_where_to_put_what(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "network_reachable", lambda *_, **__: False)  # as on a machine without internet
    start = time.monotonic()
    with pytest.raises(data.DataError) as err:
        data.load_mnist(tmp_path / "raw", tmp_path / "tfds")
    assert time.monotonic() - start < 60  # TFDS alone would retry for minutes
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "raw") in message
    assert all(name in message for name in data.MNIST_FILES)


@pytest.fixture
def mnist_server(mnist_dir, tmp_path):
    """A real HTTP server on loopback serving a copy of the four files (a mirror, as CLLAB_MNIST_URL names one)."""
    import functools
    import http.server
    import threading

    served = _copy_raw(mnist_dir, tmp_path / "served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_only_the_absent_files_and_verifies_each(mnist_dir, mnist_server, tmp_path):
    served, url = mnist_server
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", raw)
    assert sorted(data.fetch_raw_files(raw, url)) == sorted(set(data.MNIST_FILES) - {"t10k-labels-idx1-ubyte.gz"})
    assert all((raw / n).read_bytes() == (mnist_dir / n).read_bytes() for n in data.MNIST_FILES)
    assert data.fetch_raw_files(raw, url) == []  # all there: nothing downloaded
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.MNIST_FILES)  # no temp file left


def test_fetch_keeps_nothing_of_a_download_that_fails_its_checksum(mnist_server, tmp_path):
    served, url = mnist_server
    path = served / "train-labels-idx1-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF
    path.write_bytes(bytes(blob))
    raw = tmp_path / "raw"
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte.gz: sha256 checksum mismatch"):
        data.fetch_raw_files(raw, url)
    assert not (raw / "train-labels-idx1-ubyte.gz").exists() and not list(raw.glob(".tmp-*"))


def test_fetch_never_replaces_a_corrupt_local_file_and_says_how_to_restore_it(mnist_dir, mnist_server, tmp_path):
    _, url = mnist_server
    raw = _copy_raw(mnist_dir, tmp_path / "raw")
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError, match=r"1000 bytes, expected 9912422 .*dvc checkout -f mnist") as err:
        data.fetch_raw_files(raw, url)
    assert "\n" not in str(err.value) and path.stat().st_size == 1000


def test_fetch_without_a_server_says_where_to_put_the_files(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.fetch_raw_files(tmp_path / "raw", "http://127.0.0.1:9/")  # the discard port: nothing listens
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in data.MNIST_FILES)
    assert not (tmp_path / "raw").exists()
