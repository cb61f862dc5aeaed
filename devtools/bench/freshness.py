"""Produce-to-visible latency, for `pointsview bench projector`: events produced at a fixed rate while the
projector (a process of its own) applies them and the API (one worker) serves them.

Most events are the synthetic mix for new customers. About PROBES_PER_SECOND of them are probes: a
points.earned of 1 point (MAIN, the default program) for a customer of the pre-produced load, timed from
the moment it is handed to the producer until GET /v2/customers/{id}/points/balance shows it, polled every
POLL_SECONDS on a keep-alive connection of its own. Polling every event through the API would load the
API (and the two cores) more than the projector does; the probes ride in the same partitions and
batches as the rest, so they see what every event sees.
"""

import asyncio
import dataclasses
import math
import os
import sys
import time
import uuid
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from consumers.offsets import end_offsets, partitions_of, reader
from devtools.bench.common import BenchError, settings_env, start_api, start_process
from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.loadgen import fetch, percentile_ms, read_response, request_bytes
from devtools.synthetic import Load, generate
from runtime.settings import Settings
from runtime.transport import kafka_options

PROBES_PER_SECOND = 20
# The local Tansu broker holds a fetch for its whole max wait even when records arrive (Kafka answers at
# once), which would add up to 500 ms to every event here: the projector and the baseline both fetch
# with this wait. The default (500, Kafka's) stays right for Kafka.
FETCH_MAX_WAIT_MS = 10
POLL_SECONDS = 0.002
GIVE_UP_SECONDS = 30.0  # a probe not visible by then counts as not visible
FIRST_PROBE_SECONDS = 60.0  # the projector's start: joining the group, seeking to the stored positions


def _balance_path(customer_id: int) -> str:
    return f"/v2/customers/{customer_id}/points/balance"


def _earned(load: Load, customer_id: int) -> tuple[bytes, bytes]:
    """(key, value) of a points.earned of 1 point, MAIN, in the default program of the demo config."""
    event = {
        "specVersion": 1,
        "eventId": str(uuid.uuid4()),
        "eventType": "points.earned",
        "orgId": load.org_id,
        "customerId": customer_id,
        "occurredAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {"programId": load.programs[0], "points": "1", "category": "MAIN"},
    }
    return f"{load.org_id}:{customer_id}".encode(), orjson.dumps(event)


async def _total_points(port: int, customer_id: int) -> float:
    status, body = await fetch(port, _balance_path(customer_id), AUTH_HEADERS)
    if status != 200:
        raise BenchError(f"GET {_balance_path(customer_id)} answered {status}: {body[:200]!r}")
    return orjson.loads(body)["totalPoints"]


async def _until_visible(port: int, customer_id: int, total: float, sent: int, give_up: float) -> int | None:
    """Nanoseconds from `sent` until the customer's totalPoints reaches `total`; None after `give_up` s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = request_bytes("127.0.0.1", port, _balance_path(customer_id), AUTH_HEADERS)
    try:
        while time.perf_counter_ns() - sent < give_up * 1e9:
            writer.write(request)
            status, body, _ = await read_response(reader)
            if status == 200 and orjson.loads(body)["totalPoints"] >= total - 0.0005:
                return time.perf_counter_ns() - sent
            await asyncio.sleep(POLL_SECONDS)
        return None
    finally:
        writer.close()


PERCENTILES = ((50, 0.5), (90, 0.9), (99, 0.99))


@asynccontextmanager
async def _bare_receiver(settings: Settings, topic: str, received: dict[bytes, int]):
    """A bare consumer from the topic's current end, noting when each record arrives: the floor under
    any produce-to-visible latency (the broker and the client library, nothing of ours)."""
    async with reader(settings, fetch_max_wait_ms=FETCH_MAX_WAIT_MS) as consumer:
        partitions = partitions_of(consumer, [topic])
        ends = await end_offsets(consumer, partitions, settings.kafka_end_offsets)
        consumer.assign(partitions)
        for tp, end in ends.items():
            consumer.seek(tp, end)

        async def receive():
            while True:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.perf_counter_ns()
                    received.update((record.value, now) for record in records)

        task = asyncio.create_task(receive())
        try:
            yield task
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


@dataclasses.dataclass
class _Probing:
    """The probes: each a points.earned of 1 point handed to the producer, then its customer's balance polled
    until it shows it (a task: its latency, or None)."""

    producer: AIOKafkaProducer
    topic: str
    load: Load
    port: int
    expected: dict[int, float]  # customer -> the totalPoints its last probe makes
    sent_at: dict[bytes, int] = dataclasses.field(default_factory=dict)  # probe value -> when handed over
    polls: list[asyncio.Task] = dataclasses.field(default_factory=list)

    async def probe(self, customer_id: int, give_up: float) -> asyncio.Task:
        self.expected[customer_id] += 1
        key, value = _earned(self.load, customer_id)
        sent = time.perf_counter_ns()
        self.sent_at[value] = sent
        await self.producer.send(self.topic, value, key)
        return asyncio.create_task(_until_visible(self.port, customer_id, self.expected[customer_id], sent, give_up))

    async def until_projector_started(self, customer_id: int) -> None:
        if await (await self.probe(customer_id, FIRST_PROBE_SECONDS)) is None:
            raise BenchError(f"the projector applied nothing within {FIRST_PROBE_SECONDS:g}s")
        self.sent_at.clear()  # the first probe waited for the projector's start: timed by neither

    async def produce(self, background, rate: float, total: int, every: int, probe_ids: list[int]) -> float:
        """`total` events at `rate` a second, every `every`-th a probe; the seconds it took."""
        started = time.perf_counter()
        for n in range(total):
            if (ahead := started + n / rate - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            if n % every:
                topic, key, value = next(background)
                await self.producer.send(topic, value, key)
            else:
                self.polls.append(await self.probe(probe_ids[n // every % len(probe_ids)], GIVE_UP_SECONDS))
        return time.perf_counter() - started


def _background(load: Load, total: int):
    """The synthetic mix for new customers (after the load's), enough for `total` events."""
    return iter(
        generate(
            dataclasses.replace(
                load,
                first_customer_id=load.first_customer_id + load.customers,
                seed=load.seed + 1,
                customers=math.ceil(total / load.events_per_customer) + 1,
            )
        )
    )


def _projector_env(settings: Settings) -> dict[str, str]:
    # A group of its own: the first phase's in-process member may still count in the old one, which
    # would hold this one's join for a session timeout. The positions live in Redis anyway.
    return {
        **os.environ,
        **settings_env(settings),
        "POINTSVIEW_GROUP_ID": f"{settings.group_id}-visible",
        "POINTSVIEW_LOG_LEVEL": "WARNING",
        "POINTSVIEW_FETCH_MAX_WAIT_MS": str(FETCH_MAX_WAIT_MS),
    }


async def visible_latency(settings: Settings, load: Load, rate: float, duration: float) -> dict:
    """Produces `rate` events/s for `duration` s beside the projector and the API; probe latencies."""
    total = max(1, round(rate * duration))
    every = max(1, round(rate / PROBES_PER_SECOND))
    probe_ids = [load.first_customer_id + n for n in range(min(load.customers, math.ceil(total / every)))]
    background = _background(load, total)
    points_topic = settings.topic_list[-1]
    async with AsyncExitStack() as stack:
        env = _projector_env(settings)
        start_process([sys.executable, "-m", "cli", "projector"], env, stack)
        port = await start_api(settings, 1, DEMO_CONFIG, env, stack)
        expected = {cid: await _total_points(port, cid) for cid in probe_ids}
        received: dict[bytes, int] = {}  # probe value -> when a bare consumer received it (the baseline)
        bare = await stack.enter_async_context(_bare_receiver(settings, points_topic, received))
        producer = AIOKafkaProducer(
            **kafka_options(settings), acks="all", enable_idempotence=False
        )  # linger 0: the producer's batching is not ours
        await producer.start()
        probing = _Probing(producer, points_topic, load, port, expected)
        try:
            await probing.until_projector_started(probe_ids[0])
            produced = await probing.produce(background, rate, total, every, probe_ids)
            latencies = await asyncio.gather(*probing.polls)
            await asyncio.sleep(0.1)  # the visible ones were received long before: the receiver has them too
            bare.cancel()
        finally:
            for poll in probing.polls:
                poll.cancel()
            await producer.stop()
    baseline = sorted(received[value] - sent for value, sent in probing.sent_at.items() if value in received)
    return _figures(latencies, baseline, rate, duration, total, produced)


def _figures(latencies: list, baseline: list[int], rate: float, duration: float, total: int, produced: float) -> dict:
    ordered = sorted(latency for latency in latencies if latency is not None)
    return {
        "baseline": {
            "what": "bare consumer, produce to receive",
            "probes": len(baseline),
            **{f"p{q}_ms": percentile_ms(baseline, f) for q, f in PERCENTILES},
            "max_ms": percentile_ms(baseline, 1.0),
        },
        "rate": rate,
        "duration": duration,
        "events": total,
        "produced_per_second": total / produced,
        "probes": len(latencies),
        "not_visible": len(latencies) - len(ordered),
        "p50_ms": percentile_ms(ordered, 0.5),
        "p90_ms": percentile_ms(ordered, 0.9),
        "p99_ms": percentile_ms(ordered, 0.99),
        "max_ms": percentile_ms(ordered, 1.0),
    }
