"""Helpers of the end-to-end tests: the two orgs' config, events, the API client, assertions."""

import base64
import contextlib
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from redis.asyncio import Redis

from devtools.produce import produce
from projections.events import on_customers_topic
from projections.keys import Keys
from projections.store import Store
from runtime.settings import Settings
from service.app import create_app
from service.loyalty import LoyaltyConfig
from tests.support import event, record, wait_until

# Program ids of the two orgs (org B's are deliberately not org A's: "not configured for the org").
A_DEFAULT, A_OTHER = 973, 983
B_DEFAULT, B_OTHER = 1973, 1983
UNCONFIGURED = 555

_rng = random.SystemRandom()
_customer_ids = itertools.count(_rng.randrange(10**6, 10**9) * 1000)


def md5_hex(text: str) -> str:
    """What a Capillary till sends as its password."""
    return hashlib.md5(text.encode()).hexdigest()


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@dataclass(frozen=True)
class Client:
    username: str
    password: str

    @property
    def headers(self) -> dict[str, str]:
        return basic(self.username, self.password)


# Passwords as the tills send them; the config holds hashes made once per session.
A_BCRYPT = Client("till.a", md5_hex("till-a-password"))
A_ARGON2 = Client("till.a.argon", "argon2:password-of-a")  # a colon in a password is the password's
B_BCRYPT = Client("till.b", md5_hex("till-b-password"))
B_UTF8 = Client("till.b.utf8", "pässwörd-ü")  # "whatever string the client sends" (API.md), UTF-8 here
CLIENTS = (A_BCRYPT, A_ARGON2, B_BCRYPT, B_UTF8)


def new_org_id() -> int:
    return _rng.randrange(10**6, 2**52)


def new_customer_id() -> int:
    return next(_customer_ids)


_values = itertools.count(_rng.randrange(10**8, 9 * 10**8) * 100)


def new_mobile() -> str:
    return f"91{next(_values)}"


def new_value(prefix: str) -> str:
    return f"{prefix}{next(_values)}"


def loyalty_config(org_a: int, org_b: int, hashes: dict[str, str]) -> LoyaltyConfig:
    """Org A: dual eligibility on (primary: mobile); org B: off. Both with two programs and a default."""
    return LoyaltyConfig.model_validate(
        {
            "orgs": [
                {
                    "orgId": org_a,
                    "name": "DualOrg",
                    "dualEligibility": True,
                    "primaryIdentifier": "mobile",
                    "defaultProgramId": A_DEFAULT,
                    "programs": [
                        {"programId": A_DEFAULT, "title": "A default"},
                        {"programId": A_OTHER, "title": "A other"},
                    ],
                    "clients": [
                        {"username": c.username, "passwordHash": hashes[c.username]} for c in (A_BCRYPT, A_ARGON2)
                    ],
                },
                {
                    "orgId": org_b,
                    "name": "SingleOrg",
                    "dualEligibility": False,
                    "defaultProgramId": B_DEFAULT,
                    "programs": [
                        {"programId": B_OTHER, "title": "B other"},
                        {"programId": B_DEFAULT, "title": "B default"},
                    ],
                    "clients": [
                        {"username": c.username, "passwordHash": hashes[c.username]} for c in (B_BCRYPT, B_UTF8)
                    ],
                },
            ]
        }
    )


# --- events ---


def profile(
    org: int,
    customer: int,
    identifiers: dict[str, str] | list[tuple[str, str]],
    *,
    source: str = "INSTORE",
    account: str = "",
    event_type: str = "customer.registered",
    occurred_at: str = "2026-01-08T10:03:21Z",
) -> dict:
    pairs = identifiers.items() if isinstance(identifiers, dict) else identifiers
    return event(
        event_type,
        {
            "source": source,
            "accountId": account,
            "firstName": "Tom",
            "lastName": "Sawyer",
            "identifiers": [{"type": t, "value": v} for t, v in pairs],
        },
        customer_id=customer,
        org_id=org,
        occurred_at=occurred_at,
    )


def earned(org: int, customer: int, program: int, points, category: str = "MAIN") -> dict:
    return event(
        "points.earned",
        {"programId": program, "points": points, "category": category},
        customer_id=customer,
        org_id=org,
    )


def points_event(event_type: str, org: int, customer: int, program: int, points, **data) -> dict:
    return event(event_type, {"programId": program, "points": points, **data}, customer_id=customer, org_id=org)


@dataclass
class Stack:
    settings: Settings
    redis: Redis
    keys: Keys

    async def publish(self, *docs: dict, timeout: float = 30.0) -> None:
        """Produces the events to the real broker and waits until the projector has applied each one."""
        customers_topic, points_topic = self.settings.topic_list
        stream = [record(customers_topic if on_customers_topic(d["eventType"]) else points_topic, d) for d in docs]
        await produce(self.settings, stream)

        store = Store(self.redis, self.keys, 0)

        async def applied():
            return all(await store.applied([(d["orgId"], d["customerId"], d["eventId"]) for d in docs]))

        await wait_until(applied, timeout=timeout, interval=0.05, message=f"{len(docs)} events to be applied")


@dataclass
class Api:
    """One app over the session's read-model, with two orgs of its own."""

    client: httpx.AsyncClient
    stack: Stack
    org_a: int
    org_b: int
    config: LoyaltyConfig
    app: object = field(repr=False)

    async def get(
        self, path: str, caller: Client | None = A_BCRYPT, headers: dict | None = None, **params
    ) -> httpx.Response:
        sent = dict(caller.headers) if caller else {}
        sent.update(headers or {})
        return await self.client.get(path, params={k: v for k, v in params.items() if v is not None}, headers=sent)

    async def publish(self, *docs: dict) -> None:
        await self.stack.publish(*docs)

    async def by_user(self, user_id, caller: Client | None = A_BCRYPT, **params) -> httpx.Response:
        return await self.get(f"/v2/customers/{user_id}/points/balance", caller, **params)

    async def lookup(self, caller: Client | None = A_BCRYPT, **params) -> httpx.Response:
        return await self.get("/v2/customers/lookup/points/balance", caller, **params)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, config: LoyaltyConfig):
    """create_app(settings, config) with its lifespan entered (ASGITransport does not run it)."""
    app = create_app(settings, config)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield app, c


def assert_error(response: httpx.Response, code: int, status: int) -> None:
    """The Capillary error body of API.md, with the given code and HTTP status."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"errors", "warnings"}, body
    assert body["warnings"] == []
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["status"] is False and error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"], body
    assert "Traceback" not in response.text


def balance(entity_id: int, main: str, delayed: str = "0", external: str = "0") -> dict:
    """The whole expected body of a balance answer, amounts as exact decimals."""
    main_, delayed_, external_ = Decimal(main), Decimal(delayed), Decimal(external)
    promised = delayed_ + external_
    return {
        "entityId": entity_id,
        "entityType": "CUSTOMER",
        "totalPoints": main_ + promised,
        "mainPoints": main_,
        "promisedPoints": promised,
        "promisedPointsBreakup": {"delayedAccrualPoints": delayed_, "externalTriggerBasedPoints": external_},
        "warnings": [],
    }


def exact_json(response: httpx.Response):
    """The body with JSON numbers as Decimals: 0.30000000000000004 is not 0.3."""
    return json.loads(response.text, parse_float=Decimal)


def assert_balance(response: httpx.Response, expected: dict) -> None:
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert exact_json(response) == expected, response.text
