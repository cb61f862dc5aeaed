"""Basic auth: verified once, cached by digest, failures cost no hashing in a flood."""

import asyncio
import base64

import bcrypt
import pytest
from argon2 import PasswordHasher

import service.auth as auth
from service.auth import Authenticator, parse_basic
from service.errors import ApiError
from service.loyalty import LoyaltyConfig


def _config():
    bcrypt_hash = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    return LoyaltyConfig.model_validate(
        {
            "orgs": [
                {
                    "orgId": 1,
                    "defaultProgramId": 9,
                    "programs": [{"programId": 9}],
                    "clients": [{"username": "till.one", "passwordHash": bcrypt_hash}],
                },
                {
                    "orgId": 2,
                    "defaultProgramId": 9,
                    "programs": [{"programId": 9}],
                    "clients": [{"username": "till.two", "passwordHash": PasswordHasher().hash("argon-right")}],
                },
            ]
        }
    )


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_each_client_gets_its_own_org():
    authenticator = Authenticator(_config())
    assert (await authenticator.org(_basic("till.one", "right"))).orgId == 1
    assert (await authenticator.org(_basic("till.two", "argon-right"))).orgId == 2


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        _basic("till.one", "wrong"),
        _basic("nobody", "right"),
    ],
)
async def test_bad_credentials_are_401(header):
    with pytest.raises(ApiError) as raised:
        await Authenticator(_config()).org(header)
    assert raised.value.code == 401 and raised.value.status == 401


async def test_steady_state_requests_pay_no_hashing(counted):
    authenticator = Authenticator(_config())
    for _ in range(20):
        await authenticator.org(_basic("till.one", "right"))
    assert counted == ["right"]


async def test_concurrent_identical_credentials_share_one_verification(counted):
    authenticator = Authenticator(_config())
    await asyncio.gather(*(authenticator.org(_basic("till.one", "right")) for _ in range(10)))
    assert counted == ["right"]


async def test_a_flood_of_wrong_passwords_is_throttled(counted):
    authenticator = Authenticator(_config(), failures_before_cooldown=3)
    for i in range(50):
        with pytest.raises(ApiError):
            await authenticator.org(_basic("till.one", f"guess{i}"))
    assert len(counted) == 3


async def test_a_cached_right_password_still_works_during_a_cooldown_from_the_same_address():
    authenticator = Authenticator(_config(), failures_before_cooldown=1)
    await authenticator.org(_basic("till.one", "right"))
    with pytest.raises(ApiError):
        await authenticator.org(_basic("till.one", "wrong"))
    assert (await authenticator.org(_basic("till.one", "right"))).orgId == 1


async def test_an_entry_expires(counted):
    authenticator = Authenticator(_config(), ttl_seconds=0)
    await authenticator.org(_basic("till.one", "right"))
    await authenticator.org(_basic("till.one", "right"))
    assert len(counted) == 2


def test_password_may_contain_colons():
    assert parse_basic(_basic("till.one", "a:b")) == ("till.one", "a:b")


async def test_a_flood_from_one_address_does_not_lock_the_owner_out_elsewhere():
    authenticator = Authenticator(_config(), failures_before_cooldown=2)
    for i in range(10):
        with pytest.raises(ApiError):
            await authenticator.org(_basic("till.one", f"guess{i}"), "10.0.0.66")
    assert (await authenticator.org(_basic("till.one", "right"), "10.0.0.7")).orgId == 1


async def test_a_remembered_header_is_one_lookup_without_parsing_or_hashing(monkeypatch, counted):
    authenticator = Authenticator(_config())
    header = _basic("till.one", "right")
    assert (await authenticator.org(header)).orgId == 1
    monkeypatch.setattr(auth, "parse_basic", lambda _header: pytest.fail("parsed again"))
    for _ in range(5):
        assert (await authenticator.org(header)).orgId == 1
    assert counted == ["right"]


async def test_the_same_credentials_sent_differently_share_the_verification(counted):
    authenticator = Authenticator(_config())
    encoded = base64.b64encode(b"till.one:right").decode()
    for header in (f"Basic {encoded}", f"basic {encoded}", f"BASIC  {encoded} "):
        assert (await authenticator.org(header)).orgId == 1
    assert counted == ["right"]


async def test_a_refused_header_is_not_remembered_as_accepted(counted):
    authenticator = Authenticator(_config())
    for _ in range(3):
        with pytest.raises(ApiError):
            await authenticator.org(_basic("till.one", "wrong"))
    assert counted == ["wrong"]  # the refusal is cached under the credentials' digest
