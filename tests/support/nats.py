"""An ephemeral three-node NATS cluster with JetStream on 127.0.0.1, for the cluster-mode tests.

Each node has its own client, route and monitoring ports (free loopback ports, kept across a restart)
and its own JetStream store folder under one temporary folder. The nodes are routed to each other;
`NatsCluster.start` returns once every running node names the same JetStream meta leader.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.ports import LOOPBACK, accepts_connections, free_port

NATS_SERVER = Path("/usr/sbin/nats-server")
CLUSTER_NAME = "syncd-test"
READY_TIMEOUT = 30.0
"""Seconds the cluster may take to elect a JetStream meta leader."""


class NatsError(RuntimeError):
    """A node did not start or the cluster did not become ready; the message carries the logs."""


@dataclass
class _Node:
    name: str
    client_port: int
    route_port: int
    http_port: int
    store: Path
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NatsCluster:
    """Three ``nats-server`` processes forming one JetStream cluster.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Nodes are numbered from 0.

    Args:
        size: how many nodes (3 for R3 streams).
    """

    def __init__(self, size: int = 3) -> None:
        assert NATS_SERVER.is_file(), f"{NATS_SERVER} is missing: install the Debian package nats-server"
        self.size = size
        self._dir: Path | None = None
        self._nodes: list[_Node] = []

    # -- addresses ----------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Every node's client URL, ``nats://127.0.0.1:PORT``, in node order."""
        return [self.url(i) for i in range(len(self._nodes))]

    def url(self, index: int) -> str:
        """The client URL of node ``index``."""
        return f"nats://{LOOPBACK}:{self._nodes[index].client_port}"

    def index_of_port(self, port: int) -> int:
        """The node whose client port is ``port``."""
        return next(i for i, n in enumerate(self._nodes) if n.client_port == port)

    def pid(self, index: int) -> int:
        """The process id of node ``index``, which must be running."""
        process = self._nodes[index].process
        assert process is not None, f"node {index} is not running"
        assert process.poll() is None, f"node {index} has exited"
        return process.pid

    # -- life cycle ---------------------------------------------------------------------------------

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every node and wait until JetStream has a meta leader."""
        self._dir = Path(tempfile.mkdtemp(prefix="syncd-nats-"))
        ports = self._free_ports(3 * self.size)
        for i in range(self.size):
            name = f"n{i}"
            self._nodes.append(
                _Node(
                    name=name,
                    client_port=ports[3 * i],
                    route_port=ports[3 * i + 1],
                    http_port=ports[3 * i + 2],
                    store=self._dir / name / "jetstream",
                    config=self._dir / f"{name}.conf",
                    log=self._dir / f"{name}.log",
                )
            )
        for node in self._nodes:
            node.config.write_text(self._config(node))
            self._launch(node)
        self.wait_ready()

    def stop(self) -> None:
        """Stop every node and remove their files."""
        for node in self._nodes:
            self._end(node, signal.SIGTERM)
        self._nodes = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self, index: int) -> None:
        """Kill node ``index`` with SIGKILL; its store stays for :meth:`restart`."""
        self._end(self._nodes[index], signal.SIGKILL)

    def restart(self, index: int) -> None:
        """Start node ``index`` again on its ports and store, and wait until it sees the meta leader."""
        node = self._nodes[index]
        if not node.running:
            self._launch(node)
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every running node accepts clients and names the same JetStream meta leader."""
        deadline = time.monotonic() + timeout
        running = [n for n in self._nodes if n.running]
        while time.monotonic() < deadline:
            leaders = {self._meta_leader(n) for n in running}
            if len(leaders) == 1 and None not in leaders:
                return
            for node in running:
                if not node.running:
                    raise NatsError(f"nats-server {node.name} exited:\n{self.logs(node.name)}")
            time.sleep(0.1)
        raise NatsError(f"no JetStream meta leader in {timeout} s:\n{self.logs()}")

    def logs(self, name: str | None = None) -> str:
        """The nodes' log files (or one node's), for failure messages."""
        parts = []
        for node in self._nodes:
            if name in (None, node.name) and node.log.is_file():
                parts.append(f"--- {node.name} ---\n{node.log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------------------

    @staticmethod
    def _free_ports(count: int) -> list[int]:
        ports: list[int] = []
        while len(ports) < count:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return ports

    def _config(self, node: _Node) -> str:
        routes = ", ".join(
            f'"nats-route://{LOOPBACK}:{other.route_port}"' for other in self._nodes if other is not node
        )
        return (
            f'server_name: "{node.name}"\n'
            f'listen: "{LOOPBACK}:{node.client_port}"\n'
            f'http: "{LOOPBACK}:{node.http_port}"\n'
            f"jetstream {{\n"
            f'  store_dir: "{node.store}"\n'
            f"  max_memory_store: 64MB\n"
            f"  max_file_store: 1GB\n"
            f"}}\n"
            f"cluster {{\n"
            f'  name: "{CLUSTER_NAME}"\n'
            f'  listen: "{LOOPBACK}:{node.route_port}"\n'
            f"  routes: [{routes}]\n"
            f"}}\n"
        )

    def _launch(self, node: _Node) -> None:
        node.store.mkdir(parents=True, exist_ok=True)
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [str(NATS_SERVER), "-c", str(node.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if accepts_connections(node.client_port):
                return
            if not node.running:
                break
            time.sleep(0.02)
        raise NatsError(f"nats-server {node.name} did not start:\n{self.logs(node.name)}")

    def _end(self, node: _Node, sig: signal.Signals) -> None:
        process, node.process = node.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @staticmethod
    def _meta_leader(node: _Node) -> str | None:
        """The meta leader that ``node`` knows of, from its monitoring endpoint, or None."""
        url = f"http://{LOOPBACK}:{node.http_port}/jsz"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as answer:
                info = json.load(answer)
        except (OSError, urllib.error.URLError, ValueError):
            return None
        leader = (info.get("meta_cluster") or {}).get("leader")
        return leader if isinstance(leader, str) and leader else None
