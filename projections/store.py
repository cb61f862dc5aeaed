"""The Redis adapter: the only code that reads or writes the read-model."""

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

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
    return ",".join(f"{position}={offset}" for position, offset in sorted(watermarks.items())).encode()


def decode_marks(raw: bytes) -> dict[str, int]:
    return (
        {position: int(offset) for position, _, offset in (mark.rpartition("=") for mark in raw.decode().split(","))}
        if raw
        else {}
    )


def encode_value(watermarks: dict[str, int], customer: Customer | None) -> bytes:
    """A customer's stored value: its watermarks, a newline, its state (MessagePack; empty for none)."""
    return encode_marks(watermarks) + b"\n" + (encode_customer(customer) if customer else b"")


def decode_value(value: bytes) -> tuple[dict[str, int], Customer | None]:
    marks, _, state = value.partition(b"\n")
    return decode_marks(marks), decode_customer(state) if state else None


def _evalsha(pipe, script, keys: list, args: list) -> None:
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def _customer_of(value: bytes | None) -> Customer | None:
    """The state part of a stored value, without decoding the watermarks (the API's read)."""
    state = value and value[value.index(b"\n") + 1 :]
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
        self, customers: list[CustomerId], positions: list[str], now_ms: int
    ) -> tuple[dict[CustomerId, Stored], dict[str, int | None], Control]:
        """Customers' states, watermarks and dedup windows; positions; and the live generation and
        any hand-over in progress, all in one round trip."""
        chunks = self._chunks(customers)

        def queue(pipe) -> None:
            for chunk in chunks:
                keys = [k for org, cid in chunk for k in (self.keys.customer(org, cid), self.keys.dedup(org, cid))]
                _evalsha(pipe, self._read_customers, keys, [now_ms - self.dedup_window_ms])
            pipe.hmget(self.keys.positions(), positions or ["-"])
            self.generations.queue_control(pipe)

        replies = await self._pipelined(queue)
        flat = [part for reply in replies[: len(chunks)] for part in reply]
        stored = {}
        for i, customer_id in enumerate(customers):
            watermarks, customer = decode_value(flat[2 * i]) if flat[2 * i] else ({}, None)
            window = flat[2 * i + 1]
            stored[customer_id] = Stored(
                customer, watermarks, {e.decode(): int(at) for e, at in zip(window[::2], window[1::2])}
            )
        found, control = replies[-2], self.generations.control(replies[-1])
        return stored, {p: int(v) if v is not None else None for p, v in zip(positions, found)}, control

    async def write(self, writes: list[tuple[Stored, Stored, CustomerWrite]], now_ms: int) -> list[CustomerWrite]:
        """Writes index changes, then each customer atomically (before -> after, compare-and-set on the
        watermarks of `before`); returns the writes that lost a race."""
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
            keys, args = [], [now_ms, self.dedup_window_ms]
            for before, after, write in chunk:
                keys += [
                    self.keys.customer(write.orgId, write.customerId),
                    self.keys.dedup(write.orgId, write.customerId),
                ]
                args += [
                    encode_marks(before.watermarks),
                    encode_value(after.watermarks, after.customer),
                    len(write.applied_event_ids),
                    *write.applied_event_ids,
                ]
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

    async def sources(self, org_id: int) -> list[tuple[str, str]]:
        """(source, accountId) of every profile seen in the org."""
        members = await self.redis.smembers(self.keys.sources(org_id))
        return sorted(source_of_member(m) for m in members)
