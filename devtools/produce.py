"""Publishing events to Kafka (demo data, benchmarks, tests, `pointsview produce`).

This service never publishes in production.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from projections.events import on_customers_topic
from runtime.progress import Progress
from runtime.settings import Settings
from runtime.transport import kafka_options

Stream = list[tuple[str, bytes, bytes]]  # (topic, key, value)


class InvalidLine(ValueError):
    pass


async def produce(settings: Settings, stream: Stream, rate: float = 0, progress: Progress | None = None) -> None:
    """Sends the stream in order; `rate` events per second at most (0: as fast as possible)."""
    progress = progress or Progress()
    progress.total = len(stream)
    producer = AIOKafkaProducer(
        **kafka_options(settings),
        acks="all",
        enable_idempotence=False,
        linger_ms=10,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        started = time.monotonic()
        for sent, (topic, key, value) in enumerate(stream):
            if rate:
                await _pace(started, sent, rate)
            await producer.send(topic, value=value, key=key)
            progress.done = sent + 1
        await producer.flush()
    finally:
        await producer.stop()


async def _pace(started: float, sent: int, rate: float) -> None:
    ahead = started + sent / rate - time.monotonic()
    if ahead > 0:
        await asyncio.sleep(ahead)


def stream_from_lines(lines: Iterable[bytes], customers_topic: str, points_topic: str) -> Stream:
    """One envelope per line, sent as it is: keyed "{orgId}:{customerId}", customer.* and card.* to the
    customers topic."""
    stream = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
            key = f"{doc['orgId']}:{doc['customerId']}".encode()
            customer_event = on_customers_topic(str(doc["eventType"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidLine(f"line {number}: not an event envelope with eventType, orgId, customerId ({exc})")
        stream.append((customers_topic if customer_event else points_topic, key, line))
    return stream


def summary(stream: Stream, seconds: float) -> str:
    per_topic = ", ".join(f"{topic} {count}" for topic, count in Counter(t for t, _, _ in stream).items())
    customers = len({key for _, key, _ in stream})
    rate = len(stream) / seconds if seconds else 0
    return (
        f"produced {len(stream)} events of {customers} customers ({per_topic or 'nothing'}) "
        f"in {seconds:.1f}s, {rate:,.0f} events/s"
    )
