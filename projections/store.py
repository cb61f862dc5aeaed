"""The Redis adapter: the only code that reads or writes the read-model."""

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from projections.dedup import DedupWindow, dedup_key
from projections.generations import Control, Generations
from projections.identity import IndexKey
from projections.keys import Keys, applied_message, source_member, source_of_member
from projections.plan import Held, Stored
from projections.state import (
    CorruptValue,
    Customer,
    CustomerCore,
    customer_to_dict,
    decode_customer,
    decode_customer_core,
    encode_customer,
)

CustomerId = tuple[int, int]  # (orgId, customerId)


def _script(name: str) -> str:
    return resources.files("projections.scripts").joinpath(name).read_text()


def encode_marks(watermarks: dict[str, int]) -> bytes:
    """`topic:partition=offset,...`, sorted: the same watermarks always give the same bytes."""
    return ",".join([f"{position}={watermarks[position]}" for position in sorted(watermarks)]).encode()


def decode_marks(raw: bytes) -> dict[str, int]:
    if not raw:
        return {}
    try:
        return {position: int(offset) for position, _, offset in (m.rpartition("=") for m in raw.decode().split(","))}
    except ValueError as exc:  # not UTF-8 (UnicodeDecodeError is one), an offset not a number
        raise CorruptValue(f"watermarks: {exc}") from None


def encode_value(marks: bytes, seen: DedupWindow, customer: Customer | None) -> bytes:
    """A customer's stored value: its watermarks (`encode_marks`), a newline, the dedup window's length (4
    bytes) and bytes, then its state (MessagePack; empty for none). One key per customer: one read, one
    compare-and-set."""
    window = seen.encode()
    state = encode_customer(customer) if customer else b""
    return b"".join((marks, b"\n", len(window).to_bytes(4, "big"), window, state))


def stored_value(stored: Stored) -> bytes:
    """The stored value of what `decode_value` returns (tests, tools)."""
    return encode_value(encode_marks(stored.watermarks), stored.seen, stored.customer)


def held_of(customer_id: "CustomerId", value: bytes) -> Held:
    """A customer as the projector holds it, from its stored value (b"": never written)."""
    stored = decode_value(value)
    return Held(customer_id[0], customer_id[1], stored.customer, stored.watermarks, stored.seen, marks_of(value))


def decode_value(value: bytes) -> Stored:
    """What a stored value holds (b"": nothing, a customer never written); CorruptValue when it cannot be read."""
    if not value:
        return Stored(None, {}, DedupWindow())
    marks, window, state = _parts(value)
    return Stored(decode_customer(state) if state else None, decode_marks(marks), DedupWindow.decode(window))


def _parts(value: bytes) -> tuple[bytes, bytes, bytes]:
    """(watermarks, dedup window, state) of a stored value."""
    end = value.find(b"\n")
    start = end + 5  # the dedup window's length: 4 bytes after the newline
    length = int.from_bytes(value[end + 1 : start], "big")
    if end < 0 or len(value) < start + length:
        raise CorruptValue("stored value cut short: no whole dedup window after the watermarks")
    return value[:end], value[start : start + length], value[start + length :]


def marks_of(value: bytes) -> bytes:
    """The watermarks a stored value starts with: its compare-and-set token (b"" for none)."""
    end = value.find(b"\n")
    return value[:end] if end >= 0 else b""


def _evalsha(pipe, script, keys: list, args: list) -> None:
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def customer_of(value: bytes | None, ledger: bool = False) -> CustomerCore | None:
    """The state part of a stored value, without decoding the watermarks or the dedup window (the API's);
    its ledger too only when asked (a Customer then); CorruptValue when it cannot be read."""
    if not value:
        return None
    state = _parts(value)[2]
    if not state:
        return None
    return decode_customer(state) if ledger else decode_customer_core(state)


@contextmanager
def _naming(org_id: int, customer_id: int) -> Iterator[None]:
    """A CorruptValue raised inside names the customer whose value it is (the API logs it)."""
    try:
        yield
    except CorruptValue as exc:
        raise CorruptValue(f"the stored value of org {org_id} customer {customer_id} is unreadable: {exc}") from None


def latest_claimant(claims: list[bytes | None], card: bytes | None = None) -> int | None:
    """Of index fields (`customerId:claimTime,...`) and a card number's holders (`card`, where a holder
    whose card is DELETED is `customerId:D` and claims through no field), the claimant with the latest
    claim time (ties: the higher customerId), as resolve_customer.lua decides on a single server."""
    entries = [entry.partition(b":") for field in (*claims, card) for entry in (field or b"").split(b",") if entry]
    deleted = {customer_id for customer_id, _, at in entries if at == b"D"}
    ranked = [(int(at), int(customer_id)) for customer_id, _, at in entries if customer_id not in deleted]
    return max(ranked)[1] if ranked else None


def _claimed_sources(changes: list) -> dict[int, set[str]]:
    """Per org, the (source, accountId) members of the profiles the changes claim."""
    sources: dict[int, set[str]] = {}
    for change in changes:
        if change.claimed:
            sources.setdefault(change.key.orgId, set()).add(source_member(change.key.source, change.key.accountId))
    return sources


class NotReplicated(RedisConnectionError):
    """Fewer replicas than asked hold a write: the caller writes it again later, as when Redis is down
    (positions never move past a write a failover could lose)."""


class Store:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        dedup_window_ms: int,
        script_chunk: int = 256,
        cluster: bool = False,
        wait: tuple[int, int] = (0, 1000),
    ):
        self.redis: Any = redis  # redis-py's annotations mix its sync and async results
        self.keys = keys
        self.dedup_window_ms = dedup_window_ms
        self.script_chunk = script_chunk  # keys per command: bounds how long Redis is busy
        self.cluster = cluster  # a Redis Cluster: each command's keys in one slot
        self.wait_replicas, self.wait_timeout_ms = wait
        self.generations = Generations(redis, keys.meta.prefix)
        self._write_customers = redis.register_script(_script("write_customers.lua"))
        self._save_positions = redis.register_script(_script("save_positions.lua"))
        self._claims = redis.register_script(_script("claims.lua"))
        self._resolve_customer = redis.register_script(_script("resolve_customer.lua"))
        self._cards = redis.register_script(_script("cards.lua"))

    async def _pipelined(self, queue) -> list:
        """The commands `queue(pipe)` adds, in one round trip. Scripts go as bare EVALSHA: redis-py would
        first ask SCRIPT EXISTS, a round trip per pipeline. If Redis lost them (a restart, SCRIPT FLUSH, a
        replica that took over), they are loaded and everything is sent again, so every command queued
        here must be safe to run twice (reads, set updates, claims, compare-and-set writes)."""
        try:
            return await self._send(queue)
        except NoScriptError:
            for script in (self._claims, self._cards, self._write_customers):
                await self.redis.script_load(script.script)
            return await self._send(queue)

    async def _send(self, queue) -> list:
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe)
        return await pipe.execute()

    def _groups(self, items: list, key_of) -> list[list]:
        """Items in groups of at most script_chunk whose keys (`key_of(item)`) lie in one cluster slot;
        on a single Redis, in their order."""
        by_slot: dict[int, list] = {}
        for item in items:
            by_slot.setdefault(key_slot(key_of(item).encode()) if self.cluster else 0, []).append(item)
        size = self.script_chunk
        return [group[i : i + size] for group in by_slot.values() for i in range(0, len(group), size)]

    async def load(
        self, customers: list[CustomerId], positions: list[str]
    ) -> tuple[dict[CustomerId, bytes], dict[str, int | None], Control]:
        """Customers' stored values (b"" for none: decode_value reads them); positions; and the live
        generation and any hand-over in progress, all in one round trip."""
        groups = self._groups([(cid, self.keys.customer(*cid)) for cid in customers], lambda item: item[1])

        def queue(pipe) -> None:
            for group in groups:
                pipe.mget([key for _, key in group])
            pipe.hmget(self.keys.positions(), positions or ["-"])
            self.generations.queue_control(pipe)

        replies = await self._pipelined(queue)
        stored = {cid: value or b"" for group, values in zip(groups, replies) for (cid, _), value in zip(group, values)}
        found, control = replies[len(groups)], self.generations.control(replies[len(groups) + 1 :])
        return stored, {p: int(v) if v is not None else None for p, v in zip(positions, found)}, control

    async def write(self, writes: list[tuple[bytes, bytes, Held]]) -> list[Held]:
        """Writes index changes, then each customer atomically: (the watermarks its stored value must still
        start with, its new stored value, the write); returns the writes that lost a race."""
        changes = sorted((c for _, _, w in writes for c in w.index_changes), key=lambda c: c.at)  # log order
        claims = self._identifier_claims(changes) + self._card_claims(writes)
        keyed = [(write, self.keys.customer(write[2].orgId, write[2].customerId)) for write in writes]
        customers = self._customer_writes(keyed)
        replies = await self._send_writes(_claimed_sources(changes), claims, customers)
        if customers:  # after the writes, on every master: readers waiting for these customers look again
            slots = (key_slot(key.encode()) for _, key in keyed)
            await self.redis.publish(self.keys.meta.applied(), applied_message(self.keys.generation, slots))
        held = {key: ok for (_, keys, _), reply in zip(customers, replies) for key, ok in zip(keys, reply)}
        return [write for (_, _, write), key in keyed if not held[key]]

    # Commands as (script, keys, args): built once, sent again only if Redis lost the scripts.

    def _identifier_claims(self, changes: list) -> list[tuple]:
        claims = []
        for group in self._groups([(c, self.keys.identifier(c.key)) for c in changes], lambda item: item[1][0]):
            args = []
            for change, (_, field) in group:
                args += [field, change.customerId, change.score if change.claimed else "-"]
            claims.append((self._claims, [key for _, (key, _) in group], args))
        return claims

    def _card_claims(self, writes: list[tuple[bytes, bytes, Held]]) -> list[tuple]:
        card_claims = [
            (claim, self.keys.card(claim.orgId, claim.cardNumber)) for _, _, w in writes for claim in w.card_claims
        ]
        claims = []
        for group in self._groups(card_claims, lambda item: item[1][0]):
            args = []
            for claim, (_, field) in group:
                args += [field, claim.customerId, "D" if claim.claim is None else claim.claim]
            claims.append((self._cards, [key for _, (key, _) in group], args))
        return claims

    def _customer_writes(self, keyed: list[tuple[tuple[bytes, bytes, Held], str]]) -> list[tuple]:
        """A compare-and-set per customer (its expected watermarks, its new value), in groups of one slot."""
        customers = []
        for group in self._groups(keyed, lambda item: item[1]):
            args = []
            for (expected, value, _), _ in group:
                args += [expected, value]
            customers.append((self._write_customers, [key for _, key in group], args))
        return customers

    async def _send_writes(self, sources: dict[int, set[str]], claims: list[tuple], customers: list[tuple]) -> list:
        """The index (the sources seen, the claims), then the customers; returns the customers' replies."""

        def queue_index(pipe) -> None:
            for org_id, members in sources.items():  # one SADD per org and batch, not one per claim
                pipe.sadd(self.keys.sources(org_id), *members)
            for script, keys, args in claims:
                _evalsha(pipe, script, keys, args)

        def queue_customers(pipe) -> None:
            for script, keys, args in customers:
                _evalsha(pipe, script, keys, args)

        def queue_both(pipe) -> None:
            queue_index(pipe)
            queue_customers(pipe)

        # Claims first: a customer is findable once written. One server runs a pipeline in order; a
        # cluster's masters run theirs side by side, so there the index is written a round trip earlier.
        if self.cluster:
            await self._pipelined(queue_index)
            return await self._pipelined(queue_customers)
        replies = await self._pipelined(queue_both)
        return replies[len(replies) - len(customers) :]

    async def _replicated(self) -> None:
        """WAIT on every master this client's connection wrote to: Redis counts the replicas that hold the
        connection's last write, so a customer re-planned on a value not yet replicated (a write retried
        after this failed) is covered too."""
        held = await self.redis.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        if held < self.wait_replicas:
            raise NotReplicated(
                f"{held} of {self.wait_replicas} Redis replicas acknowledged the write within "
                f"{self.wait_timeout_ms} ms (POINTSVIEW_REDIS_WAIT_REPLICAS): a failover could lose it"
            )

    def for_generation(self, generation: int) -> "Store":
        wait = (self.wait_replicas, self.wait_timeout_ms)
        keys = Keys(self.keys.meta.prefix, generation)
        return Store(self.redis, keys, self.dedup_window_ms, self.script_chunk, self.cluster, wait)

    async def read_positions(self, positions: list[str]) -> dict[str, int | None]:
        found = await self.redis.hmget(self.keys.positions(), positions) if positions else []
        return {p: int(v) if v is not None else None for p, v in zip(positions, found)}

    async def save_positions(self, expected: dict[str, int | None], positions: dict[str, int]) -> bool:
        """Compare-and-set of partition positions; False when Redis no longer holds `expected`. With
        `wait_replicas`, only once that many replicas hold every write before it (NotReplicated if not)."""
        if self.wait_replicas:
            await self._replicated()
        args = []
        for position, offset in positions.items():
            old = expected.get(position)
            args += [position, "" if old is None else old, offset]
        return bool(await self._save_positions(keys=[self.keys.positions()], args=args)) if args else True

    # --- reads for the API: one round trip each ---

    async def customer(self, org_id: int, customer_id: int, ledger: bool = False) -> CustomerCore | None:
        """The customer's state (with its ledger: a Customer) in one read."""
        value = await self.redis.get(self.keys.customer(org_id, customer_id))
        with _naming(org_id, customer_id):
            return customer_of(value, ledger)

    async def customer_applied(self, org_id: int, customer_id: int, event_id: str) -> tuple[Customer | None, bool]:
        """The customer's state, and whether `event_id` is in its dedup window (applied, recently): one read."""
        value = await self.redis.get(self.keys.customer(org_id, customer_id))
        if not value:
            return None, False
        with _naming(org_id, customer_id):
            stored = decode_value(value)
        return stored.customer, dedup_key(event_id) in stored.seen

    async def customer_doc(self, org_id: int, customer_id: int) -> dict | None:
        """The customer's state as plain data (customer_to_dict's form)."""
        customer = await self.customer(org_id, customer_id, ledger=True)
        return customer_to_dict(customer) if isinstance(customer, Customer) else None

    async def resolve_customer(
        self, org_id: int, keys: list[IndexKey], card: str | None = None, ledger: bool = False
    ) -> tuple[int, CustomerCore | None] | None:
        """The latest claimant across the given identifier keys (and, for a card number, `card`'s holders
        in the org) and its state: one round trip (a script), two on a cluster (the index hashes and the
        customer lie in different slots)."""
        located = [self.keys.identifier(key) for key in keys] + ([self.keys.card(org_id, card)] if card else [])
        if not located:
            return None
        hashes, fields = zip(*located)
        if self.cluster:
            if len(hashes) == 1:  # the common case: one command, no pipeline object
                claims = [await self.redis.hget(hashes[0], fields[0])]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for hash_key, field in zip(hashes, fields):
                    pipe.hget(hash_key, field)
                claims = await pipe.execute()
            customer_id = latest_claimant(claims[: len(keys)], claims[-1] if card else None)
            if customer_id is None:
                return None
            return customer_id, await self.customer(org_id, customer_id, ledger)
        args = [self.keys.customers_of(org_id), 1 if card else 0, *fields]
        found = await self._resolve_customer(keys=list(hashes), args=args)
        if not found:
            return None
        with _naming(org_id, int(found[0])):
            return int(found[0]), customer_of(found[1], ledger)

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
