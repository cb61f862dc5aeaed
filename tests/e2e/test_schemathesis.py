"""Schemathesis over the app's own OpenAPI: no request, however malformed, yields a 5xx (API.md).

The schema is the app's `/openapi.json`, read at collection from an app built only for that (pytest 9
breaks schemathesis' fixture-based lazy loading). The cases are sent in-process to the app under test,
which runs over the session's real Redis with its lifespan started by schemathesis' ASGI client and
kept for the module; most cases carry valid Basic credentials so the handlers run beyond the 401,
and some are steered to a customer the projector knows so the 200 path is fuzzed too.
"""

import asyncio
import zlib
from decimal import Decimal

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi

from runtime.settings import Settings
from service.app import create_app
from tests.e2e.helpers import (
    A_ARGON2,
    A_BCRYPT,
    A_DEFAULT,
    A_OTHER,
    CLIENTS,
    earned,
    loyalty_config,
    new_customer_id,
    new_mobile,
    new_org_id,
    profile,
)


@pytest.fixture(scope="module")
async def fuzz_world(stack, password_hashes):
    """Two orgs of their own, and one known customer of org A with points in both programs."""
    org_a, org_b = new_org_id(), new_org_id()
    customer, mobile = new_customer_id(), new_mobile()
    await stack.publish(
        profile(org_a, customer, {"mobile": mobile, "email": f"{mobile}@example.com"}),
        earned(org_a, customer, A_DEFAULT, "12.125"),
        earned(org_a, customer, A_OTHER, "0.5", "DELAYED_ACCRUAL"),
    )
    return {"config": loyalty_config(org_a, org_b, password_hashes), "customer": customer, "mobile": mobile}


def _openapi() -> dict:
    """What the app serves at /openapi.json (it depends on neither the settings nor the orgs)."""
    app = create_app(Settings(), loyalty_config(1, 2, {c.username: "$2b$04$" + "x" * 53 for c in CLIENTS}))
    return asyncio.run(_get_openapi(app))


async def _get_openapi(app) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/openapi.json")
        response.raise_for_status()
        return response.json()


schema = schemathesis.openapi.from_dict(_openapi())
seen_statuses: dict[str, set[int]] = {}


@pytest.fixture(scope="module")
def app_under_test(stack, fuzz_world):
    app = create_app(stack.settings, fuzz_world["config"])
    yield app
    schemathesis_asgi.shutdown_lifespans()  # ends the lifespan schemathesis started: closes the Redis client
    # The fuzzing got past authentication: each balance operation it ran answered 200, 400 and 401 at least.
    for path, statuses in seen_statuses.items():
        if path.endswith("/points/balance"):
            assert {200, 400, 401} <= statuses, (path, statuses)


@settings(max_examples=500, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@schema.parametrize()
def test_no_request_yields_a_server_error(case, app_under_test, fuzz_world):
    choice = zlib.crc32(repr((case.path_parameters, case.query, case.headers)).encode())
    headers = None  # one case in five keeps what schemathesis generated (often no or bad credentials)
    if choice % 5:
        headers = (A_BCRYPT if choice % 2 else A_ARGON2).headers
    if choice % 3 == 0:  # steer towards the known customer, other parameters as generated
        if case.path_parameters and "userId" in case.path_parameters:
            case.path_parameters["userId"] = str(fuzz_world["customer"])
        elif case.operation.path.startswith("/v2/customers/lookup/"):  # balance, ledger and customerDetails
            case.query = {
                **(case.query or {}),
                "source": "INSTORE",
                "identifierName": "mobile",
                "identifierValue": fuzz_world["mobile"],
            }
    waits = (case.query or {}).get("afterEventId") or (case.headers or {}).get("X-PV-After-Event-Id")
    if waits:  # an event that never comes: look once (waitMs is fuzzed where nothing waits)
        case.query = {**(case.query or {}), "waitMs": 0}
    response = case.call(headers=headers, app=app_under_test)  # starts the lifespan on the first call
    assert hasattr(app_under_test.state, "follower"), "the lifespan must be active during the run"
    case.validate_response(response, checks=[not_a_server_error])
    seen_statuses.setdefault(case.operation.path, set()).add(response.status_code)

    if case.operation.path.startswith("/v2/"):  # the Capillary bodies of API.md
        body = response.json()
        assert isinstance(body["warnings"], list), body
        if response.status_code >= 400:
            assert body["warnings"] == []
            assert set(body) == {"errors", "warnings"}, body
            assert [set(e) for e in body["errors"]] == [{"status", "code", "message"}], body
        elif case.operation.path.endswith("/points/balance"):
            assert [w["code"] for w in body["warnings"]] == ([90001] if waits else []), (case.query, case.headers)
            assert body["entityType"] == "CUSTOMER"
            for name in ("totalPoints", "mainPoints", "promisedPoints"):
                assert Decimal(str(body[name])) == Decimal(str(body[name])).quantize(Decimal("0.001"))
        elif case.operation.path.endswith("/points/ledger"):
            assert body["entityType"] == "CUSTOMER" and isinstance(body["complete"], bool)
            for entry in body["entries"]:
                assert Decimal(str(entry["points"])) == Decimal(str(entry["points"])).quantize(Decimal("0.001"))


def test_the_document_shows_parameter_types_what_is_required_and_400_for_invalid_input():
    document = _openapi()
    user = document["paths"]["/v2/customers/{userId}/points/balance"]["get"]
    lookup = document["paths"]["/v2/customers/lookup/points/balance"]["get"]
    parameters = {p["name"]: p for p in user["parameters"] + lookup["parameters"]}
    assert parameters["userId"]["in"] == "path" and parameters["userId"]["schema"]["type"] == "integer"
    assert parameters["programId"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert parameters["fetchDataForAllPrograms"]["schema"]["type"] == "boolean"
    assert {name for name, p in parameters.items() if p["required"]} == {
        "userId",
        "source",
        "identifierName",
        "identifierValue",
    }
    for operation in (user, lookup, document["paths"]["/v2/customers/lookup/customerDetails"]["get"]):
        assert {"200", "400", "401", "404", "503"} <= set(operation["responses"]) and "422" not in operation[
            "responses"
        ]
    assert "head" not in document["paths"]["/v2/customers/{userId}/points/balance"]


def test_the_document_names_the_round_2_warnings_sections_and_embeds():
    paths = _openapi()["paths"]
    reads = [paths[p]["get"] for p in paths if p.startswith("/v2/")]
    assert len(reads) == 5 and all("91009" in read["description"] and "90001" in read["description"] for read in reads)
    details = paths["/v2/customers/lookup/customerDetails"]["get"]
    assert "cardDetails" in details["description"] and "seriesId" in details["description"]
    embed = next(p for p in details["parameters"] if p["name"] == "embed")["description"]
    assert "customerStatus" in embed and "cardLoyaltyDetails" in embed


def test_the_document_shows_the_ledgers_parameters_and_response():
    document = _openapi()
    for path in ("/v2/customers/{userId}/points/ledger", "/v2/customers/lookup/points/ledger"):
        operation = document["paths"][path]["get"]
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
        assert parameters["before"]["schema"] == {"type": "string"} and not parameters["programId"]["required"]
        assert {"200", "400", "401", "404", "503"} <= set(operation["responses"])
        assert "nextCursor" in operation["description"] and "balanceAfter" in operation["description"]
    entry = document["components"]["schemas"]["LedgerEntry"]["properties"]
    assert {"eventId", "points", "fromCategory", "balanceAfter", "transactionId"} <= set(entry)
    assert {"entries", "nextCursor", "complete"} <= set(
        document["components"]["schemas"]["LedgerResponse"]["properties"]
    )
