"""Artifacts are byte-stable, written atomically, and never unpickled."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from cllab import io


def test_npz_bytes_depend_only_on_the_arrays(tmp_path, monkeypatch):
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array("text")}
    io.save_npz(tmp_path / "one.npz", arrays)
    monkeypatch.setattr(time, "time", lambda: 2e9)  # a later clock (zip stores the time in 2-second steps)
    monkeypatch.setattr(time, "localtime", lambda *_: time.struct_time((2033, 5, 18, 3, 33, 20, 2, 138, 0)))
    io.save_npz(tmp_path / "two.npz", dict(arrays))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.npz") as zf:
        assert [(i.filename, i.date_time) for i in zf.infolist()] == [("b.npy", (1980, 1, 1, 0, 0, 0)),
                                                                      ("a.npy", (1980, 1, 1, 0, 0, 0))]
    loaded = io.load_npz(tmp_path / "one.npz")
    assert list(loaded) == ["b", "a"] and str(loaded["a"]) == "text"
    np.testing.assert_array_equal(loaded["b"], arrays["b"])


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", payload=np.array([{"x": 1}], dtype=object))
    with pytest.raises(io.ArtifactError, match="evil.npz: holds pickled objects"):
        io.load_npz(tmp_path / "evil.npz")
    with pytest.raises(TypeError, match="refusing to pickle"):
        io.save_npz(tmp_path / "x.npz", {"payload": np.array([{"x": 1}], dtype=object)})


def test_truncated_npz_is_reported_with_its_path(tmp_path):
    io.save_npz(tmp_path / "w.npz", {"w": np.ones(1000)})
    blob = (tmp_path / "w.npz").read_bytes()
    (tmp_path / "w.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(io.ArtifactError, match="w.npz: not a valid .npz file"):
        io.load_npz(tmp_path / "w.npz")


def test_non_finite_numbers_are_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "m.json"
    io.save_json(target, {"a": 1})
    with pytest.raises(ValueError, match="non-finite"):
        io.save_json(target, {"a": float("nan")})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("save,value", [(io.save_json, {"a": 2}), (io.save_npz, {"a": np.ones(3)}),
                                        (io.write_bytes, b"new")])
def test_a_write_that_fails_at_the_rename_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, save, value):
    target = tmp_path / "m.out"
    target.write_bytes(b"old")

    def full_disk(*_):
        raise OSError("no space left on device")

    monkeypatch.setattr(io.os, "replace", full_disk)
    with pytest.raises(OSError, match="no space left"):
        save(target, value)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.out"]


def test_a_writer_killed_midway_leaves_the_old_file_and_at_most_a_hidden_temp_file(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    code = ("import os, signal, sys\n"
            "from cllab import io\n"
            "with io.atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_text('{\"a\": ')\n"  # half of a JSON file
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert target.read_text() == "old"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left[1:] == ["m.json"] and left[0].startswith(".tmp-m.json-")


def test_json_has_sorted_keys_and_rounded_floats():
    assert io.json_text({"b": 1 / 3, "a": {"d": 2.0, "c": [0.1234567891]}}) == (
        '{\n  "a": {\n    "c": [\n      0.123457\n    ],\n    "d": 2.0\n  },\n  "b": 0.333333\n}\n'
    )


def test_filtered_stderr_drops_tensorflows_import_noise_and_keeps_real_messages(root):
    """What C++ libraries write to file descriptor 2 is filtered line by line: the known start-up lines go, a real
    warning passes (checked in a child process, whose fd 2 is a pipe)."""
    code = (
        "import os\n"
        "from cllab import cli\n"
        "with cli.filtered_stderr():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1795696299.687623   28829 port.cc:153] oneDNN custom operations are on. x\\n')\n"
        "    os.write(2, b'W0000 00:00:1795696299.687623   28829 util.cc:163] a warning that matters\\n')\n"
        "print('done')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == "done\n"
    assert run.stderr.splitlines() == ["W0000 00:00:1795696299.687623   28829 util.cc:163] a warning that matters"]


def test_importing_tensorflow_through_the_stage_start_prints_nothing(root):
    code = "from cllab import cli, params\ncli.start(params.load(), 0)\nimport tensorflow as tf\nprint(int(tf.constant(2) + 1))\n"
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == "3\n"
    assert run.stderr == ""


def test_json_files_replace_the_directory_with_exactly_these_files(tmp_path):
    target = tmp_path / "seeds"
    io.save_json_files(target, {"0/ewc": {"average": 0.5}, "1/ewc": {"average": 0.25}})
    io.save_json_files(target, {"0/ewc": {"average": 0.75}})  # seed 1 no longer run: its file goes
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.json")) == ["0/ewc.json"]
    assert (target / "0/ewc.json").read_text() == io.json_text({"average": 0.75})
    assert [p.name for p in tmp_path.iterdir()] == ["seeds"]  # no temporary directory left beside it
