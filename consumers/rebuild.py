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
import time

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from consumers.offsets import log_ends
from consumers.projector import Projector, partition_name
from projections.generations import now
from runtime import bootstrap
from runtime.progress import Progress
from runtime.settings import Settings

log = structlog.get_logger("pointsview.rebuild")


class Rebuild:
    def __init__(self, settings: Settings, redis: Redis, stop: asyncio.Event, progress: Progress):
        # a replay has no latency to protect: larger batches mean fewer round trips per event
        self.settings = settings.model_copy(update={"batch_max_records": max(settings.batch_max_records, 100_000)})
        self.redis = redis
        self.stop = stop
        self.progress = progress
        self.generations = bootstrap.generations(settings, redis)

    async def run(self, switch: bool = True, generation: int | None = None) -> int:
        """Builds `generation` (a new one by default) up to the log's end; hands over when `switch`."""
        generation = generation or await self.generations.create()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(t, p)
                for t in self.settings.topic_list
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(partitions)
            store = bootstrap.store(self.settings, self.redis, generation)
            projector = Projector(self.settings, consumer, None, store, self.stop, live=False)
            await projector._seek_to_stored(partitions)
            log.info("rebuilding", generation=generation, partitions=len(partitions))
            await self._replay(projector, partitions)
            if self.stop.is_set():
                return generation
            await self.generations.mark(generation, "built", builtAt=now(), events=projector.applied)
            if switch:
                await self._hand_over(projector, partitions, generation)
            return generation
        finally:
            await consumer.stop()

    async def _replay(self, projector: Projector, partitions: list[TopicPartition]) -> None:
        """Applies everything up to the end offsets as they are now."""
        ends = await log_ends(self.settings, partitions)
        start = {tp: projector.positions.get(tp) or 0 for tp in partitions}
        self.progress.total = sum(max(0, ends[tp] - start[tp]) for tp in partitions)

        def reached() -> bool:
            self.progress.done = sum(min(ends[tp], projector.positions.get(tp) or 0) - start[tp] for tp in partitions)
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
        """Waits until every partition's projector has paused; none at all after a while means none runs."""
        wanted = {partition_name(tp) for tp in partitions}
        deadline = time.monotonic() + self.settings.session_timeout_ms / 1000 * 2
        while time.monotonic() < deadline and not self.stop.is_set():
            if wanted <= await self.generations.paused(generation):
                return
            await asyncio.sleep(0.1)
        log.warning(
            "not every partition's projector acknowledged the hand-over in time: "
            "assuming those partitions have no live projector",
            missing=sorted(wanted - await self.generations.paused(generation)),
        )
