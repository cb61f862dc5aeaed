"""The API's view of the store: the live generation, followed without a round trip per request (pub/sub on
the pointer's channel, re-read every second in case a message was missed), and each org's sources cached
briefly for source=ALL lookups."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from projections.generations import Generations
from projections.identity import CARD_NUMBER, IndexKey
from projections.state import Customer
from projections.store import Store

SOURCES_CACHE_SECONDS = 1.0  # source=ALL: the org's sources, re-read at most this often (and on a miss)
# A wait for an event looks again after 0.5 to 1.5 times this even without a notification (one may be lost
# while the subscription reconnects): rare looks, so that hundreds of waiting requests cost little.
RECHECK_SECONDS = 1.0


class ReadModel:
    def __init__(self, store: Store):
        self.generations = Generations(store.redis, store.keys.meta.prefix)
        self._stores = {store.keys.generation: store}
        self.store = store
        self._sources: dict[int, tuple[list[tuple[str, str]], float]] = {}
        self._applied = asyncio.Event()  # set (and replaced) when a projector publishes a write

    def use(self, generation: int) -> None:
        if generation != self.store.keys.generation:
            self._stores.setdefault(generation, self.store.for_generation(generation))
            self.store = self._stores[generation]
            self._sources.clear()

    async def follow_live(self) -> None:
        """Runs until cancelled: requests read the live generation (Redis down: they answer 503 meanwhile),
        and waits for an event look again when a projector announces a write."""
        await self.generations.follow(self.use, self._announce_applied)

    def _announce_applied(self) -> None:
        self._applied.set()
        self._applied = asyncio.Event()

    async def waited(self, check: Callable[[], Awaitable[tuple]], seconds: float) -> tuple:
        """`check()` answers (result, done); runs it until done or `seconds` pass, again at each write a
        projector announces and at least every 1.5 x RECHECK_SECONDS: the last (result, done). A waiting request
        holds nothing but this coroutine (one subscription per process wakes them all)."""
        deadline = time.monotonic() + seconds
        while True:
            result, done = await check()
            left = deadline - time.monotonic()
            if done or left <= 0:
                return result, done
            try:  # the fallback look spread over time: waiters that came together do not look together
                await asyncio.wait_for(self._applied.wait(), min(left, RECHECK_SECONDS * (0.5 + random.random())))
            except TimeoutError:
                pass

    async def customer_applied(self, org_id: int, customer_id: int, event_id: str) -> tuple[Customer | None, bool]:
        return await self.store.customer_applied(org_id, customer_id, event_id)

    async def customer(self, org_id: int, customer_id: int) -> Customer | None:
        return await self.store.customer(org_id, customer_id)

    async def sources(self, org_id: int, fresh: bool = False) -> list[tuple[str, str]]:
        cached = self._sources.get(org_id)
        if cached and not fresh and time.monotonic() - cached[1] < SOURCES_CACHE_SECONDS:
            return cached[0]
        sources = await self.store.sources(org_id)
        self._sources[org_id] = (sources, time.monotonic())
        return sources

    async def resolve(
        self, org_id: int, scope: tuple[str, str] | None, identifier: tuple[str, str]
    ) -> tuple[int, Customer | None] | None:
        """The latest claimant of `identifier` (type, value) on one (source, accountId), or on every source
        of the org when `scope` is None, and its state: one round trip. A card number also resolves to its
        cards' holders, on any source."""
        card = identifier[1] if identifier[0] == CARD_NUMBER else None
        scopes = [scope] if scope else await self.sources(org_id)
        found = await self.store.resolve_customer(org_id, _index_keys(org_id, scopes, identifier), card)
        stale = scope is None and time.monotonic() - self._sources[org_id][1] > 0.05
        if found is None and stale:  # a source new since the cache was filled?
            scopes = await self.sources(org_id, fresh=True)
            found = await self.store.resolve_customer(org_id, _index_keys(org_id, scopes, identifier), card)
        return found


def _index_keys(org_id: int, scopes: list[tuple[str, str]], identifier: tuple[str, str]) -> list[IndexKey]:
    return [IndexKey(org_id, source, account, *identifier) for source, account in scopes]
