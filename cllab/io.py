"""Byte-stable, atomic file output and pickle-free input: npz, JSON, CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from cllab.errors import LabError


class ArtifactError(LabError, ValueError):
    """An input file is missing, truncated, tampered with or of the wrong kind."""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds.

    A process killed midway leaves at most a hidden `.tmp-*` file, never a half-written `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temp directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays to an uncompressed .npz in the given key order, with fixed zip times (byte-stable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as a byte-stable .npz, atomically."""
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise TypeError(f"{path}: array {name!r} has dtype object; refusing to pickle")
    write_bytes(path, npz_bytes(arrays))


def load_npz(path: str | Path, required: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read every array of an .npz (never unpickling); raise ArtifactError naming the file if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found (run the stage that writes it: dvc repro)")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path}: not a valid .npz file (not a zip archive: truncated or corrupt)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise ArtifactError(f"{path}: holds pickled objects, refusing to load it") from None
        raise ArtifactError(f"{path}: not a valid .npz file ({err})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ArtifactError(f"{path}: not a valid .npz file, truncated or corrupt ({err})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ArtifactError(f"{path}: missing arrays {', '.join(missing)}")
    return arrays


def _round_floats(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite number ({value}) to JSON")
        return round(value, digits)
    if isinstance(value, (np.floating, np.integer)):
        return _round_floats(value.item(), digits)
    if isinstance(value, Mapping):
        return {str(k): _round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_floats(v, digits) for v in value]
    return value


def json_text(data: Any, digits: int = 6) -> str:
    """JSON with sorted keys and floats rounded to `digits` decimals: the same data always gives the same bytes."""
    return json.dumps(_round_floats(data, digits), indent=2, sort_keys=True) + "\n"


def save_json(path: str | Path, data: Any, digits: int = 6) -> None:
    """Write JSON byte-stably and atomically."""
    write_bytes(path, json_text(data, digits).encode())


def save_json_files(directory: str | Path, files: Mapping[str, Any], digits: int = 6) -> None:
    """Replace `directory` by one `<name>.json` per entry of `files` (a name may hold `/`), all or none: exactly
    these files, so that a method or seed no longer run leaves no file behind."""
    with atomic_dir(directory) as tmp:
        for name, data in files.items():
            save_json(tmp / f"{name}.json", data, digits)


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 6) -> str:
    """A CSV table with a header, fixed column order and fixed float formatting; None (undefined) as an empty cell."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}f}"
        return str(v)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # quotes a cell only when it needs it (a comma in a label)
    writer.writerow(columns)
    writer.writerows([cell(row[c]) for c in columns] for row in rows)
    return out.getvalue()


def save_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 6) -> None:
    """Write a CSV table byte-stably and atomically."""
    write_bytes(path, csv_text(rows, columns, digits).encode())


def load_csv(path: str | Path, text_columns: Sequence[str] = ("method",)) -> list[dict[str, Any]]:
    """Rows of a CSV table, numeric cells as floats, empty cells as None (the `text_columns` stay strings)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found (run the stage that writes it: dvc repro)")
    try:
        with open(path, newline="") as f:
            return [{k: (v if k in text_columns else None if v == "" else float(v)) for k, v in row.items()}
                    for row in csv.DictReader(f)]
    except (ValueError, TypeError) as err:
        raise ArtifactError(f"{path}: not a numeric table ({err})") from None


def load_live_metric(live_dir: str | Path, name: str) -> dict[int, float]:
    """One metric DVCLive logged, {step: value}: `name` like 'train/penalty' or 'eval/cross_entropy'; {} if the run
    did not log it (e.g. no penalty without a penalty)."""
    path = Path(live_dir) / "plots" / "metrics" / f"{name}.tsv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    column = name.rsplit("/", 1)[-1]
    return {int(r["step"]): float(r[column]) for r in rows}
