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
    STALLED,
)
from consumers.offsets import outside_the_log
from consumers.topics import ensure_topics
from projections.events import Event, InvalidEvent, parse_event
from projections.generations import Control
from projections.keys import position_name
from projections.plan import Held
from projections.store import CorruptValue, CustomerId, Store, encode_marks, encode_value, held_of
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


def _parsed(
    batch: dict[TopicPartition, list[ConsumerRecord]],
) -> tuple[list[tuple[str, int, Event, CustomerId]], list[tuple[ConsumerRecord, str]]]:
    """The batch's events as (position, offset, event, its customer), in log order per partition; and the records that
    are not valid events, with why."""
    events, rejected = [], []
    for tp, records in batch.items():
        position = partition_name(tp)
        for record in records:
            try:
                event = parse_event(record.value)
            except InvalidEvent as exc:
                rejected.append((record, str(exc)))
                continue
            cid = (event.orgId, event.customerId)
            if record.key != f"{cid[0]}:{cid[1]}".encode():
                KEY_MISMATCH.inc()
            events.append((position, record.offset, event, cid))
    return events, rejected


def _unreadable(cid: CustomerId, exc: CorruptValue) -> str:
    """Why the events of a customer whose stored value cannot be decoded are dead-lettered: its value is left
    as it is (its reads answer 503, verify names it) and the projector goes on. A rebuild replays the log
    into a fresh generation; a redrive after it is deduplicated."""
    log.error("stored value unreadable; its events are dead-lettered", customer=cid, error=str(exc))
    return f"stored state of customer {cid[0]}:{cid[1]} unreadable; run pointsview rebuild ({exc})"


def _dead_letter_customers(
    reasons: dict[CustomerId, str], events: list, batch: dict[TopicPartition, list[ConsumerRecord]], rejected: list
) -> list:
    """Adds the records of the customers in `reasons` to `rejected`; returns the other customers' events."""
    at = {(position, offset): reasons[cid] for position, offset, _, cid in events if cid in reasons}
    for tp, records in batch.items():
        position = partition_name(tp)
        rejected += [(record, at[position, record.offset]) for record in records if (position, record.offset) in at]
    return [event for event in events if event[3] not in reasons]


def _went_back(position: int | None, seen: int) -> bool:
    return position is None or position < seen


class LogTruncated(RuntimeError):
    """A stored position lies outside the partition's log (confirmed by a fetch): a rebuild is needed."""


def _gap(tp: TopicPartition, position: int, start: int, end: int) -> str:
    """What an operator reads when the log does not hold a stored position: which case, and what to run."""
    where = f"{partition_name(tp)}: the read-model needs offset {position}, the log holds {start} up to {end}"
    if position < start:
        return (
            f"{where}: retention deleted events before the read-model applied them; restore the topic from a "
            "backup (every event from offset 0), then run `pointsview rebuild`, and keep its retention longer"
        )
    return (
        f"{where}: the position is past the end of the log: the topic was recreated or the broker lost "
        "acknowledged records; run `pointsview rebuild` to rebuild the read-model from the log as it is now"
    )


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
        fresh: bool = False,
    ):
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.store = store
        self.stop = stop
        self.live = live
        # Writing a generation nobody wrote before (a rebuild from offset 0): customers are not read, every one
        # starts empty. Should another writer have written one after all, its compare-and-set fails, and from
        # then on customers are read.
        self.fresh = fresh
        self.lock = asyncio.Lock()  # a rebalance waits for the batch in flight
        self.positions: dict[TopicPartition, int | None] = {}  # what Redis held after our last step
        # The next offset this consumer wants: records before it were fetched before a seek (a rebalance
        # or a replay) and come again after it, so they are dropped rather than applied or dead-lettered twice.
        self.expected: dict[TopicPartition, int] = {}
        self.paused_for: int | None = None  # the generation a hand-over is pausing us for
        # Customers as this projector last read or wrote them, decoded once and folded onto in place for as
        # long as they stay (least recently touched go first): a customer seen again costs no read, no
        # decoding and no new objects. Redis stays the judge: every write is a compare-and-set on the
        # watermarks the stored value starts with, so a write by anyone else (another consumer, a rebuild,
        # a Redis that lost data) fails it, and the held customers are dropped whenever what they stand on
        # changes (rebalance, replay, generation, failure).
        self.held: dict[CustomerId, Held] = {}
        # Write-behind while catching up: the held customers that owe Redis a write, and the offsets the
        # positions move to once they are written.
        self.dirty: dict[CustomerId, Held] = {}
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
            self.held.clear()
            for tp in revoked:
                self.positions.pop(tp, None)
                self.expected.pop(tp, None)

    async def on_partitions_assigned(self, assigned) -> None:
        async with self.lock:
            self.held.clear()
            try:
                await self._redis_retrying(self._seek_to_stored, list(assigned))
            except Exception as exc:  # aiokafka logs listener errors and goes on: the loop raises it
                self.fatal = exc  # (else the partitions, never sought, would be dropped while assigned)

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        found = await self.store.read_positions([partition_name(tp) for tp in partitions])
        stored = {tp: found[partition_name(tp)] for tp in partitions}
        outside = await outside_the_log(self.settings, {tp: position or 0 for tp, position in stored.items()})
        if outside:
            raise LogTruncated("; ".join(_gap(tp, stored[tp] or 0, *bounds) for tp, bounds in outside.items()))
        for tp, position in stored.items():
            self._seek(tp, position)

    async def _rewind(self) -> None:
        """Back to the positions Redis holds (a replay where one went back). Done only once that worked: if
        Redis is still down, the retry rewinds again (moving on would skip what the failed write held)."""
        found = await self.store.read_positions([partition_name(tp) for tp in self.positions])
        if not await self._replay_lost(found):
            await self._seek_to_stored(list(self.positions))
        self.rewind = False

    def _seek(self, tp: TopicPartition, stored: int | None) -> None:
        self.positions[tp] = stored
        self.expected[tp] = stored or 0  # none: the log's start, 0 (outside_the_log checked that it holds it)
        self.consumer.seek(tp, self.expected[tp])

    # --- the loop ---

    async def run(self, until=None) -> None:
        """Runs until stopped (or until `until()` says the work is done)."""
        watching = asyncio.create_task(self._watch_for_stalls(), name="stall watchdog")
        try:
            with _fewer_collections():
                await self._run(until)
        finally:
            watching.cancel()

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
        events, rejected = _parsed(batch)
        await self._written()  # the last batch's write went on while this one was parsed
        if self.rewind:  # it failed: this batch, and what was planned before it, come again
            return await self._rewind()
        # Positions are read after the customers, in the same pipeline: if they are
        # intact, the customers were read before any loss, and a loss after that
        # fails the customers' compare-and-set.
        missing = self._touch({cid for _, _, _, cid in events})
        read = [] if self.fresh else missing
        loaded, found, control = await self.store.load(read, [partition_name(tp) for tp in self.positions])
        if self.live and await self._follow(control):
            return self._fetch_again(batch)
        if await self._replay_lost(found):
            return self._fetch_again(batch)
        held, dirty = self.held, self.dirty
        unreadable: dict[CustomerId, str] = {}
        for cid in missing:
            try:
                held[cid] = held_of(cid, loaded.get(cid, b""))
            except CorruptValue as exc:
                unreadable[cid] = _unreadable(cid, exc)
        if unreadable:
            events = _dead_letter_customers(unreadable, events, batch, rejected)
        ledger_entries = self.settings.ledger_entries
        for position, offset, event, cid in events:
            customer = held[cid]
            if customer.take(position, offset, event, ledger_entries):
                dirty[cid] = customer
        if rejected:
            if self.producer:
                await send_deadletters(self.producer, self.settings.deadletter_topic, rejected)
            self.deadlettered += len(rejected)
        consumed = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        self.expected.update(consumed)
        self.pending_offsets.update(consumed)
        self.pending_records += sum(len(records) for records in batch.values())
        full = self.pending_records >= self.behind or len(dirty) >= self.settings.cache_customers // 2
        if caught_up or full:
            await self._flush(wait=False)

    def _touch(self, customers: set[CustomerId]) -> list[CustomerId]:
        """Marks the batch's customers most recently used; returns those not held (to be read)."""
        held, missing = self.held, []
        for cid in customers:
            customer = held.pop(cid, None)
            if customer is None:
                missing.append(cid)
            else:
                held[cid] = customer
        return missing

    async def _flush(self, wait: bool = True) -> None:
        """Writes the customers that owe Redis (compare-and-set), then moves the positions past what they
        hold. Without `wait` the write goes on while the next batch is parsed; `_written` waits for it."""
        await self._written()
        if not self.pending_offsets:
            return
        now_ms, window_ms = int(time.time() * 1000), self.store.dedup_window_ms
        writes, after = [], []
        for customer in self.dirty.values():
            marks = encode_marks(customer.watermarks)
            seen = customer.seen.added(customer.applied_keys, now_ms, window_ms)
            writes.append((customer.token, encode_value(marks, seen, customer.customer), customer))
            after.append((marks, seen))
        offsets, records = self.pending_offsets, self.pending_records
        self.dirty, self.pending_offsets, self.pending_records = {}, {}, 0
        self._evict()
        self.writing = asyncio.ensure_future(self._write(writes, after, offsets, records))
        if wait:
            await self._written()

    async def _written(self) -> None:
        """Waits for the write in flight (a failed one has dropped what was planned on it, and raises)."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing

    async def _write(self, writes: list, after: list, offsets: dict[TopicPartition, int], records: int) -> None:
        """The customers, then the positions past them. Anything short of both (Redis down between the two, a
        lost compare-and-set) reads everything since the positions Redis holds again: a write Redis
        acknowledged may still be lost in its crash, and a save may have run with its reply lost."""
        try:
            lost = await self.store.write(writes)
            if lost:
                log.info("another consumer wrote some of these customers; reading again", customers=len(lost))
                self.behind = 0  # sharing customers with another writer: every batch on its own until it stops
                self.fresh = False
                return self._forget_pending()
            self._applied(writes, records)  # before `written` clears what each customer owed
            for (_, _, customer), (marks, seen) in zip(writes, after):
                customer.written(marks, seen)
            if not await self._advance(offsets):  # Redis lost data under us, or another writer moved them
                return self._forget_pending()
        except BaseException:
            self._forget_pending()  # some customers may have been written: start again from what Redis holds
            raise
        self.behind = min(self.settings.write_behind_records, max(2 * self.behind, self.settings.batch_max_records))

    def _applied(self, writes: list, records: int) -> None:
        applied = sum(len(customer.applied_event_ids) for _, _, customer in writes)
        EVENTS_APPLIED.inc(applied)
        EVENTS_SKIPPED.inc(records - applied)
        self.applied += applied

    async def _flush_if_reachable(self) -> None:
        """Before giving partitions up or stopping; Redis down: what was pending is read again later."""
        try:
            await self._flush()
        except REDIS_DOWN as exc:
            log.warning("Redis unavailable; pending customers are read again from the saved positions", error=str(exc))

    def _forget_pending(self) -> None:
        self._forget()
        self.rewind = True

    def _forget(self) -> None:
        """Drops every held customer and what was pending: they are read again from Redis."""
        self.held, self.dirty, self.pending_offsets, self.pending_records = {}, {}, {}, 0

    def _evict(self) -> None:
        """Keeps at most cache_customers held, the least recently touched going first (none owes a write:
        `_flush` calls this once they are on their way)."""
        held = self.held
        for cid in list(itertools.islice(held, max(0, len(held) - self.settings.cache_customers))):
            del held[cid]

    async def _follow(self, control: Control) -> bool:
        """Pauses for a hand-over, or moves to a new live generation; True when this batch must wait."""
        if control.live is not None and control.live != self.generation:
            log.warning("live generation changed: continuing there", generation=control.live, previous=self.generation)
            self.store = self.store.for_generation(control.live)
            self._forget()  # the old generation's
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
        self._forget()
        await self._seek_to_stored(list(self.positions))  # the other partitions' pending records come again
        return True

    def _fetch_again(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batch.items():
            if self.expected.get(tp) == records[0].offset:  # unless a seek already moved it elsewhere
                self.consumer.seek(tp, records[0].offset)

    async def _advance(self, next_offsets: dict[TopicPartition, int]) -> bool:
        """Positions in Redis first (compare-and-set: False when Redis no longer holds what this projector
        saved last), then the Kafka commit."""
        if not next_offsets:
            return True
        expected = {partition_name(tp): self.positions.get(tp) for tp in next_offsets}
        if not await self.store.save_positions(expected, {partition_name(tp): o for tp, o in next_offsets.items()}):
            return False
        self.positions.update(next_offsets)
        self.expected.update(next_offsets)
        if self.live:
            self.uncommitted.update(next_offsets)
            if time.monotonic() - self.committed_at >= COMMIT_INTERVAL_SECONDS:
                await self._commit()
        return True

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

    def _lag(self) -> dict[str, int]:
        """Records behind each partition's end (as the last fetch saw it), also set in the metrics."""
        lag = {}
        for tp, position in self.positions.items():
            end = self.consumer.highwater(tp)
            if end is not None:
                lag[partition_name(tp)] = max(0, end - (position or 0))
                CONSUMER_LAG.labels(tp.topic, tp.partition).set(lag[partition_name(tp)])
        return lag

    def _report(self) -> None:
        lag = self._lag()
        report = (self.applied, self.deadlettered, sum(lag.values()), len(self.positions))
        if report != self._last_report:  # quiet while idle
            applied, deadlettered, lag, partitions = report
            log.info("progress", applied=applied, deadlettered=deadlettered, lag=lag, partitions=partitions)
            self._last_report = report

    def _progress(self) -> tuple[int, int, int]:
        """What moves while the projector works: events applied, records read, positions saved."""
        return self.applied, sum(self.expected.values()), sum(p or 0 for p in self.positions.values())

    async def _watch_for_stalls(self) -> None:
        """Warns once per stall (and counts it) when the lag stays above 0 while nothing moves for
        POINTSVIEW_STALL_SECONDS, outside a hand-over's pause: with where each task of the process waits."""
        progress, since, warned = self._progress(), time.monotonic(), False
        while True:
            await asyncio.sleep(min(5.0, self.settings.stall_seconds / 4))
            lag, now = sum(self._lag().values()), self._progress()
            if now != progress or not lag or self.paused_for is not None:
                progress, since, warned = now, time.monotonic(), False
            elif not warned and time.monotonic() - since >= self.settings.stall_seconds:
                warned = True
                STALLED.inc()
                log.warning(
                    "projector stalled: behind the log and applying nothing",
                    lag=lag,
                    seconds=round(time.monotonic() - since),
                    applied=self.applied,
                    waiting={task.get_name(): await_chain(task) for task in asyncio.all_tasks() if not task.done()},
                )


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
