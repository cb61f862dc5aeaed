"""`pointsview projector`: consume the event topics, apply to Redis, then commit.

Redis is the source of truth for positions: every batch is written (customers
atomically, with per-customer watermarks) before its partitions' positions
advance in Redis, and only then is the offset committed to Kafka. On
assignment the consumer seeks to the position Redis holds, so a Redis that
lost data (or came back empty) is refilled by replaying from what it still
holds, from the start of the log at worst.

This file is the process: start-up (Redis, the topics, the Kafka clients) with a deadline, the stop on SIGTERM or
SIGINT in bounded time. The batches: consumers/batches.py (`Projector`); its Kafka side:
consumers/log_reader.py.
"""

import asyncio
import os
import signal
import sys
import threading
import time

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import AuthenticationFailedError, KafkaError, SaslAuthenticationFailed
from redis.exceptions import AuthenticationError

from consumers.batches import RARER_COLLECTIONS, Projector
from consumers.log_reader import REDIS_DOWN, LogTruncated, partition_name
from consumers.topics import ensure_topics
from runtime import bootstrap
from runtime.logs import await_chain
from runtime.settings import Settings
from runtime.transport import kafka_options, masked_url

__all__ = [  # what the commands, devtools and the tests import from here (some are defined beside it)
    "RARER_COLLECTIONS",
    "LogTruncated",
    "Projector",
    "StartupError",
    "partition_name",
    "run_projector",
    "run_until_signalled",
]

log = structlog.get_logger("pointsview.projector")
CREDENTIALS_REFUSED = (AuthenticationError, AuthenticationFailedError, SaslAuthenticationFailed)
# A stop is bounded whatever the group or the broker do: the last Kafka commit (monitoring only: Redis holds the
# positions; consumers/log_reader.py), then every client's stop together.
CLOSE_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 20.0  # then the process exits anyway


class StartupError(RuntimeError):
    """A dependency stayed unreachable for the whole start-up timeout."""


async def _start_with_deadline(what: str, start, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await start()
            return
        except CREDENTIALS_REFUSED as exc:  # a wrong user or password does not fix itself: no waiting
            raise StartupError(f"{what} refused the credentials: {exc}") from None
        except (KafkaError, *REDIS_DOWN) as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"{what} unreachable for {timeout:.0f}s: {exc}") from None
            await asyncio.sleep(0.5)


def run_until_signalled(settings: Settings) -> None:
    """The projector as a process: SIGTERM or SIGINT stops it after the batch in flight. A stop ends in bounded
    time whatever the broker, the group or Redis do: STOP_GRACE_SECONDS after the signal the process exits
    anyway (status 0), logging what still waited. Nothing is lost that way either: Redis holds what was applied
    and the positions past it, as after a crash."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            if not stop.is_set():
                stop.set()
                watchdog = threading.Timer(STOP_GRACE_SECONDS, _exit_now, (loop,))  # a thread: fires if the loop hangs
                watchdog.daemon = True  # a process that stopped in time does not wait for it
                watchdog.start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run_projector(settings, stop)

    asyncio.run(main())


def _exit_now(loop: asyncio.AbstractEventLoop) -> None:
    waiting = [await_chain(task) for task in asyncio.all_tasks(loop) if not task.done()]  # best effort: a thread
    log.error("the stop took too long: exiting", seconds=STOP_GRACE_SECONDS, waiting=waiting)
    sys.stderr.flush()
    os._exit(0)


async def run_projector(settings: Settings, stop: asyncio.Event) -> None:
    redis = bootstrap.pipelined_redis_client(settings)
    store = bootstrap.store(settings, redis)
    started: list = []  # the Kafka clients' stops, in the order they started
    try:
        await _start_with_deadline(
            f"Redis at {masked_url(settings.redis_url)}", redis.ping, settings.startup_timeout_seconds
        )
        store = store.for_generation(await store.generations.live_or_first())
        await _ensure_topics(settings, started)
        producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=False, linger_ms=5)
        await _start_kafka(settings, producer.start, producer.stop, started)
        consumer = _consumer(settings)
        projector = Projector(settings, consumer, producer, store, stop)
        consumer.subscribe(settings.topic_list, listener=projector)
        await _start_kafka(settings, consumer.start, consumer.stop, started)
        log.info(
            "projector consuming",
            topics=settings.topic_list,
            redis=masked_url(settings.redis_url),
            key_prefix=settings.key_prefix,
            generation=store.keys.generation,
        )
        await projector.run()
    finally:
        deadline = time.monotonic() + CLOSE_TIMEOUT_SECONDS
        for close in reversed(started):
            await _closed(close, deadline)
        await redis.aclose()


async def _start_kafka(settings: Settings, start, close, started: list) -> None:
    """A Kafka client started by the start-up deadline; `close` then joins what the stop closes."""
    kafka = f"Kafka at {settings.kafka_bootstrap_servers} ({settings.kafka_security_protocol})"
    await _start_with_deadline(kafka, start, settings.startup_timeout_seconds)
    started.append(close)


async def _ensure_topics(settings: Settings, started: list) -> None:
    """The event topics and the dead-letter topic, created if missing."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await _start_kafka(settings, admin.start, admin.close, started)
    await ensure_topics(
        admin,
        [*settings.topic_list, settings.deadletter_topic],
        settings.topic_partitions,
        settings.topic_replication_factor,
    )


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_records=settings.batch_max_records,
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )


async def _closed(close, deadline: float) -> None:
    """A Kafka client stopped by the deadline (a second at least): a consumer stopping during a rebalance may
    wait for the broker to end it (up to the rebalance timeout), and a member stopping must not; everything it
    applied is in Redis already, and the group notices a member gone at its session timeout."""
    try:
        await asyncio.wait_for(close(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("a Kafka client did not stop in time; leaving it", seconds=CLOSE_TIMEOUT_SECONDS)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this process is being cancelled, not the client's own tasks
        log.warning("a Kafka client's tasks were cancelled while it stopped")  # aiokafka's fetcher, no broker
