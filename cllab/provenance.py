"""Where results were made: the facts that decide whether two machines give the same bytes.

TensorFlow picks float32 CPU kernels (oneDNN, and Eigen contractions that call oneDNN's sgemm) by the instruction
set the CPU offers, so float32 results differ between CPUs. float64 matmuls run in Eigen, whose kernels are fixed at
build time; only Eigen's cache blocking reads the CPU (its L1/L2 sizes), which is why the cache sizes are recorded.
`collect` gathers those facts without importing TensorFlow, except for the oneDNN ISA and GPUs, which only a running
TensorFlow can report (`probe_tensorflow`, ~5 s in a subprocess).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

# CPU features that change which kernels oneDNN or Eigen run (from /proc/cpuinfo's flags)
KERNEL_FLAGS = (
    "sse4_1", "sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve",
)
# Environment variables that change the kernels or their numbers
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS", "ONEDNN_DEFAULT_FPMATH_MODE", "TF_DETERMINISTIC_OPS",
              "CUDA_VISIBLE_DEVICES")
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "dvc", "dvclive", "scipy", "pandas", "matplotlib")
# Entries that describe but cannot change the bytes; all others must agree for byte-identical results to be expected
DESCRIPTIVE = ("cpu.cores", "os.release")


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (Linux), else {}."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def _cache_size(level: str) -> str | None:
    """Size of the first core's data/unified cache of `level` ('1' or '2'), as the kernel reports it ('48K')."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")) if base.exists() else []:
        try:
            if (index / "level").read_text().strip() == level and (index / "type").read_text().strip() != "Instruction":
                return (index / "size").read_text().strip()
        except OSError:
            continue
    return None


def cpu_facts() -> dict[str, Any]:
    """CPU model, vendor, the kernel-relevant feature flags, cache sizes and core count."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "vendor": info.get("vendor_id", ""),
        "flags": [f for f in KERNEL_FLAGS if f in flags],
        "l1d": _cache_size("1"),
        "l2": _cache_size("2"),
        "cores": os.cpu_count(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None where a package is absent), read from package metadata, not by importing."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_PROBE = r"""
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
a = tf.ones((64, 64)); tf.matmul(a, a).numpy()
print("PROBE" + json.dumps({"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                            "cuda_build": tf.test.is_built_with_cuda()}))
"""


def probe_tensorflow(timeout: float = 120.0) -> dict[str, Any]:
    """Run a float32 matmul in a fresh TensorFlow with oneDNN's verbose log on: the ISA oneDNN dispatches to (None
    if oneDNN ran no primitive, e.g. with TF_ENABLE_ONEDNN_OPTS=0), the GPUs TensorFlow sees and whether this
    TensorFlow is a CUDA build (the `gpu` extra)."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"TensorFlow probe failed: {done.stderr.strip().splitlines()[-1:]}")
    isa = re.search(r"onednn_verbose,.*info,cpu,isa:(.+)", done.stdout + done.stderr)
    probe = json.loads(done.stdout.split("PROBE", 1)[1])
    return {"onednn_isa": isa.group(1).strip() if isa else None, "gpus": probe["gpus"], "cuda_build": probe["cuda_build"]}


def collect(runtime: Mapping[str, Any], tensorflow: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything that decides the bytes of a run with the given `runtime` params (threads, precision)."""
    tf_facts = dict(tensorflow) if tensorflow is not None else probe_tensorflow()
    return {
        "cpu": cpu_facts(),
        "onednn_isa": tf_facts["onednn_isa"],
        "gpus": tf_facts["gpus"],
        "cuda_build": tf_facts.get("cuda_build"),
        "env": {name: os.environ[name] for name in KERNEL_ENV if name in os.environ},
        "runtime": {"threads": runtime["threads"], "precision": runtime["precision"]},
        "os": {"system": platform.system(), "machine": platform.machine(), "release": platform.release()},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "versions": package_versions(),
    }


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'cpu': {'model': m}} -> {'cpu.model': m}."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(entry, recorded, here) for every entry that can change the bytes and differs between the two."""
    a, b = flatten(recorded), flatten(here)
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
            if not key.startswith(DESCRIPTIVE) and a.get(key) != b.get(key)]


def markdown(recorded: Mapping[str, Any]) -> str:
    """A two-column Markdown table of a provenance record, for the report."""
    rows = []
    for key, value in flatten(recorded).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else ("—" if value in (None, "") else str(value))
        rows.append(f"| {key} | {shown or '—'} |")
    return "\n".join(["| entry | value |", "|---|---|", *rows])
