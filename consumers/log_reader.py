"""The Kafka side of a projector: the partitions it reads and their positions (Redis holds them: on assignment
the consumer seeks to them), the fetch, the positions saved and the commit past a written batch, the lag and
the stall watchdog."""

import asyncio
import time

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.metrics import CONSUMER_LAG, STALLED
from consumers.offsets import outside_the_log
from projections.keys import position_name
from projections.store import Store
from runtime.logs import await_chain
from runtime.settings import Settings

log = structlog.get_logger("pointsview.projector")
COMMIT_INTERVAL_SECONDS = 1.0
COMMIT_TIMEOUT_SECONDS = 5.0  # a stop is bounded whatever the group or the broker do: its last commit too
# Redis cannot answer now: the step is tried again. On a cluster also: no master for a slot yet
# (CLUSTERDOWN), a slot moving (TRYAGAIN), redirections still changing (a failover in progress).
REDIS_DOWN = (ConnectionError, RedisTimeoutError, BusyLoadingError, ClusterDownError, TryAgainError, AskError, OSError)


def partition_name(tp: TopicPartition) -> str:
    return position_name(tp.topic, tp.partition)


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


class LogReader(ConsumerRebalanceListener):
    """Reads the log from the positions Redis holds; the projector (its subclass) says what a batch and a
    rebalance do."""

    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, store: Store, stop: asyncio.Event, live: bool):
        self.settings = settings
        self.consumer = consumer
        self.store = store
        self.stop = stop
        self.live = live  # commits to Kafka (a rebuild's projector does not)
        self.positions: dict[TopicPartition, int | None] = {}  # what Redis held after our last step
        # The next offset this consumer wants: records before it were fetched before a seek (a rebalance
        # or a replay) and come again after it, so they are dropped rather than applied or dead-lettered twice.
        self.expected: dict[TopicPartition, int] = {}
        self.paused_for: int | None = None  # the generation a hand-over is pausing us for
        self.uncommitted: dict[TopicPartition, int] = {}
        self.committed_at = 0.0
        self.fatal: Exception | None = None
        self.applied = self.deadlettered = 0
        self._last_report: tuple | None = None

    async def _seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        found = await self.store.read_positions([partition_name(tp) for tp in partitions])
        stored = {tp: found[partition_name(tp)] for tp in partitions}
        outside = await outside_the_log(self.settings, {tp: position or 0 for tp, position in stored.items()})
        if outside:
            raise LogTruncated("; ".join(_gap(tp, stored[tp] or 0, *bounds) for tp, bounds in outside.items()))
        for tp, position in stored.items():
            self._seek(tp, position)

    def _seek(self, tp: TopicPartition, stored: int | None) -> None:
        self.positions[tp] = stored
        self.expected[tp] = stored or 0  # none: the log's start, 0 (outside_the_log checked that it holds it)
        self.consumer.seek(tp, self.expected[tp])

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
