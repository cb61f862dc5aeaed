"""Redis stops under a running app: 503s with the Capillary error body, then recovery without a new app."""

import os
import time

import pytest

from tests.e2e.helpers import (
    A_BCRYPT,
    A_DEFAULT,
    Stack,
    assert_balance,
    assert_error,
    balance,
    earned,
    loyalty_config,
    new_customer_id,
    new_mobile,
    new_org_id,
    profile,
    running_app,
)
from tests.support import wait_until

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="stops and restarts the test's own Redis (REDIS_URL is external)"
)


async def test_redis_outage_answers_503_and_recovers(
    settings, local_redis, redis, keys, start_projector, password_hashes
):
    org_a, org_b = new_org_id(), new_org_id()
    customer, mobile = new_customer_id(), new_mobile()
    stack = Stack(settings, redis, keys)
    await start_projector()
    await stack.publish(profile(org_a, customer, {"mobile": mobile}), earned(org_a, customer, A_DEFAULT, "42.125"))
    expected = balance(customer, main="42.125")
    headers = A_BCRYPT.headers

    async with running_app(settings, loyalty_config(org_a, org_b, password_hashes)) as (app, client):
        user = f"/v2/customers/{customer}/points/balance"
        lookup = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}

        async def both():
            return (
                await client.get(user, headers=headers),
                await client.get("/v2/customers/lookup/points/balance", params=lookup, headers=headers),
            )

        for response in await both():
            assert_balance(response, expected)
        assert (await client.get("/health/ready")).status_code == 200

        local_redis.stop()
        started = time.monotonic()
        for response in await both():
            assert_error(response, 503, 503)
        source_all = await client.get(
            "/v2/customers/lookup/points/balance", headers=headers, params={**lookup, "source": "ALL"}
        )
        assert_error(source_all, 503, 503)
        assert time.monotonic() - started < 15, "a POS client waits for the answer: Redis down must fail fast"
        ready = await client.get("/health/ready")
        assert ready.status_code == 503, ready.text
        live = await client.get("/health/live")
        assert live.status_code == 200, live.text
        # Errors that need no Redis still answer as usual.
        assert_error(await client.get("/v2/customers/abc/points/balance", headers=headers), 1632, 400)
        assert_error(await client.get(user), 401, 401)

        local_redis.restart()  # same port and directory: the projector's data comes back through the AOF

        async def ready_again():
            return (await client.get("/health/ready")).status_code == 200

        await wait_until(ready_again, timeout=20, message="/health/ready to answer 200 again")
        for response in await both():
            assert_balance(response, expected)

        # The projector recovered too: a new event is applied and served by the same app.
        await stack.publish(earned(org_a, customer, A_DEFAULT, "0.875"))
        for response in await both():
            assert_balance(response, balance(customer, main="43"))
