"""The projector's batches: each batch parsed and folded onto the customers it holds, written behind while it
catches up (one compare-and-set per customer, then the positions past them), the hand-over followed, a Redis
that lost data replayed. Its Kafka side (fetch, seeks, commit, lag): consumers/log_reader.py."""

import asyncio
import gc
import itertools
import time
from contextlib import contextmanager

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.deadletters import send_deadletters
from consumers.log_reader import REDIS_DOWN, LogReader, partition_name
from consumers.metrics import EVENTS_APPLIED, EVENTS_SKIPPED, REPLAYS
from consumers.records import dead_letter_customers, parsed, unreadable_reason
from projections.generations import Control
from projections.plan import Held
from projections.store import CorruptValue, CustomerId, Store, encode_marks, encode_value, held_of
from runtime.settings import Settings

log = structlog.get_logger("pointsview.projector")
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


def _went_back(position: int | None, seen: int) -> bool:
    return position is None or position < seen


class Projector(LogReader):
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
        super().__init__(settings, consumer, store, stop, live)
        self.producer = producer
        # Writing a generation nobody wrote before (a rebuild from offset 0): customers are not read, every one
        # starts empty. Should another writer have written one after all, its compare-and-set fails, and from
        # then on customers are read.
        self.fresh = fresh
        self.lock = asyncio.Lock()  # a rebalance waits for the batch in flight
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

    @property
    def generation(self) -> int:
        return self.store.keys.generation

    # --- rebalance: what was pending written, then seek to the positions Redis holds ---

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

    async def _rewind(self) -> None:
        """Back to the positions Redis holds (a replay where one went back). Done only once that worked: if
        Redis is still down, the retry rewinds again (moving on would skip what the failed write held)."""
        found = await self.store.read_positions([partition_name(tp) for tp in self.positions])
        if not await self._replay_lost(found):
            await self._seek_to_stored(list(self.positions))
        self.rewind = False

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

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if self.rewind:  # what was pending is gone: this batch and what came before it are read again
            return await self._rewind()
        caught_up = sum(len(records) for records in batch.values()) < self.settings.batch_max_records
        batch = self._unseen(batch)
        events, rejected = parsed(batch)
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
        unreadable = self._hold(missing, loaded)
        if unreadable:
            events = dead_letter_customers(unreadable, events, batch, rejected)
        self._fold(events)
        if rejected:
            await self._dead_letter(rejected)
        self._consumed(batch)
        if caught_up or self._span_full():
            await self._flush(wait=False)

    def _unseen(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The batch without the records before each partition's expected offset (fetched before a seek, they
        come again after it) and without partitions no longer assigned."""
        return {
            tp: kept
            for tp, records in batch.items()
            if tp in self.expected and (kept := [r for r in records if r.offset >= self.expected[tp]])
        }

    def _hold(self, missing: list[CustomerId], loaded: dict[CustomerId, bytes]) -> dict[CustomerId, str]:
        """Holds the customers just read; returns why those whose stored value cannot be decoded are not."""
        held, unreadable = self.held, {}
        for cid in missing:
            try:
                held[cid] = held_of(cid, loaded.get(cid, b""))
            except CorruptValue as exc:
                unreadable[cid] = unreadable_reason(cid, exc)
        return unreadable

    def _fold(self, events: list) -> None:
        """Each event onto its held customer; a customer an event changed owes Redis a write."""
        held, dirty, ledger_entries = self.held, self.dirty, self.settings.ledger_entries
        for position, offset, event, cid in events:
            customer = held[cid]
            if customer.take(position, offset, event, ledger_entries):
                dirty[cid] = customer

    async def _dead_letter(self, rejected: list) -> None:
        if self.producer:
            await send_deadletters(self.producer, self.settings.deadletter_topic, rejected)
        self.deadlettered += len(rejected)

    def _consumed(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """The batch is folded: its partitions' next offsets are expected, and pending until written."""
        consumed = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        self.expected.update(consumed)
        self.pending_offsets.update(consumed)
        self.pending_records += sum(len(records) for records in batch.values())

    def _span_full(self) -> bool:
        """The write-behind span holds enough records, or enough customers owe a write."""
        return self.pending_records >= self.behind or len(self.dirty) >= self.settings.cache_customers // 2

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
