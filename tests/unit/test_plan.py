"""Held customers (plan_customer): redelivered and re-published records are no-ops; identifier index changes."""

from calendar import timegm

from projections.apply import figures
from projections.dedup import DedupWindow, dedup_key
from projections.identity import IndexKey
from projections.plan import CardClaim, IndexChange, epoch_ms, plan_customer
from tests.unit.builders import earned, ev, redeemed, registered

ORG = 100737
POINTS = "points:0"


def rec(event, offset, topic="points", partition=0) -> tuple:
    return f"{topic}:{partition}", offset, event


def main_points(customer) -> int:
    return figures(customer.balances["1|POINTS"])["mainPoints"]


def index_key(type_, value, source="INSTORE", account="") -> IndexKey:
    return IndexKey(ORG, source, account, type_, value)


# --- watermarks and duplicates ---


def test_records_at_or_below_the_watermark_are_skipped_and_the_watermark_advances():
    write = plan_customer(
        None,
        {POINTS: 5},
        set(),
        [rec(earned(1, event_id="a"), 4), rec(earned(2, event_id="b"), 5), rec(earned(4, event_id="c"), 6)],
    )
    assert write.applied_event_ids == ["c"]
    assert main_points(write.customer) == 4_000
    assert write.watermarks == {POINTS: 6}
    assert (write.orgId, write.customerId) == (ORG, 1)


def test_a_fully_redelivered_batch_changes_nothing():
    write = plan_customer(None, {POINTS: 9}, set(), [rec(earned(1), 8), rec(earned(2), 9)])
    assert write.customer is None
    assert write.watermarks == {POINTS: 9} and not write.advanced  # nothing to write
    assert write.applied_event_ids == []


def test_an_already_seen_event_id_is_skipped_but_its_offset_advances_the_watermark():
    write = plan_customer(None, {}, {dedup_key("seen")}, [rec(earned(1, event_id="seen"), 3)])
    assert write.customer is None
    assert write.applied_event_ids == []
    assert write.watermarks == {POINTS: 3}


def test_seen_event_ids_are_not_mutated():
    seen = {dedup_key("old")}
    plan_customer(None, {}, seen, [rec(earned(1, event_id="new"), 0)])
    assert seen == {dedup_key("old")}


def test_a_duplicate_event_id_inside_one_batch_counts_once():
    write = plan_customer(
        None,
        {},
        set(),
        [rec(earned(5, event_id="dup"), 0), rec(redeemed(1, event_id="r"), 1), rec(earned(5, event_id="dup"), 2)],
    )
    assert write.applied_event_ids == ["dup", "r"]
    assert main_points(write.customer) == 4_000
    assert write.watermarks == {POINTS: 2}


def test_an_offset_repeated_inside_one_batch_counts_once():
    # a redelivery after a seek back can put an offset twice into one customer's list
    write = plan_customer(None, {}, set(), [rec(earned(5, event_id="x"), 0), rec(earned(7, event_id="y"), 0)])
    assert write.applied_event_ids == ["x"]


def test_records_fold_onto_the_stored_state():
    stored = plan_customer(None, {}, set(), [rec(earned(10), 0)]).customer
    write = plan_customer(stored, {POINTS: 0}, set(), [rec(redeemed(3), 1)])
    assert main_points(write.customer) == 7_000
    assert write.customer.balances["1|POINTS"].redeemed == 3_000


def test_watermarks_are_kept_per_topic_partition():
    write = plan_customer(
        None,
        {POINTS: 10, "customers:2": 3},
        set(),
        [
            rec(registered(event_id="p"), 3, "customers", 2),
            rec(earned(1, event_id="e1"), 10),
            rec(registered(event_id="q", lastName="Q"), 4, "customers", 2),
            rec(earned(2, event_id="e2"), 11),
            rec(earned(4, event_id="e3"), 0, "points", 1),
        ],
    )
    assert write.applied_event_ids == ["q", "e2", "e3"]
    assert write.watermarks == {"customers:2": 4, POINTS: 11, "points:1": 0}


# --- identifier index ---


def test_registration_claims_indexed_identifiers_with_occurred_at_as_score():
    write = plan_customer(
        None,
        {},
        set(),
        [
            rec(
                registered(
                    identifiers=[
                        ("mobile", "1234512345"),
                        ("Email", "Tom.Sawyer@Example.com"),
                        ("EXTERNALID", "X-1"),
                        ("loyaltyCard", "L-9"),
                    ],
                    occurred_at="2026-01-08T10:03:21.250+01:00",
                ),
                0,
                "customers",
            )
        ],
    )
    score = timegm((2026, 1, 8, 9, 3, 21)) * 1000 + 250
    assert sorted(write.index_changes, key=lambda c: c.key.type) == [
        IndexChange(index_key("email", "tom.sawyer@example.com"), 1, True, score),
        IndexChange(index_key("externalId", "X-1"), 1, True, score),
        IndexChange(index_key("mobile", "1234512345"), 1, True, score),
    ]


def test_identifiers_removed_by_an_update_are_unclaimed_and_kept_ones_reclaimed():
    first = registered(
        "MARTJACK",
        "acc",
        [("mobile", "1"), ("email", "A@x.com"), ("cardnumber", "C")],
        occurred_at="2026-01-01T00:00:00Z",
    )
    update = registered(
        "MARTJACK",
        "acc",
        [("email", "a@X.com"), ("wechat", "W")],
        event_type="customer.updated",
        occurred_at="2026-01-02T00:00:00Z",
    )
    stored = plan_customer(None, {}, set(), [rec(first, 0, "customers")]).customer
    write = plan_customer(stored, {"customers:0": 0}, set(), [rec(update, 1, "customers")])
    score = timegm((2026, 1, 2, 0, 0, 0)) * 1000
    key = lambda t, v: index_key(t, v, "MARTJACK", "acc")  # noqa: E731
    assert sorted(write.index_changes, key=lambda c: (c.claimed, c.key.type)) == [
        IndexChange(key("cardnumber", "C"), 1, False),
        IndexChange(key("mobile", "1"), 1, False),
        IndexChange(key("email", "a@x.com"), 1, True, score),
        IndexChange(key("wechat", "W"), 1, True, score),
    ]


def test_an_update_within_the_same_batch_sees_the_earlier_profile():
    write = plan_customer(
        None,
        {},
        set(),
        [
            rec(registered(identifiers=[("mobile", "1")], occurred_at="2026-01-01T00:00:00Z"), 0, "customers"),
            rec(registered(identifiers=[], event_type="customer.updated"), 1, "customers"),
        ],
    )
    assert [c for c in write.index_changes if not c.claimed] == [IndexChange(index_key("mobile", "1"), 1, False)]


def test_profiles_on_other_sources_do_not_unclaim_each_other():
    stored = plan_customer(None, {}, set(), [rec(registered(identifiers=[("mobile", "1")]), 0, "customers")]).customer
    write = plan_customer(stored, {}, set(), [rec(registered("WECHAT", "w", [("wechat", "x")]), 1, "customers")])
    assert all(c.claimed for c in write.index_changes)
    assert [c.key for c in write.index_changes] == [index_key("wechat", "x", "WECHAT", "w")]


def test_instore_claims_under_an_empty_account_id():
    write = plan_customer(None, {}, set(), [rec(registered("INSTORE", "store-7", [("mobile", "1")]), 0)])
    assert [c.key.accountId for c in write.index_changes] == [""]


def test_points_events_change_no_index():
    assert plan_customer(None, {}, set(), [rec(earned(1), 0)]).index_changes == []


def test_skipped_records_change_no_index():
    write = plan_customer(
        None,
        {"customers:0": 0},
        {dedup_key("seen")},
        [
            rec(registered(identifiers=[("mobile", "1")]), 0, "customers"),
            rec(registered(identifiers=[("mobile", "2")], event_id="seen"), 1, "customers"),
        ],
    )
    assert write.index_changes == []


def test_epoch_ms_is_exact_to_the_millisecond():
    base = timegm((2026, 1, 8, 10, 3, 21)) * 1000
    for ms in (0, 1, 7, 250, 999):
        assert epoch_ms(f"2026-01-08T10:03:21.{ms:03d}000Z") == base + ms
    assert epoch_ms("1970-01-01T00:00:00Z") == 0


def test_customer_of_the_write_is_taken_from_the_records():
    write = plan_customer(None, {}, set(), [rec(ev("points.redeemed", customer_id=77, programId=1, points=1), 0)])
    assert (write.orgId, write.customerId, write.customer.customerId) == (ORG, 77, 77)


# --- the dedup window ---


def test_the_dedup_window_round_trips_and_drops_whole_hours_that_left_it():
    hour = 3_600_000
    window = DedupWindow().added([dedup_key("a"), dedup_key("b")], 10 * hour, 2 * hour)
    window = window.added([dedup_key("c")], 11 * hour + 5, 2 * hour)
    assert DedupWindow.decode(window.encode()) == window and len(window) == 3
    assert dedup_key("a") in window and dedup_key("c") in window and dedup_key("d") not in window
    later = window.added([], 12 * hour + 1, 2 * hour)  # hour 10 is still within 2 hours of hour 12
    assert dedup_key("a") in later
    later = window.added([dedup_key("d")], 13 * hour, 2 * hour)  # hour 10 left it, hour 11 has not
    assert dedup_key("a") not in later and dedup_key("b") not in later
    assert dedup_key("c") in later and dedup_key("d") in later and len(later) == 2
    assert dedup_key("d") not in window  # `added` leaves the window it was called on as it was


# --- card index entries ---


def card(number, label="ACTIVE", event_type="card.issued", at="2026-01-10T08:00:00Z", event_id=None):
    fields = {"cardNumber": number, "seriesId": 1, "statusLabel": label}
    return ev(event_type, occurred_at=at, event_id=event_id, **fields)


def test_card_events_claim_their_number_at_the_issue_time_and_deleted_cards_release_it():
    at = epoch_ms("2026-01-10T08:00:00Z")
    write = plan_customer(
        None,
        {},
        set(),
        [
            rec(card("C1"), 1, "customers"),
            rec(card("C2"), 2, "customers"),
            rec(card("C1", "SUSPENDED", "card.updated", at="2026-02-01T00:00:00Z"), 3, "customers"),
            rec(card("C2", "DELETED", "card.updated"), 4, "customers"),
        ],
    )
    assert write.card_claims == [CardClaim(ORG, "C1", 1, at), CardClaim(ORG, "C2", 1, None)]


def test_a_card_event_already_applied_claims_nothing():
    first = plan_customer(None, {}, set(), [rec(card("C1", event_id="x"), 1, "customers")])
    again = plan_customer(
        first.customer, first.watermarks, {dedup_key("x")}, [rec(card("C1", event_id="x"), 2, "customers")]
    )
    assert again.card_claims == [] and again.applied_event_ids == []
