"""Property: batching, redelivery after a crash and re-published events never change the result.

Records of two topic-partitions (customers, points) go through the projector's own batch path
(`Projector._process` and `_flush`) in random batches, against an in-memory store that keeps what
Redis keeps (the stored values, with the compare-and-set, and the positions); the projector may
crash before a write or between the customers' write and the positions', and restart from what
the store holds. The end state must equal one in-order fold of the log with each eventId applied once: its points
ledger too (kept short here, so that its trimming is exercised: no entry twice, none missing).
"""

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import NamedTuple

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.projector import Projector, partition_name
from projections.apply import apply, apply_in_place
from projections.dedup import DedupWindow
from projections.events import Event, on_customers_topic, parse_event, to_decimal_str
from projections.generations import Control
from projections.state import customer_from_dict, customer_to_dict
from projections.store import decode_value, encode_value, marks_of
from runtime.settings import Settings
from tests.support import event
from tests.unit.builders import encode

PARTITIONS = [TopicPartition("customers", 0), TopicPartition("points", 0)]
LEDGER_ENTRIES = 4


class Logged(NamedTuple):
    tp: TopicPartition
    offset: int
    value: bytes
    event: Event


TIMES = ["2026-01-08T10:03:21Z", "2026-01-09T00:00:00+05:30", "2026-02-01T12:00:00.125Z"]
EXPIRIES = [None, None, "2026-01-31", "2026-02-28T23:59:59Z", "2026-03-01T00:00:00-02:00"]
IDENTIFIERS = [
    ("mobile", "111"),
    ("email", "A@x.com"),
    ("externalId", "X"),
    ("cardnumber", "C"),
    ("wechat", "W"),
    ("loyaltyId", "L"),
]

amounts = st.integers(1, 50_000).map(to_decimal_str) | st.integers(1, 50)
optional = lambda values: st.sampled_from(values).map(lambda v: {} if v is None else v)  # noqa: E731
points_base = st.fixed_dictionaries(
    {"programId": st.sampled_from([1, 2]), "points": amounts},
    optional={"currency": st.sampled_from(["POINTS", "Stars"])},
)
categories = st.sampled_from(["MAIN", "MAIN", "DELAYED_ACCRUAL", "EXTERNAL_TRIGGER"])
expiry = st.sampled_from(EXPIRIES).map(lambda e: {} if e is None else {"expiresAt": e})
purchase = st.one_of(st.just({}), amounts.map(lambda a: {"purchaseAmount": a}))

DATA = {
    "customer.registered": st.builds(
        lambda src, ids, name, ext: {
            "source": src[0],
            "accountId": src[1],
            "lastName": name,
            "identifiers": [{"type": t, "value": v} for t, v in ids],
            "extendedFields": ext,
        },
        st.sampled_from([("INSTORE", ""), ("MARTJACK", "acc"), ("WECHAT", "w1")]),
        st.lists(st.sampled_from(IDENTIFIERS), max_size=3, unique=True),
        st.sampled_from(["A", "B", None]),
        st.dictionaries(st.sampled_from(["city", "gender"]), st.sampled_from(["x", "y"]), max_size=2),
    ),
    "points.earned": st.tuples(points_base, categories, expiry, purchase).map(
        lambda t: {**t[0], "category": t[1], **t[2], **t[3]}
    ),
    "points.redeemed": points_base,
    "points.expired": st.tuples(points_base, categories).map(lambda t: {**t[0], "category": t[1]}),
    "points.promoted": st.tuples(points_base, st.sampled_from(["DELAYED_ACCRUAL", "EXTERNAL_TRIGGER"]), expiry).map(
        lambda t: {**t[0], "fromCategory": t[1], **t[2]}
    ),
    "points.returned": st.tuples(points_base, categories, purchase).map(lambda t: {**t[0], "category": t[1], **t[2]}),
    "points.adjusted": st.tuples(points_base, st.booleans()).map(
        lambda t: {**t[0], "points": f"-{t[0]['points']}" if t[1] else t[0]["points"]}
    ),
    "tier.changed": st.fixed_dictionaries(
        {
            "programId": st.sampled_from([1, 2]),
            "slabSerial": st.integers(1, 3),
            "slabName": st.sampled_from(["Silver", "Gold"]),
        }
    ),
}
DATA["customer.status.changed"] = st.fixed_dictionaries(
    {"label": st.sampled_from(["ACTIVE", "SUSPENDED"])}, optional={"reason": st.sampled_from(["", "fraud"])}
)
DATA["customer.merged"] = st.fixed_dictionaries({"survivorId": st.sampled_from([10**6, 10**6 + 1])})
DATA["customer.unmerged"] = st.just({})
DATA["card.issued"] = st.fixed_dictionaries(
    {
        "cardNumber": st.sampled_from(["C1", "C2"]),
        "seriesId": st.integers(1, 2),
        "statusLabel": st.sampled_from(["ACTIVE", "SUSPENDED", "DELETED"]),
    },
    optional={"customFields": st.just({"vehicle": "Bike"}), "expiresAt": st.just("2027-01-01")},
)
DATA["card.updated"] = DATA["card.issued"]
DATA["customer.updated"] = DATA["customer.registered"]


@st.composite
def logs(draw, republish: bool = True) -> list[Logged]:
    """A log over both partitions, in publication order, with some events re-published later."""
    published: list[tuple[str, dict]] = []
    for i in range(draw(st.integers(1, 30))):
        if republish and published and draw(st.integers(0, 5)) == 0:
            published.append(draw(st.sampled_from(published)))  # same eventId, later offset
            continue
        event_type = draw(st.sampled_from(sorted(DATA)))
        doc = event(
            event_type,
            draw(DATA[event_type]),
            customer_id=draw(st.integers(1, 3)),
            event_id=f"e{i}",
            occurred_at=draw(st.sampled_from(TIMES)),
        )
        published.append(("customers" if on_customers_topic(event_type) else "points", doc))
    offsets: dict[str, int] = defaultdict(int)
    records = []
    for topic, doc in published:
        value = encode(doc)
        records.append(Logged(TopicPartition(topic, 0), offsets[topic], value, parse_event(value)))
        offsets[topic] += 1
    return records


def reference(records: list[Logged]) -> dict:
    customers, seen = {}, set()
    for record in records:
        event = record.event
        if (event.customerId, event.eventId) not in seen:
            seen.add((event.customerId, event.eventId))
            customers[event.customerId] = apply_in_place(customers.get(event.customerId), event, LEDGER_ENTRIES)
    return customers


class Crash(Exception):
    """The projector process dies here."""


class MemoryStore:
    """What Redis keeps (stored values, positions), with the store's compare-and-set, in memory. It can
    crash once the customers of a write are stored and before the positions move past them."""

    keys = SimpleNamespace(generation=1)

    def __init__(self, remember_event_ids: bool = True):
        # False: the dedup window has passed (no eventId is remembered: only the watermarks stop re-application)
        self.dedup_window_ms = 3_600_000 if remember_event_ids else 1
        self.values: dict[tuple[int, int], bytes] = {}
        self.positions: dict[str, int] = {}
        self.crash_before_positions = False

    async def load(self, customers, positions):
        found = {p: self.positions.get(p) for p in positions}
        return {cid: self.values.get(cid, b"") for cid in customers}, found, Control(None, None)

    async def write(self, writes):
        lost = []
        for token, value, held in writes:
            cid = (held.orgId, held.customerId)
            if marks_of(self.values.get(cid, b"")) == token:
                self.values[cid] = value if self.dedup_window_ms > 1 else _forgetting_event_ids(value)
            else:
                lost.append(held)
        return lost

    async def save_positions(self, expected, positions) -> bool:
        if self.crash_before_positions:
            self.crash_before_positions = False
            raise Crash
        if any(self.positions.get(p) != old for p, old in expected.items()):
            return False
        self.positions.update(positions)
        return True

    def states(self) -> dict:
        return {cid: decode_value(value).customer for (_, cid), value in self.values.items()}


def _forgetting_event_ids(value: bytes) -> bytes:
    stored = decode_value(value)
    return encode_value(marks_of(value), DedupWindow(), stored.customer)


class Consumer:
    def seek(self, tp, offset) -> None:
        pass


def _projector(store: MemoryStore) -> Projector:
    """A projector starting from what the store holds, as after a (re)start; it writes when told to."""
    settings = Settings(batch_max_records=1, write_behind_records=10**6, ledger_entries=LEDGER_ENTRIES)
    projector = Projector(settings, Consumer(), None, store, asyncio.Event(), live=False)  # type: ignore[arg-type]
    for tp in PARTITIONS:
        projector._seek(tp, store.positions.get(partition_name(tp)))
    return projector


def consume(records: list[Logged], store: MemoryStore, data) -> None:
    """The real batch path over random batches of both partitions, written behind over random spans, with
    up to 3 crashes: before a write (what was folded is lost), or between the customers' write and the
    positions' (redelivery)."""
    asyncio.run(_consume(records, store, data))


async def _consume(records: list[Logged], store: MemoryStore, data) -> None:
    partitions = {tp: [r for r in records if r.tp == tp] for tp in PARTITIONS}
    projector, crashes = _projector(store), data.draw(st.integers(0, 3), label="crashes")
    while any(projector.expected[tp] < len(partitions[tp]) for tp in partitions):
        await projector._process(_batch(partitions, projector.expected, data))
        step = data.draw(st.sampled_from(["fold on", "write", "crash before the write", "crash before the positions"]))
        if step.startswith("crash") and not crashes:
            step = "write"
        store.crash_before_positions = step == "crash before the positions"
        if step in ("write", "crash before the positions"):
            try:
                await projector._flush()
            except Crash:
                pass
        if step.startswith("crash"):
            crashes -= 1
            projector = _projector(store)
    await projector._flush()


def _batch(partitions: dict, expected: dict, data) -> dict:
    batch = {}
    for tp in data.draw(st.permutations(PARTITIONS), label="partition order"):
        start, take = expected[tp], data.draw(st.integers(1, 6), label="batch size")
        if chosen := partitions[tp][start : start + take]:
            batch[tp] = [ConsumerRecord(tp.topic, 0, r.offset, 0, 0, None, r.value, None, 0, 0, ()) for r in chosen]
    return batch


def assert_store_equals_in_order_fold(store: MemoryStore, records: list[Logged]) -> None:
    assert store.states() == reference(records)
    for (_, customer_id), value in store.values.items():
        marks = {partition_name(r.tp): r.offset for r in records if r.event.customerId == customer_id}
        assert decode_value(value).watermarks == marks


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=logs(), data=st.data())
def test_any_batching_with_redelivery_and_republishing_equals_one_in_order_fold(records, data):
    store = MemoryStore()
    consume(records, store, data)
    assert_store_equals_in_order_fold(store, records)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=logs(republish=False), data=st.data())
def test_watermarks_alone_make_redelivery_a_no_op(records, data):
    # past the dedup window no eventId is remembered: only the watermarks stop re-application
    store = MemoryStore(remember_event_ids=False)
    consume(records, store, data)
    assert_store_equals_in_order_fold(store, records)


@settings(max_examples=200, deadline=None)
@given(records=logs())
def test_state_round_trips_through_its_dict_form(records):
    for customer in reference(records).values():
        assert customer_from_dict(customer_to_dict(customer)) == customer
        assert customer_from_dict(orjson.loads(orjson.dumps(customer_to_dict(customer)))) == customer


# --- contract disagreement: valid customer events whose state cannot be stored ---


@pytest.mark.parametrize(
    "data",
    [
        {"source": "INSTORE", "extendedFields": {"height": "<n>"}},
        {"source": "INSTORE", "commChannels": [{"type": "mobile", "value": "1", "rank": "<n>"}]},
    ],
)
@pytest.mark.parametrize("raw_number", ["1.75", "18446744073709551616"])
def test_state_with_numeric_free_form_fields_serialises_to_json(data, raw_number):
    # EVENTS.md: extendedFields (and commChannels) are free-form. A JSON decimal there is parsed
    # to Decimal, a big integer stays a Python int; both land in the state, and orjson (the
    # store's encoder, projections/store.py) raises TypeError on them.
    customer = apply(None, parse_event(encode(event("customer.registered", data), n=raw_number)))
    stored = orjson.loads(orjson.dumps(customer_to_dict(customer)))
    assert stored["p"]["INSTORE|"]["seq"] == 1
