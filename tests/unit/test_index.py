"""The indexes customers' states imply (projections.index), and how verify names a stored index's drift."""

from hypothesis import given
from hypothesis import strategies as st

from projections.apply import fold
from projections.identity import IndexKey
from projections.index import Index, decode_entries, expected_index, index_differences, resolver
from projections.keys import Keys
from projections.plan import epoch_ms, plan_customer
from tests.unit.builders import ev, registered

ORG = 100737
KEYS = Keys("pv", 2)
T1, T2, T3 = "2026-01-08T10:00:00Z", "2026-01-09T10:00:00Z", "2026-01-10T10:00:00Z"


def identifier(type_: str, value: str, source: str = "INSTORE", account: str = "") -> tuple[str, str]:
    return KEYS.identifier(IndexKey(ORG, source, account, type_, value))


def card(number: str, customer_id: int, label: str = "ACTIVE", event_type: str = "card.issued", at: str = T1):
    fields = {"cardNumber": number, "seriesId": 1, "statusLabel": label}
    return ev(event_type, customer_id=customer_id, occurred_at=at, **fields)


def test_each_customer_listing_an_identifier_has_an_entry_claimed_at_its_profile_event():
    first = fold(
        None,
        [
            registered(identifiers=[("mobile", "111"), ("loyaltyId", "L")], occurred_at=T1),
            registered(identifiers=[("Email", "A@X.com")], event_type="customer.updated", occurred_at=T3),
            registered(source="WECHAT", accountId="w1", identifiers=[("wechat", "W")], occurred_at=T2),
        ],
    )
    second = fold(None, [registered(identifiers=[("mobile", "111")], occurred_at=T2, customer_id=2)])
    index = expected_index([first, second], KEYS)
    assert index.identifiers == {  # the removed mobile and the unindexed type have none; email lower-cased
        identifier("mobile", "111"): {2: epoch_ms(T2)},
        identifier("email", "a@x.com"): {1: epoch_ms(T3)},
        identifier("wechat", "W", "WECHAT", "w1"): {1: epoch_ms(T2)},
    }
    assert index.cards == {}


def test_a_card_entry_is_its_last_issue_time_or_D_when_deleted():
    holder = fold(None, [card("C", 1), card("C", 1, "SUSPENDED", "card.updated", T2)])
    deleted = fold(None, [card("C", 2, at=T3), card("C", 2, "DELETED", "card.updated", T3)])
    assert expected_index([holder, deleted], KEYS).cards == {KEYS.card(ORG, "C"): {1: epoch_ms(T1), 2: None}}


def test_stored_entries_decode_with_deleted_cards_and_times_before_1970():
    assert decode_entries(b"4:1000,6:D,9:-5") == {4: 1000, 6: None, 9: -5}
    assert decode_entries(b"") == {}


def test_the_latest_claim_resolves_a_tie_goes_to_the_higher_id_and_a_deleted_card_to_nobody():
    assert resolver({4: 1000, 6: 1000, 5: 900}) == 6
    assert resolver({4: None, 3: 10}) == 3
    assert resolver({4: None}) is None


MOBILE, CARD = identifier("mobile", "111"), KEYS.card(ORG, "C")
NAME, CARD_NAME = f"index {MOBILE[0]} 111", f"index {CARD[0]} C"


def _lines(want_ids=None, got_ids=None, want_cards=None, got_cards=None) -> list[str]:
    expected = Index({MOBILE: want_ids} if want_ids else {}, {CARD: want_cards} if want_cards else {})
    found = Index({MOBILE: got_ids} if got_ids else {}, {CARD: got_cards} if got_cards else {})
    return index_differences(expected, found)


def test_an_index_that_agrees_has_no_differences():
    assert _lines({1: 100, 2: 100}, {1: 100, 2: 101}, {1: 100, 2: None}, {1: 100, 2: None}) == []


def test_an_entry_pointing_to_another_customer_is_named():
    assert _lines({1: 100}, {9: 100}) == [f"{NAME}: expected customer 1, found 9"]


def test_a_missing_entry_is_named():
    assert _lines({1: 100, 2: 200}, {2: 200}) == [f"{NAME}: missing entry for customer 1"]
    assert _lines({1: 100}, None) == [f"{NAME}: missing entry for customer 1"]


def test_an_entry_that_outlived_its_claim_is_named():
    assert _lines(None, {3: 100}) == [f"{NAME}: stale entry for customer 3"]
    assert _lines({1: 100}, {1: 100, 3: 50}) == [f"{NAME}: stale entry for customer 3"]
    assert _lines({1: 100}, {1: 100, 3: 150}) == [f"{NAME}: expected customer 1, found 3"]  # and it resolves


def test_the_order_of_identifier_claimants_is_the_write_order_and_is_not_compared():
    """claims.lua lifts a later-written claim above the others (ties, clock skew): either claimant of a
    tie may resolve."""
    assert _lines({1: 100, 2: 100}, {1: 101, 2: 100}) == []


def test_card_entries_are_compared_exactly():
    assert _lines(want_cards={1: None}, got_cards={1: 500}) == [f"{CARD_NAME}: expected entry 1:D, found 1:500"]
    assert _lines(want_cards={1: None, 2: 400}, got_cards={1: 500, 2: 400}) == [
        f"{CARD_NAME}: expected customer 2, found 1",
        f"{CARD_NAME}: expected entry 1:D, found 1:500",
    ]
    assert _lines(want_cards={1: 400, 2: 400}, got_cards={1: 401, 2: 400}) == [
        f"{CARD_NAME}: expected customer 2, found 1",
        f"{CARD_NAME}: expected entry 1:400, found 1:401",
    ]


def test_many_differences_are_cut_short():
    expected = Index({(f"h{i}", "f"): {1: 1} for i in range(80)})
    lines = index_differences(expected, Index(), limit=50)
    assert len(lines) == 51 and lines[-1].startswith("...")


# --- the planner's writes hold exactly the expected entries ---

IDENTIFIERS = [("mobile", "111"), ("email", "A@x.com"), ("email", "a@X.com"), ("cardnumber", "C"), ("other", "O")]
profiles = st.builds(
    lambda customer, ids, at: registered(identifiers=ids, occurred_at=at, customer_id=customer),
    st.integers(1, 3),
    st.lists(st.sampled_from(IDENTIFIERS), max_size=3),
    st.sampled_from([T1, T2, T3]),
)
cards = st.builds(
    lambda customer, kind, label, at: card("C", customer, label, kind, at),
    st.integers(1, 3),
    st.sampled_from(["card.issued", "card.updated"]),
    st.sampled_from(["ACTIVE", "DELETED"]),
    st.sampled_from([T1, T2, T3]),
)


@given(st.lists(profiles | cards, max_size=12))
def test_the_planners_index_writes_leave_exactly_the_expected_entries(events):
    """Each customer's claims and releases (as claims.lua keeps them, before it lifts a later-written claim)
    and card entries (cards.lua: replaced whole), planned event by event, are the entries expected_index
    derives from the folded states."""
    index, customers = Index(), {}
    for offset, event in enumerate(events):
        key = event.customerId
        write = plan_customer(customers.get(key), {}, set(), [("customers:0", offset, event)])
        customers[key] = write.customer
        for change in write.index_changes:
            entries = index.identifiers.setdefault(KEYS.identifier(change.key), {})
            entries.pop(change.customerId, None)
            if change.claimed:
                entries[change.customerId] = change.score
        for claim in write.card_claims:
            index.cards.setdefault(KEYS.card(claim.orgId, claim.cardNumber), {})[claim.customerId] = claim.claim
    expected = expected_index(customers.values(), KEYS)
    assert {at: entries for at, entries in index.identifiers.items() if entries} == expected.identifiers
    assert index.cards == expected.cards
