"""`pointsview projector`: consume the event topics, apply to Redis, then commit.

Redis is the source of truth for positions: every batch is written (customers
atomically, with per-customer watermarks) before its partitions' positions
advance in Redis, and only then is the offset committed to Kafka. On
assignment the consumer seeks to the position Redis holds, so a Redis that
lost data (or came back empty) is refilled by replaying from what it still
holds, from the start of the log at worst.
"""

import asyncio
import logging
import time
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from consumers.deadletters import send_deadletters
from consumers.metrics import CONSUMER_LAG, EVENTS_APPLIED, EVENTS_SKIPPED, KEY_MISMATCH, REPLAYS
from consumers.topics import ensure_topics
from projections.events import InvalidEvent, parse_event
from projections.keys import Keys
from projections.plan import Record, plan_customer
from projections.store import Store
from service.settings import Settings

log = logging.getLogger("pointsview.projector")
REDIS_DOWN = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


class StartupError(RuntimeError):
    """A dependency stayed unreachable for the whole start-up timeout."""


def position_name(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


class Projector(ConsumerRebalanceListener):
    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer,
                 store: Store, stop: asyncio.Event):
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.stop = stop
        self.lock = asyncio.Lock()  # a rebalance waits for the batch in flight
        self.positions: dict[TopicPartition, int | None] = {}  # what Redis held after our last step
        self.applied = self.deadlettered = 0
        self._last_report: tuple | None = None

    # --- rebalance: seek to the positions Redis holds ---

    async def on_partitions_revoked(self, revoked) -> None:
        async with self.lock:
            for tp in revoked:
                self.positions.pop(tp, None)

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.lock:
            found = await self._redis_retrying(self.store.read_positions, [position_name(tp) for tp in assigned])
            for tp in assigned:
                await self._seek(tp, found[position_name(tp)])

    async def _seek(self, tp: TopicPartition, offset: int | None) -> None:
        self.positions[tp] = offset
        if offset is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, offset)

    # --- the loop ---

    async def run(self) -> None:
        last_report = time.monotonic()
        while not self.stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=self.settings.batch_timeout_ms, max_records=self.settings.batch_max_records)
            async with self.lock:
                await self._redis_retrying(self._process, batch)
            if time.monotonic() - last_report >= self.settings.progress_interval_seconds:
                self._report()
                last_report = time.monotonic()
        self._report()

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        batch = {tp: records for tp, records in batch.items() if records and tp in self.positions}
        by_customer: dict[tuple[int, int], list[Record]] = defaultdict(list)
        rejected = []
        for tp, records in batch.items():
            for record in records:
                try:
                    event = parse_event(record.value)
                except InvalidEvent as exc:
                    rejected.append((record, str(exc)))
                    continue
                if record.key != f"{event.orgId}:{event.customerId}".encode():
                    KEY_MISMATCH.inc()
                by_customer[event.customer_key].append(Record(tp.topic, tp.partition, record.offset, event))

        # Positions are read after the customers, in the same pipeline: if they are
        # intact, the customers were read before any loss, and a loss after that
        # fails the customers' compare-and-set.
        wanted = {cid: [r.event.eventId for r in records] for cid, records in by_customer.items()}
        stored, found = await self.store.load(wanted, [position_name(tp) for tp in self.positions])
        if await self._replay_lost(found):
            return self._fetch_again(batch)
        writes = []
        for cid, records in by_customer.items():
            write = plan_customer(stored[cid].customer, stored[cid].watermarks,
                                  stored[cid].seen_event_ids, records)
            if write.watermarks:
                writes.append(write)
        if await self.store.write(writes, int(time.time() * 1000)):
            log.info("another consumer wrote some of these customers; fetching the batch again")
            return self._fetch_again(batch)
        applied = sum(len(w.applied_event_ids) for w in writes)
        EVENTS_APPLIED.inc(applied)
        EVENTS_SKIPPED.inc(sum(len(r) for r in by_customer.values()) - applied)
        self.applied += applied
        if rejected:
            await send_deadletters(self.producer, self.settings.deadletter_topic, rejected)
            self.deadlettered += len(rejected)
        await self._advance({tp: records[-1].offset + 1 for tp, records in batch.items()})

    async def _replay_lost(self, found: dict[str, int | None]) -> bool:
        """Seeks back every partition whose Redis position went missing or backwards."""
        lost = {}
        for tp, seen in self.positions.items():
            now = found[position_name(tp)]
            if seen is not None and (now is None or now < seen):
                lost[tp] = now
        for tp, offset in lost.items():
            log.warning("Redis lost data of %s (position %s, had %s): replaying from %s", position_name(tp),
                        offset, self.positions[tp], "the start of the log" if offset is None else offset)
            REPLAYS.inc()
            await self._seek(tp, offset)
        return bool(lost)

    def _fetch_again(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batch.items():
            if self.positions.get(tp) is not None and self.positions[tp] <= records[0].offset:
                self.consumer.seek(tp, records[0].offset)

    async def _advance(self, next_offsets: dict[TopicPartition, int]) -> None:
        """Positions in Redis first (compare-and-set), then the Kafka commit."""
        if not next_offsets:
            return
        expected = {position_name(tp): self.positions.get(tp) for tp in next_offsets}
        saved = await self.store.save_positions(expected, {position_name(tp): o for tp, o in next_offsets.items()})
        if not saved:
            return  # Redis lost data under us: the next batch's check replays it
        self.positions.update(next_offsets)
        try:
            await self.consumer.commit(next_offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.info("commit skipped (%s); Redis holds the positions", exc.__class__.__name__)

    async def _redis_retrying(self, step, *args):
        """Runs a step until Redis answers; never moves on (or commits) past a failed write."""
        delay = 0.1
        while True:
            try:
                return await step(*args)
            except REDIS_DOWN as exc:
                if self.stop.is_set():
                    raise
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _report(self) -> None:
        lag = {}
        for tp, position in self.positions.items():
            end = self.consumer.highwater(tp)
            if end is not None and position is not None:
                lag[position_name(tp)] = max(0, end - position)
                CONSUMER_LAG.labels(tp.topic, tp.partition).set(lag[position_name(tp)])
        report = (self.applied, self.deadlettered, sum(lag.values()), len(self.positions))
        if report != self._last_report:  # quiet while idle
            log.info("applied=%d deadlettered=%d lag=%d partitions=%d", *report)
            self._last_report = report


async def _start_with_deadline(what: str, start, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await start()
            return
        except (KafkaError, *REDIS_DOWN) as exc:
            if time.monotonic() > deadline:
                raise StartupError(f"{what} unreachable for {timeout:.0f}s: {exc}") from None
            await asyncio.sleep(0.5)


async def run_projector(settings: Settings, stop: asyncio.Event) -> None:
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    store = Store(redis, Keys(settings.key_prefix), settings.dedup_window_seconds * 1000)
    servers = settings.kafka_bootstrap_servers
    timeout = settings.startup_timeout_seconds
    started = []
    try:
        await _start_with_deadline(f"Redis at {settings.redis_url}", redis.ping, timeout)
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await _start_with_deadline(f"Kafka at {servers}", admin.start, timeout)
        started.append(admin.close)
        await ensure_topics(admin, [*settings.topic_list, settings.deadletter_topic],
                            settings.topic_partitions, settings.topic_replication_factor)
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=False,
                                    linger_ms=5)
        await _start_with_deadline(f"Kafka at {servers}", producer.start, timeout)
        started.append(producer.stop)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=settings.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms, max_poll_records=settings.batch_max_records,
            isolation_level="read_committed",
        )
        projector = Projector(settings, consumer, producer, store, stop)
        consumer.subscribe(settings.topic_list, listener=projector)
        await _start_with_deadline(f"Kafka at {servers}", consumer.start, timeout)
        started.append(consumer.stop)
        log.info("projector consuming %s into %s (prefix %s)", settings.topics, settings.redis_url,
                 settings.key_prefix)
        await projector.run()
    finally:
        for close in reversed(started):
            await close()
        await redis.aclose()
