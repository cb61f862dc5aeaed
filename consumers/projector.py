"""`pointsview projector`: consume the event topics, apply to Redis, then commit.

Redis is the source of truth for positions: every batch is written (customers
atomically, with per-customer watermarks) before its partitions' positions
advance in Redis, and only then is the offset committed to Kafka. On
assignment the consumer seeks to the position Redis holds, so a Redis that
lost data (or came back empty) is refilled by replaying from what it still
holds, from the start of the log at worst.
"""

import asyncio
import gc
import itertools
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    AuthenticationFailedError,
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    SaslAuthenticationFailed,
)
from aiokafka.structs import ConsumerRecord
from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.deadletters import send_deadletters
from consumers.metrics import (
    CONSUMER_LAG,
    EVENTS_APPLIED,
    EVENTS_SKIPPED,
    KEY_MISMATCH,
    REPLAYS,
)
from consumers.offsets import log_ends
from consumers.topics import ensure_topics
from projections.events import InvalidEvent, parse_event
from projections.generations import Control
from projections.keys import position_name
from projections.plan import Record, Stored, plan_customer, stored_after
from projections.store import CustomerId, Store, decode_value, encode_value, marks_of
from runtime import bootstrap
from runtime.logs import await_chain
from runtime.settings import Settings
from runtime.transport import kafka_options, masked_url

log = structlog.get_logger("pointsview.projector")
COMMIT_INTERVAL_SECONDS = 1.0
# Redis cannot answer now: the step is tried again. On a cluster also: no master for a slot yet
# (CLUSTERDOWN), a slot moving (TRYAGAIN), redirections still changing (a failover in progress).
CREDENTIALS_REFUSED = (AuthenticationError, AuthenticationFailedError, SaslAuthenticationFailed)
REDIS_DOWN = (ConnectionError, RedisTimeoutError, BusyLoadingError, ClusterDownError, TryAgainError, AskError, OSError)


# A stop is bounded whatever the group or the broker do: the last Kafka commit (monitoring only: Redis holds the
# positions), then every client's stop together.
COMMIT_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 20.0  # then the process exits anyway
RARER_COLLECTIONS = (100_000, 50, 100)  # gc thresholds while a projector runs (_fewer_collections)
_collecting_rarely = 0  # projectors running in this process
_thresholds_before = gc.get_threshold()


@contextmanager
def _fewer_collections():
    """The projector allocates a few objects per event and keeps the write-behind span's customers alive,
    decoded, until their write: at the default thresholds the cycle collector runs every 700 allocations and
    its older passes walk every pending customer again (measured: 10,455 events/s at 1,000,000 events and
    50,000 customers; 16,605 with these; 16,428 with no collection at all). Cycles are still collected, in
    rarer passes."""
    global _collecting_rarely, _thresholds_before
    if not _collecting_rarely:  # the first of the projectors a process runs (tests run several at once)
        _thresholds_before = gc.get_threshold()
        gc.set_threshold(*RARER_COLLECTIONS)
    _collecting_rarely += 1
    try:
        yield
    finally:
        _collecting_rarely -= 1
        if not _collecting_rarely:
            gc.set_threshold(*_thresholds_before)


class StartupError(RuntimeError):
    """A dependency stayed unreachable for the whole start-up timeout."""


def partition_name(tp: TopicPartition) -> str:
    return position_name(tp.topic, tp.partition)


def _went_back(position: int | None, seen: int) -> bool:
    return position is None or position < seen


class LogTruncated(RuntimeError):
    """A stored position lies outside the partition's log: events were deleted, a rebuild is needed."""


class Projector(ConsumerRebalanceListener):
    """Applies batches to one generation of the read-model.

    The live projector (`live=True`) follows the live generation: it pauses when
    a rebuild asks for a hand-over and continues on whichever generation the
    pointer names. A rebuild runs one with `live=False` on its new generation:
    it neither commits to Kafka nor dead-letters again (the live one did).
    """

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer | None,
        store: Store,
        stop: asyncio.Event,
        live: bool = True,
    ):
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.stop = stop
        self.live = live
        self.lock = asyncio.Lock()  # a rebalance waits for the batch in flight
        self.positions: dict[TopicPartition, int | None] = {}  # what Redis held after our last step
        # The next offset this consumer wants: records before it were fetched before a seek (a rebalance
        # or a replay) and come again after it, so they are dropped rather than applied or dead-lettered twice.
        self.expected: dict[TopicPartition, int] = {}
        self.paused_for: int | None = None  # the generation a hand-over is pausing us for
        # Customers' stored values as this projector last wrote them: a customer seen again is planned
        # without a read. Kept encoded (one bytes object each, decoded for the batch that touches it):
        # decoding a compact value costs less than reaching into a large cache of scattered objects, and
        # the garbage collector has nothing to scan. Redis stays the judge: every write is a
        # compare-and-set on the watermarks the value starts with, so a write by anyone else (another
        # consumer, a rebuild, a Redis that lost data) fails it, and the cache is dropped whenever what it
        # stands on changes (rebalance, replay, generation, failure).
        self.cache: dict[CustomerId, bytes] = {}
        # Write-behind while catching up: customers planned but not written yet ([the watermarks Redis holds,
        # the newest value, the writes merged]), and the offsets the positions move to once they are.
        self.pending: dict[CustomerId, list] = {}
        self.pending_offsets: dict[TopicPartition, int] = {}
        self.pending_records = 0
        self.rewind = False  # a write of pending customers failed: read again from the saved positions
        # Records folded before writing: the setting, down to every batch after a lost compare-and-set (a
        # lost write is read again from the saved positions: large spans would lose again and again when
        # two members share customers), doubling back up with each write that holds.
        self.behind = settings.write_behind_records
        self.writing: asyncio.Future | None = None  # the write in flight
        self.uncommitted: dict[TopicPartition, int] = {}
        self.committed_at = 0.0
        self.fatal: Exception | None = None
        self.applied = self.deadlettered = 0
        self._last_report: tuple | None = None

    @property
    def generation(self) -> int:
        return self.store.keys.generation

    # --- rebalance: seek to the positions Redis holds ---

    async def on_partitions_revoked(self, revoked) -> None:
        async with self.lock:
            await self._flush_if_reachable()
            await self._commit()
            self.cache.clear()
            for tp in revoked:
                self.positions.pop(tp, None)
                self.expected.pop(tp, None)

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.lock:
            self.cache.clear()
            try:
                await self._redis_retrying(self._seek_to_stored, list(assigned))
            except LogTruncated as exc:  # aiokafka swallows listener errors: the loop raises it
                self.fatal = exc

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        found = await self.store.read_positions([partition_name(tp) for tp in partitions])
        if partitions:
            starts = await self.consumer.beginning_offsets(partitions)
            ends = await log_ends(self.settings, partitions)
        for tp in partitions:
            stored = found[partition_name(tp)] or 0
            if not starts[tp] <= stored <= ends[tp]:
                raise LogTruncated(
                    f"{partition_name(tp)}: the read-model needs offset {stored} but the log holds "
                    f"{starts[tp]}..{ends[tp]}: events were deleted (retention) or the topic was recreated; "
                    "rebuild from a complete log"
                )
            self._seek(tp, found[partition_name(tp)], starts[tp])

    async def _rewind(self) -> None:
        """Back to the positions Redis holds. Done only once that worked: if Redis is still down, the retry
        rewinds again (moving on would skip what the failed write held)."""
        await self._seek_to_stored(list(self.positions))
        self.rewind = False

    def _seek(self, tp: TopicPartition, stored: int | None, start: int) -> None:
        self.positions[tp] = stored
        self.expected[tp] = start if stored is None else stored
        self.consumer.seek(tp, self.expected[tp])

    # --- the loop ---

    async def run(self, until=None) -> None:
        """Runs until stopped (or until `until()` says the work is done)."""
        with _fewer_collections():
            await self._run(until)

    async def _run(self, until) -> None:
        last_report = time.monotonic()
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set() and not (until and until()):
                if self.fatal:
                    raise self.fatal
                batch = await self._next_batch(stopped)
                if batch is None:
                    break
                async with self.lock:
                    await self._redis_retrying(self._process, batch)
                if time.monotonic() - last_report >= self.settings.progress_interval_seconds:
                    self._report()
                    last_report = time.monotonic()
        finally:
            stopped.cancel()
        async with self.lock:
            await self._flush_if_reachable()
            await self._commit()
        self._report()

    async def _next_batch(self, stopped: asyncio.Future) -> dict[TopicPartition, list[ConsumerRecord]] | None:
        """The next batch, or None once stopped. While the group rebalances, aiokafka's getmany waits for the
        new assignment with no bound (as long as the slowest member takes to rejoin): a stop does not wait
        for the group. Records not returned are fetched again by whoever owns their partition next."""
        limits = {"timeout_ms": self.settings.batch_timeout_ms, "max_records": self.settings.batch_max_records}
        fetching = asyncio.ensure_future(self.consumer.getmany(**limits))
        await asyncio.wait((fetching, stopped), return_when=asyncio.FIRST_COMPLETED)
        if fetching.done():
            return fetching.result()
        fetching.cancel()
        return None

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if self.rewind:  # what was pending is gone: this batch and what came before it are read again
            return await self._rewind()
        caught_up = sum(len(records) for records in batch.values()) < self.settings.batch_max_records
        batch = {
            tp: kept
            for tp, records in batch.items()
            if tp in self.expected and (kept := [r for r in records if r.offset >= self.expected[tp]])
        }
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

        await self._written()  # the last batch's write went on while this one was parsed
        if self.rewind:  # it failed: this batch, and what was planned before it, come again
            return await self._rewind()
        # Positions are read after the customers, in the same pipeline: if they are
        # intact, the customers were read before any loss, and a loss after that
        # fails the customers' compare-and-set.
        now_ms = int(time.time() * 1000)
        missing = [cid for cid in by_customer if cid not in self.cache and cid not in self.pending]
        loaded, found, control = await self.store.load(missing, [partition_name(tp) for tp in self.positions])
        if self.live and await self._follow(control):
            return self._fetch_again(batch)
        if await self._replay_lost(found):
            return self._fetch_again(batch)
        stored = {cid: loaded[cid] if (held := self._held_value(cid)) is None else held for cid in by_customer}
        window_ms, ledger_entries = self.store.dedup_window_ms, self.settings.ledger_entries
        for cid, records in by_customer.items():
            value = stored[cid]
            before = value if type(value) is Stored else decode_value(value)
            write = plan_customer(before.customer, before.watermarks, before.seen, records, ledger_entries)
            if write.watermarks:
                self._hold(cid, value, stored_after(before, write, now_ms, window_ms), write)
        self._remember({cid: value for cid, value in stored.items() if cid not in self.pending})
        if rejected:
            if self.producer:
                await send_deadletters(self.producer, self.settings.deadletter_topic, rejected)
            self.deadlettered += len(rejected)
        consumed = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        self.expected.update(consumed)
        self.pending_offsets.update(consumed)
        self.pending_records += sum(len(records) for records in batch.values())
        full = self.pending_records >= self.behind or len(self.pending) >= self.settings.cache_customers // 2
        if caught_up or full:
            await self._flush(wait=False)

    def _held_value(self, cid: CustomerId) -> Stored | bytes | None:
        """What this projector last planned for the customer: pending (not written yet, decoded), or cached
        (encoded, as written)."""
        held = self.pending.get(cid)
        return self.cache.pop(cid, None) if held is None else held[1]

    def _hold(self, cid: CustomerId, before: Stored | bytes, after: Stored, write) -> None:
        """Adds a customer's write to the pending ones: its newest state, kept decoded until the write (a
        customer seen again in the span is neither decoded nor encoded again), and the watermarks Redis holds,
        which the value it started from (`before`, encoded) begins with."""
        held = self.pending.get(cid)
        if held is None:
            write.customer = None  # the value holds the state
            self.pending[cid] = [marks_of(before), after, write]
        else:
            held[1] = after
            held[2].absorb(write)

    async def _flush(self, wait: bool = True) -> None:
        """Writes the pending customers (compare-and-set), then moves the positions past what they hold.
        Without `wait` the write goes on while the next batch is parsed; `_written` waits for it."""
        await self._written()
        if not self.pending_offsets:
            return
        writes, encoded = [], {}
        for cid, (expected, after, write) in self.pending.items():
            encoded[cid] = encode_value(after)
            writes.append((expected, encoded[cid], write))
        self._remember(encoded)  # what Redis holds once the write lands (a failed write clears the cache)
        offsets, records = self.pending_offsets, self.pending_records
        self.pending, self.pending_offsets, self.pending_records = {}, {}, 0
        self.writing = asyncio.ensure_future(self._write(writes, offsets, records))
        if wait:
            await self._written()

    async def _written(self) -> None:
        """Waits for the write in flight (a failed one has dropped what was planned on it, and raises)."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing

    async def _write(self, writes: list, offsets: dict[TopicPartition, int], records: int) -> None:
        try:
            lost = await self.store.write(writes)
        except BaseException:
            self._forget_pending()  # some customers may have been written: start again from what Redis holds
            raise
        if lost:
            log.info("another consumer wrote some of these customers; reading again", customers=len(lost))
            self.behind = 0  # sharing customers with another writer: every batch on its own until it stops
            return self._forget_pending()
        self.behind = min(self.settings.write_behind_records, max(2 * self.behind, self.settings.batch_max_records))
        applied = sum(len(write.applied_event_ids) for _, _, write in writes)
        EVENTS_APPLIED.inc(applied)
        EVENTS_SKIPPED.inc(records - applied)
        self.applied += applied
        await self._advance(offsets)

    async def _flush_if_reachable(self) -> None:
        """Before giving partitions up or stopping; Redis down: what was pending is read again later."""
        try:
            await self._flush()
        except REDIS_DOWN as exc:
            log.warning("Redis unavailable; pending customers are read again from the saved positions", error=str(exc))

    def _forget_pending(self) -> None:
        self.pending, self.pending_offsets, self.pending_records = {}, {}, 0
        self.cache.clear()
        self.rewind = True

    def _remember(self, stored: dict[CustomerId, bytes]) -> None:
        self.cache.update(stored)  # most recently used last
        for cid in list(itertools.islice(self.cache, max(0, len(self.cache) - self.settings.cache_customers))):
            del self.cache[cid]

    async def _follow(self, control: Control) -> bool:
        """Pauses for a hand-over, or moves to a new live generation; True when this batch must wait."""
        if control.live is not None and control.live != self.generation:
            log.warning("live generation changed: continuing there", generation=control.live, previous=self.generation)
            self.store = self.store.for_generation(control.live)
            self.cache.clear()
            self.pending, self.pending_offsets, self.pending_records = {}, {}, 0  # the old generation's
            self.paused_for = None
            self.consumer.resume(*self.positions)
            await self._seek_to_stored(list(self.positions))
            return True
        if control.handover is not None and control.handover != self.generation:
            await self._flush()  # the paused generation holds everything up to the positions acknowledged
            if self.rewind:
                return True
            if self.paused_for != control.handover:
                log.warning("pausing for a hand-over", generation=control.handover)
                self.paused_for = control.handover
            self.consumer.pause(*self.positions)
            await self.store.generations.acknowledge_pause(
                control.handover, {partition_name(tp): offset for tp, offset in self.positions.items()}
            )
            return True
        if self.paused_for is not None:  # the hand-over was abandoned (its lease expired)
            log.warning("hand-over abandoned: continuing", abandoned=self.paused_for, generation=self.generation)
            self.paused_for = None
            self.consumer.resume(*self.positions)
            await self._seek_to_stored(list(self.positions))
            return True
        return False

    async def _replay_lost(self, found: dict[str, int | None]) -> bool:
        """Seeks back every partition whose Redis position went missing or backwards."""
        lost = [
            tp
            for tp, seen in self.positions.items()
            if seen is not None and _went_back(found[partition_name(tp)], seen)
        ]
        for tp in lost:
            offset = found[partition_name(tp)]
            log.warning(
                "Redis lost data: replaying the partition",
                partition=partition_name(tp),
                position=offset,
                had=self.positions[tp],
                replay_from=offset or 0,
            )
            REPLAYS.inc()
        if not lost:
            return False
        self.cache.clear()
        self.pending, self.pending_offsets, self.pending_records = {}, {}, 0
        await self._seek_to_stored(list(self.positions))  # the other partitions' pending records come again
        return True

    def _fetch_again(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batch.items():
            if self.expected.get(tp) == records[0].offset:  # unless a seek already moved it elsewhere
                self.consumer.seek(tp, records[0].offset)

    async def _advance(self, next_offsets: dict[TopicPartition, int]) -> None:
        """Positions in Redis first (compare-and-set), then the Kafka commit."""
        if not next_offsets:
            return
        expected = {partition_name(tp): self.positions.get(tp) for tp in next_offsets}
        saved = await self.store.save_positions(expected, {partition_name(tp): o for tp, o in next_offsets.items()})
        if not saved:
            return  # Redis lost data under us: the next batch's check replays it
        self.positions.update(next_offsets)
        self.expected.update(next_offsets)
        if self.live:
            self.uncommitted.update(next_offsets)
            if time.monotonic() - self.committed_at >= COMMIT_INTERVAL_SECONDS:
                await self._commit()

    async def _commit(self) -> None:
        """Kafka's committed offsets are for monitoring (Redis holds the positions): at most once a
        second, not a broker round trip per batch."""
        offsets, self.uncommitted, self.committed_at = self.uncommitted, {}, time.monotonic()
        if not offsets:
            return
        try:  # bounded: aiokafka retries a commit while the group has no coordinator, with no end
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
        except (CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as exc:
            log.info("commit skipped; Redis holds the positions", error=exc.__class__.__name__)

    async def _redis_retrying(self, step, *args):
        """Runs a step until Redis answers; never moves on (or commits) past a failed write."""
        delay = 0.1
        while True:
            try:
                return await step(*args)
            except REDIS_DOWN as exc:
                if self.stop.is_set():
                    raise
                log.warning("Redis unavailable; retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _report(self) -> None:
        lag = {}
        for tp, position in self.positions.items():
            end = self.consumer.highwater(tp)
            if end is not None and position is not None:
                lag[partition_name(tp)] = max(0, end - position)
                CONSUMER_LAG.labels(tp.topic, tp.partition).set(lag[partition_name(tp)])
        report = (self.applied, self.deadlettered, sum(lag.values()), len(self.positions))
        if report != self._last_report:  # quiet while idle
            applied, deadlettered, lag, partitions = report
            log.info("progress", applied=applied, deadlettered=deadlettered, lag=lag, partitions=partitions)
            self._last_report = report


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
    kafka = f"Kafka at {settings.kafka_bootstrap_servers} ({settings.kafka_security_protocol})"
    timeout = settings.startup_timeout_seconds
    started = []
    try:
        await _start_with_deadline(f"Redis at {masked_url(settings.redis_url)}", redis.ping, timeout)
        store = store.for_generation(await store.generations.live_or_first())
        admin = AIOKafkaAdminClient(**kafka_options(settings))
        await _start_with_deadline(kafka, admin.start, timeout)
        started.append(admin.close)
        await ensure_topics(
            admin,
            [*settings.topic_list, settings.deadletter_topic],
            settings.topic_partitions,
            settings.topic_replication_factor,
        )
        producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=False, linger_ms=5)
        await _start_with_deadline(kafka, producer.start, timeout)
        started.append(producer.stop)
        consumer = AIOKafkaConsumer(
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
        projector = Projector(settings, consumer, producer, store, stop)
        consumer.subscribe(settings.topic_list, listener=projector)
        await _start_with_deadline(kafka, consumer.start, timeout)
        started.append(consumer.stop)
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
