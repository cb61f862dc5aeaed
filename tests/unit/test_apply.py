"""The balance arithmetic of EVENTS.md, checked figure by figure against hand-computed values."""

import copy

from consumers.verify import differences
from projections.apply import apply, figures, fold, sum_figures
from projections.state import NEVER, Balance, Card, Status, Tier
from tests.unit.builders import (
    adjusted,
    earned,
    ev,
    expired,
    promoted,
    redeemed,
    registered,
    returned,
)

ZERO = figures(Balance())
JAN = "2026-01-31T23:59:59Z"
FEB = "2026-02-28T23:59:59Z"
MAR = "2026-03-31T23:59:59Z"
AT_CARD = "2026-01-10T08:00:00Z"


def balance(*events, key="1|POINTS") -> Balance:
    return fold(None, list(events)).balances[key]


def figs(*events, key="1|POINTS") -> dict[str, int]:
    return figures(balance(*events, key=key))


def expect(**changed) -> dict[str, int]:
    return {**ZERO, **changed}


def buckets(*events) -> dict[str, int]:
    return balance(*events).buckets


# --- one test per event type ---


def test_earned_main_adds_to_main_lifetime_and_purchases():
    assert figs(earned("10.5", purchaseAmount="99.99")) == expect(
        mainPoints=10_500, totalPoints=10_500, lifetimePoints=10_500, cumulativePurchases=99_990
    )


def test_earned_delayed_accrual_is_promised_not_main():
    assert figs(earned(4, "DELAYED_ACCRUAL", purchaseAmount=50)) == expect(
        delayedAccrualPoints=4_000,
        promisedPoints=4_000,
        totalPoints=4_000,
        cumulativePurchases=50_000,
        delayedLifetimePoints=4_000,
    )


def test_earned_external_trigger_is_promised_not_main():
    assert figs(earned(6, "EXTERNAL_TRIGGER")) == expect(
        externalTriggerBasedPoints=6_000, promisedPoints=6_000, totalPoints=6_000, delayedLifetimePoints=6_000
    )


def test_redeemed_takes_from_main():
    assert figs(earned(10), redeemed(3)) == expect(
        mainPoints=7_000, totalPoints=7_000, lifetimePoints=10_000, redeemed=3_000
    )


def test_expired_main_counts_as_expired():
    b = balance(
        earned(10),
        ev("points.expired", occurred_at="2026-02-01T00:30:00+01:00", programId=1, points=4, category="MAIN"),
    )
    assert figures(b) == expect(mainPoints=6_000, totalPoints=6_000, lifetimePoints=10_000, expired=4_000)
    assert b.expiredByDay == {"2026-01-31": 4_000}  # the UTC day


def test_expired_promised_counts_as_delayed_expired():
    assert figs(
        earned(10, "DELAYED_ACCRUAL"),
        earned(5, "EXTERNAL_TRIGGER"),
        expired(3, "DELAYED_ACCRUAL"),
        expired(1, "EXTERNAL_TRIGGER"),
    ) == expect(
        delayedAccrualPoints=7_000,
        externalTriggerBasedPoints=4_000,
        promisedPoints=11_000,
        totalPoints=11_000,
        delayedExpiredPoints=4_000,
        delayedLifetimePoints=15_000,
    )


def test_promoted_moves_promised_points_to_main_and_lifetime():
    assert figs(
        earned(10, "DELAYED_ACCRUAL"),
        earned(8, "EXTERNAL_TRIGGER"),
        promoted(4, "DELAYED_ACCRUAL"),
        promoted(3, "EXTERNAL_TRIGGER"),
    ) == expect(
        mainPoints=7_000,
        lifetimePoints=7_000,
        delayedAccrualPoints=6_000,
        externalTriggerBasedPoints=5_000,
        promisedPoints=11_000,
        totalPoints=18_000,
        delayedLifetimePoints=18_000,
    )


def test_returned_main_counts_as_returned_and_reduces_purchases():
    assert figs(earned(10, purchaseAmount=100), returned(2, purchaseAmount="20.5")) == expect(
        mainPoints=8_000,
        totalPoints=8_000,
        lifetimePoints=10_000,
        returned=2_000,
        totalReturnedPoints=2_000,
        cumulativePurchases=79_500,
    )


def test_returned_promised_counts_as_delayed_returned():
    assert figs(
        earned(10),
        earned(9, "DELAYED_ACCRUAL"),
        earned(4, "EXTERNAL_TRIGGER"),
        returned(2, "DELAYED_ACCRUAL"),
        returned(1, "EXTERNAL_TRIGGER"),
        returned(3),
    ) == expect(
        mainPoints=7_000,
        lifetimePoints=10_000,
        returned=3_000,
        delayedAccrualPoints=7_000,
        externalTriggerBasedPoints=3_000,
        promisedPoints=10_000,
        totalPoints=17_000,
        delayedReturnedPoints=3_000,
        totalReturnedPoints=6_000,
        delayedLifetimePoints=13_000,
    )


def test_adjusted_adds_signed_points_to_main():
    assert figs(earned(10), adjusted("2.5"), adjusted(-4)) == expect(
        mainPoints=8_500, totalPoints=8_500, lifetimePoints=10_000, adjusted=-1_500
    )


def test_a_status_change_sets_label_reason_and_since_and_the_latest_wins():
    assert fold(None, [earned(1)]).status is None  # none: ACTIVE
    customer = fold(
        None,
        [
            ev("customer.status.changed", label="SUSPENDED", reason="chargeback"),
            ev("customer.status.changed", label="ACTIVE"),
        ],
    )
    assert customer.status == Status(label="ACTIVE", reason="", since=customer.status.since)
    assert customer.status.since.endswith("Z")


def test_a_merge_redirects_the_victim_a_later_one_replaces_the_survivor_and_unmerge_removes_it():
    merged = fold(None, [earned(5), ev("customer.merged", survivorId=7)])
    assert merged.mergedInto == 7 and figs(earned(5)) == figures(merged.balances["1|POINTS"])  # no points move
    assert fold(merged, [ev("customer.merged", survivorId=8)]).mergedInto == 8
    assert fold(merged, [ev("customer.unmerged")]).mergedInto is None


def test_tier_changed_sets_the_tier_per_program():
    tier = lambda program, serial, name, **extra: ev(  # noqa: E731
        "tier.changed", programId=program, slabSerial=serial, slabName=name, **extra
    )
    customer = fold(
        None,
        [
            tier(1, 1, "Silver"),
            tier(2, 3, "Platinum", slabDescription="top", slabExpiryDate="2027-01-01T00:00:00+01:00"),
            tier(1, 2, "Gold"),
        ],
    )
    assert customer.tiers == {
        "1": Tier(serial=2, name="Gold"),
        "2": Tier(serial=3, name="Platinum", description="top", expiryDate="2026-12-31T23:00:00Z"),
    }
    assert customer.balances == {}


def test_main_points_follow_the_contract_formula_over_a_mixed_history():
    b = balance(
        earned(100),
        earned(20, "DELAYED_ACCRUAL"),
        promoted(15),
        redeemed(30),
        expired(5),
        returned(7),
        adjusted(-3),
        adjusted(9),
    )
    f = figures(b)
    assert f["lifetimePoints"] == 115_000
    assert f["mainPoints"] == 115_000 - 30_000 - 5_000 - 7_000 + 6_000 == 79_000
    assert f["delayedAccrualPoints"] == f["promisedPoints"] == 5_000
    assert f["totalPoints"] == 84_000


# --- currencies, exactness, facts ---


def test_alternate_currency_is_kept_apart_and_has_no_purchases():
    customer = fold(
        None,
        [
            earned(10, purchaseAmount=100),
            earned(3, currency="Stars", purchaseAmount=50),
            redeemed(1, currency="Stars"),
            returned(1, currency="Stars", purchaseAmount=5),
        ],
    )
    assert set(customer.balances) == {"1|POINTS", "1|Stars"}
    assert figures(customer.balances["1|Stars"]) == expect(
        mainPoints=1_000,
        totalPoints=1_000,
        lifetimePoints=3_000,
        redeemed=1_000,
        returned=1_000,
        totalReturnedPoints=1_000,
    )
    assert figures(customer.balances["1|POINTS"]) == expect(
        mainPoints=10_000, totalPoints=10_000, lifetimePoints=10_000, cumulativePurchases=100_000
    )


def test_explicit_points_currency_is_the_points_balance():
    customer = fold(None, [earned(1), earned(2, currency="POINTS")])
    assert list(customer.balances) == ["1|POINTS"]
    assert figures(customer.balances["1|POINTS"])["mainPoints"] == 3_000


def test_programs_have_separate_balances():
    customer = fold(None, [earned(1, programId=1), earned(2, programId=22)])
    assert figures(customer.balances["22|POINTS"])["mainPoints"] == 2_000
    assert figures(customer.balances["1|POINTS"])["mainPoints"] == 1_000


def test_amounts_add_up_exactly():
    assert figs(earned("0.1"), earned("0.2"))["mainPoints"] == 300


def test_over_redemption_leaves_a_negative_balance():
    assert figs(earned(5), redeemed(8)) == expect(
        mainPoints=-3_000, totalPoints=-3_000, lifetimePoints=5_000, redeemed=8_000
    )


def test_promised_balance_may_go_negative_too():
    assert figs(earned(2, "DELAYED_ACCRUAL"), promoted(5))["delayedAccrualPoints"] == -3_000


# --- expiry buckets ---


def test_redemption_takes_from_the_earliest_expiring_bucket_first():
    assert buckets(
        earned(5, expiresAt=MAR), earned(5, expiresAt=JAN), earned(5), earned(5, expiresAt=FEB), redeemed(7)
    ) == {FEB: 3_000, MAR: 5_000, NEVER: 5_000}


def test_never_expiring_bucket_is_taken_last():
    assert buckets(earned(5), earned(5, expiresAt=JAN), redeemed(8)) == {NEVER: 2_000}


def test_same_expiry_adds_to_one_bucket():
    assert buckets(earned(2, expiresAt="2026-01-31"), earned(3, expiresAt=JAN)) == {JAN: 5_000}


def test_buckets_never_go_below_zero_and_a_deficit_is_not_scheduled():
    b = balance(earned(5, expiresAt=JAN), earned(1), redeemed(10))
    assert b.buckets == {}
    assert figures(b)["mainPoints"] == -4_000


def test_earns_after_a_deficit_fill_new_buckets():
    assert buckets(earned(5, expiresAt=JAN), redeemed(10), earned(3, expiresAt=FEB), earned(1)) == {
        FEB: 3_000,
        NEVER: 1_000,
    }


def test_promised_earns_form_no_bucket():
    assert buckets(earned(5, "DELAYED_ACCRUAL", expiresAt=JAN), earned(5, "EXTERNAL_TRIGGER")) == {}


def test_promoted_points_with_expiry_form_a_bucket():
    assert buckets(earned(9, "DELAYED_ACCRUAL"), promoted(4, expiresAt=FEB), promoted(2)) == {FEB: 4_000, NEVER: 2_000}


def test_positive_adjustment_goes_to_the_never_bucket():
    assert buckets(earned(3, expiresAt=JAN), adjusted("1.5")) == {JAN: 3_000, NEVER: 1_500}


def test_negative_adjustment_drains_the_earliest_bucket():
    assert buckets(earned(3, expiresAt=FEB), earned(3, expiresAt=JAN), adjusted(-4)) == {FEB: 2_000}


def test_main_returns_and_expiries_drain_buckets():
    assert buckets(earned(5, expiresAt=JAN), earned(5, expiresAt=FEB), earned(5), expired(4), returned(2)) == {
        FEB: 4_000,
        NEVER: 5_000,
    }


def test_promised_returns_and_expiries_leave_buckets_alone():
    assert buckets(
        earned(5, expiresAt=JAN),
        earned(9, "DELAYED_ACCRUAL"),
        expired(2, "DELAYED_ACCRUAL"),
        returned(3, "DELAYED_ACCRUAL"),
    ) == {JAN: 5_000}


def test_alternate_currency_buckets_are_separate():
    customer = fold(
        None, [earned(5, expiresAt=JAN), earned(4, currency="Stars", expiresAt=JAN), redeemed(3, currency="Stars")]
    )
    assert customer.balances["1|POINTS"].buckets == {JAN: 5_000}
    assert customer.balances["1|Stars"].buckets == {JAN: 1_000}


def test_earliest_bucket_first_also_with_fractional_seconds():
    # EVENTS.md: take points from the earliest-expiring bucket first. 00:00:00Z expires before
    # 00:00:00.5Z, but buckets are ordered as strings and "." sorts before "Z".
    assert buckets(
        earned(10, expiresAt="2026-03-01T00:00:00.500Z"), earned(10, expiresAt="2026-03-01T00:00:00Z"), redeemed(10)
    ) == {"2026-03-01T00:00:00.500000Z": 10_000}


# --- profiles ---


def test_profiles_are_kept_per_source_and_account():
    customer = fold(
        None,
        [
            registered(identifiers=[("mobile", "1")]),
            registered("MARTJACK", "acc-1"),
            registered("MARTJACK", "acc-2"),
            registered("INSTORE", "ignored"),
        ],
    )
    assert set(customer.profiles) == {"INSTORE|", "MARTJACK|acc-1", "MARTJACK|acc-2"}
    assert customer.seq == 4
    assert customer.profiles["INSTORE|"].seq == 4


def test_update_replaces_the_profile_and_keeps_created_at():
    customer = fold(
        None,
        [
            registered(
                identifiers=[("mobile", "1"), ("email", "a@x.com")],
                firstName="Tom",
                extendedFields={"city": "Mumbai", "gender": "Male"},
                occurred_at="2026-01-01T00:00:00Z",
            ),
            registered(
                identifiers=[("email", "b@x.com")],
                event_type="customer.updated",
                commChannels=[{"type": "email", "value": "b@x.com"}],
                extendedFields={"city": "Pune"},
                occurred_at="2026-01-05T12:00:00+02:00",
            ),
        ],
    )
    profile = customer.profiles["INSTORE|"]
    assert profile.identifiers == [{"type": "email", "value": "b@x.com"}]
    assert profile.firstName is None
    assert profile.extendedFields == {"city": "Pune"}
    assert profile.commChannels == [{"type": "email", "value": "b@x.com"}]
    assert (profile.createdAt, profile.modifiedAt) == ("2026-01-01T00:00:00Z", "2026-01-05T10:00:00Z")
    assert (profile.seq, customer.seq) == (2, 2)


def test_registered_for_a_known_profile_keeps_created_at():
    customer = fold(
        None,
        [
            registered(occurred_at="2026-01-01T00:00:00Z", lastName="A"),
            registered(occurred_at="2026-01-02T00:00:00Z", lastName="B"),
        ],
    )
    profile = customer.profiles["INSTORE|"]
    assert (profile.createdAt, profile.modifiedAt, profile.lastName) == (
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
        "B",
    )


def test_points_events_do_not_touch_profiles():
    customer = fold(None, [registered(), earned(1), ev("tier.changed", programId=1, slabSerial=1, slabName="S")])
    assert customer.seq == 1 and customer.profiles["INSTORE|"].seq == 1


def test_first_event_creates_the_customer_of_the_envelope():
    customer = apply(None, ev("points.earned", customer_id=42, programId=1, points=1, category="MAIN"))
    assert (customer.orgId, customer.customerId) == (100737, 42)


# --- purity and sums ---


def test_apply_does_not_mutate_its_input():
    before = fold(None, [registered(identifiers=[("mobile", "1")]), earned(5, expiresAt=JAN), earned(2)])
    snapshot = copy.deepcopy(before)
    after = apply(before, redeemed(6))
    after = apply(after, registered(identifiers=[], event_type="customer.updated"))
    assert before == snapshot
    assert after != before
    assert figures(after.balances["1|POINTS"])["mainPoints"] == 1_000


def test_fold_does_not_mutate_its_input():
    before = fold(None, [earned(5)])
    snapshot = copy.deepcopy(before)
    fold(before, [redeemed(1), adjusted(2), ev("tier.changed", programId=1, slabSerial=1, slabName="S")])
    assert before == snapshot


def test_sum_figures_adds_every_figure():
    a = balance(earned(10, purchaseAmount=7), earned(2, "DELAYED_ACCRUAL"), redeemed(1))
    b = balance(earned(5, "EXTERNAL_TRIGGER"), returned(1, "EXTERNAL_TRIGGER"), adjusted(-2))
    c = balance(earned(3), expired(1), returned(1, purchaseAmount=2))
    total = sum_figures([a, b, c])
    assert total == {name: figures(a)[name] + figures(b)[name] + figures(c)[name] for name in ZERO}
    assert total["mainPoints"] == 9_000 - 2_000 + 1_000 == 8_000
    assert total["promisedPoints"] == 2_000 + 4_000
    assert total["totalReturnedPoints"] == 2_000
    assert total["cumulativePurchases"] == 5_000


def test_sum_figures_of_nothing_is_all_zero():
    assert sum_figures([]) == ZERO
    assert set(ZERO.values()) == {0}


def card(event_type="card.issued", number="C1", at=AT_CARD, **data):
    fields = {"cardNumber": number, "seriesId": 195, "statusLabel": "ACTIVE", **data}
    return ev(event_type, occurred_at=at, **fields)


def test_a_card_is_upserted_by_number_an_update_replaces_its_fields_but_keeps_created_on_and_claim():
    issued = card(seriesCode="mtest", type="DIGITAL", customFields={"vehicle_type": "Bike"}, expiresAt="2027-12-31")
    later = "2026-02-01T00:00:00Z"
    updated = card("card.updated", at=later, seriesId=196, statusLabel="SUSPENDED", statusReason="lost")
    customer = fold(None, [issued, updated])
    assert customer.cards == {
        "C1": Card(
            seriesId=196,
            statusLabel="SUSPENDED",
            seriesCode=None,  # replaced: an update carries every field
            type=None,
            statusReason="lost",
            customFields=None,
            expiresAt=None,
            createdOn=AT_CARD,
            claimedAt=AT_CARD,
            statusSince=later,
        )
    }
    assert fold(None, [issued]).cards["C1"].expiresAt == "2027-12-31T23:59:59Z"


def test_a_card_issued_again_claims_anew_an_update_of_an_unknown_card_creates_it():
    reissued = fold(None, [card(), card(at="2026-03-01T00:00:00Z")]).cards["C1"]
    assert (reissued.createdOn, reissued.claimedAt) == (AT_CARD, "2026-03-01T00:00:00Z")
    created = fold(None, [card("card.updated", number="C2")]).cards["C2"]
    assert created.createdOn == created.claimedAt == created.statusSince == AT_CARD


def test_a_card_status_since_moves_only_when_the_label_changes():
    same = fold(None, [card(), card("card.updated", at="2026-03-01T00:00:00Z", seriesCode="x")]).cards["C1"]
    assert same.statusSince == AT_CARD and same.seriesCode == "x"
    cards = fold(None, [card(), card(number="C2", statusLabel="DELETED")]).cards
    assert [c.statusLabel for c in cards.values()] == ["ACTIVE", "DELETED"]  # a deleted card stays known


def test_verify_names_a_card_that_differs():
    left = {(1, 1): fold(None, [card()])}
    right = {(1, 1): fold(None, [card(statusLabel="DELETED")])}
    assert differences(left, left, "live", "log") == []
    [line] = differences(left, right, "live", "log")
    assert line.startswith("org 1 customer 1 cards C1: live=") and '"DELETED"' in line
