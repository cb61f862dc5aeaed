"""Cards (EVENTS.md / API.md "Round 2"): card.issued / card.updated, org-wide card lookup, DELETED, the
latest claim among holders, cardDetails and identifier annotations."""

from tests.e2e.helpers import (
    A_DEFAULT,
    B_BCRYPT,
    B_DEFAULT,
    assert_balance,
    assert_error,
    balance,
    earned,
    new_customer_id,
    new_mobile,
    new_value,
    profile,
)
from tests.support import event

DETAILS = "/v2/customers/lookup/customerDetails"
ISSUED = "2026-01-10T08:00:00Z"


def card(org: int, customer: int, number: str, label: str = "ACTIVE", *, updated: bool = False, at=ISSUED, **data):
    fields = {"cardNumber": number, "seriesId": 195, "statusLabel": label, **data}
    kind = "card.updated" if updated else "card.issued"
    return event(kind, fields, customer_id=customer, org_id=org, occurred_at=at)


def by_card(number: str, source: str = "INSTORE", account: str | None = None) -> dict:
    return {"source": source, "accountId": account, "identifierName": "cardnumber", "identifierValue": number}


async def resolved(api, number: str, **scope) -> int | None:
    response = await api.lookup(B_BCRYPT, **by_card(number, **scope))
    if response.status_code == 404:
        assert_error(response, 8015, 404)
        return None
    assert response.status_code == 200, response.text
    return response.json()["entityId"]


async def test_a_card_resolves_on_every_source_and_account_of_the_org_without_a_profile_there(api):
    org, holder, number = api.org_b, new_customer_id(), new_value("CARD")
    await api.publish(earned(org, holder, B_DEFAULT, "12.5"), card(org, holder, number))
    assert_balance(await api.lookup(B_BCRYPT, **by_card(number)), balance(holder, main="12.5"))
    assert await resolved(api, number, source="MARTJACK", account="some-account") == holder
    assert await resolved(api, number, source="ALL") == holder
    assert await resolved(api, number.lower()) is None  # card numbers are exact
    assert_error(await api.lookup(**by_card(number)), 8015, 404)  # org A does not see org B's card


async def test_card_details_carry_the_card_and_the_profile_identifier_is_annotated(api):
    org, holder, mobile, number = api.org_b, new_customer_id(), new_mobile(), new_value("CARD")
    listed_only = new_value("CARD")
    fields = {"seriesCode": "mtest", "type": "DIGITAL", "customFields": {"vehicle_type": "Bike"}}
    await api.publish(
        profile(org, holder, [("mobile", mobile), ("cardNumber", number), ("cardnumber", listed_only)]),
        card(org, holder, number, expiresAt="2027-12-31", **fields),
        card(
            org,
            holder,
            number,
            "SUSPENDED",
            updated=True,
            at="2026-02-01T09:00:00+01:00",
            statusReason="lost",
            **fields,
        ),
    )
    body = (await api.get(DETAILS, B_BCRYPT, source="INSTORE", identifierName="mobile", identifierValue=mobile)).json()
    assert body["warnings"] == []
    cards = {c["cardNumber"]: c for c in body["cardDetails"]}
    assert cards[number] == {
        "cardNumber": number,
        "type": "DIGITAL",
        "seriesId": 195,
        "seriesCode": "mtest",
        "orgId": org,
        "entityId": holder,
        "customerId": holder,
        "createdOn": ISSUED,
        "expiryDate": None,  # the update carries no expiry: it replaces the card's fields
        "customFields": {"vehicle_type": "Bike"},
        "statusInfo": {
            "label": "SUSPENDED",
            "status": "SUSPENDED",
            "isActive": False,
            "reason": "lost",
            "createdOn": "2026-02-01T08:00:00Z",
            "autoUpdateTime": None,
        },
    }
    assert cards[listed_only]["seriesId"] is None and cards[listed_only]["statusInfo"]["label"] == "ACTIVE"
    identifiers = body["profiles"][0]["identifiers"]
    assert {"type": "cardNumber", "value": number, "seriesId": 195, "statusLabel": "SUSPENDED"} in identifiers
    assert {"type": "cardnumber", "value": listed_only} in identifiers  # its card is not known
    assert await resolved(api, number) == holder  # SUSPENDED still resolves


async def test_a_deleted_card_stops_resolving_and_leaves_card_details_even_when_a_profile_lists_it(api):
    org, holder, mobile, number = api.org_b, new_customer_id(), new_mobile(), new_value("CARD")
    await api.publish(profile(org, holder, [("mobile", mobile), ("cardnumber", number)]), card(org, holder, number))
    assert await resolved(api, number) == holder
    await api.publish(card(org, holder, number, "DELETED", updated=True))
    assert await resolved(api, number) is None
    assert await resolved(api, number, source="ALL") is None
    body = (await api.get(DETAILS, B_BCRYPT, source="INSTORE", identifierName="mobile", identifierValue=mobile)).json()
    assert body["cardDetails"] == []
    await api.publish(card(org, holder, number, updated=True))  # restored: resolves again
    assert await resolved(api, number) == holder


async def test_the_latest_claim_resolves_an_update_keeps_it_a_tie_goes_to_the_greater_id(api):
    org, number = api.org_b, new_value("CARD")
    first, second = new_customer_id(), new_customer_id()
    await api.publish(card(org, first, number, at="2026-01-01T00:00:00Z"), card(org, second, number))
    assert await resolved(api, number) == second
    await api.publish(card(org, first, number, "SUSPENDED", updated=True, at="2026-05-01T00:00:00Z"))
    assert await resolved(api, number) == second  # card.updated keeps the claim time
    await api.publish(card(org, second, number, "DELETED", updated=True))
    assert await resolved(api, number) == first  # the next holder whose card is not deleted
    await api.publish(card(org, first, number, "DELETED", updated=True))
    assert await resolved(api, number) is None

    tied, low, high = new_value("CARD"), new_customer_id(), new_customer_id()
    await api.publish(card(org, high, tied), card(org, low, tied))  # same claim time, published in either order
    assert await resolved(api, tied) == high


async def test_with_dual_eligibility_a_card_number_alone_is_8015_the_primary_identifier_decides(api):
    org, holder, mobile, number = api.org_a, new_customer_id(), new_mobile(), new_value("CARD")
    await api.publish(
        profile(org, holder, {"mobile": mobile}), earned(org, holder, A_DEFAULT, "3"), card(org, holder, number)
    )
    assert_error(await api.lookup(**by_card(number)), 8015, 404)
    both = {"source": "INSTORE", "identifierName": "cardnumber,mobile", "identifierValue": f"{number},{mobile}"}
    assert_balance(await api.lookup(**both), balance(holder, main="3"))
