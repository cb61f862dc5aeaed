"""The generation registry: which generation is live, the rebuild's hand-over, and every generation's record.

The only code that reads or writes the meta keys (projections.keys.MetaKeys). A rebuild fills a new
generation beside the live one; the hand-over is a leased key that asks live projectors to pause (each
acknowledges per partition), then the live pointer flips in one SET, published on its own channel.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError

from projections.keys import FIRST_GENERATION, MetaKeys

UNAVAILABLE = (RedisError, RedisClusterException, OSError)  # what "Redis cannot answer" raises, cluster included
LEASE_SECONDS = 15  # a rebuild that dies mid hand-over releases the live projector after this


@dataclass(frozen=True, slots=True)
class Control:
    """What a live projector checks every batch."""

    live: int | None  # the generation the API serves
    handover: int | None  # a rebuild asks projectors to pause for this generation


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Generations:
    def __init__(self, redis: Redis, prefix: str):
        self.redis: Any = redis  # redis-py's annotations mix its sync and async results
        self.meta = MetaKeys(prefix)

    # --- the live pointer ---

    async def live(self) -> int | None:
        value = await self.redis.get(self.meta.live())
        return int(value) if value else None

    async def live_or_first(self) -> int:
        """The live generation; the first one when none is yet (which a projector's first start sets)."""
        await self.redis.set(self.meta.live(), FIRST_GENERATION, nx=True)
        return await self.live() or FIRST_GENERATION

    def queue_control(self, pipe) -> None:
        """Adds the read of `Control` to a pipeline (the projector's batch read: no round trip of its own)."""
        pipe.get(self.meta.live())  # two GETs, not an MGET: on a cluster the keys lie in different slots
        pipe.get(self.meta.handover())

    @staticmethod
    def control(replies: list) -> Control:
        """Control from the two replies queue_control asked for."""
        live, handover = replies
        return Control(int(live) if live else None, int(handover) if handover else None)

    async def follow(self, use: Callable[[int], None], applied: Callable[[bytes | None], None] | None = None) -> None:
        """Calls `use(live)` at once and at every switch (pub/sub), and every second in case a message was
        missed; with `applied`, calls it with each message a projector publishes on a write, and with None
        once subscribed (again): messages sent meanwhile are lost. While Redis is down, keeps trying (and
        keeps reading the pointer where it can)."""
        channels = [self.meta.live(), *([self.meta.applied()] if applied else [])]
        applied_channel = self.meta.applied().encode()
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(*channels)
                use(await self.live() or FIRST_GENERATION)
                if applied:
                    applied(None)
                read_at = time.monotonic()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and applied and message["channel"] == applied_channel:
                        applied(message["data"])
                    # a switch's message, or a second without reading the pointer (however busy the
                    # applied channel is: a lost switch message is caught within a second)
                    if message is None or message["channel"] != applied_channel or time.monotonic() - read_at >= 1:
                        use(await self.live() or FIRST_GENERATION)
                        read_at = time.monotonic()
            except UNAVAILABLE:  # the channel's node is gone (a cluster node may be): read the pointer meanwhile
                with contextlib.suppress(*UNAVAILABLE):
                    use(await self.live() or FIRST_GENERATION)
                await asyncio.sleep(1)
            finally:
                await pubsub.aclose()

    # --- the registry ---

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
        await self.redis.hset(self.meta.generations(), generation, json.dumps({**entry, "state": state, **extra}))

    async def previous(self) -> int | None:
        """The generation that was live before the live one."""
        live = await self.live()
        return None if live is None else (await self.all()).get(live, {}).get("previous")

    async def switch(self, generation: int) -> int | None:
        """Points the API and the projector at `generation`; returns the one it replaces."""
        replaced = await self.redis.set(self.meta.live(), generation, get=True)
        await self.redis.publish(self.meta.live(), generation)
        previous = int(replaced) if replaced else None
        if previous is not None and previous != generation:
            await self.mark(previous, "retired", retiredAt=now())
        await self.mark(generation, "live", switchedAt=now(), previous=previous)
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
        return json.dumps({"state": state, "createdAt": now()})

    # --- the hand-over ---

    async def hold_lease(self, generation: int) -> None:
        """Asks live projectors to pause for `generation` until cancelled (or until the lease runs out)."""
        while True:
            await self.redis.set(self.meta.handover(), generation, ex=LEASE_SECONDS)
            await asyncio.sleep(LEASE_SECONDS / 3)

    async def release(self, generation: int) -> None:
        await self.redis.delete(self.meta.handover())
        await self.redis.delete(self.meta.paused(generation))

    async def acknowledge_pause(self, generation: int, positions: dict[str, int | None]) -> None:
        """Tells the rebuild that these partitions stopped writing the old generation, and where."""
        mapping = {p: -1 if offset is None else offset for p, offset in positions.items()}
        if mapping:
            await self.redis.hset(self.meta.paused(generation), mapping=mapping)

    async def paused(self, generation: int) -> set[str]:
        """The partitions whose projector acknowledged the hand-over to `generation`."""
        return {k.decode() for k in await self.redis.hkeys(self.meta.paused(generation))}
