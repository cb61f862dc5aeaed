"""Read your own writes (API.md "Round 2"): afterEventId / X-PV-After-Event-Id with waitMs on every read."""

import asyncio
import time
import uuid

import pytest

from devtools.produce import produce
from projections.events import on_customers_topic
from tests.e2e.helpers import (
    A_DEFAULT,
    assert_balance,
    assert_error,
    balance,
    earned,
    new_customer_id,
    new_mobile,
    profile,
)
from tests.support import record

NOT_APPLIED = 90001


async def _send_later(api, doc: dict, delay: float) -> None:
    """Produces the event `delay` seconds from now, without waiting for it to be applied."""
    await asyncio.sleep(delay)
    customers_topic, points_topic = api.stack.settings.topic_list
    topic = customers_topic if on_customers_topic(doc["eventType"]) else points_topic
    await produce(api.stack.settings, [record(topic, doc)])


def _codes(response) -> list[int]:
    return [warning["code"] for warning in response.json()["warnings"]]


async def test_a_read_after_an_event_waits_until_it_is_applied(api):
    customer = new_customer_id()
    await api.publish(earned(api.org_a, customer, A_DEFAULT, "10"))
    redeemed = earned(api.org_a, customer, A_DEFAULT, "2.5")
    sending = asyncio.create_task(_send_later(api, redeemed, 0.5))
    started = time.monotonic()
    response = await api.by_user(customer, afterEventId=redeemed["eventId"], waitMs=5000)
    waited = time.monotonic() - started
    await sending
    assert_balance(response, balance(customer, main="12.5"))  # the answer includes the event
    assert 0.5 <= waited < 5, waited


async def test_the_header_form_and_every_read_endpoint(api):
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(api.org_a, customer, {"mobile": mobile}), earned(api.org_a, customer, A_DEFAULT, "1"))
    lookup = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}
    for path, params in (
        (f"/v2/customers/{customer}/points/balance", {}),
        ("/v2/customers/lookup/points/balance", lookup),
        ("/v2/customers/lookup/customerDetails", lookup),
    ):
        event = earned(api.org_a, customer, A_DEFAULT, "1")
        sending = asyncio.create_task(_send_later(api, event, 0.3))
        response = await api.get(path, headers={"X-PV-After-Event-Id": event["eventId"]}, waitMs=5000, **params)
        await sending
        assert response.status_code == 200 and _codes(response) == [], (path, response.text)
    assert_balance(await api.by_user(customer), balance(customer, main="4"))


async def test_an_event_not_applied_within_wait_ms_answers_what_there_is_with_warning_90001(api):
    customer = new_customer_id()
    await api.publish(earned(api.org_a, customer, A_DEFAULT, "7"))
    never = uuid.uuid4().hex
    started = time.monotonic()
    response = await api.by_user(customer, afterEventId=never, waitMs=300)
    assert 0.3 <= time.monotonic() - started < 3
    assert response.status_code == 200 and response.json()["mainPoints"] == 7
    assert response.json()["warnings"] == [
        {"status": False, "code": NOT_APPLIED, "message": f"event {never} is not applied yet; the answer may be stale"}
    ]
    applied = (await api.by_user(customer, afterEventId=never, waitMs=0)).json()["warnings"]
    assert [w["code"] for w in applied] == [NOT_APPLIED]  # waitMs=0: one look, no wait
    started = time.monotonic()
    default = await api.by_user(customer, afterEventId=never)  # no waitMs: 1000
    assert 1.0 <= time.monotonic() - started < 4 and _codes(default) == [NOT_APPLIED]


async def test_a_lookup_waits_for_the_event_that_creates_the_customer_and_an_unknown_one_stays_8015(api):
    customer, mobile = new_customer_id(), new_mobile()
    registered = profile(api.org_a, customer, {"mobile": mobile})
    sending = asyncio.create_task(_send_later(api, registered, 0.3))
    lookup = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}
    response = await api.lookup(afterEventId=registered["eventId"], waitMs=5000, **lookup)
    await sending
    assert response.status_code == 200 and response.json()["entityId"] == customer and _codes(response) == []
    unknown = await api.lookup(**{**lookup, "identifierValue": new_mobile()}, afterEventId="x", waitMs=200)
    assert_error(unknown, 8015, 404)


@pytest.mark.parametrize("wait_ms", ["5001", "-1", "abc", "1.5", "", "9" * 5000])
async def test_wait_ms_outside_0_to_5000_is_an_invalid_parameter(api, wait_ms):
    response = await api.by_user(new_customer_id(), afterEventId="x", waitMs=wait_ms)
    assert_error(response, 400, 400)
