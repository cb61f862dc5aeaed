"""The store's compare-and-set: a customer written by anyone else since it was read is never overwritten."""

import asyncio
import time

import pytest

from projections.dedup import DedupWindow, dedup_key
from projections.events import parse_event
from projections.identity import IndexKey
from projections.plan import Held, IndexChange, Stored
from projections.read_model import ReadModel
from projections.store import CorruptValue, Store, decode_value, encode_marks, encode_value, held_of
from tests.support import event
from tests.unit.builders import encode

WINDOW_MS = 60_000


def _record(position: str, offset: int, points: int, event_id: str, customer_id: int = 5) -> tuple:
    doc = event(
        "points.earned",
        {"programId": 973, "points": points, "category": "MAIN"},
        customer_id=customer_id,
        event_id=event_id,
    )
    return position, offset, parse_event(encode(doc))


async def _read(store: Store, customer_id: int = 5) -> bytes:
    loaded, _positions, _control = await store.load([(100737, customer_id)], [])
    return loaded[(100737, customer_id)]


async def _write(store: Store, value: bytes, record: tuple) -> list:
    held = held_of((100737, record[2].customerId), value)
    held.take(*record)
    seen = held.seen.added(held.applied_keys, int(time.time() * 1000), WINDOW_MS)
    return await store.write([(held.token, encode_value(encode_marks(held.watermarks), seen, held.customer), held)])


async def test_a_customer_written_through_another_partition_since_it_was_read_is_not_overwritten(store):
    # Two consumers own the customer's two partitions (customers topic, points topic) and both read it;
    # the second write would drop the first one's points if only its own partition's watermark were compared.
    first_read, second_read = await _read(store), await _read(store)
    assert first_read == second_read == b"" and decode_value(b"") == Stored(None, {}, DedupWindow())
    assert await _write(store, first_read, _record("points:0", 0, 10, "a")) == []
    lost = await _write(store, second_read, _record("points:1", 0, 20, "b"))
    assert [w.applied_event_ids for w in lost] == [["b"]]

    value = await _read(store)
    stored = decode_value(value)
    assert stored.watermarks == {"points:0": 0}
    assert stored.customer.balances["973|POINTS"].lifetime == 10_000
    assert dedup_key("a") in stored.seen and len(stored.seen) == 1
    assert await _write(store, value, _record("points:1", 0, 20, "b")) == []
    assert (await store.customer(100737, 5)).balances["973|POINTS"].lifetime == 30_000


async def test_a_lookup_resolves_the_latest_claimant_and_reads_it(store, redis, keys):
    before = await _read(store)
    assert await _write(store, before, _record("points:0", 0, 10, "a")) == []
    mobile, email = (IndexKey(100737, "INSTORE", "", "mobile", "1"), IndexKey(100737, "INSTORE", "", "email", "e"))
    await redis.hset(*keys.identifier(mobile), "4:1000")
    await redis.hset(*keys.identifier(email), "3:1500,5:2000")
    customer_id, customer = await store.resolve_customer(100737, [mobile, email])
    assert customer_id == 5 and customer.balances["973|POINTS"].lifetime == 10_000
    assert await store.resolve_customer(100737, [mobile]) == (4, None)  # claimed, but no state (yet)
    assert await store.resolve_customer(100737, [IndexKey(100737, "INSTORE", "", "mobile", "2")]) is None
    await redis.hset(*keys.identifier(mobile), "4:1000,6:2000")  # the same claim time as 5: the higher id
    assert (await store.resolve_customer(100737, [mobile, email]))[0] == 6


async def test_every_read_of_an_unreadable_value_raises_corrupt_value_naming_its_customer(store, redis, keys):
    assert await _write(store, await _read(store), _record("points:0", 0, 10, "a")) == []
    await redis.set(keys.customer(100737, 5), (await _read(store))[:-3])  # its state cut short
    mobile = IndexKey(100737, "INSTORE", "", "mobile", "1")
    await redis.hset(*keys.identifier(mobile), "5:1000")
    reads = [
        lambda: store.customer(100737, 5),
        lambda: store.customer_applied(100737, 5, "a"),
        lambda: store.resolve_customer(100737, [mobile]),
    ]
    for read in reads:
        with pytest.raises(CorruptValue, match="org 100737 customer 5 is unreadable"):
            await read()


async def test_a_later_claim_in_the_log_outranks_earlier_ones_and_a_release_hands_back(store, redis, keys):
    mobile = IndexKey(100737, "INSTORE", "", "mobile", "1")

    async def latest_claimant() -> int | None:
        found = await store.resolve_customer(100737, [mobile])
        return found and found[0]

    async def change(customer_id: int, at: int | None) -> None:
        claim = IndexChange(mobile, customer_id, at is not None, at or 0)
        write = Held(100737, customer_id, None, {"p:0": 0}, DedupWindow(), index_changes=[claim])
        await store.write([(b"", encode_value(b"p:0=0", DedupWindow(), None), write)])

    await change(1, 5_000)
    await change(2, 4_000)  # later in the log with an earlier occurredAt: still the latest claim
    assert await latest_claimant() == 2
    await change(1, 3_000)
    assert await latest_claimant() == 1
    await change(1, None)  # customer 1 no longer lists it
    assert await latest_claimant() == 2
    await change(2, None)
    assert await latest_claimant() is None
    assert await redis.hget(*keys.identifier(mobile)) is None


async def test_scripts_lost_by_redis_are_loaded_again(store, redis, keys):
    before = await _read(store)
    await redis.script_flush()
    assert await _write(store, before, _record("points:0", 0, 10, "a")) == []
    await redis.script_flush()
    assert decode_value(await _read(store)).customer.balances["973|POINTS"].lifetime == 10_000


async def test_a_write_wakes_the_reads_waiting_for_its_customer_and_no_others(store):
    model = ReadModel(store)
    follower = asyncio.create_task(model.follow_live())
    elsewhere = next(c for c in range(6, 100) if model.slots(100737, [c]) != model.slots(100737, [5]))
    looks = []
    try:
        await asyncio.sleep(0.3)  # subscribed

        async def applied():
            looks.append(time.monotonic())
            customer, done = await model.customer_applied(100737, 5, "awaited")
            return customer, done, model.slots(100737, [5])

        async def writes():
            await asyncio.sleep(0.2)  # the wait watches customer 5's slot
            for offset in range(5):  # other customers' writes do not wake it
                other = _record("points:0", offset, 1, f"other-{offset}", customer_id=elsewhere)
                assert await _write(store, await _read(store, elsewhere), other) == []
            await asyncio.sleep(0.2)
            assert await _write(store, await _read(store), _record("points:1", 0, 10, "awaited")) == []

        (customer, done), _ = await asyncio.gather(model.waited(applied, 5.0), writes())
        assert done and customer.balances["973|POINTS"].lifetime == 10_000
        # the first look (watching any write), again once it knows the customer's slot, then at its write
        assert len(looks) == 3, looks
    finally:
        follower.cancel()


async def test_a_switch_whose_message_is_lost_is_seen_within_a_second_while_writes_are_announced(store):
    generations, seen = store.generations, []
    await generations.live_or_first()
    follower = asyncio.create_task(generations.follow(seen.append, lambda message: None))
    try:
        await asyncio.sleep(0.3)
        await store.redis.set(store.keys.meta.live(), 7)  # switched without its message

        async def announced():
            for _ in range(30):  # a busy applied channel: never a second without a message
                await store.redis.publish(store.keys.meta.applied(), 1)
                await asyncio.sleep(0.05)

        await announced()
        assert seen[-1] == 7
    finally:
        follower.cancel()


@pytest.mark.parametrize(
    "stored, expected, written",
    [
        (None, b"", True),  # a new customer
        (None, b"points:0=1", False),  # it was read with watermarks: Redis lost it since
        (b"points:0=1\nstate", b"points:0=1", True),
        (b"points:0=1\nstate", b"points:0=", False),  # a prefix of the stored watermarks is not them
        (b"points:0=1\nstate", b"points:0=12", False),
        (b"points:0=12\nstate", b"points:0=1", False),
        (b"points:0=1\nstate", b"", False),
        (b"\nstate", b"", True),  # stored without watermarks
        (b"no newline at all", b"", True),
        (b"no newline at all", b"no newline at all", False),
    ],
)
async def test_a_customer_is_written_only_over_the_watermarks_it_was_read_with(store, stored, expected, written):
    key = store.keys.customer(100737, 5)
    if stored is not None:
        await store.redis.set(key, stored)
    held = held_of((100737, 5), b"")
    lost = await store.write([(expected, b"points:0=2\nnew", held)])
    assert (lost == []) == written
    assert await store.redis.get(key) == (b"points:0=2\nnew" if written else stored)
