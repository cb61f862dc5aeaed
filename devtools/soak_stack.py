"""The soak's stack (devtools.soak): the broker and Redis (local ones unless existing ones are given), the
`pointsview projector` and `pointsview api` processes, the producer counting what the broker acknowledged,
and the live generation's positions that tell how far the projectors have applied."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from redis.exceptions import RedisError

from consumers.topics import create_topics
from devtools.bench.common import run_settings, settings_env, wait_ready
from devtools.demo import DEMO_CONFIG
from devtools.localstack import LocalBroker, LocalRedis, free_port
from devtools.synthetic import Load, generate
from runtime import bootstrap
from runtime.settings import Settings
from runtime.transport import kafka_options

FAULT_KINDS = ("projector", "redis", "broker", "api", "rebuild")
CATCH_UP_TIMEOUT_SECONDS = 300.0
LOAD_LINGER_MS = 200
FETCH_MAX_WAIT_MS = 10  # the local broker holds a fetch for its whole max wait (devtools/bench/freshness.py)

# What this 2-core machine carries with the broker, Redis, the projectors, two API workers and the readers
# on it (the brief's 5,000 reads/s and 2,000 events/s do not fit; see docs/benchmarks/soak.md).
DEFAULT_DURATION = 600.0
DEFAULT_READS = 2_000.0
DEFAULT_EVENTS = 1_000.0
DEFAULT_CUSTOMERS = 20_000


class SoakError(RuntimeError):
    pass


@dataclass(frozen=True)
class SoakOptions:
    duration: float = DEFAULT_DURATION
    reads: float = DEFAULT_READS
    events: float = DEFAULT_EVENTS
    faults: tuple[str, ...] = FAULT_KINDS
    customers: int = DEFAULT_CUSTOMERS
    projectors: int = 2
    api_workers: int = 2
    kafka: str | None = None  # existing servers: the faults on them are skipped
    redis: str | None = None
    logs: Path | None = None  # the processes' stderr; default a temporary directory


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


class Producer:
    """Two aiokafka producers, counting what they were handed and what the broker acknowledged, and each
    partition's acknowledged end (the last offset + 1). The load lingers LOAD_LINGER_MS, so that few record
    batches pile up in a partition (the local broker's fetches slow down with their number: with 50,000
    single-record batches in a partition a fetch returns next to nothing in 5 s, while the same records in
    8 KB batches are read at once); the probes go at once (`prompt`), each its own small batch."""

    def __init__(self, settings: Settings):
        def producer(linger_ms: int) -> AIOKafkaProducer:
            return AIOKafkaProducer(
                **kafka_options(settings), acks="all", enable_idempotence=False, linger_ms=linger_ms
            )

        self.batched, self.prompt = producer(LOAD_LINGER_MS), producer(0)
        self.handed = self.acked = self.failed = 0
        self.ends: dict[str, int] = {}  # "topic:partition" (the positions' field names) -> end

    async def start(self, exits: AsyncExitStack) -> None:
        for producer in (self.batched, self.prompt):
            await producer.start()
            exits.push_async_callback(producer.stop)

    async def flush(self) -> None:
        await self.batched.flush()
        await self.prompt.flush()

    async def send(self, topic: str, key: bytes, value: bytes, prompt: bool = False) -> None:
        future = await (self.prompt if prompt else self.batched).send(topic, value, key)
        self.handed += 1
        future.add_done_callback(self._done)

    def _done(self, future) -> None:
        if future.cancelled() or future.exception():
            self.failed += 1
            return
        sent = future.result()
        name = f"{sent.topic}:{sent.partition}"
        self.ends[name] = max(self.ends.get(name, 0), sent.offset + 1)
        self.acked += 1

    async def settled(self, handed: int) -> dict[str, int]:
        """The ends once every event handed over before `handed` is acknowledged (or failed)."""
        while self.acked + self.failed < handed:
            await asyncio.sleep(0.02)
        return dict(self.ends)


class Process:
    """A `pointsview` command as a process group of its own, its stderr to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log = args, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log, "ab") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cli", *self.args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        """SIGTERM (a projector finishes its batch, uvicorn stops its workers), then SIGKILL to the group."""
        if not self.popen:
            return
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()


def soak_settings(kafka: str, redis_url: str, local_broker: bool) -> Settings:
    return run_settings(
        "soak",
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        REDIS_URL=redis_url,
        **(LocalBroker.SETTINGS if local_broker else {}),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )


@dataclass
class SoakStack:
    """Started by `start`; everything it started is stopped when `exits` closes."""

    options: SoakOptions
    exits: AsyncExitStack
    settings: Settings = field(init=False)
    broker: LocalBroker | None = None
    redis_server: LocalRedis | None = None
    projectors: list[Process] = field(default_factory=list)
    api: Process | None = None
    api_port: int = 0

    async def start(self) -> None:
        self._start_servers()
        self.logs = self._log_directory()
        self.env = self._process_env()
        await create_topics(self.settings)
        self.redis = bootstrap.redis_client(self.settings)
        self.exits.push_async_callback(self.redis.aclose)
        self.producer = Producer(self.settings)
        await self.producer.start(self.exits)
        await self._register_customers()
        self._start_projectors()
        await self._start_api()
        registered = await self.producer.settled(self.producer.handed)
        if not await self.until_applied(registered, CATCH_UP_TIMEOUT_SECONDS):
            raise SoakError(f"the projectors did not apply the registrations within {CATCH_UP_TIMEOUT_SECONDS:.0f}s")

    def _start_servers(self) -> None:
        """The local broker and Redis (with AOF) unless existing ones are given, and the settings for them."""
        if not self.options.kafka:
            self.broker = LocalBroker().start()
            self.exits.callback(self.broker.stop)
        if not self.options.redis:
            self.redis_server = LocalRedis(appendonly=True).start()
            self.exits.callback(self.redis_server.cleanup)
        kafka = self.options.kafka or self.broker.bootstrap_servers
        redis_url = self.options.redis or self.redis_server.url
        self.settings = soak_settings(kafka, redis_url, self.broker is not None)

    def _log_directory(self) -> Path:
        logs = self.options.logs or Path(tempfile.mkdtemp(prefix="pointsview-soak-"))
        logs.mkdir(parents=True, exist_ok=True)
        return logs

    def _process_env(self) -> dict[str, str]:
        """The environment of the `pointsview` processes: these settings, the demo config, shared metrics."""
        metrics = tempfile.mkdtemp(prefix="pointsview-soak-metrics-")
        self.exits.callback(shutil.rmtree, metrics, ignore_errors=True)
        env = {
            **os.environ,
            **settings_env(self.settings),
            "POINTSVIEW_LOG_LEVEL": "WARNING",
            "LOYALTY_CONFIG": str(DEMO_CONFIG),
            "PROMETHEUS_MULTIPROC_DIR": metrics,
        }
        env.pop("POINTSVIEW_METRICS_PORT", None)
        return env

    async def _register_customers(self) -> None:
        self.load = Load(
            customers=self.options.customers,
            events_per_customer=1,  # their registrations; `ongoing` then draws from them
            customers_topic=self.settings.topic_list[0],
            points_topic=self.settings.topic_list[-1],
        )
        log(f"registering {self.options.customers:,} customers ...")
        for topic, key, value in generate(self.load):
            await self.producer.send(topic, key, value)

    def _start_projectors(self) -> None:
        self.projectors = [
            Process(["projector"], self.env, self.logs / f"projector-{n}.log") for n in range(self.options.projectors)
        ]
        for member in self.projectors:
            self.exits.callback(member.stop)
            member.start()

    async def _start_api(self) -> None:
        self.api_port = free_port()
        args = ["api", "--port", str(self.api_port), "--workers", str(self.options.api_workers)]
        self.api = Process(args, self.env, self.logs / "api.log")
        self.exits.callback(self.api.stop)
        self.api.start()
        await wait_ready(self.api.popen, self.api_port, "/health/ready", "the API")

    # --- positions and lag ---

    async def live_generation(self) -> int:
        return await bootstrap.generations(self.settings, self.redis).live() or 1

    async def positions(self) -> dict[str, int]:
        found = await self.redis.hgetall(bootstrap.keys(self.settings, await self.live_generation()).positions())
        return {name.decode(): int(value) for name, value in found.items()}

    async def behind(self, ends: dict[str, int]) -> int:
        positions = await self.positions()
        return sum(max(0, end - positions.get(name, 0)) for name, end in ends.items())

    async def until_applied(self, ends: dict[str, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self.behind(ends) == 0:
                    return True
            except (RedisError, OSError):
                pass
            await asyncio.sleep(0.1)
        return False
