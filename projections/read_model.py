"""The API's view of the store: the live generation, followed without a round trip per request (pub/sub on
the pointer's channel, re-read every second in case a message was missed), and each org's sources cached
briefly for source=ALL lookups."""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from projections.generations import Generations
from projections.identity import CARD_NUMBER, IndexKey
from projections.keys import applied_slots
from projections.state import CustomerCore
from projections.store import Store

SOURCES_CACHE_SECONDS = 1.0  # source=ALL: the org's sources, re-read at most this often (and on a miss)
Slots = frozenset[int] | None  # the cluster slots of the customers a wait is about; None: any customer


class ReadModel:
    def __init__(self, store: Store):
        self.generations = Generations(store.redis, store.keys.meta.prefix)
        self._stores = {store.keys.generation: store}
        self.store = store
        self._sources: dict[int, tuple[list[tuple[str, str]], float]] = {}
        self._by_slot: dict[int, set[asyncio.Future]] = {}  # waits for events of customers in a slot
        self._anywhere: set[asyncio.Future] = set()  # waits that any write may end

    def use(self, generation: int) -> None:
        if generation != self.store.keys.generation:
            self._stores.setdefault(generation, self.store.for_generation(generation))
            self.store = self._stores[generation]
            self._sources.clear()

    async def follow_live(self) -> None:
        """Runs until cancelled: requests read the live generation (Redis down: they answer 503 meanwhile),
        and waits for an event look again when a projector announces a write of their customers."""
        await self.generations.follow(self.use, self._announce_applied)

    def slots(self, org_id: int, customer_ids: list[int]) -> Slots:
        return frozenset(self.store.keys.customer_slot(org_id, customer_id) for customer_id in customer_ids)

    def _announce_applied(self, message: bytes | None) -> None:
        """Wakes the waits a write may end: those on the written customers' slots, and those on any. A
        message that names no slots (or a subscription made again: messages may have been lost) wakes all."""
        written = applied_slots(message) if message else None
        woken = list(self._anywhere)
        for slot, waits in self._by_slot.items():
            if written is None or written(slot):
                woken += waits
        for wait in woken:
            if not wait.done():
                wait.set_result(None)

    async def waited(self, check: Callable[[], Awaitable[tuple]], seconds: float) -> tuple:
        """`check()` answers (result, done, slots); runs it until done or `seconds` pass, again whenever a
        projector announces a write to `slots` (those of the last check; any slot until one names them),
        and once more at the end: the last (result, done). A waiting request holds nothing but this
        coroutine and costs nothing while its customers are not written (one subscription per process
        wakes the waits a write concerns)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        slots: Slots = None
        while True:
            wait, watched = loop.create_future(), slots
            self._watch(wait, watched)  # before the check: a write announced during it is not missed
            try:
                result, done, slots = await check()
                left = deadline - loop.time()
                if done or left <= 0:
                    return result, done
                if slots == watched:  # else: watch the customers this check named, and check again
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await wait
            finally:
                self._unwatch(wait, watched)

    def _watch(self, wait: asyncio.Future, slots: Slots) -> None:
        if slots is None:
            self._anywhere.add(wait)
        for slot in slots or ():
            self._by_slot.setdefault(slot, set()).add(wait)

    def _unwatch(self, wait: asyncio.Future, slots: Slots) -> None:
        if slots is None:
            self._anywhere.discard(wait)
        for slot in slots or ():
            waits = self._by_slot.get(slot)
            if waits is not None:
                waits.discard(wait)
                if not waits:
                    del self._by_slot[slot]

    async def customer_applied(self, org_id: int, customer_id: int, event_id: str) -> tuple[CustomerCore | None, bool]:
        return await self.store.customer_applied(org_id, customer_id, event_id)

    async def customer(self, org_id: int, customer_id: int, ledger: bool = False) -> CustomerCore | None:
        return await self.store.customer(org_id, customer_id, ledger)

    async def sources(self, org_id: int, fresh: bool = False) -> list[tuple[str, str]]:
        cached = self._sources.get(org_id)
        if cached and not fresh and time.monotonic() - cached[1] < SOURCES_CACHE_SECONDS:
            return cached[0]
        sources = await self.store.sources(org_id)
        self._sources[org_id] = (sources, time.monotonic())
        return sources

    async def resolve(
        self, org_id: int, scope: tuple[str, str] | None, identifier: tuple[str, str], ledger: bool = False
    ) -> tuple[int, CustomerCore | None] | None:
        """The latest claimant of `identifier` (type, value) on one (source, accountId), or on every source
        of the org when `scope` is None, and its state (with its ledger when asked): one round trip. A card
        number also resolves to its cards' holders, on any source."""
        card = identifier[1] if identifier[0] == CARD_NUMBER else None
        scopes = [scope] if scope else await self.sources(org_id)
        found = await self.store.resolve_customer(org_id, _index_keys(org_id, scopes, identifier), card, ledger)
        stale = scope is None and time.monotonic() - self._sources[org_id][1] > 0.05
        if found is None and stale:  # a source new since the cache was filled?
            scopes = await self.sources(org_id, fresh=True)
            found = await self.store.resolve_customer(org_id, _index_keys(org_id, scopes, identifier), card, ledger)
        return found


def _index_keys(org_id: int, scopes: list[tuple[str, str]], identifier: tuple[str, str]) -> list[IndexKey]:
    return [IndexKey(org_id, source, account, *identifier) for source, account in scopes]
