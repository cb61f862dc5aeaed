"""`pointsview soak`: the whole stack under load while faults are injected on a schedule, then the
read-model compared with a fresh fold of the log.

Started here (each stopped on leaving, errors and Ctrl-C included): the local broker and a Redis with AOF
on (unless existing ones are given), N `pointsview projector` processes of one consumer group, and
`pointsview api --workers 2`. Events of the synthetic mix (devtools.synthetic) are produced on a fixed
schedule over many registered customers; about PROBES_PER_SECOND of them are probes (a points.earned of
1 point) whose produce-to-visible time is read through the API itself (`afterEventId`, which answers as
soon as the event is applied). Reads run open loop over four read endpoints in a process of their
own (devtools.soak_reads). Faults, one at a time, each waiting for the previous one's recovery:

- projector: SIGKILL one member, start it again;
- redis: SIGKILL Redis, start it again on the same port and data directory (AOF, appendfsync everysec);
- broker: SIGSTOP the broker for BROKER_PAUSE_SECONDS, then SIGCONT (the local broker is memory-only:
  a restart would lose the log);
- api: SIGKILL one uvicorn worker; the supervisor starts another;
- rebuild: `pointsview rebuild` (a new generation replayed beside the live one, then the switch).

Recovery of a fault: the corrective step is done (member or Redis started again, broker resumed, a new
API worker running, the rebuild's switch), every event handed to the producer until then is acknowledged
by the broker and covered by the live generation's positions in Redis (applied), and, for the faults that
touch the read path (redis, api), a balance read answers 200. A fault's outage window runs from its
injection to its recovery plus GRACE_SECONDS; non-2xx answers inside it are expected, outside it they fail
the run. Lag: the broker's acknowledged ends (the producer's own records: the local broker's ListOffsets
is wrong) minus the live generation's positions.

At the end production stops, the projectors catch up, and every customer of the live generation is
compared with a fold of the whole log (consumers.verify). The run passes when no customer differs, no
event is lost and no read outside an outage window failed.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer
from redis.exceptions import RedisError

from consumers.offsets import log_ends
from consumers.topics import create_topics
from consumers.verify import differing_customers, generation_customers, log_customers
from devtools.bench.common import run_settings, settings_env, wait_ready
from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.loadgen import fetch, percentile_ms
from devtools.localstack import LocalBroker, LocalRedis, free_port
from devtools.soak_reads import ReadPlan, run_in_subprocess
from devtools.synthetic import Load, generate, ongoing
from runtime import bootstrap
from runtime.settings import Settings
from runtime.transport import kafka_options

FAULT_KINDS = ("projector", "redis", "broker", "api", "rebuild")
# The order faults come in; spread over the first SCHEDULED_SHARE of the run.
SCHEDULE = ("projector", "redis", "projector", "broker", "api", "rebuild", "projector")
SCHEDULED_SHARE = 0.8
LAST_START_BEFORE_END_SECONDS = 10.0  # a fault not started by then is skipped (listed as such)
BROKER_PAUSE_SECONDS = 10.0
REDIS_DOWN_SECONDS = 1.0
GRACE_SECONDS = 2.0
RECOVERY_TIMEOUT_SECONDS = 180.0
CATCH_UP_TIMEOUT_SECONDS = 300.0
LOG_READ_TIMEOUT_SECONDS = 600.0
PROBES_PER_SECOND = 5
PROBE_GIVE_UP_SECONDS = 60.0
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


@dataclass
class Fault:
    kind: str
    at_s: float
    recovered_after_s: float | None = None
    detail: str = ""

    def window(self, run_end: float) -> tuple[float, float]:
        recovered = run_end if self.recovered_after_s is None else self.at_s + self.recovered_after_s
        return self.at_s, recovered + GRACE_SECONDS


def schedule(kinds: tuple[str, ...], duration: float) -> list[tuple[float, str]]:
    order = [kind for kind in SCHEDULE if kind in kinds]
    step = SCHEDULED_SHARE * duration / (len(order) + 1)
    return [(step * (n + 1), kind) for n, kind in enumerate(order)]


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

    async def start(self, stack: AsyncExitStack) -> None:
        for producer in (self.batched, self.prompt):
            await producer.start()
            stack.push_async_callback(producer.stop)

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


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes under its supervisor (multiprocessing's resource tracker is a child too)."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(int(child))
    return workers


def soak_settings(kafka: str, redis_url: str, local_broker: bool) -> Settings:
    return run_settings(
        "soak",
        KAFKA_BOOTSTRAP_SERVERS=kafka,
        REDIS_URL=redis_url,
        **(LocalBroker.SETTINGS if local_broker else {}),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )


def log(message: str) -> None:
    print(f"soak: {message}", file=sys.stderr, flush=True)


@dataclass
class Soak:
    options: SoakOptions
    stack: AsyncExitStack
    settings: Settings = field(init=False)
    broker: LocalBroker | None = None
    redis_server: LocalRedis | None = None
    projectors: list[Process] = field(default_factory=list)
    api: Process | None = None
    api_port: int = 0
    origin: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    lag: list[tuple[float, int | None]] = field(default_factory=list)
    probes: list[tuple[float, float | None]] = field(default_factory=list)  # (sent, visible) since origin

    # --- the stack ---

    async def start(self) -> None:
        options = self.options
        if not options.kafka:
            self.broker = LocalBroker().start()
            self.stack.callback(self.broker.stop)
        if not options.redis:
            self.redis_server = LocalRedis(appendonly=True).start()
            self.stack.callback(self.redis_server.cleanup)
        kafka = options.kafka or self.broker.bootstrap_servers
        self.settings = soak_settings(kafka, options.redis or self.redis_server.url, self.broker is not None)
        logs = options.logs or Path(tempfile.mkdtemp(prefix="pointsview-soak-"))
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        metrics = tempfile.mkdtemp(prefix="pointsview-soak-metrics-")
        self.stack.callback(shutil.rmtree, metrics, ignore_errors=True)
        env = {
            **os.environ,
            **settings_env(self.settings),
            "POINTSVIEW_LOG_LEVEL": "WARNING",
            "LOYALTY_CONFIG": str(DEMO_CONFIG),
            "PROMETHEUS_MULTIPROC_DIR": metrics,
        }
        env.pop("POINTSVIEW_METRICS_PORT", None)
        await create_topics(self.settings)
        self.redis = bootstrap.redis_client(self.settings)
        self.stack.push_async_callback(self.redis.aclose)
        self.producer = Producer(self.settings)
        await self.producer.start(self.stack)
        self.load = Load(
            customers=options.customers,
            events_per_customer=1,  # their registrations; `ongoing` then draws from them
            customers_topic=self.settings.topic_list[0],
            points_topic=self.settings.topic_list[-1],
        )
        log(f"registering {options.customers:,} customers ...")
        for topic, key, value in generate(self.load):
            await self.producer.send(topic, key, value)
        self.projectors = [Process(["projector"], env, logs / f"projector-{n}.log") for n in range(options.projectors)]
        for member in self.projectors:
            self.stack.callback(member.stop)
            member.start()
        self.api_port = free_port()
        self.api = Process(
            ["api", "--port", str(self.api_port), "--workers", str(options.api_workers)], env, logs / "api.log"
        )
        self.stack.callback(self.api.stop)
        self.api.start()
        await wait_ready(self.api.popen, self.api_port, "/health/ready", "the API")
        self.env = env
        registered = await self.producer.settled(self.producer.handed)
        if not await self._until_applied(registered, CATCH_UP_TIMEOUT_SECONDS):
            raise SoakError(f"the projectors did not apply the registrations within {CATCH_UP_TIMEOUT_SECONDS:.0f}s")

    # --- positions and lag ---

    async def _positions(self) -> dict[str, int]:
        live = await bootstrap.generations(self.settings, self.redis).live() or 1
        found = await self.redis.hgetall(bootstrap.keys(self.settings, live).positions())
        return {name.decode(): int(value) for name, value in found.items()}

    async def _behind(self, ends: dict[str, int]) -> int:
        positions = await self._positions()
        return sum(max(0, end - positions.get(name, 0)) for name, end in ends.items())

    async def _until_applied(self, ends: dict[str, int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self._behind(ends) == 0:
                    return True
            except (RedisError, OSError):
                pass
            await asyncio.sleep(0.1)
        return False

    async def _watch_lag(self) -> None:
        while True:
            try:
                behind: int | None = await self._behind(dict(self.producer.ends))
            except (RedisError, OSError):
                behind = None
            self.lag.append((round(time.monotonic() - self.origin, 2), behind))
            await asyncio.sleep(1.0)

    # --- production and probes ---

    async def _produce(self, until: float) -> None:
        rate = self.options.events
        every = max(1, round(rate / PROBES_PER_SECOND))
        events = ongoing(self.load)
        probing: list[asyncio.Task] = []
        for n in range(int(rate * (until - self.origin))):
            if (ahead := self.origin + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            if n % every:
                await self.producer.send(*next(events))
            else:
                customer = self.load.first_customer_id + (n // every * 7919) % self.load.customers
                probing.append(asyncio.create_task(self._probe(customer)))
        await asyncio.gather(*probing)

    async def _probe(self, customer: int) -> None:
        event_id = uuid.uuid4().hex
        event = {
            "specVersion": 1,
            "eventId": event_id,
            "eventType": "points.earned",
            "orgId": self.load.org_id,
            "customerId": customer,
            "occurredAt": "2026-06-01T00:00:00Z",
            "data": {"programId": self.load.programs[0], "points": "1", "category": "MAIN"},
        }
        key = f"{self.load.org_id}:{customer}".encode()
        sent = time.monotonic()
        await self.producer.send(self.load.points_topic, key, orjson.dumps(event), prompt=True)
        path = f"/v2/customers/{customer}/points/balance?afterEventId={event_id}&waitMs=5000"
        visible = None
        while time.monotonic() - sent < PROBE_GIVE_UP_SECONDS:
            try:
                status, body = await fetch(self.api_port, path, AUTH_HEADERS)
            except (OSError, asyncio.IncompleteReadError):
                status, body = 0, b""
            if status == 200 and b"90001" not in body:
                visible = time.monotonic() - self.origin
                break
            if status != 200:
                await asyncio.sleep(0.2)
        self.probes.append((sent - self.origin, visible))

    # --- faults ---

    async def _faults(self, until: float) -> None:
        projector_faults = 0
        for at, kind in schedule(self.options.faults, self.options.duration):
            if (ahead := self.origin + at - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            if time.monotonic() > until - LAST_START_BEFORE_END_SECONDS:
                self.skipped.append(f"{kind}: no time left before the end of production")
                continue
            if (kind == "redis" and not self.redis_server) or (kind == "broker" and not self.broker):
                self.skipped.append(f"{kind}: an existing server, not the soak's own")
                continue
            injected = time.monotonic()
            fault = Fault(kind, round(injected - self.origin, 2))
            self.faults.append(fault)
            log(f"{fault.at_s:.0f}s: fault {kind}")
            if kind == "projector":
                fault.detail = await self._kill_projector(projector_faults)
                projector_faults += 1
            elif kind == "redis":
                fault.detail = await self._restart_redis()
            elif kind == "broker":
                fault.detail = await self._pause_broker()
            elif kind == "api":
                fault.detail = await self._kill_api_worker()
            else:
                fault.detail = await self._rebuild()
            if await self._recovered(kind in ("redis", "api")):
                fault.recovered_after_s = round(time.monotonic() - injected, 2)
                log(f"  recovered after {fault.recovered_after_s:.1f}s")
            else:
                log(f"  NOT recovered within {RECOVERY_TIMEOUT_SECONDS:.0f}s")
                return

    async def _kill_projector(self, n: int) -> str:
        member = self.projectors[n % len(self.projectors)]
        pid = member.popen.pid
        member.kill()
        member.start()
        return f"member {n % len(self.projectors)} (pid {pid}) SIGKILLed, started again"

    async def _restart_redis(self) -> str:
        self.redis_server.kill()
        await asyncio.sleep(REDIS_DOWN_SECONDS)
        await asyncio.to_thread(self.redis_server.start)
        return f"SIGKILLed, started again {REDIS_DOWN_SECONDS:g} s later on its port and AOF"

    async def _pause_broker(self) -> str:
        self.broker.pause()
        try:
            await asyncio.sleep(BROKER_PAUSE_SECONDS)
        finally:
            self.broker.resume()
        return f"SIGSTOP, SIGCONT {BROKER_PAUSE_SECONDS:g} s later"

    async def _kill_api_worker(self) -> str:
        before = worker_pids(self.api.popen.pid)
        if not before:
            raise SoakError("the API has no worker processes to kill (is it running with --workers 2?)")
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        while not set(worker_pids(self.api.popen.pid)) - set(before):
            if time.monotonic() > deadline:
                raise SoakError(f"the API's supervisor started no new worker within {RECOVERY_TIMEOUT_SECONDS:.0f}s")
            await asyncio.sleep(0.05)
        return f"worker pid {before[0]} SIGKILLed; the supervisor started another"

    async def _rebuild(self) -> str:
        process = Process(["rebuild"], self.env, self.logs / "rebuild.log").start()
        code = await asyncio.to_thread(process.popen.wait)
        if code != 0:
            raise SoakError(f"`pointsview rebuild` exited with code {code} (see {self.logs / 'rebuild.log'})")
        live = await bootstrap.generations(self.settings, self.redis).live()
        return f"generation {live} live"

    async def _recovered(self, reads_too: bool) -> bool:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        ends = await self.producer.settled(self.producer.handed)
        if not await self._until_applied(ends, RECOVERY_TIMEOUT_SECONDS):
            return False
        path = f"/v2/customers/{self.load.first_customer_id}/points/balance"
        while reads_too and time.monotonic() < deadline:
            try:
                if (await fetch(self.api_port, path, AUTH_HEADERS))[0] == 200:
                    return True
            except (OSError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.05)
        return not reads_too

    # --- the run ---

    async def run(self) -> dict:
        options = self.options
        self.origin = time.monotonic() + 2.0
        until = self.origin + options.duration
        plan = ReadPlan(
            port=self.api_port,
            rate=options.reads,
            duration=options.duration,
            origin=self.origin,
            first_customer_id=self.load.first_customer_id,
            customers=options.customers,
            headers=AUTH_HEADERS,
        )
        reading = asyncio.create_task(run_in_subprocess(plan))
        watching = asyncio.create_task(self._watch_lag())
        faulting = asyncio.create_task(self._faults(until))
        try:
            await self._produce(until)
            log("production done; waiting for the faults' recovery and the readers ...")
            await faulting
            reads = await reading
            produced_for = time.monotonic() - self.origin
            await self.producer.flush()
            ends = await self.producer.settled(self.producer.handed)
            log("catching up ...")
            caught_up = await self._until_applied(ends, CATCH_UP_TIMEOUT_SECONDS)
        finally:
            for task in (reading, watching, faulting):
                task.cancel()
            await asyncio.gather(reading, watching, faulting, return_exceptions=True)
        return await self._result(reads, produced_for, ends, caught_up)

    async def _result(self, reads: dict, produced_for: float, ends: dict[str, int], caught_up: bool) -> dict:
        log("verifying: the live generation against a fold of the whole log ...")
        live = await bootstrap.generations(self.settings, self.redis).live() or 1
        stored = await generation_customers(self.redis, bootstrap.keys(self.settings, live))
        try:
            folded = await asyncio.wait_for(log_customers(self.settings), LOG_READ_TIMEOUT_SECONDS)
        except TimeoutError:
            raise SoakError(f"could not read the whole log back within {LOG_READ_TIMEOUT_SECONDS:.0f}s to verify")
        drift = differing_customers(stored, folded)
        positions = await self._positions()
        in_log = sum((await log_ends(self.settings, list(_partitions(ends)))).values())
        unapplied = sum(max(0, end - positions.get(name, 0)) for name, end in ends.items())
        run_end = produced_for
        windows = [fault.window(run_end) for fault in self.faults]
        outside = [f for f in reads["failures"] if not _overlaps(f[0], f[1], windows)]
        fresh = sorted(
            int((visible - sent) * 1e9)
            for sent, visible in self.probes
            if visible is not None and not _overlaps(sent, visible, windows)
        )
        result = {
            "soak": "pointsview",
            "duration_s": round(produced_for, 1),
            "rates": {"reads_per_s": self.options.reads, "events_per_s": self.options.events},
            "customers": self.options.customers,
            "projectors": self.options.projectors,
            "api_workers": self.options.api_workers,
            "events_produced": self.producer.acked,
            "send_failures": self.producer.failed,
            "events_in_log": in_log,
            "events_applied": sum(positions.values()),
            "caught_up": caught_up,
            "generation": live,
            "faults": [asdict(fault) for fault in self.faults],
            "skipped_faults": self.skipped,
            "customers_compared": len(folded.keys() | stored.keys()),
            "drift": len(drift),
            "drifted_customers": [list(key) for key in drift[:20]],
            "lost_events": max(0, self.producer.acked - in_log) + unapplied,
            "reads": {
                "total": reads["total"],
                "non2xx": reads["non2xx"],
                "non2xx_outside_outages": len(outside),
                "p50_ms": reads["p50_ms"],
                "p99_ms": reads["p99_ms"],
                "p999_ms": reads["p999_ms"],
                "failures_outside_outages": outside[:20],
            },
            "freshness": {
                "what": "produce to visible through the API (afterEventId), probes outside the outage windows",
                "probes": len(self.probes),
                "outside_windows": len(fresh),
                "not_visible": sum(visible is None for _, visible in self.probes),
                "p50_ms": round(percentile_ms(fresh, 0.5), 1),
                "p99_ms": round(percentile_ms(fresh, 0.99), 1),
            },
            "timeline": {"reads": reads["per_second"], "lag": self.lag},
            "logs": str(self.logs),
        }
        result["passed"] = passed(result)
        return result


def passed(result: dict) -> bool:
    return (
        result["drift"] == 0
        and result["lost_events"] == 0
        and result["reads"]["non2xx_outside_outages"] == 0
        and all(fault["recovered_after_s"] is not None for fault in result["faults"])
    )


def _partitions(ends: dict[str, int]):
    from aiokafka import TopicPartition

    for name in ends:
        topic, partition = name.rsplit(":", 1)
        yield TopicPartition(topic, int(partition))


def _overlaps(start: float, end: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= w_end and end >= w_start for w_start, w_end in windows)


async def run_soak(options: SoakOptions, on_start: Callable[[Soak], None] | None = None) -> dict:
    unknown = set(options.faults) - set(FAULT_KINDS)
    if unknown:
        raise SoakError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
    async with AsyncExitStack() as stack:
        soak = Soak(options, stack)
        await soak.start()
        if on_start:
            on_start(soak)
        log(
            f"{options.duration:g}s at {options.events:,.0f} events/s and {options.reads:,.0f} reads/s, "
            f"faults {', '.join(kind for _, kind in schedule(options.faults, options.duration)) or 'none'}; "
            f"process logs in {soak.logs}"
        )
        return await soak.run()
