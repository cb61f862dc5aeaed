"""The points ledger in the fold (API.md "Round 3 / Points ledger"): one entry per applied points event,
its signed change and category, the balance right after it, the newest N kept; stored compactly."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from projections.apply import apply_in_place, figures, fold
from projections.dedup import dedup_key
from projections.ledger import compacted, encoded, entry, expanded, timestamp
from projections.plan import plan_customer
from projections.state import Customer, customer_from_dict, customer_to_dict, decode_customer, encode_customer
from tests.unit.builders import adjusted, earned, ev, expired, promoted, redeemed, registered, returned

AT = "2026-01-08T10:03:21Z"


def entries(customer) -> list[dict]:
    return [expanded(entry) for entry in customer.ledger]


def moves(customer) -> list[tuple]:
    """(eventType, category, signed points, fromCategory) of each entry, oldest first."""
    return [(e["eventType"][7:], e["category"], e["points"], e["fromCategory"]) for e in entries(customer)]


def test_each_points_event_is_one_entry_with_its_signed_change_to_its_category():
    customer = fold(
        None,
        [
            registered(),
            earned(10),
            earned(5, "DELAYED_ACCRUAL"),
            redeemed(2),
            expired(1, "EXTERNAL_TRIGGER"),
            promoted(3, "DELAYED_ACCRUAL"),
            returned("0.5"),
            adjusted(-1),
            adjusted("2.25"),
            ev("tier.changed", programId=1, slabSerial=1, slabName="S"),
        ],
    )
    assert moves(customer) == [
        ("earned", "MAIN", 10_000, None),
        ("earned", "DELAYED_ACCRUAL", 5_000, None),
        ("redeemed", "MAIN", -2_000, None),
        ("expired", "EXTERNAL_TRIGGER", -1_000, None),
        ("promoted", "MAIN", 3_000, "DELAYED_ACCRUAL"),  # one entry; its promised category fell by as much
        ("returned", "MAIN", -500, None),
        ("adjusted", "MAIN", -1_000, None),
        ("adjusted", "MAIN", 2_250, None),
    ]
    assert customer.ledgerSeq == 8 and list(customer.ledger_seqs()) == list(range(1, 9))


def test_an_entry_carries_the_event_as_it_was_said():
    event_id = str(uuid.uuid4())
    customer = fold(
        None,
        [
            ev(
                "points.earned",
                event_id=event_id,
                occurred_at="2026-01-08T15:33:21+05:30",
                programId=983,
                points="12.125",
                category="MAIN",
                currency="Stars",
                expiresAt="2026-12-31",
                transactionId="T-1",
            ),
            redeemed(1, event_id="not-a-uuid", occurred_at="2026-01-09T00:00:00.250Z", currency="POINTS"),
        ],
    )
    first, second = entries(customer)
    assert first == {
        "eventId": event_id,
        "eventType": "points.earned",
        "occurredAt": "2026-01-08T10:03:21Z",  # normalised to UTC, as every timestamp of the read-model
        "programId": 983,
        "currency": "Stars",
        "category": "MAIN",
        "points": 12_125,
        "fromCategory": None,
        "expiresAt": "2026-12-31T23:59:59Z",
        "transactionId": "T-1",
        "mainAfter": 12_125,
        "promisedAfter": 0,
    }
    assert (second["eventId"], second["occurredAt"], second["currency"]) == (
        "not-a-uuid",
        "2026-01-09T00:00:00.250000Z",
        "POINTS",
    )
    assert second["expiresAt"] is None and second["transactionId"] is None


def test_balance_after_is_the_balance_endpoints_figures_for_that_program_and_currency_then():
    events = [
        earned(10),
        earned(4, "DELAYED_ACCRUAL", programId=2),
        earned(7, "EXTERNAL_TRIGGER"),
        promoted(2, "EXTERNAL_TRIGGER"),
        redeemed(3, programId=2),
        earned(1, currency="Stars"),
        expired(1, "EXTERNAL_TRIGGER"),
        adjusted(-20),
    ]
    customer = None
    for event in events:
        customer = apply_in_place(customer, event)
        newest = expanded(customer.ledger[-1])
        key = f"{event.data.programId}|{event.data.currency}"
        then = figures(customer.balances[key])
        assert (newest["mainAfter"], newest["promisedAfter"]) == (then["mainPoints"], then["promisedPoints"])
    assert [e["mainAfter"] for e in entries(customer)] == [10_000, 0, 10_000, 12_000, -3_000, 1_000, 12_000, -8_000]


def test_tier_profile_card_and_status_events_make_no_entry():
    customer = fold(
        None,
        [
            registered(),
            ev("tier.changed", programId=1, slabSerial=1, slabName="S"),
            ev("customer.status.changed", label="SUSPENDED"),
            ev("card.issued", cardNumber="C1", seriesId=1, statusLabel="ACTIVE"),
            ev("customer.merged", survivorId=9),
        ],
    )
    assert customer.ledger == [] and customer.ledgerSeq == 0


def test_the_newest_n_are_kept_and_their_positions_stay_consecutive():
    customer = fold(None, [earned(n) for n in range(1, 8)], ledger_entries=3)
    assert [e["points"] for e in entries(customer)] == [5_000, 6_000, 7_000]
    assert customer.ledgerSeq == 7 and list(customer.ledger_seqs()) == [5, 6, 7]
    assert fold(customer, [earned(8)], ledger_entries=5).ledger_seqs() == range(5, 9)  # a larger N keeps more


def test_an_off_ledger_keeps_nothing_but_still_counts_so_that_turning_it_on_later_is_not_complete():
    off = fold(None, [earned(1), earned(2)], ledger_entries=0)
    assert off.ledger == [] and off.ledgerSeq == 2
    on = fold(off, [earned(3)])
    assert on.ledger_seqs() == range(3, 4)  # the oldest kept is 3: entries 1 and 2 are missing
    assert fold(on, [earned(4)], ledger_entries=0).ledger == []  # turned off: what is kept goes on the next


def test_a_state_stored_before_the_ledger_existed_counts_its_history_as_unknown():
    before = Customer(orgId=1, customerId=1, balances=fold(None, [earned(5)]).balances)  # ledgerSeq 0
    after = fold(before, [earned(1)])
    assert after.ledger_seqs() == range(2, 3)  # not 1: older entries may exist that it never saw


def test_a_duplicate_or_redelivered_event_adds_no_entry():
    first = earned(1, event_id="a")
    write = plan_customer(
        None,
        {},
        set(),
        [("points:0", 0, first), ("points:0", 0, first), ("points:0", 1, first)],
    )
    assert write.customer is not None and len(write.customer.ledger) == 1 and write.customer.ledgerSeq == 1
    again = plan_customer(write.customer, {"points:0": 1}, {dedup_key("a")}, [("points:0", 2, first)])
    assert again.applied_event_ids == [] and len(again.customer.ledger) == 1  # re-published: nothing applied


def test_an_entry_is_small_and_round_trips_through_the_stored_and_the_readable_form():
    event_id = str(uuid.uuid4())
    customer = fold(
        None, [earned(100, event_id=event_id, expiresAt="2027-01-31"), redeemed("12.5", event_id=str(uuid.uuid4()))]
    )
    entry_bytes = len(encode_customer(customer)) - len(encode_customer(Customer(**_without_ledger(customer))))
    assert entry_bytes / 2 <= 50
    assert decode_customer(encode_customer(customer)) == customer
    assert customer_from_dict(customer_to_dict(customer)) == customer
    assert entry(customer.ledger[0]).eventId == uuid.UUID(event_id).bytes


def _without_ledger(customer: Customer) -> dict:
    return {f: getattr(customer, f) for f in customer.__struct_fields__ if not f.startswith("ledger")}


@given(st.datetimes(timezones=st.just(__import__("datetime").UTC)))
def test_timestamps_round_trip_exactly(moment):
    text = moment.isoformat().replace("+00:00", "Z")
    stored = entry(compacted({**expanded(_any_entry()), "occurredAt": text, "expiresAt": text}))
    assert timestamp(stored.occurredAt) == text and timestamp(stored.expiresAt) == text
    assert isinstance(stored.occurredAt, int) == (moment.microsecond == 0)


def _any_entry() -> bytes:
    return fold(None, [earned(1)]).ledger[0]


_DASHED = st.lists(st.sampled_from("0123456789abcdefABCDEF g-"), min_size=32, max_size=32).map(
    lambda c: (
        "".join(c[:8])
        + "-"
        + "".join(c[8:12])
        + "-"
        + "".join(c[12:16])
        + "-"
        + "".join(c[16:20])
        + "-"
        + "".join(c[20:])
    )
)


@given(st.one_of(_DASHED, st.uuids().map(str), st.text(max_size=40)))
def test_event_ids_round_trip_exactly_and_only_canonical_uuids_shrink(event_id):
    stored = entry(compacted({**expanded(_any_entry()), "eventId": event_id}))
    assert expanded(encoded(stored))["eventId"] == event_id
    canonical = _is_uuid(event_id) and str(uuid.UUID(event_id)) == event_id
    assert (stored.eventId == uuid.UUID(event_id).bytes) if canonical else stored.eventId == event_id


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
