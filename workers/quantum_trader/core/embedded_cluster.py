"""A private Redis Cluster on this machine (tests, benchmarks): N masters with one replica each.

Starts ``2 × masters`` ``redis-server --cluster-enabled yes`` processes on free TCP ports of
127.0.0.1 (each in its own temporary directory, no persistence), joins them with
``redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`` and waits until every
node reports ``cluster_state:ok`` and every master has a replica in sync. :meth:`stop` kills
every process and removes the directories. :meth:`url` is the ``redis+cluster://`` URL the
workers take (:mod:`quantum_trader.core.connection`).

Failover helpers for tests: :meth:`failover` (a replica takes over its master with
``CLUSTER FAILOVER``, no data loss) and :meth:`kill` (``SIGKILL`` a node).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from quantum_trader.core.embedded import EmbeddedRedisError, find_server_binary

NO_CLI_HINT: Final = "redis-cli not found on PATH (it ships with redis-server: apt-get install -y redis-server)"
SLOTS: Final = 16384


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key`` (CRC16/XMODEM of the hash tag, or of the whole key), mod 16384."""
    raw = key.encode() if isinstance(key, str) else key
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    crc = 0
    for byte in raw:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


def find_cli_binary() -> Path:
    """``redis-cli`` next to the server binary, else on PATH; raises :class:`EmbeddedRedisError`."""
    server = find_server_binary()
    for candidate in (server.parent / "redis-cli", server.parent / "valkey-cli"):
        if candidate.is_file():
            return candidate
    on_path = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if on_path:
        return Path(on_path)
    raise EmbeddedRedisError(NO_CLI_HINT)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            held.append(s)
            if port + 10000 > 65535 or port in ports:
                continue
            bus = socket.socket()
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            finally:
                bus.close()
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


@dataclass
class ClusterNode:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class EmbeddedRedisCluster:
    """``with EmbeddedRedisCluster() as c: c.url`` → ``redis+cluster://127.0.0.1:<port>``."""

    def __init__(self, *, masters: int = 3, replicas: int = 1) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self._masters = masters
        self._replicas = replicas
        self._root: Path | None = None
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        alive = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        return "redis+cluster://" + ",".join(n.address for n in alive[:1] or self.nodes[:1])

    def start(self, *, timeout_s: float = 30.0) -> EmbeddedRedisCluster:
        server, cli = find_server_binary(), find_cli_binary()
        self._root = Path(tempfile.mkdtemp(prefix="qt-cluster-"))
        count = self._masters * (1 + self._replicas)
        for port in _free_ports(count):
            directory = self._root / str(port)
            directory.mkdir()
            node = ClusterNode(port, directory)
            node.process = subprocess.Popen(
                [str(server), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(directory / "nodes.conf"), "--cluster-node-timeout", "1000",
                 "--dir", str(directory), "--appendonly", "no", "--save", "", "--daemonize", "no",
                 "--repl-diskless-sync-delay", "0", "--loglevel", "warning", "--logfile", str(directory / "server.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self.nodes.append(node)
        try:
            deadline = time.monotonic() + timeout_s
            for node in self.nodes:
                self._wait(lambda n=node: self._cli(cli, n, "PING") == "PONG", deadline, f"{node.address} up")
            subprocess.run(
                [str(cli), "--cluster", "create", *(n.address for n in self.nodes),
                 "--cluster-replicas", str(self._replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout_s,
            )  # fmt: skip
            self._wait(lambda: self._healthy(cli), deadline, "cluster_state:ok with every replica in sync")
        except BaseException:
            self.stop()
            raise
        return self

    # -- inspection and faults -------------------------------------------------------------------
    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def cli(self, port: int, *args: str) -> str:
        """``redis-cli -p port args…`` → its output (stripped)."""
        return self._cli(find_cli_binary(), self.node(port), *args)

    def master_of_slot(self, slot: int) -> int:
        """The port of the master that serves ``slot`` (as seen by any live node)."""
        for start, end, port in self._slot_ranges():
            if start <= slot <= end:
                return port
        raise EmbeddedRedisError(f"slot {slot} is not served")

    def replica_of(self, master_port: int) -> int:
        """The port of a replica of ``master_port``."""
        master_id = self.cli(master_port, "CLUSTER", "MYID")
        for line in self._live_command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            if len(parts) > 3 and "slave" in parts[2] and parts[3] == master_id and "fail" not in parts[2]:
                return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise EmbeddedRedisError(f"no replica of {master_port}")

    def failover(self, replica_port: int, *, timeout_s: float = 15.0) -> None:
        """``CLUSTER FAILOVER`` on a replica: it becomes master with every acknowledged write."""
        self.cli(replica_port, "CLUSTER", "FAILOVER")
        self.wait_promoted(replica_port, timeout_s=timeout_s)

    def wait_promoted(self, replica_port: int, *, timeout_s: float = 15.0) -> None:
        """Until ``replica_port`` is a master and every live node reports ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout_s
        self._wait(lambda: "role:master" in self.cli(replica_port, "INFO", "replication"), deadline,
                   f"{replica_port} promoted")
        self.wait_ok(timeout_s=max(0.1, deadline - time.monotonic()))

    def kill(self, port: int) -> None:
        """``SIGKILL`` one node (its replica takes over after the node timeout)."""
        proc = self.node(port).process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def wait_ok(self, *, timeout_s: float = 15.0) -> None:
        """Until every live node reports ``cluster_state:ok``."""
        self._wait(lambda: all("cluster_state:ok" in self._cli(find_cli_binary(), n, "CLUSTER", "INFO")
                               for n in self._alive()), time.monotonic() + timeout_s, "cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGKILL)
                node.process.wait(timeout=10)
            node.process = None
        self.nodes = []
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> EmbeddedRedisCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------------
    def _alive(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def _live_command(self, *args: str) -> str:
        return self._cli(find_cli_binary(), self._alive()[0], *args)

    def _slot_ranges(self) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for line in self._live_command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            if len(parts) < 9 or "master" not in parts[2] or "fail" in parts[2]:
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            for rng in parts[8:]:
                if rng.startswith("["):
                    continue  # a slot being migrated
                lo, _, hi = rng.partition("-")
                out.append((int(lo), int(hi or lo), port))
        return out

    def _healthy(self, cli: Path) -> bool:
        for node in self.nodes:
            if "cluster_state:ok" not in self._cli(cli, node, "CLUSTER", "INFO"):
                return False
            info = self._cli(cli, node, "INFO", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    @staticmethod
    def _cli(cli: Path, node: ClusterNode, *args: str) -> str:
        done = subprocess.run([str(cli), "-h", "127.0.0.1", "-p", str(node.port), *args],
                              capture_output=True, timeout=10, check=False)
        return done.stdout.decode(errors="replace").strip()

    @staticmethod
    def _wait(check: object, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if callable(check) and check():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.05)
        raise EmbeddedRedisError(f"local Redis Cluster: timed out waiting for {what}")
