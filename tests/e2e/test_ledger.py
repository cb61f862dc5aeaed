"""The points ledger (API.md "Round 3 / Points ledger"): both endpoints, paging, retention, bad input."""

import asyncio
import uuid
from decimal import Decimal

import pytest

from tests.e2e.helpers import (
    A_DEFAULT,
    A_OTHER,
    B_BCRYPT,
    B_DEFAULT,
    UNCONFIGURED,
    assert_error,
    earned,
    exact_json,
    new_customer_id,
    new_mobile,
    points_event,
    profile,
    running_app,
)
from tests.e2e.test_merges import MERGED, merged
from tests.e2e.test_read_your_writes import _send_later
from tests.support import event

USER = "/v2/customers/{}/points/ledger"
LOOKUP = "/v2/customers/lookup/points/ledger"


def uuid_earned(org: int, customer: int, program: int, points, **data) -> dict:
    doc = points_event("points.earned", org, customer, program, points, category="MAIN", **data)
    return {**doc, "eventId": str(uuid.uuid4())}


async def ledger(api, customer, caller=None, **params) -> dict:
    response = await api.get(USER.format(customer), **({"caller": caller} if caller else {}), **params)
    assert response.status_code == 200, response.text
    return exact_json(response)


async def pages(api, customer, **params) -> list[dict]:
    """Every page from the newest, following nextCursor."""
    found = [await ledger(api, customer, **params)]
    while found[-1]["nextCursor"]:
        found.append(await ledger(api, customer, before=found[-1]["nextCursor"], **params))
    return found


def ids(*bodies: dict) -> list[str]:
    return [entry["eventId"] for body in bodies for entry in body["entries"]]


async def test_both_endpoints_list_every_points_event_newest_first_with_the_balance_after_it(api):
    org, customer, mobile = api.org_a, new_customer_id(), new_mobile()
    events = [
        profile(org, customer, {"mobile": mobile}),
        uuid_earned(org, customer, A_DEFAULT, "100", expiresAt="2026-12-31", transactionId="T1"),
        earned(org, customer, A_DEFAULT, "30", "DELAYED_ACCRUAL"),
        points_event("points.promoted", org, customer, A_DEFAULT, "10", fromCategory="DELAYED_ACCRUAL"),
        points_event("points.redeemed", org, customer, A_DEFAULT, "120.5"),
        event("tier.changed", {"programId": A_DEFAULT, "slabSerial": 1, "slabName": "S"}, customer, org),
        points_event("points.adjusted", org, customer, A_OTHER, "-2.125", currency="Stars"),
    ]
    await api.publish(*events)
    body = await ledger(api, customer)
    assert [(e["eventType"], e["category"], e["points"], e["fromCategory"]) for e in body["entries"]] == [
        ("points.adjusted", "MAIN", Decimal("-2.125"), None),
        ("points.redeemed", "MAIN", Decimal("-120.5"), None),
        ("points.promoted", "MAIN", Decimal("10.0"), "DELAYED_ACCRUAL"),
        ("points.earned", "DELAYED_ACCRUAL", Decimal("30.0"), None),
        ("points.earned", "MAIN", Decimal("100.0"), None),
    ]
    assert body["entries"][0]["currency"] == "Stars" and body["entries"][1]["currency"] == "POINTS"
    assert [e["balanceAfter"] for e in body["entries"][1:]] == [
        {"mainPoints": Decimal("-10.5"), "promisedPoints": Decimal("20.0")},
        {"mainPoints": Decimal("110.0"), "promisedPoints": Decimal("20.0")},
        {"mainPoints": Decimal("100.0"), "promisedPoints": Decimal("30.0")},
        {"mainPoints": Decimal("100.0"), "promisedPoints": Decimal("0.0")},
    ]
    assert body["entries"][-1] == {
        "eventId": events[1]["eventId"],
        "eventType": "points.earned",
        "occurredAt": "2026-01-08T10:03:21Z",
        "programId": A_DEFAULT,
        "currency": "POINTS",
        "category": "MAIN",
        "points": Decimal("100.0"),
        "fromCategory": None,
        "expiresAt": "2026-12-31T23:59:59Z",
        "transactionId": "T1",
        "balanceAfter": {"mainPoints": Decimal("100.0"), "promisedPoints": Decimal("0.0")},
    }
    assert (body["entityId"], body["entityType"], body["nextCursor"], body["complete"], body["warnings"]) == (
        customer,
        "CUSTOMER",
        None,
        True,
        [],
    )
    lookup = await api.get(LOOKUP, source="INSTORE", identifierName="mobile", identifierValue=mobile)
    assert exact_json(lookup) == body
    only_other = await ledger(api, customer, programId=A_OTHER)
    assert ids(only_other) == [events[-1]["eventId"]]


async def test_pages_follow_next_cursor_and_the_last_says_whether_older_entries_were_dropped(api):
    org, customer = api.org_b, new_customer_id()
    docs = [earned(org, customer, B_DEFAULT if n % 3 else UNCONFIGURED, str(n)) for n in range(1, 24)]
    await api.publish(*docs)  # 23 events, 20 kept: 1..3 dropped; UNCONFIGURED's are not the org's programs
    listed = await pages(api, customer, caller=B_BCRYPT, limit=4)
    kept_configured = [d["eventId"] for n, d in enumerate(docs, 1) if n > 3 and n % 3][::-1]
    assert ids(*listed) == kept_configured
    assert [len(p["entries"]) for p in listed] == [4, 4, 4, 2]
    assert [p["complete"] for p in listed] == [True, True, True, False] and listed[-1]["nextCursor"] is None
    one_program = await pages(api, customer, caller=B_BCRYPT, limit=100, programId=B_DEFAULT)
    assert len(one_program) == 1 and ids(*one_program) == kept_configured and not one_program[0]["complete"]


async def test_a_customer_known_from_profile_events_only_has_an_empty_complete_ledger_an_unknown_one_8015(api):
    org, customer = api.org_a, new_customer_id()
    await api.publish(profile(org, customer, {"mobile": new_mobile()}))
    assert await ledger(api, customer) == {
        "entityId": customer,
        "entityType": "CUSTOMER",
        "entries": [],
        "nextCursor": None,
        "complete": True,
        "warnings": [],
    }
    assert_error(await api.get(USER.format(new_customer_id())), 8015, 404)
    unknown = await api.get(LOOKUP, source="INSTORE", identifierName="mobile", identifierValue=new_mobile())
    assert_error(unknown, 8015, 404)


async def test_a_merge_victim_answers_its_survivors_ledger_and_a_read_waits_for_its_event(api):
    org, victim, survivor = api.org_a, new_customer_id(), new_customer_id()
    await api.publish(earned(org, victim, A_DEFAULT, "1"), earned(org, survivor, A_DEFAULT, "7"))
    await api.publish(merged(org, victim, survivor))
    late = earned(org, survivor, A_DEFAULT, "2")
    sending = asyncio.create_task(_send_later(api, late, 0.3))
    body = await ledger(api, victim, afterEventId=late["eventId"], waitMs=5000)
    await sending
    assert body["entityId"] == survivor and body["warnings"] == [MERGED]
    assert body["entries"][0]["eventId"] == late["eventId"] and len(body["entries"]) == 2


async def test_paging_while_events_arrive_for_that_customer_repeats_and_skips_nothing(api):
    org, customer = api.org_a, new_customer_id()
    first = [earned(org, customer, A_DEFAULT, str(n)) for n in range(1, 11)]
    later = [earned(org, customer, A_DEFAULT, str(n)) for n in range(11, 19)]  # 18 in all: none dropped
    await api.publish(*first)

    async def produce_meanwhile():
        for doc in later:
            await _send_later(api, doc, 0.05)

    producing = asyncio.create_task(produce_meanwhile())
    listed = [await ledger(api, customer, limit=2)]
    while listed[-1]["nextCursor"]:
        await asyncio.sleep(0.05)
        listed.append(await ledger(api, customer, limit=2, before=listed[-1]["nextCursor"]))
    await producing
    applied = [d["eventId"] for d in first + later]
    newest = applied.index(ids(listed[0])[0])
    assert newest >= len(first) - 1 and ids(*listed) == applied[: newest + 1][::-1]
    assert listed[-1]["complete"] is True


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "9" * 5000])
async def test_a_limit_outside_1_to_100_is_an_invalid_parameter(api, limit):
    assert_error(await api.get(USER.format(new_customer_id()), limit=limit), 400, 400)


async def test_a_cursor_tampered_with_or_made_for_another_customer_org_or_program_is_400(api):
    org, customer, other = api.org_a, new_customer_id(), new_customer_id()
    await api.publish(*(earned(org, c, A_DEFAULT, str(n)) for c in (customer, other) for n in (1, 2, 3)))
    await api.publish(earned(api.org_b, customer, B_DEFAULT, "5"), earned(api.org_b, customer, B_DEFAULT, "6"))
    cursor = (await ledger(api, customer, limit=1))["nextCursor"]
    other_cursor = (await ledger(api, other, limit=1))["nextCursor"]
    other_org_cursor = (await ledger(api, customer, B_BCRYPT, limit=1))["nextCursor"]
    tampered = cursor[:20] + ("A" if cursor[20] != "A" else "B") + cursor[21:]
    for before, params in (
        (tampered, {}),
        (other_cursor, {}),
        (other_org_cursor, {}),
        (cursor, {"programId": A_DEFAULT}),  # made for every program
        (cursor + "=", {}),
        ("x" * 5000, {}),
        ("", {}),
    ):
        response = await api.get(USER.format(customer), before=before, **params)
        assert_error(response, 400, 400)
    assert ids(await ledger(api, customer, before=cursor)) != []  # the genuine one still works
    assert_error(await api.get(USER.format(customer), programId=str(UNCONFIGURED)), 400, 400)


async def test_the_checks_run_in_the_contracts_order(api):
    assert_error(await api.get(USER.format("abc"), limit="0"), 1632, 400)
    assert_error(await api.get(USER.format(1), entityType="X", limit="0"), 1212, 400)
    assert_error(await api.get(USER.format(1), caller=None, limit="0"), 401, 401)
    missing = await api.get(LOOKUP, source="MARTJACK", identifierName="mobile", identifierValue="1", limit="0")
    assert_error(missing, 400, 400)  # limit (400) before the accountId (8015)
    assert_error(await api.get(LOOKUP, source="INSTORE", identifierName="mobile", limit="0"), 11013, 400)


async def test_with_the_ledger_off_both_endpoints_are_404(api):
    async with running_app(api.stack.settings.model_copy(update={"ledger_entries": 0}), api.config) as (_, client):
        for path in (USER.format(1), LOOKUP + "?source=INSTORE&identifierName=mobile&identifierValue=1"):
            response = await client.get(path)
            assert_error(response, 404, 404)
        assert "/v2/customers/{userId}/points/ledger" not in (await client.get("/openapi.json")).json()["paths"]
