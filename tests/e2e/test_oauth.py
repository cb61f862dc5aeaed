"""OAuth tokens (Capillary's flow) and rate limits through the API (API.md "Round 2")."""

import time

import bcrypt
import jwt
import pytest
from pydantic import SecretStr

from service.app import create_app
from service.loyalty import ConfigError, LoyaltyConfig
from tests.e2e.helpers import (
    A_BCRYPT,
    A_DEFAULT,
    B_DEFAULT,
    Client,
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
from tests.support import unique

JWT_SECRET = "an HS256 secret of the end-to-end tests, 32 bytes or more"
SECRET = "key-secret"


def _hash(secret: str) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=4)).decode()


class World:
    """Orgs A and B of the helpers, each with an OAuth client, and org C whose default rate limit applies to
    each of its two Basic clients; its OAuth client has a limit of its own."""

    def __init__(self, password_hashes: dict[str, str]):
        self.org_a, self.org_b, self.org_c = new_org_id(), new_org_id(), new_org_id()
        self.key_a, self.key_b, self.key_c = unique("key.a"), unique("key.b"), unique("key.c")
        self.c_one, self.c_two = Client(unique("till.c1"), "c1-password"), Client(unique("till.c2"), "c2-password")
        doc = loyalty_config(self.org_a, self.org_b, password_hashes).model_dump()
        for org, key in zip(doc["orgs"], (self.key_a, self.key_b)):
            org["oauthClients"] = [{"key": key, "secretHash": _hash(SECRET), "tokenTtlSeconds": 600}]
        never_refilled = 0.001  # a token every 1,000 s: none comes back during a test
        doc["orgs"].append(
            {
                "orgId": self.org_c,
                "defaultProgramId": 9,
                "programs": [{"programId": 9}],
                "rateLimit": {"requestsPerSecond": never_refilled, "burst": 3},
                "clients": [
                    {"username": c.username, "passwordHash": _hash(c.password)} for c in (self.c_one, self.c_two)
                ],
                "oauthClients": [
                    {
                        "key": self.key_c,
                        "secretHash": _hash(SECRET),
                        "rateLimit": {"requestsPerSecond": never_refilled, "burst": 2},
                    }
                ],
            }
        )
        self.config = LoyaltyConfig.model_validate(doc)


@pytest.fixture
async def world(stack, password_hashes):
    world = World(password_hashes)
    settings = stack.settings.model_copy(update={"jwt_secret": SecretStr(JWT_SECRET)})
    async with running_app(settings, world.config) as (_app, client):
        world.client = client
        yield world


async def _token(world: World, key: str, secret: str = SECRET):
    return await world.client.post("/v3/oauth/token/generate", json={"key": key, "secret": secret})


async def _access_token(world: World, key: str) -> str:
    response = await _token(world, key)
    assert response.status_code == 200, response.text
    return response.json()["data"]["accessToken"]


def _by_user(world: World, user_id: int, headers: dict[str, str]):
    return world.client.get(f"/v2/customers/{user_id}/points/balance", headers=headers)


async def test_a_token_reads_its_orgs_customers_in_either_header(world, stack):
    customer = new_customer_id()
    await stack.publish(
        profile(world.org_a, customer, {"mobile": new_mobile()}),
        earned(world.org_a, customer, A_DEFAULT, "12.5"),
        profile(world.org_b, customer, {"mobile": new_mobile()}),
        earned(world.org_b, customer, B_DEFAULT, "7"),
    )
    response = await _token(world, world.key_a)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "errors", "warnings"} and body["errors"] == [] and body["warnings"] == []
    assert set(body["data"]) == {"accessToken", "expiresIn", "tokenType"}
    assert body["data"]["expiresIn"] == 600 and body["data"]["tokenType"] == "Bearer"
    token_a, token_b = body["data"]["accessToken"], await _access_token(world, world.key_b)
    claims = jwt.decode(token_a, JWT_SECRET, algorithms=["HS256"])
    assert claims["org_id"] == world.org_a and claims["client_id"] == world.key_a
    assert claims["exp"] - claims["iat"] == 600 and claims["jti"]

    for headers in ({"X-CAP-API-OAUTH-TOKEN": token_a}, {"Authorization": f"Bearer {token_a}"}):
        assert_balance(await _by_user(world, customer, headers), balance(customer, main="12.5"))
    assert_balance(await _by_user(world, customer, {"X-CAP-API-OAUTH-TOKEN": token_b}), balance(customer, main="7"))
    # An empty token header beside Basic counts as absent; a non-empty one alone decides.
    assert_balance(
        await _by_user(world, customer, {**A_BCRYPT.headers, "X-CAP-API-OAUTH-TOKEN": ""}),
        balance(customer, main="12.5"),
    )
    assert_balance(
        await _by_user(world, customer, {"Authorization": "Basic bm9ib2R5Og==", "X-CAP-API-OAUTH-TOKEN": token_b}),
        balance(customer, main="7"),
    )
    assert_error(await _by_user(world, customer, {**A_BCRYPT.headers, "X-CAP-API-OAUTH-TOKEN": "junk"}), 401, 401)

    other_org_only = new_customer_id()
    await stack.publish(profile(world.org_b, other_org_only, {"mobile": new_mobile()}))
    assert_error(await _by_user(world, other_org_only, {"X-CAP-API-OAUTH-TOKEN": token_a}), 8015, 404)
    lookup = await world.client.get(
        "/v2/customers/lookup/customerDetails",
        params={"source": "INSTORE", "identifierName": "mobile", "identifierValue": "0"},
        headers={"Authorization": f"Bearer {token_a}"},
    )
    assert_error(lookup, 8015, 404)


async def test_expired_forged_and_foreign_tokens_are_401(world):
    now = int(time.time())
    claims = {"org_id": world.org_a, "client_id": world.key_a, "iat": now - 600, "jti": "x"}
    token = await _access_token(world, world.key_a)
    header, payload, signature = token.split(".")
    refused = [
        jwt.encode({**claims, "exp": now - 5}, JWT_SECRET, algorithm="HS256"),  # expired
        jwt.encode({**claims, "exp": now + 600}, "another secret, as long as the real one", algorithm="HS256"),
        jwt.encode({**claims, "exp": now + 600}, None, algorithm="none"),
        f"{header}.{jwt.utils.base64url_encode(b'{}').decode()}.{signature}",  # tampered
        f"{header}.{payload}",  # malformed
        f"{token}x",
    ]
    for bad in refused:
        for headers in ({"X-CAP-API-OAUTH-TOKEN": bad}, {"Authorization": f"Bearer {bad}"}):
            assert_error(await _by_user(world, new_customer_id(), headers), 401, 401)


async def test_wrong_keys_and_secrets_are_401_and_malformed_bodies_400(world):
    for body in (
        {"key": world.key_a, "secret": "wrong"},
        {"key": world.key_a, "secret": ""},
        {"key": world.key_a},
        {"key": "nobody", "secret": SECRET},
        {"key": "", "secret": ""},
        {},
    ):
        assert_error(await world.client.post("/v3/oauth/token/generate", json=body), 401, 401)
    for raw in (b"{not json", b"", b"[1, 2]", b'{"key": 5, "secret": "x"}', b"\xff\xfe"):
        response = await world.client.post(
            "/v3/oauth/token/generate", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 400, 400)


async def test_a_flood_of_wrong_secrets_is_throttled_per_key_and_address(world):
    for i in range(6):
        assert_error(await _token(world, world.key_b, f"guess {i}"), 401, 401)
    assert_error(await _token(world, world.key_b), 401, 401)  # from the flood's address: throttled, still 401
    assert (await _token(world, world.key_a)).status_code == 200  # another key from that address is not


async def test_a_client_over_its_limit_gets_429_with_retry_after_and_others_do_not(world):
    async def answers(headers: dict[str, str], count: int) -> list[int]:
        return [(await _by_user(world, new_customer_id(), headers)).status_code for _ in range(count)]

    # Every authenticated request counts, whatever its answer (here 8015 for customers nobody has).
    assert await answers(world.c_one.headers, 3) == [404, 404, 404]
    refused = await _by_user(world, new_customer_id(), world.c_one.headers)
    assert_error(refused, 429, 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert await answers(world.c_two.headers, 4) == [404, 404, 404, 429]  # the org default, a bucket of its own
    token = await _access_token(world, world.key_c)
    assert await answers({"X-CAP-API-OAUTH-TOKEN": token}, 3) == [404, 404, 429]  # the client's own limit
    assert set(await answers(A_BCRYPT.headers, 30)) == {404}  # no limit configured: unlimited
    assert_error(await _by_user(world, new_customer_id(), {"Authorization": "Basic bm9ib2R5Og=="}), 401, 401)


async def test_oauth_clients_without_a_signing_key_refuse_to_start(stack, password_hashes):
    with pytest.raises(ConfigError, match="POINTSVIEW_JWT_SECRET"):
        create_app(stack.settings, World(password_hashes).config)


async def test_the_document_shows_the_token_route_and_every_way_to_authenticate(world):
    document = (await world.client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBasic"]["scheme"] == "basic" and schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["CapOAuthToken"] == {**schemes["CapOAuthToken"], "in": "header", "name": "X-CAP-API-OAUTH-TOKEN"}
    generate = document["paths"]["/v3/oauth/token/generate"]["post"]
    assert {"200", "400", "401"} <= set(generate["responses"]) and "security" not in generate
    body = generate["requestBody"]["content"]["application/json"]["schema"]
    assert document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"].keys() == {"key", "secret"}
    for path in ("/v2/customers/{userId}/points/balance", "/v2/customers/lookup/customerDetails"):
        read = document["paths"][path]["get"]
        assert read["security"] == [{"HTTPBasic": []}, {"BearerToken": []}, {"CapOAuthToken": []}]
        assert "429" in read["responses"]
