"""A real two-node Ray cluster on this machine for the distributed tests.

Both nodes are ``ray start --block`` subprocesses in their own process groups,
so that tearing down kills exactly the processes this cluster started (the
raylets, the GCS and the worker processes they spawned), never another Ray on
the machine. Each node offers one CPU; token authentication is off, as it is
for a private test cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
NODE_ARGS = [
    "--node-ip-address",
    "127.0.0.1",
    "--num-cpus",
    "1",
    "--object-store-memory",
    "100000000",
    "--disable-usage-stats",
    "--block",
]
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RayCluster:
    """Head plus one worker node; ``address`` is what ``ray.init`` joins."""

    def __init__(self) -> None:
        # A short folder: Ray's unix sockets live under it (path length limit).
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = os.environ.copy()
        self.env["RAY_AUTH_MODE"] = "disabled"
        # The worker processes import this checkout's pylate_clone.
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), self.env.get("PYTHONPATH", "")) if p
        )
        self.nodes: list[subprocess.Popen] = []

    def _start(self, args: list[str], log: str) -> subprocess.Popen:
        handle = open(Path(self.temp_dir) / log, "wb")
        process = subprocess.Popen(
            [RAY, "start", *args, *NODE_ARGS],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.nodes.append(process)
        return process

    def start(self) -> RayCluster:
        """Start the head, wait for its port, join the second node."""
        head_args = ["--head", "--port", str(self.port), "--temp-dir", self.temp_dir]
        self._start([*head_args, "--include-dashboard", "false"], "head.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.nodes[0].poll() is not None:
                    self.stop()
                    raise RuntimeError(f"ray head did not start: {self.log('head')}")
                time.sleep(0.3)
        self._start(["--address", self.address], "node.log")
        return self

    def wait_for_nodes(self, ray: object, count: int = 2) -> None:
        """Block until ``count`` nodes are alive (the driver is connected)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while sum(node["Alive"] for node in ray.nodes()) < count:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise RuntimeError(f"second ray node did not join: {self.log('node')}")
            time.sleep(0.5)

    def log(self, name: str) -> str:
        """The last lines of a node's output (for failure messages)."""
        path = Path(self.temp_dir) / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def worker_pids(self, title: str) -> list[int]:
        """Processes of this cluster whose title starts with ``title``.

        Ray renames its worker processes (``ray::MapWorker(...)`` for a Ray
        Data actor, ``ray::ShardServer`` for a shard actor). Workers run in
        process groups of their own, so a process is this cluster's when one
        of its ancestors is in a node's process group.
        """
        table: dict[int, tuple[int, int, str]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (
                int(fields[1]),
                int(fields[2]),
                cmdline.decode(errors="replace"),
            )
        groups = {node.pid for node in self.nodes}

        def ours(pid: int) -> bool:
            for _ in range(8):
                if pid not in table:
                    return False
                parent, group, _ = table[pid]
                if group in groups:
                    return True
                pid = parent
            return False

        return sorted(
            pid
            for pid, (_, _, cmdline) in table.items()
            if cmdline.startswith(title) and ours(pid)
        )

    def stop(self) -> None:
        """Kill every process of both nodes' process groups, then the temp folder."""
        for node in reversed(self.nodes):
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for node in self.nodes:
            node.wait(timeout=30)
        self.nodes = []
        shutil.rmtree(self.temp_dir, ignore_errors=True)
