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
import json
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from consumers.runner import Projector, log_ends, position_name
from projections.keys import FIRST_GENERATION, Keys, MetaKeys
from projections.store import Store
from service.settings import Settings

log = logging.getLogger("pointsview.rebuild")
LEASE_SECONDS = 15  # a rebuild that dies mid hand-over releases the live projector after this


@dataclass
class Progress:
    """What a progress display needs: events done of total since the start."""

    total: int = 0
    done: int = 0
    phase: str = "replaying"


class Generations:
    """The registry of generations and the live pointer."""

    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.meta = MetaKeys(prefix)
        self.prefix = prefix

    async def live(self) -> int | None:
        value = await self.redis.get(self.meta.live())
        return int(value) if value else None

    async def all(self) -> dict[int, dict]:
        entries = {int(k): json.loads(v) for k, v in (await self.redis.hgetall(self.meta.generations())).items()}
        live = await self.live()
        if live is not None:
            entries.setdefault(live, {"state": "live"})
        return dict(sorted(entries.items()))

    async def create(self) -> int:
        known = await self.all()
        generation = max([FIRST_GENERATION, *known]) + 1
        while not await self.redis.hsetnx(self.meta.generations(), generation, self._entry("building")):
            generation += 1  # another rebuild took it
        return generation

    async def mark(self, generation: int, state: str, **extra) -> None:
        entry = (await self.all()).get(generation, {})
        await self.redis.hset(self.meta.generations(), generation,
                              json.dumps({**entry, "state": state, **extra}))

    async def switch(self, generation: int) -> int | None:
        """Points the API and the projector at `generation`; returns the one it replaces."""
        previous = await self.redis.set(self.meta.live(), generation, get=True)
        await self.redis.publish(self.meta.live(), generation)
        previous = int(previous) if previous else None
        if previous is not None and previous != generation:
            await self.mark(previous, "retired", retiredAt=_now())
        await self.mark(generation, "live", switchedAt=_now(), previous=previous)
        return previous

    async def drop(self, generation: int) -> int:
        if generation == await self.live():
            raise ValueError(f"generation {generation} is live; switch away from it first")
        removed = 0
        async for key in self.redis.scan_iter(match=self.meta.generation_pattern(generation), count=1000):
            removed += await self.redis.unlink(key)
        await self.redis.hdel(self.meta.generations(), generation)
        return removed

    @staticmethod
    def _entry(state: str) -> str:
        return json.dumps({"state": state, "createdAt": _now()})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Rebuild:
    def __init__(self, settings: Settings, redis: Redis, stop: asyncio.Event, progress: Progress):
        # a replay has no latency to protect: larger batches mean fewer round trips per event
        self.settings = settings.model_copy(update={"batch_max_records": max(settings.batch_max_records, 100_000)})
        self.redis = redis
        self.stop = stop
        self.progress = progress
        self.generations = Generations(redis, settings.key_prefix)

    async def run(self, switch: bool = True, generation: int | None = None) -> int:
        """Builds `generation` (a new one by default) up to the log's end; hands over when `switch`."""
        generation = generation or await self.generations.create()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.settings.batch_max_records,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
            isolation_level="read_committed")
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [TopicPartition(t, p) for t in self.settings.topic_list
                          for p in sorted(consumer.partitions_for_topic(t) or ())]
            consumer.assign(partitions)
            store = Store(self.redis, Keys(self.settings.key_prefix, generation),
                          self.settings.dedup_window_seconds * 1000)
            projector = Projector(self.settings, consumer, None, store, self.stop, live=False)
            await projector._seek_to_stored(partitions)
            log.info("rebuilding generation %d from %d partitions", generation, len(partitions))
            await self._replay(projector, partitions)
            if self.stop.is_set():
                return generation
            await self.generations.mark(generation, "built", builtAt=_now(), events=projector.applied)
            if switch:
                await self._hand_over(projector, partitions, generation)
            return generation
        finally:
            await consumer.stop()

    async def _replay(self, projector: Projector, partitions: list[TopicPartition]) -> None:
        """Applies everything up to the end offsets as they are now."""
        ends = await log_ends(self.settings.kafka_bootstrap_servers, partitions)
        start = {tp: projector.positions.get(tp) or 0 for tp in partitions}
        self.progress.total = sum(max(0, ends[tp] - start[tp]) for tp in partitions)

        def reached() -> bool:
            self.progress.done = sum(min(ends[tp], projector.positions.get(tp) or 0) - start[tp]
                                     for tp in partitions)
            return all((projector.positions.get(tp) or 0) >= ends[tp] for tp in partitions)

        await projector.run(until=reached)

    async def _hand_over(self, projector: Projector, partitions: list[TopicPartition], generation: int) -> None:
        meta = self.generations.meta
        self.progress.phase = "handing over"
        lease = asyncio.create_task(self._hold_lease(generation))
        try:
            await self._await_pauses(generation, partitions)
            self.progress.phase = "catching up"
            await self._replay(projector, partitions)  # the true end: the live projector writes no more
            if self.stop.is_set():
                return
            previous = await self.generations.switch(generation)
            log.info("generation %d is live (was %s)", generation, previous)
        finally:
            lease.cancel()
            await self.redis.delete(meta.handover(), meta.paused(generation))

    async def _hold_lease(self, generation: int) -> None:
        while True:
            await self.redis.set(self.generations.meta.handover(), generation, ex=LEASE_SECONDS)
            await asyncio.sleep(LEASE_SECONDS / 3)

    async def _await_pauses(self, generation: int, partitions: list[TopicPartition]) -> None:
        """Waits until every partition's projector has paused; none at all after a while means none runs."""
        wanted = {position_name(tp) for tp in partitions}
        deadline = time.monotonic() + self.settings.session_timeout_ms / 1000 * 2
        while time.monotonic() < deadline and not self.stop.is_set():
            paused = {k.decode() for k in await self.redis.hkeys(self.generations.meta.paused(generation))}
            if wanted <= paused:
                return
            await asyncio.sleep(0.1)
        log.warning("not every partition's projector acknowledged the hand-over in time: "
                    "assuming those partitions have no live projector")
