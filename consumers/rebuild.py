"""`pointsview rebuild`: replay every topic from offset 0 into a new generation, then hand over.

The hand-over: a leased `handover` key asks the live projector(s) to pause
(they stop writing the old generation and acknowledge per partition), the
rebuild catches up to the true end of the log, the live pointer flips in one
SET (and is published), the lease goes, and the projector continues on the
new generation from the positions the rebuild stored there. Reads are served
the whole time: from the old generation (frozen while paused), then the new
one, which holds everything the old one had.
"""

import asyncio
import multiprocessing
import signal
import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from consumers.batches import Projector
from consumers.log_reader import partition_name
from consumers.members import stop_before_the_loop
from consumers.offsets import log_ends
from consumers.topics import group_members
from projections.generations import now
from projections.store import Store
from runtime import bootstrap
from runtime.progress import Progress
from runtime.settings import Settings
from runtime.transport import kafka_options

log = structlog.get_logger("pointsview.rebuild")


class Rebuild:
    def __init__(self, settings: Settings, redis: Redis, stop: asyncio.Event, progress: Progress):
        # a replay has no latency to protect: larger batches mean fewer round trips per event
        self.settings = settings.model_copy(
            update={
                "batch_max_records": max(settings.batch_max_records, 100_000),
                # nobody else writes the new generation: fold as much as the cache holds before writing
                "write_behind_records": max(settings.write_behind_records, 2_000_000),
            }
        )
        self.redis = redis
        self.stop = stop
        self.progress = progress
        self.generations = bootstrap.generations(settings, redis)

    async def run(self, switch: bool = True, generation: int | None = None, processes: int = 1) -> int:
        """Builds `generation` (a new one by default) up to the log's end; hands over when `switch`. With
        `processes` > 1 the log is first replayed by that many processes, each its share of the partitions
        (a core each), up to the end it has when they start; this process then does the rest."""
        generation = generation or await self.generations.create()
        consumer = _replay_consumer(self.settings)
        await consumer.start()
        try:
            partitions = await _partitions(consumer, self.settings)
            consumer.assign(partitions)
            log.info("rebuilding", generation=generation, partitions=len(partitions), processes=processes)
            if processes > 1 and _same_partition_counts(partitions):
                await self._replay_in_parallel(generation, partitions, processes)
            if self.stop.is_set():
                return generation
            store = bootstrap.store(self.settings, self.redis, generation)
            fresh = await _untouched(store, partitions)
            projector = Projector(self.settings, consumer, None, store, self.stop, live=False, fresh=fresh)
            await projector._seek_to_stored(partitions)
            await self._replay(projector, partitions)
            if self.stop.is_set():
                return generation
            await self.generations.mark(generation, "built", builtAt=now(), events=projector.applied)
            if switch:
                await self._hand_over(projector, partitions, generation)
            return generation
        finally:
            await consumer.stop()

    async def _replay_in_parallel(self, generation: int, partitions: list[TopicPartition], processes: int) -> None:
        """Each process replays the partitions whose index is its share (every topic's partition p: one
        customer's events on both topics, when the producers partition by key alike); a customer found on
        two shares anyway is written by both through the compare-and-set, exactly."""
        context = multiprocessing.get_context("spawn")
        fields = self.settings.model_dump()
        shares = [
            context.Process(target=_replay_share, args=(fields, generation, share, processes), name=f"rebuild-{share}")
            for share in range(processes)
        ]
        for share in shares:
            share.start()
        store = bootstrap.store(self.settings, self.redis, generation)
        names = [partition_name(tp) for tp in partitions]
        ends = await log_ends(self.settings, partitions)
        self.progress.total = sum(ends.values())
        try:
            while any(share.is_alive() for share in shares):
                if self.stop.is_set():
                    for share in shares:
                        share.terminate()
                read = await store.read_positions(names)
                self.progress.done = sum(offset or 0 for offset in read.values())
                await asyncio.sleep(0.2)
        finally:
            for share in shares:
                await asyncio.to_thread(share.join)
        failed = [share.name for share in shares if share.exitcode]
        if failed and not self.stop.is_set():
            raise RuntimeError(f"rebuild processes failed: {', '.join(failed)}")

    async def _replay(self, projector: Projector, partitions: list[TopicPartition]) -> None:
        """Applies everything up to the end offsets as they are now. The progress counts the log from its
        start (what an earlier phase or run replayed included)."""
        ends = await log_ends(self.settings, partitions)
        self.progress.total = sum(ends.values())

        def reached() -> bool:  # written; the progress shows what was read (written behind it)
            read = projector.expected
            self.progress.done = sum(min(ends[tp], read.get(tp) or 0) for tp in partitions)
            return all((projector.positions.get(tp) or 0) >= ends[tp] for tp in partitions)

        await projector.run(until=reached)

    async def _hand_over(self, projector: Projector, partitions: list[TopicPartition], generation: int) -> None:
        self.progress.phase = "handing over"
        lease = asyncio.create_task(self.generations.hold_lease(generation))
        try:
            await self._await_pauses(generation, partitions)
            self.progress.phase = "catching up"
            await self._replay(projector, partitions)  # the true end: the live projector writes no more
            if self.stop.is_set():
                return
            previous = await self.generations.switch(generation)
            log.info("generation is live", generation=generation, previous=previous)
        finally:
            lease.cancel()
            await self.generations.release(generation)

    async def _await_pauses(self, generation: int, partitions: list[TopicPartition]) -> None:
        """Waits until every partition's projector has paused. A projector group without members has none
        to wait for (one joining later sees the lease before its first write and pauses); a group that
        keeps silent partitions is given twice the session timeout."""
        wanted = {partition_name(tp) for tp in partitions}
        deadline = time.monotonic() + self.settings.session_timeout_ms / 1000 * 2
        while time.monotonic() < deadline and not self.stop.is_set():
            if wanted <= await self.generations.paused(generation) or await group_members(self.settings) == 0:
                return
            await asyncio.sleep(0.1)
        log.warning(
            "not every partition's projector acknowledged the hand-over in time: "
            "assuming those partitions have no live projector",
            missing=sorted(wanted - await self.generations.paused(generation)),
        )


async def _untouched(store: Store, partitions: list[TopicPartition]) -> bool:
    """Whether the generation holds nothing of these partitions yet: replaying them needs no reads."""
    positions = await store.read_positions([partition_name(tp) for tp in partitions])
    return all(offset is None for offset in positions.values())


def _replay_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_records,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        isolation_level="read_committed",
    )


async def _partitions(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    await consumer.topics()
    return [TopicPartition(t, p) for t in settings.topic_list for p in sorted(consumer.partitions_for_topic(t) or ())]


def _same_partition_counts(partitions: list[TopicPartition]) -> bool:
    counts = {topic: sum(tp.topic == topic for tp in partitions) for topic in {tp.topic for tp in partitions}}
    if len(set(counts.values())) > 1:
        log.warning("topics have different partition counts: replaying in one process", partitions=counts)
        return False
    return True


def _replay_share(fields: dict, generation: int, share: int, shares: int) -> None:
    """One process of a parallel rebuild: partitions whose index is `share` modulo `shares`, up to their
    end as it is now. SIGTERM stops it after its batch (what it wrote stays; the generation is unfinished)."""
    stop_before_the_loop()
    settings = Settings.model_validate(fields)

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        redis = bootstrap.pipelined_redis_client(settings)
        consumer = _replay_consumer(settings)
        await consumer.start()
        try:
            partitions = [tp for tp in await _partitions(consumer, settings) if tp.partition % shares == share]
            consumer.assign(partitions)
            store = bootstrap.store(settings, redis, generation)
            fresh = await _untouched(store, partitions)
            projector = Projector(settings, consumer, None, store, stop, live=False, fresh=fresh)
            await projector._seek_to_stored(partitions)
            ends = await log_ends(settings, partitions)
            await projector.run(until=lambda: all((projector.positions.get(tp) or 0) >= ends[tp] for tp in partitions))
        finally:
            await consumer.stop()
            await redis.aclose()

    asyncio.run(main())
