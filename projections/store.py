"""The Redis adapter: the only code that reads or writes the read-model."""

from dataclasses import dataclass
from importlib import resources

import orjson
from redis.asyncio import Redis

from projections.keys import Keys
from projections.plan import CustomerWrite, IndexKey
from projections.state import Customer, customer_from_dict, customer_to_dict

WATERMARK = b"w:"
CustomerId = tuple[int, int]  # (orgId, customerId)


@dataclass(slots=True)
class Stored:
    """What Redis holds for one customer, as far as a batch needs it."""

    customer: Customer | None
    watermarks: dict[str, int]
    seen_event_ids: set[str]


@dataclass(frozen=True, slots=True)
class Control:
    live: int | None  # the generation the API serves
    handover: int | None  # a rebuild asks projectors to pause for this generation


def _script(name: str) -> str:
    return resources.files("projections.scripts").joinpath(name).read_text()


class Store:
    def __init__(self, redis: Redis, keys: Keys, dedup_window_ms: int, script_chunk: int = 256):
        self.redis = redis
        self.keys = keys
        self.dedup_window_ms = dedup_window_ms
        self.script_chunk = script_chunk  # customers per script call: bounds how long Redis is busy
        self._write_customers = redis.register_script(_script("write_customers.lua"))
        self._save_positions = redis.register_script(_script("save_positions.lua"))
        self._read_customers = redis.register_script(_script("read_customers.lua"))
        self._claim = redis.register_script(_script("claim.lua"))

    async def load(
        self, wanted: dict[CustomerId, list[str]], positions: list[str]
    ) -> tuple[dict[CustomerId, Stored], dict[str, int | None], "Control"]:
        """Customers' states, watermarks and which of the given eventIds they have seen; positions; and
        the live generation and any hand-over in progress, all in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        customers = list(wanted.items())
        chunks = [customers[i:i + self.script_chunk] for i in range(0, len(customers), self.script_chunk)]
        for chunk in chunks:
            keys, args = [], []
            for (org, cid), event_ids in chunk:
                keys += [self.keys.customer(org, cid), self.keys.dedup(org, cid)]
                args += [len(event_ids), *event_ids]
            await self._read_customers(keys=keys, args=args, client=pipe)
        pipe.hmget(self.keys.positions(), positions or ["-"])
        pipe.mget(self.keys.meta.live(), self.keys.meta.handover())
        replies = await pipe.execute()
        stored = {}
        flat = [part for reply in replies[:len(chunks)] for part in reply]
        for i, ((org, cid), event_ids) in enumerate(customers):
            fields = dict(zip(flat[2 * i][::2], flat[2 * i][1::2]))
            state = fields.pop(b"d", None)
            stored[(org, cid)] = Stored(
                customer=customer_from_dict(orjson.loads(state)) if state else None,
                watermarks={k[2:].decode(): int(v) for k, v in fields.items() if k.startswith(WATERMARK)},
                seen_event_ids={e for e, score in zip(event_ids, flat[2 * i + 1]) if score},
            )
        found, (live, handover) = replies[-2], replies[-1]
        control = Control(int(live) if live else None, int(handover) if handover else None)
        return stored, {p: int(v) if v is not None else None for p, v in zip(positions, found)}, control

    async def write(self, writes: list[CustomerWrite], now_ms: int) -> list[CustomerWrite]:
        """Writes index changes, then each customer atomically; returns the writes that lost a race."""
        pipe = self.redis.pipeline(transaction=False)
        changes = sorted((c for w in writes for c in w.index_changes), key=lambda c: c.at)  # log order
        sources: dict[int, set[str]] = {}
        for change in changes:
            key = self.keys.identifier(change.key)
            if change.claimed:
                await self._claim(keys=[key], args=[change.customerId, change.score], client=pipe)
                sources.setdefault(change.key.orgId, set()).add(f"{change.key.source}|{change.key.accountId}")
            else:
                pipe.zrem(key, change.customerId)
        for org_id, members in sources.items():  # one SADD per org and batch, not one per claim
            pipe.sadd(self.keys.sources(org_id), *members)
        chunks = [writes[i:i + self.script_chunk] for i in range(0, len(writes), self.script_chunk)]
        for chunk in chunks:
            keys, args = [], [now_ms, self.dedup_window_ms]
            for write in chunk:
                keys += [self.keys.customer(write.orgId, write.customerId),
                         self.keys.dedup(write.orgId, write.customerId)]
                args += [orjson.dumps(customer_to_dict(write.customer)) if write.customer else b"",
                         len(write.watermarks)]
                for position, offset in write.watermarks.items():
                    expected = write.expected_watermarks.get(position)
                    args += [f"w:{position}", "" if expected is None else expected, offset]
                args += [len(write.applied_event_ids), *write.applied_event_ids]
            await self._write_customers(keys=keys, args=args, client=pipe)
        replies = await pipe.execute()
        results = [ok for reply in replies[len(replies) - len(chunks):] for ok in reply]
        return [write for write, ok in zip(writes, results) if not ok]

    def for_generation(self, generation: int) -> "Store":
        return Store(self.redis, Keys(self.keys.meta.prefix, generation), self.dedup_window_ms, self.script_chunk)

    async def live_generation(self, default: int | None = None) -> int | None:
        """The live generation; with `default`, sets it first when none is (the first projector start)."""
        if default is not None:
            await self.redis.set(self.keys.meta.live(), default, nx=True)
        live = await self.redis.get(self.keys.meta.live())
        return int(live) if live else None

    async def acknowledge_pause(self, generation: int, positions: dict[str, int | None]) -> None:
        """Tells the rebuild that these partitions stopped writing the old generation, and where."""
        mapping = {p: -1 if offset is None else offset for p, offset in positions.items()}
        if mapping:
            await self.redis.hset(self.keys.meta.paused(generation), mapping=mapping)

    async def read_positions(self, positions: list[str]) -> dict[str, int | None]:
        found = await self.redis.hmget(self.keys.positions(), positions) if positions else []
        return {p: int(v) if v is not None else None for p, v in zip(positions, found)}

    async def save_positions(self, expected: dict[str, int | None], positions: dict[str, int]) -> bool:
        """Compare-and-set of partition positions; False when Redis no longer holds `expected`."""
        args = []
        for position, offset in positions.items():
            old = expected.get(position)
            args += [position, "" if old is None else old, offset]
        return bool(await self._save_positions(keys=[self.keys.positions()], args=args)) if args else True

    async def customer(self, org_id: int, customer_id: int) -> Customer | None:
        state = await self.redis.hget(self.keys.customer(org_id, customer_id), "d")
        return customer_from_dict(orjson.loads(state)) if state else None

    # --- reads for the API: one round trip each ---

    async def customer_doc(self, org_id: int, customer_id: int) -> dict | None:
        """The customer's stored state as plain JSON data (the API reads it without the dataclasses)."""
        state = await self.redis.hget(self.keys.customer(org_id, customer_id), "d")
        return orjson.loads(state) if state else None

    async def latest_claimant(self, keys: list[IndexKey]) -> int | None:
        """Across the given identifier keys, the customer with the latest claim."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrevrange(self.keys.identifier(key), 0, 0, withscores=True)
        claims = [claim for reply in await pipe.execute() for claim in reply]
        if not claims:
            return None
        member, _score = max(claims, key=lambda claim: (claim[1], int(claim[0])))
        return int(member)

    async def sources(self, org_id: int) -> list[tuple[str, str]]:
        """(source, accountId) of every profile seen in the org."""
        members = await self.redis.smembers(self.keys.sources(org_id))
        return sorted(tuple(m.decode().split("|", 1)) for m in members)
