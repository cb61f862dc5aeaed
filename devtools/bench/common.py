"""What every benchmark shares: its servers, per-run settings, the synthetic load, the projector timed
in-process, `pointsview api` started as a subprocess, and the terminal's tables."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from consumers.projector import run_projector
from consumers.topics import create_topics
from devtools.loadgen import fetch
from devtools.localstack import LocalBroker, LocalRedis, LocalRedisCluster, LocalServerError, free_port
from devtools.produce import produce
from devtools.synthetic import Load, generate
from runtime import bootstrap
from runtime.progress import Progress, shown
from runtime.settings import Settings

READY_TIMEOUT_SECONDS = 30


class BenchError(LocalServerError):
    """A server of the benchmark would not start or answered wrongly (one line, no traceback)."""


def start_process(command: list[str], env: dict[str, str], stack: ExitStack) -> subprocess.Popen:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )  # a terminal's Ctrl-C reaches only us; we stop it
    stack.callback(_stop, process)
    return process


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets uvicorn's supervisor stop its workers; then SIGKILL to whatever is left in its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group is the server's own (start_new_session)
    except ProcessLookupError:
        pass
    process.wait()


async def wait_ready(process: subprocess.Popen, port: int, path: str, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    while loop.time() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} at start")
        try:
            if (await fetch(port, path))[0] == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"{what} not ready on 127.0.0.1:{port}{path} within {READY_TIMEOUT_SECONDS}s")


async def start_api(settings: Settings, workers: int, config: Path, env: dict, stack: ExitStack) -> int:
    port = free_port()
    env = {**env, **settings_env(settings), "LOYALTY_CONFIG": str(config)}
    process = start_process(
        [sys.executable, "-m", "cli", "api", "--port", str(port), "--workers", str(workers)], env, stack
    )
    await wait_ready(process, port, "/health/ready", "the API")
    return port


progress = Console(stderr=True)  # what a run is doing; the figures go to stdout


QUIET = {"POINTSVIEW_LOG_LEVEL": "WARNING"}  # the processes a benchmark starts: their progress lines aside


@dataclass(frozen=True)
class Applied:
    rate: float  # events per second, from the last poll that saw nothing applied to the last record
    timeline: list[tuple[float, int]]  # (seconds since the projector started, events applied), every 0.1 s
    cpu_us_per_event: float | None = None  # one process (in this one): its CPU time over the run, per event


async def projector_rate(settings: Settings, total: int, processes: int = 1) -> Applied:
    """Runs the projector (in-process; with `processes` > 1 `pointsview projector --processes N` as a process
    of its own) until the Redis positions cover `total` records, then stops it.

    The positions move when customers are written, which while catching up is every
    POINTSVIEW_WRITE_BEHIND_RECORDS: the rate counts from the first write they show to the last, the
    records of that first write (and the start-up) left out; a run written all at once counts from the
    last poll that saw nothing."""
    redis = bootstrap.redis_client(settings)
    stop = asyncio.Event()
    with ExitStack() as stack:
        task, member = _start_projector(settings, processes, stop, stack)
        try:
            check = partial(_still_running, task, member)
            return await _until_positions(redis, bootstrap.keys(settings).positions(), total, check, processes == 1)
        finally:
            stop.set()
            if task:
                await task
            await redis.aclose()


def _start_projector(
    settings: Settings, processes: int, stop: asyncio.Event, stack: ExitStack
) -> tuple[asyncio.Task | None, subprocess.Popen | None]:
    """The projector in this process (a task), or `pointsview projector --processes N` (a process)."""
    if processes == 1:
        return asyncio.create_task(run_projector(settings, stop)), None
    command = [sys.executable, "-m", "cli", "projector", "--processes", str(processes)]
    return None, start_process(command, {**os.environ, **settings_env(settings), **QUIET}, stack)


def _still_running(task: asyncio.Task | None, member: subprocess.Popen | None) -> None:
    """Raises the projector's error, or BenchError when its process has exited."""
    if task and task.done():
        task.result()
    if member and member.poll() is not None:
        raise BenchError(f"the projector exited with code {member.returncode}")


async def _until_positions(redis, positions: str, total: int, check: Callable[[], None], own_cpu: bool) -> Applied:
    """Polls the positions until they cover `total` records: the rate, the timeline and (`own_cpu`: the
    projector runs in this process) the CPU time per event."""
    timeline: list[tuple[float, int]] = []
    launched = idle_at = time.perf_counter()
    cpu_before = time.process_time()
    first: tuple[float, int] | None = None
    while True:
        polled = time.perf_counter()
        done = sum(int(v) for v in (await redis.hgetall(positions)).values())
        if not timeline or polled - launched - timeline[-1][0] >= 0.1 or done >= total:
            timeline.append((round(polled - launched, 3), done))
        if not done:
            idle_at = polled
        elif first is None:
            first = (polled, done)
        if done >= total:
            start_at, start_done = (idle_at, 0) if first[1] >= total else first
            cpu = (time.process_time() - cpu_before) / total * 1e6 if own_cpu else None
            return Applied((done - start_done) / (polled - start_at), timeline, cpu)
        check()
        await asyncio.sleep(0.01)


@contextmanager
def local_servers(redis_cluster: bool = False) -> Iterator[dict[str, str]]:
    """The settings that reach the servers: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else local servers
    started here (with their settings, LocalBroker.SETTINGS) and stopped on leaving, errors and Ctrl-C
    included. With `redis_cluster`, also a local three-master Redis Cluster: its URL is CLUSTER_URL
    (for on_cluster)."""
    with ExitStack() as stack:
        servers: dict[str, str] = {}
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = LocalBroker().start()
            stack.callback(broker.stop)
            servers.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, **LocalBroker.SETTINGS)
        if not os.environ.get("REDIS_URL"):
            redis_server = LocalRedis().start()
            stack.callback(redis_server.cleanup)
            servers["REDIS_URL"] = redis_server.url
        if redis_cluster:
            cluster = LocalRedisCluster(masters=CLUSTER_MASTERS)
            stack.callback(cluster.cleanup)
            servers[CLUSTER_URL] = cluster.start().url
        yield servers


CLUSTER_URL = "cluster_url"  # in local_servers' answer: not a setting
CLUSTER_MASTERS = 3
ON_CLUSTER = f" on a Redis Cluster ({CLUSTER_MASTERS} masters)"  # the rows' label suffix


def on_cluster(settings: Settings, servers: dict[str, str]) -> Settings:
    """The same run's settings on the local cluster, in a key prefix and group of their own."""
    return settings.model_copy(
        update={
            "redis_url": servers[CLUSTER_URL],
            "redis_cluster": True,
            "key_prefix": f"{settings.key_prefix}-cluster",
            "group_id": f"{settings.group_id}-cluster",
        }
    )


def bench_settings(servers: dict[str, str]) -> Settings:
    return run_settings("bench", **{name: value for name, value in servers.items() if name != CLUSTER_URL})


def run_settings(kind: str, **settings) -> Settings:
    """Topics, group and key prefix of this run only (`kind`-<run>): runs against shared servers never mix."""
    run = uuid.uuid4().hex[:8]
    return Settings(
        topics=f"{kind}-customers-{run},{kind}-points-{run}",
        deadletter_topic=f"{kind}-deadletter-{run}",
        group_id=f"{kind}-projector-{run}",
        key_prefix=f"{kind}-{run}",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        **settings,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `pointsview` subprocess these settings (secrets revealed, unset ones left out)."""
    env = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is not None:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[str(field.validation_alias or f"POINTSVIEW_{name.upper()}")] = str(plain)
    return env


def synthetic_load(settings: Settings, customers: int, events_per_customer: int) -> Load:
    customers_topic, points_topic = settings.topic_list
    return Load(
        customers=customers,
        events_per_customer=events_per_customer,
        customers_topic=customers_topic,
        points_topic=points_topic,
    )


async def produce_load(settings: Settings, load: Load) -> list[tuple[str, bytes, bytes]]:
    """Creates the run's topics (the broker would auto-create other partition counts), then produces."""
    await create_topics(settings)
    stream = generate(load)
    async with shown(Progress("producing")) as sent:
        await produce(settings, stream, progress=sent)
    return stream


def print_table(title: str, columns: list[str], rows: list[list[str]], caption: str | None = None) -> None:
    table = Table(title=title, caption=caption)
    for n, column in enumerate(columns):
        table.add_column(column, justify="left" if n == 0 else "right", no_wrap=n == 0)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
