"""GETs of the read endpoints are answered by service.routes before FastAPI; FastAPI's own routes (which
document them) must answer every request exactly alike, and metrics label both alike."""

import httpx
from fastapi import FastAPI

from tests.e2e.helpers import (
    A_BCRYPT,
    A_DEFAULT,
    A_OTHER,
    B_BCRYPT,
    basic,
    earned,
    new_customer_id,
    new_mobile,
    profile,
)

COMPARED_HEADERS = ("content-type", "content-length", "www-authenticate", "retry-after")


async def test_fast_path_and_fastapi_routes_answer_alike(api):
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(
        profile(api.org_a, customer, {"mobile": mobile, "email": f"{mobile}@Example.com"}),
        earned(api.org_a, customer, A_DEFAULT, "12.125"),
        earned(api.org_a, customer, A_OTHER, "0.5", "DELAYED_ACCRUAL"),
    )
    user = f"/v2/customers/{customer}/points/balance"
    lookup = "/v2/customers/lookup/points/balance"
    details = "/v2/customers/lookup/customerDetails"
    mobile_query = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}
    requests = [
        (user, {}, A_BCRYPT.headers),
        (user, {"fetchDataForAllPrograms": "TRUE", "programId": str(A_OTHER)}, A_BCRYPT.headers),
        (user, {"programId": "555"}, A_BCRYPT.headers),
        (user, {"entityType": "customer", "fetchDataForAllPrograms": "maybe"}, A_BCRYPT.headers),
        (f"/v2/customers/{customer + 1}/points/balance", {}, A_BCRYPT.headers),
        ("/v2/customers/-1/points/balance", {}, A_BCRYPT.headers),
        ("/v2/customers/%C3%A9/points/balance", {}, A_BCRYPT.headers),
        (user, {}, B_BCRYPT.headers),  # another org: 8015
        (user, {}, {}),
        (user, {}, basic("till.a", "wrong")),
        (user, {}, {"Authorization": "Basic !!!"}),
        (lookup, mobile_query, A_BCRYPT.headers),
        (
            lookup,
            {
                **mobile_query,
                "identifierName": "mobile,email",
                "identifierValue": f"{mobile},{mobile}@example.com",
                "source": "all",
            },
            A_BCRYPT.headers,
        ),
        (
            lookup,
            {**mobile_query, "identifierName": "email", "identifierValue": f"{mobile}@example.com"},
            A_BCRYPT.headers,
        ),
        (lookup, {**mobile_query, "source": "MARTJACK"}, A_BCRYPT.headers),
        (lookup, {**mobile_query, "source": "nowhere"}, A_BCRYPT.headers),
        (lookup, {"source": "INSTORE", "identifierName": "mobile"}, A_BCRYPT.headers),
        (lookup, {**mobile_query, "identifierValue": f"{mobile} ", "entityType": "GROUP"}, A_BCRYPT.headers),
        (
            f"{lookup}?source=INSTORE&identifierName=mobile&identifierValue={mobile}&programId=1&programId={A_DEFAULT}",
            None,
            A_BCRYPT.headers,
        ),  # the last of repeated parameters counts
        (f"{lookup}?source=INSTORE&identifierName=mobile&identifierValue=%2B{mobile}&x", None, A_BCRYPT.headers),
        (details, {**mobile_query, "embed": "mlp,points,segments"}, A_BCRYPT.headers),
        (details, {**mobile_query, "embed": "nonsense"}, A_BCRYPT.headers),
        (details, {**mobile_query, "gapToUpgrade": "3"}, A_BCRYPT.headers),
    ]
    app = api.app
    fastapi_only = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=lambda *a: FastAPI.__call__(app, *a)), base_url="http://test"
    )
    async with fastapi_only:
        for path, params, headers in requests:
            fast = await api.client.get(path, params=params, headers=headers)
            routed = await fastapi_only.get(path, params=params, headers=headers)
            assert (fast.status_code, fast.content) == (routed.status_code, routed.content), (path, params)
            assert [fast.headers.get(h) for h in COMPARED_HEADERS] == [
                routed.headers.get(h) for h in COMPARED_HEADERS
            ], (path, params)
            assert fast.status_code < 500, fast.text
        get = await api.client.get(user, headers=A_BCRYPT.headers)
        for client in (api.client, fastapi_only):  # HEAD: the GET's status and headers, no body
            head = await client.head(user, headers=A_BCRYPT.headers)
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
            assert (
                await client.head(f"/v2/customers/{customer + 1}/points/balance", headers=A_BCRYPT.headers)
            ).status_code == 404
        fast = await api.client.post(user, headers=A_BCRYPT.headers)  # other methods: FastAPI's 405
        routed = await fastapi_only.post(user, headers=A_BCRYPT.headers)
        assert (fast.status_code, fast.content) == (routed.status_code, routed.content) == (405, routed.content)


async def test_metrics_label_fast_path_requests_by_route_template(api):
    customer = new_customer_id()
    await api.publish(earned(api.org_a, customer, A_DEFAULT, "1"))
    counted = [
        ("/v2/customers/{userId}/points/balance", 200),
        ("/v2/customers/{userId}/points/balance", 400),
        ("/v2/customers/lookup/points/balance", 404),
    ]
    before = await _requests_total(api, counted)
    assert (await api.by_user(customer)).status_code == 200
    assert (await api.by_user("abc")).status_code == 400
    assert (
        await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=new_mobile())
    ).status_code == 404
    after = await _requests_total(api, counted)
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1]


async def _requests_total(api, counted: list[tuple[str, int]]) -> list[float]:
    """pointsview_http_requests_total per (route, status); the histogram's _count must agree."""
    samples = {}
    for line in (await api.client.get("/metrics")).text.splitlines():
        if not line.startswith("#") and "{" in line:
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)
    totals = []
    for route, status in counted:
        labels = f'{{route="{route}",status="{status}"}}'
        total = samples.get(f"pointsview_http_requests_total{labels}", 0.0)
        assert samples.get(f"pointsview_http_request_duration_seconds_count{labels}", 0.0) == total
        totals.append(total)
    return totals
