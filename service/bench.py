"""`pointsview bench projector`: the projector's apply rate next to a bare consumer, same run, same topics.

Starts its own broker and Redis unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are
set. Both rates are timed from the first record seen to the last, so group
joins and start-up are left out of both. The servers, per-run settings and
synthetic load helpers are shared with `pointsview bench api` (service.bench_api).
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from consumers.runner import run_projector
from consumers.topics import create_topics
from projections.keys import Keys
from service.localstack import LocalBroker, LocalRedis
from service.produce import produce
from service.settings import Settings
from service.synthetic import Load, generate

progress = Console(stderr=True)  # what a run is doing; the figures go to stdout


async def _bare_consumer_rate(servers: str, topics: list[str], total: int) -> float:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=servers, group_id=f"bench-{uuid.uuid4().hex}",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_records=5000)
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


async def projector_rate(settings: Settings, total: int) -> float:
    """Runs the projector in-process until Redis positions cover `total` records, then stops it."""
    redis = Redis.from_url(settings.redis_url)
    positions = Keys(settings.key_prefix).positions()
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    try:
        started = time.perf_counter()
        while True:
            polled = time.perf_counter()
            done = sum(int(v) for v in (await redis.hgetall(positions)).values())
            if not done:
                started = polled  # the clock starts at the last poll that saw nothing applied
            elif done >= total:
                return done / (time.perf_counter() - started)
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
        await redis.aclose()


@contextmanager
def local_servers() -> Iterator[tuple[str, str]]:
    """(bootstrap servers, Redis URL): KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else local servers
    started here and stopped on leaving, errors and Ctrl-C included."""
    broker = redis_server = None
    try:
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or (broker := LocalBroker().start()).bootstrap_servers
        redis_url = os.environ.get("REDIS_URL") or (redis_server := LocalRedis().start()).url
        yield servers, redis_url
    finally:
        if redis_server:
            redis_server.cleanup()
        if broker:
            broker.stop()


def bench_settings(servers: str, redis_url: str) -> Settings:
    """Topics, group and key prefix of this run only: runs against shared servers never mix."""
    run = uuid.uuid4().hex[:8]
    return Settings(KAFKA_BOOTSTRAP_SERVERS=servers, REDIS_URL=redis_url,
                    topics=f"bench-customers-{run},bench-points-{run}",
                    deadletter_topic=f"bench-deadletter-{run}", group_id=f"bench-projector-{run}",
                    key_prefix=f"bench-{run}", session_timeout_ms=6000, heartbeat_interval_ms=1000)


def synthetic_load(settings: Settings, customers: int, events_per_customer: int) -> Load:
    customers_topic, points_topic = settings.topic_list
    return Load(customers=customers, events_per_customer=events_per_customer,
                customers_topic=customers_topic, points_topic=points_topic)


async def produce_load(settings: Settings, load: Load) -> list[tuple[str, bytes, bytes]]:
    """Creates the run's topics (the broker would auto-create other partition counts), then produces."""
    await create_topics(settings)
    stream = generate(load)
    await produce(settings.kafka_bootstrap_servers, stream)
    return stream


async def _rebuild_rate(settings: Settings, total: int) -> float:
    """Replays the whole log into a new generation (no switch); events per second of the replay."""
    from consumers.rebuild import Progress, Rebuild

    redis = Redis.from_url(settings.redis_url)
    progress = Progress()
    try:
        started = time.perf_counter()
        await Rebuild(settings, redis, asyncio.Event(), progress).run(switch=False)
        return progress.total / (time.perf_counter() - started)
    finally:
        await redis.aclose()


async def run_projector_bench(events: int, customers: int, rebuild: bool = False) -> dict:
    """The projector's rate next to a bare consumer's over the same log; with `rebuild`, the rebuild's too."""
    with local_servers() as (servers, redis_url):
        settings = bench_settings(servers, redis_url)
        load = synthetic_load(settings, customers, max(1, events // customers))
        progress.print(f"producing {load.customers * load.events_per_customer:,} events "
                       f"({customers:,} customers) to {settings.topic_partitions} partitions per topic ...")
        stream = await produce_load(settings, load)
        rates = {"bare aiokafka consumer (baseline)": await _bare_consumer_rate(servers, settings.topic_list,
                                                                                len(stream)),
                 "pointsview projector": await projector_rate(settings, len(stream))}
        if rebuild:
            rates["pointsview rebuild"] = await _rebuild_rate(settings, len(stream))
    return {"benchmark": "rebuild" if rebuild else "projector", "events": len(stream), "customers": customers,
            "events_per_second": rates}


def show_rates(result: dict, as_json: bool) -> None:
    if as_json:
        return print(json.dumps(result))
    rates = result["events_per_second"]
    baseline, live = rates["bare aiokafka consumer (baseline)"], rates["pointsview projector"]
    table = Table(title=f"{result['benchmark']}, one process, {result['events']:,} events")
    for column in ("what", "events/s", "vs bare consumer", "vs live projector"):
        table.add_column(column, justify="right")
    for what, rate in rates.items():
        table.add_row(what, f"{rate:,.0f}", f"{rate / baseline:.2f}x", f"{rate / live:.2f}x")
    Console().print(table)

KEY_KINDS = {"c": "customer state (hash)", "i": "identifier index (zsets)", "e": "eventId dedup window (zsets)"}


async def _memory_by_kind(redis: Redis, keys: Keys, sample: int = 2_000) -> dict[str, tuple[int, float]]:
    """Per key kind: (number of keys, mean MEMORY USAGE of a sample of them)."""
    found: dict[str, list[bytes]] = {kind: [] for kind in KEY_KINDS}
    counts = dict.fromkeys(KEY_KINDS, 0)
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=5_000):
        kind = key.decode()[len(keys.prefix) + 1:].split(":", 1)[0]
        if kind in found:
            counts[kind] += 1
            if len(found[kind]) < sample:
                found[kind].append(key)
    figures = {}
    for kind, sampled in found.items():
        pipe = redis.pipeline(transaction=False)
        for key in sampled:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
        figures[kind] = (counts[kind], sum(sizes) / len(sizes) if sizes else 0.0)
    return figures


async def run_memory_bench(customers: int, events_per_customer: int) -> dict:
    """Redis bytes per customer with one program and three identifiers, the dedup window apart."""
    with local_servers() as (servers, redis_url):
        settings = bench_settings(servers, redis_url)
        customers_topic, points_topic = settings.topic_list
        load = Load(customers=customers, events_per_customer=events_per_customer, programs=(973,),
                    customers_topic=customers_topic, points_topic=points_topic)
        redis = Redis.from_url(redis_url)
        try:
            before = (await redis.info("memory"))["used_memory"]
            progress.print(f"projecting {customers:,} customers x {events_per_customer} events ...")
            stream = await produce_load(settings, load)
            await projector_rate(settings, len(stream))
            after = (await redis.info("memory"))["used_memory"]
            keys = Keys(settings.key_prefix)
            kinds = await _memory_by_kind(redis, keys)
            state_json = [len(v) for v in await _sample_states(redis, keys)]
        finally:
            await redis.aclose()
    per_kind = {label: count * mean / customers for kind, (count, mean) in kinds.items()
                for label in [KEY_KINDS[kind]]}
    return {"benchmark": "memory", "customers": customers, "bytes_per_customer": {
        "state JSON, raw (baseline)": sum(state_json) / len(state_json),
        **per_kind,
        "read-model (state + index)": per_kind[KEY_KINDS["c"]] + per_kind[KEY_KINDS["i"]],
        "used_memory growth / customers (all, dedup included)": (after - before) / customers,
    }}


def show_memory(result: dict, as_json: bool) -> None:
    if as_json:
        return print(json.dumps(result))
    table = Table(title=f"Redis memory, {result['customers']:,} customers, 1 program, 3 identifiers each")
    for column in ("what", "bytes per customer"):
        table.add_column(column, justify="right")
    for what, size in result["bytes_per_customer"].items():
        table.add_row(what, f"{size:,.0f}")
    Console().print(table)

async def _sample_states(redis: Redis, keys: Keys, sample: int = 2_000) -> list[bytes]:
    states = []
    async for key in redis.scan_iter(match=f"{keys.prefix}:c:*", count=5_000):
        states.append(await redis.hget(key, "d"))
        if len(states) >= sample:
            break
    return [s for s in states if s]
