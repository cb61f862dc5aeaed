"""The Redis adapter: the only code that reads or writes the read-model."""

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from projections.dedup import DedupWindow, dedup_key
from projections.generations import Control, Generations
from projections.identity import IndexKey
from projections.keys import Keys, source_member, source_of_member
from projections.plan import CustomerWrite, Stored
from projections.state import Customer, customer_to_dict, decode_customer, encode_customer

CustomerId = tuple[int, int]  # (orgId, customerId)


def _script(name: str) -> str:
    return resources.files("projections.scripts").joinpath(name).read_text()


def encode_marks(watermarks: dict[str, int]) -> bytes:
    """`topic:partition=offset,...`, sorted: the same watermarks always give the same bytes."""
    return ",".join([f"{position}={watermarks[position]}" for position in sorted(watermarks)]).encode()


def decode_marks(raw: bytes) -> dict[str, int]:
    marks: dict[str, int] = {}
    if raw:
        for mark in raw.decode().split(","):
            position, _, offset = mark.rpartition("=")
            marks[position] = int(offset)
    return marks


def encode_value(stored: Stored) -> bytes:
    """A customer's stored value: its watermarks, a newline, the dedup window's length (4 bytes) and bytes,
    then its state (MessagePack; empty for none). One key per customer: one read, one compare-and-set."""
    seen = stored.seen.encode()
    state = encode_customer(stored.customer) if stored.customer else b""
    return b"".join((encode_marks(stored.watermarks), b"\n", len(seen).to_bytes(4, "big"), seen, state))


def decode_value(value: bytes) -> Stored:
    """What a stored value holds (b"": nothing, a customer never written)."""
    if not value:
        return Stored(None, {}, DedupWindow())
    marks, _, rest = value.partition(b"\n")
    length = int.from_bytes(rest[:4], "big")
    state = rest[4 + length :]
    return Stored(
        decode_customer(state) if state else None, decode_marks(marks), DedupWindow.decode(rest[4 : 4 + length])
    )


def marks_of(value: bytes) -> bytes:
    """The watermarks a stored value starts with: its compare-and-set token (b"" for none)."""
    end = value.find(b"\n")
    return value[:end] if end >= 0 else b""


def _evalsha(pipe, script, keys: list, args: list) -> None:
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def _customer_of(value: bytes | None) -> Customer | None:
    """The state part of a stored value, without decoding the watermarks or the dedup window (the API's)."""
    if not value:
        return None
    start = value.index(b"\n") + 1
    state = value[start + 4 + int.from_bytes(value[start : start + 4], "big") :]
    return decode_customer(state) if state else None


class Store:
    def __init__(self, redis: Redis, keys: Keys, dedup_window_ms: int, script_chunk: int = 256):
        self.redis: Any = redis  # redis-py's annotations mix its sync and async results
        self.keys = keys
        self.dedup_window_ms = dedup_window_ms
        self.script_chunk = script_chunk  # customers per script call: bounds how long Redis is busy
        self.generations = Generations(redis, keys.meta.prefix)
        self._write_customers = redis.register_script(_script("write_customers.lua"))
        self._save_positions = redis.register_script(_script("save_positions.lua"))
        self._read_customers = redis.register_script(_script("read_customers.lua"))
        self._claims = redis.register_script(_script("claims.lua"))
        self._resolve_customer = redis.register_script(_script("resolve_customer.lua"))

    async def _pipelined(self, queue) -> list:
        """The commands `queue(pipe)` adds, in one round trip. Scripts go as bare EVALSHA: redis-py would
        first ask SCRIPT EXISTS, a round trip per pipeline. If Redis lost them (a restart, SCRIPT FLUSH),
        they are loaded and everything is sent again, so every command queued here must be safe to run
        twice (reads, set updates, claims, compare-and-set writes)."""
        try:
            return await self._send(queue)
        except NoScriptError:
            for script in (self._read_customers, self._claims, self._write_customers):
                await self.redis.script_load(script.script)
            return await self._send(queue)

    async def _send(self, queue) -> list:
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe)
        return await pipe.execute()

    def _chunks(self, items: list) -> list[list]:
        return [items[i : i + self.script_chunk] for i in range(0, len(items), self.script_chunk)]

    async def load(
        self, customers: list[CustomerId], positions: list[str]
    ) -> tuple[dict[CustomerId, bytes], dict[str, int | None], Control]:
        """Customers' stored values (b"" for none: decode_value reads them); positions; and the live
        generation and any hand-over in progress, all in one round trip."""
        chunks = self._chunks(customers)

        def queue(pipe) -> None:
            for chunk in chunks:
                _evalsha(pipe, self._read_customers, [self.keys.customer(org, cid) for org, cid in chunk], [])
            pipe.hmget(self.keys.positions(), positions or ["-"])
            self.generations.queue_control(pipe)

        replies = await self._pipelined(queue)
        values = [value for reply in replies[: len(chunks)] for value in reply]
        stored = {customer_id: value or b"" for customer_id, value in zip(customers, values)}
        found, control = replies[-2], self.generations.control(replies[-1])
        return stored, {p: int(v) if v is not None else None for p, v in zip(positions, found)}, control

    async def write(self, writes: list[tuple[bytes, bytes, CustomerWrite]]) -> list[CustomerWrite]:
        """Writes index changes, then each customer atomically: (the watermarks its stored value must still
        start with, its new stored value, the write); returns the writes that lost a race."""
        commands = []  # (script, keys, args): built once, sent again only if Redis lost the scripts
        changes = sorted((c for _, _, w in writes for c in w.index_changes), key=lambda c: c.at)  # log order
        for chunk in self._chunks(changes):
            keys, args = [], []
            for change in chunk:
                key, field = self.keys.identifier(change.key)
                keys.append(key)
                args += [field, change.customerId, change.score if change.claimed else "-"]
            commands.append((self._claims, keys, args))
        sources: dict[int, set[str]] = {}
        for change in changes:
            if change.claimed:
                sources.setdefault(change.key.orgId, set()).add(source_member(change.key.source, change.key.accountId))
        chunks = self._chunks(writes)
        for chunk in chunks:
            keys, args = [], []
            for expected, value, write in chunk:
                keys.append(self.keys.customer(write.orgId, write.customerId))
                args += [expected, value]
            commands.append((self._write_customers, keys, args))

        def queue(pipe) -> None:
            for org_id, members in sources.items():  # one SADD per org and batch, not one per claim
                pipe.sadd(self.keys.sources(org_id), *members)
            for script, keys, args in commands:  # claims first: a customer is findable once written
                _evalsha(pipe, script, keys, args)

        replies = await self._pipelined(queue)
        results = [ok for reply in replies[len(replies) - len(chunks) :] for ok in reply]
        return [write for (_, _, write), ok in zip(writes, results) if not ok]

    def for_generation(self, generation: int) -> "Store":
        return Store(self.redis, Keys(self.keys.meta.prefix, generation), self.dedup_window_ms, self.script_chunk)

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

    # --- reads for the API: one round trip each ---

    async def customer(self, org_id: int, customer_id: int) -> Customer | None:
        return _customer_of(await self.redis.get(self.keys.customer(org_id, customer_id)))

    async def customer_doc(self, org_id: int, customer_id: int) -> dict | None:
        """The customer's state as plain data (customer_to_dict's form)."""
        customer = await self.customer(org_id, customer_id)
        return customer_to_dict(customer) if customer else None

    async def resolve_customer(self, org_id: int, keys: list[IndexKey]) -> tuple[int, Customer | None] | None:
        """The latest claimant across the given identifier keys and its state, in one round trip."""
        if not keys:
            return None
        hashes, fields = zip(*(self.keys.identifier(key) for key in keys))
        found = await self._resolve_customer(keys=list(hashes), args=[self.keys.customers_of(org_id), *fields])
        return (int(found[0]), _customer_of(found[1])) if found else None

    async def applied(self, events: list[tuple[int, int, str]]) -> list[bool]:
        """Whether each (orgId, customerId, eventId) is in its customer's dedup window: applied, recently."""
        pipe = self.redis.pipeline(transaction=False)
        for org_id, customer_id, _ in events:
            pipe.get(self.keys.customer(org_id, customer_id))
        values = await pipe.execute()
        return [
            bool(value) and dedup_key(event_id) in decode_value(value).seen
            for value, (_, _, event_id) in zip(values, events)
        ]

    async def sources(self, org_id: int) -> list[tuple[str, str]]:
        """(source, accountId) of every profile seen in the org."""
        members = await self.redis.smembers(self.keys.sources(org_id))
        return sorted(source_of_member(m) for m in members)
