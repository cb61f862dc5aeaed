"""`pointsview bench projector`: the projector's apply rate next to a bare consumer, same run, same topics.

Starts its own broker and Redis unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are
set. Both rates are timed from the first record seen to the last, so group
joins and start-up are left out of both. The servers, per-run settings and
synthetic load helpers are shared with `pointsview bench api` (devtools.bench.api).
"""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer

from devtools.bench.common import (
    ON_CLUSTER,
    QUIET,
    Applied,
    BenchError,
    bench_settings,
    local_servers,
    on_cluster,
    print_table,
    produce_load,
    progress,
    projector_rate,
    settings_env,
    synthetic_load,
)
from devtools.synthetic import Load
from projections.fold import fold_log
from runtime.settings import Settings
from runtime.transport import kafka_options


async def _bare_consumer_rate(settings: Settings, total: int) -> float:
    consumer = AIOKafkaConsumer(
        *settings.topic_list,
        **kafka_options(settings),
        group_id=f"bench-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < total:
            asked = time.perf_counter()
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            if not seen:
                started = asked  # the clock starts with the request that brought the first records
            seen += sum(len(records) for records in batch.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _rebuild_rate(settings: Settings, total: int, processes: int) -> float:
    """`pointsview rebuild --processes N` into a new generation, switch included: events per second of the
    command's wall clock (start-up, reading the log, writing, the hand-over and the switch)."""
    # The live projector of the run has stopped. Kafka drops a stopped member from its group at once; the
    # local broker lists it until its session times out, which the rebuild would wait for: a group of
    # its own, without members, measures the rebuild rather than that.
    idle = settings.model_copy(update={"group_id": f"{settings.group_id}-idle"})
    env = {**os.environ, **settings_env(idle), **QUIET}
    command = [sys.executable, "-m", "cli", "rebuild", "--processes", str(processes)]
    started = time.perf_counter()
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise BenchError(f"pointsview rebuild exited with code {done.returncode}: {done.stderr[-500:]}")
    return total / (time.perf_counter() - started)


FOLD = "pure fold (fold_log) over the same values (baseline)"


def _fold_cpu(stream: list[tuple[str, bytes, bytes]]) -> float:
    """CPU microseconds per event of the pure fold (parse, dedup, apply) over the log's values in memory."""
    started = time.process_time()
    fold_log(value for _, _, value in stream)
    return (time.process_time() - started) / len(stream) * 1e6


LEDGER_OFF = ", ledger off (POINTSVIEW_LEDGER_ENTRIES=0)"


def _ledger_off(settings: Settings) -> Settings:
    """The same run with the ledger off, in a key prefix and group of its own."""
    apart = {"key_prefix": f"{settings.key_prefix}-off", "group_id": f"{settings.group_id}-off"}
    return settings.model_copy(update={"ledger_entries": 0, **apart})


def _label(what: str, processes: int) -> str:
    return f"pointsview {what}" + (f", {processes} processes" if processes > 1 else "")


async def _projector_rates(
    settings: Settings, servers: dict, total: int, processes: list[int], ledger_off: bool, redis_cluster: bool
) -> tuple[dict[str, float], list, dict[str, float]]:
    """The projector's rate over the produced log with each process count (the first in the run's own key
    prefix and group, each other in one of its own); with `ledger_off`, the first again with the ledger off;
    with `redis_cluster`, each on the cluster too. And the first run's timeline, and the CPU per event of
    the one-process runs (with the ledger and without)."""
    rates: dict[str, float] = {}
    timeline: list = []
    cpu: dict[str, float] = {}
    for n in processes:
        progress.print(f"projecting with {n} process(es) ...")
        apart = {"key_prefix": f"{settings.key_prefix}-{n}", "group_id": f"{settings.group_id}-{n}"}
        own = settings if n == processes[0] else settings.model_copy(update=apart)
        applied = await projector_rate(own, total, n)
        rates[_label("projector", n)] = applied.rate
        timeline = timeline or applied.timeline
        _add_cpu(cpu, PROJECTOR_CPU, applied)
        if ledger_off and n == processes[0]:
            progress.print(f"projecting with {n} process(es), the ledger off ...")
            off = await projector_rate(_ledger_off(own), total, n)
            rates[_label("projector", n) + LEDGER_OFF] = off.rate
            _add_cpu(cpu, PROJECTOR_CPU + LEDGER_OFF, off)
        if redis_cluster:
            progress.print(f"projecting with {n} process(es){ON_CLUSTER} ...")
            rates[_label("projector", n) + ON_CLUSTER] = (await projector_rate(on_cluster(own, servers), total, n)).rate
    return rates, timeline, cpu


PROJECTOR_CPU = "pointsview projector, one process (its whole run)"


def _add_cpu(cpu: dict[str, float], what: str, applied: Applied) -> None:
    """A one-process run's CPU per event (measured only when it ran in this process), the first of its kind."""
    if applied.cpu_us_per_event is not None and what not in cpu:
        cpu[what] = applied.cpu_us_per_event


async def run_projector_bench(
    events: int,
    customers: list[int],
    processes: list[int],
    rebuild: bool = False,
    visible_rate: float = 0,
    visible_seconds: float = 0,
    redis_cluster: bool = False,
) -> dict:
    """The projector's rate next to a bare consumer's over the same log, for each process count; with
    `rebuild`, the rebuild's too; then, for each further customer count, the same with as many events per
    customer (the scale check); with `visible_rate`, the produce-to-visible latency at that rate
    (devtools.bench.freshness) over the first log. With `redis_cluster`, each process count also on a local
    Redis Cluster, over the same log."""
    runs = []
    per_customer = max(1, events // customers[0])
    with local_servers(redis_cluster) as servers:
        for count in customers:
            first = count == customers[0]
            settings = bench_settings(servers)
            load = synthetic_load(settings, count, per_customer)
            progress.print(
                f"producing {count * per_customer:,} events ({count:,} customers) to "
                f"{settings.topic_partitions} partitions per topic ..."
            )
            stream = await produce_load(settings, load)
            ledger_off = not rebuild and first
            runs.append(await _run(settings, servers, stream, count, processes, rebuild, ledger_off, redis_cluster))
            if visible_rate and first:
                visible = await _visible(settings, load, visible_rate, visible_seconds)
    result = {"benchmark": "rebuild" if rebuild else "projector", **runs[0]}
    if len(runs) > 1:
        result["scale"] = [{k: run[k] for k in ("customers", "events", "events_per_second")} for run in runs]
    if visible_rate:
        result["visible"] = visible
    return result


async def _run(
    settings: Settings,
    servers: dict,
    stream: list[tuple[str, bytes, bytes]],
    customers: int,
    processes: list[int],
    rebuild: bool,
    ledger_off: bool,
    redis_cluster: bool,
) -> dict:
    """One produced log: the bare consumer's rate, the projector's (and the rebuild's), CPU per event."""
    bare = await _bare_consumer_rate(settings, len(stream))
    progress.print(f"bare consumer: {bare:,.0f} events/s")
    rates, timeline, projector_cpu = await _projector_rates(
        settings, servers, len(stream), processes, ledger_off, redis_cluster
    )
    rates = {"bare aiokafka consumer (baseline)": bare, **rates}
    cpu = {FOLD: _fold_cpu(stream), **projector_cpu}
    if rebuild:
        for n in processes:
            progress.print(f"rebuilding into a new generation with {n} process(es) ...")
            rates[_label("rebuild", n)] = await _rebuild_rate(settings, len(stream), n)
    return {
        "events": len(stream),
        "customers": customers,
        "events_per_second": rates,
        "timeline": timeline,
        "cpu_us_per_event": cpu,
    }


async def _visible(settings: Settings, load: Load, rate: float, seconds: float) -> dict:
    from devtools.bench.freshness import visible_latency

    progress.print(
        f"producing {rate:,.0f} events/s for {seconds:g}s beside the projector "
        "and the API, timing probes until the API shows them ..."
    )
    return await visible_latency(settings, load, rate, seconds)


RATE_COLUMNS = ["what", "events/s", "vs bare consumer", "vs live projector"]
VISIBLE_COLUMNS = ["what", "p50 ms", "p90 ms", "p99 ms", "max ms", "not visible"]


def rate_rows(result: dict) -> list[list[str]]:
    rates = result["events_per_second"]
    bare, live = rates["bare aiokafka consumer (baseline)"], rates["pointsview projector"]
    return [[what, f"{rate:,.0f}", f"{rate / bare:.2f}x", f"{rate / live:.2f}x"] for what, rate in rates.items()]


CPU_COLUMNS = ["what", "CPU us per event", "vs pure fold"]


def cpu_rows(result: dict) -> list[list[str]]:
    cpu = result["cpu_us_per_event"]
    return [[what, f"{us:.2f}", f"{us / cpu[FOLD]:.2f}x"] for what, us in cpu.items()]


SCALE_COLUMNS = ["customers", "events", "bare consumer events/s", "projector events/s", "vs bare consumer"]


def scale_rows(result: dict) -> list[list[str]]:
    rows = []
    for run in result.get("scale", []):
        rates = run["events_per_second"]
        bare, live = rates["bare aiokafka consumer (baseline)"], rates["pointsview projector"]
        rows.append(
            [f"{run['customers']:,}", f"{run['events']:,}", f"{bare:,.0f}", f"{live:,.0f}", f"{live / bare:.2f}x"]
        )
    return rows


def visible_title(visible: dict) -> str:
    return (
        f"produce-to-visible through the API: {visible['events']:,} events at {visible['rate']:,.0f}/s "
        f"(held {visible['produced_per_second']:,.0f}/s), {visible['probes']:,} probes"
    )


def visible_rows(visible: dict) -> list[list[str]]:
    """The bare consumer's produce-to-receive (the baseline), then pointsview's produce-to-visible."""
    baseline = visible["baseline"]
    return [
        [f"{baseline['what']} (baseline)", *_latency_cells(baseline), f"{visible['probes'] - baseline['probes']:,}"],
        ["pointsview, produce to visible", *_latency_cells(visible), f"{visible['not_visible']:,}"],
    ]


def _latency_cells(figures: dict) -> list[str]:
    return [f"{figures[p]:.1f}" for p in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]


def show_rates(result: dict, as_json: bool) -> None:
    if as_json:
        return print(json.dumps(result))
    print_table(
        f"{result['benchmark']}, {result['events']:,} events of {result['customers']:,} customers",
        RATE_COLUMNS,
        rate_rows(result),
    )
    print_table("CPU per event", CPU_COLUMNS, cpu_rows(result))
    if result.get("scale"):
        print_table("scale check: the same events per customer", SCALE_COLUMNS, scale_rows(result))
    if visible := result.get("visible"):
        print_table(visible_title(visible), VISIBLE_COLUMNS, visible_rows(visible))
