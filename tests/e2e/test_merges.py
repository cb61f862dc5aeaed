"""Merged customers (API.md "Round 2"): reads of a merge victim answer for its survivor with warning 91009."""

import asyncio

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
    profile,
)
from tests.e2e.test_cards import by_card, card
from tests.e2e.test_read_your_writes import _send_later
from tests.support import event

MERGED = {"status": False, "code": 91009, "message": "Retrieved survivor account for the requested merge victim"}
DETAILS = "/v2/customers/lookup/customerDetails"


def merged(org: int, victim: int, survivor: int) -> dict:
    return event("customer.merged", {"survivorId": survivor}, customer_id=victim, org_id=org)


def unmerged(org: int, victim: int) -> dict:
    return event("customer.unmerged", {}, customer_id=victim, org_id=org)


async def test_a_victim_is_answered_for_its_survivor_by_user_id_and_by_lookup_until_unmerged(api):
    org = api.org_a
    victim, survivor, mobile = new_customer_id(), new_customer_id(), new_mobile()
    await api.publish(
        profile(org, victim, {"mobile": mobile}),
        earned(org, victim, A_DEFAULT, "5"),
        profile(org, survivor, {"mobile": new_mobile()}),
        earned(org, survivor, A_DEFAULT, "40"),
        merged(org, victim, survivor),
    )
    by_user = await api.by_user(victim)
    assert by_user.json()["warnings"] == [MERGED]
    assert by_user.json()["entityId"] == survivor and by_user.json()["mainPoints"] == 40
    lookup = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}
    assert (await api.lookup(**lookup)).json()["entityId"] == survivor
    details = (await api.get(DETAILS, **lookup)).json()
    assert details["id"] == survivor and details["warnings"] == [MERGED]
    assert (await api.by_user(survivor)).json()["warnings"] == []  # the survivor itself: no redirect

    await api.publish(unmerged(org, victim))
    assert_balance(await api.by_user(victim), balance(victim, main="5"))
    assert_balance(await api.lookup(**lookup), balance(victim, main="5"))


async def test_chains_of_up_to_5_hops_are_followed_longer_ones_and_loops_are_8015(api):
    org = api.org_a
    chain = [new_customer_id() for _ in range(7)]
    await api.publish(*(earned(org, c, A_DEFAULT, str(i + 1)) for i, c in enumerate(chain)))
    await api.publish(*(merged(org, a, b) for a, b in zip(chain[1:6], chain[2:7])))  # 1 -> 2 -> ... -> 6
    assert (await api.by_user(chain[1])).json()["entityId"] == chain[6]  # five hops
    await api.publish(merged(org, chain[0], chain[1]))
    assert_error(await api.by_user(chain[0]), 8015, 404)  # six hops
    await api.publish(merged(org, chain[6], chain[2]))  # 2 -> ... -> 6 -> 2
    assert_error(await api.by_user(chain[3]), 8015, 404)


async def test_a_survivor_the_org_does_not_have_is_8015_even_when_another_org_has_it(api):
    victim, elsewhere = new_customer_id(), new_customer_id()
    await api.publish(earned(api.org_b, elsewhere, B_DEFAULT, "9"))  # another org's customer with that id
    await api.publish(earned(api.org_a, victim, A_DEFAULT, "1"), merged(api.org_a, victim, elsewhere))
    response = await api.by_user(victim)
    assert_error(response, 8015, 404)
    assert str(elsewhere) not in response.text
    assert (await api.by_user(elsewhere, B_BCRYPT)).json()["mainPoints"] == 9


async def test_read_your_writes_counts_an_event_applied_anywhere_on_the_redirect_path(api):
    org = api.org_a
    victim, survivor = new_customer_id(), new_customer_id()
    await api.publish(earned(org, survivor, A_DEFAULT, "3"), earned(org, victim, A_DEFAULT, "1"))
    await api.publish(merged(org, victim, survivor))
    late = earned(org, victim, A_DEFAULT, "2")  # still arrives for the victim: applied to it as a fact
    sending = asyncio.create_task(_send_later(api, late, 0.3))
    response = await api.by_user(victim, afterEventId=late["eventId"], waitMs=5000)
    await sending
    assert response.json()["entityId"] == survivor and response.json()["warnings"] == [MERGED]


async def test_a_later_merge_replaces_the_survivor_and_a_card_lookup_is_redirected_too(api):
    org = api.org_b  # no dual eligibility: a card number alone resolves
    victim, first, second = new_customer_id(), new_customer_id(), new_customer_id()
    number = f"M{victim}"
    await api.publish(
        card(org, victim, number),
        earned(org, first, B_DEFAULT, "10"),
        earned(org, second, B_DEFAULT, "20"),
        merged(org, victim, first),
    )
    response = await api.lookup(B_BCRYPT, **by_card(number, source="WECHAT", account="wx"))  # any source
    assert response.json()["entityId"] == first and response.json()["warnings"] == [MERGED]
    await api.publish(merged(org, victim, second))
    response = await api.lookup(B_BCRYPT, **by_card(number))
    assert_balance(response, {**balance(second, main="20"), "warnings": [MERGED]})
