"""Every error code and HTTP status of API.md's table, and the order in which the checks answer."""

import base64

import httpx
import pytest

from tests.e2e.helpers import (
    A_ARGON2,
    A_BCRYPT,
    A_DEFAULT,
    B_BCRYPT,
    B_DEFAULT,
    B_UTF8,
    assert_balance,
    assert_error,
    balance,
    basic,
    earned,
    new_customer_id,
    new_mobile,
    profile,
)

USER = "/v2/customers/{}/points/balance"
LOOKUP = "/v2/customers/lookup/points/balance"
GOOD_LOOKUP = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": "919999999999"}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BAD_CREDENTIALS = {
    "missing": {},
    "wrong password": basic(A_BCRYPT.username, "not-the-password"),
    "wrong argon2 password": basic(A_ARGON2.username, A_BCRYPT.password),
    "another org's password": basic(A_BCRYPT.username, B_BCRYPT.password),
    "unknown user": basic("nobody", A_BCRYPT.password),
    "empty username": basic("", A_BCRYPT.password),
    "password case differs": basic(A_BCRYPT.username, A_BCRYPT.password.upper()),
    "bearer scheme": {"Authorization": "Bearer " + _b64(f"{A_BCRYPT.username}:{A_BCRYPT.password}".encode())},
    "scheme alone": {"Authorization": "Basic"},
    "empty header": {"Authorization": ""},
    "not base64": {"Authorization": "Basic !!!%%%"},
    "no colon": {"Authorization": "Basic " + _b64(A_BCRYPT.username.encode())},
    "not utf-8": {"Authorization": "Basic " + _b64(b"\xff\xfe:\xfd")},
    "not ascii": {"Authorization": b"Basic \xe9\xe9\xe9"},
    "base64 without padding": {"Authorization": "Basic " + _b64(b"till.a:x").rstrip("=")},
}


@pytest.mark.parametrize("endpoint", ["user", "lookup"])
@pytest.mark.parametrize("headers", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_missing_or_wrong_credentials_are_401_with_www_authenticate(api, endpoint, headers):
    if endpoint == "user":
        response = await api.get(USER.format(12345), caller=None, headers=headers)
    else:
        response = await api.get(LOOKUP, caller=None, headers=headers, **GOOD_LOOKUP)
    assert_error(response, 401, 401)
    assert response.headers["www-authenticate"].lower().startswith("basic")


async def test_credentials_are_checked_before_everything_else(api):
    wrong = basic(A_BCRYPT.username, "wrong")
    for user_id in ("abc", "0", "-5", "99999999999999999999"):  # 401 beats 1632
        assert_error(await api.get(USER.format(user_id), caller=None, headers=wrong), 401, 401)
    assert_error(
        await api.get(USER.format("abc"), caller=None, headers=wrong, entityType="GROUP", programId="x"), 401, 401
    )
    # 401 beats 1212, 11013, 8003, 8013, 400 and 8015 on the lookup
    assert_error(await api.get(LOOKUP, caller=None, headers=wrong, entityType="GROUP"), 401, 401)
    assert_error(
        await api.get(
            LOOKUP, caller=None, headers={}, source="BAD", identifierName="phone", identifierValue="1,2", programId="x"
        ),
        401,
        401,
    )


async def test_right_credentials_of_each_client_pass(api):
    """The same requests pass with each configured client, bcrypt and argon2 alike (8015: nobody known);
    the scheme is case-insensitive and a password may hold a colon (RFC 7617)."""
    for caller in (A_BCRYPT, A_ARGON2, B_BCRYPT):
        assert_error(await api.by_user(12345, caller), 8015, 404)
        assert_error(await api.lookup(caller, **GOOD_LOOKUP), 8015, 404)
        lower = {"Authorization": caller.headers["Authorization"].replace("Basic ", "basic ", 1)}
        assert_error(await api.get(USER.format(12345), caller=None, headers=lower), 8015, 404)
    assert ":" in A_ARGON2.password


async def test_a_utf8_password_is_accepted(api):
    """API.md: "the password is whatever string the client sends"; RFC 7617 Basic credentials are UTF-8.
    A client configured with the hash of a non-ASCII password must get past authentication."""
    assert_error(await api.by_user(12345, B_UTF8), 8015, 404)
    assert_error(await api.lookup(B_UTF8, **GOOD_LOOKUP), 8015, 404)


async def test_wrong_passwords_for_a_username_do_not_lock_its_owner_out(api):
    """API.md: 401 is for "missing or wrong credentials"; a flood of wrong passwords must not cost hashing
    ("cache or throttle failures"). The throttle is per username and address, so a flood from one address
    does not turn the owner's right password, sent from its till, into a 401."""
    attacker = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app, client=("203.0.113.9", 4711)), base_url="http://test"
    )
    async with attacker:
        for attempt in range(6):
            response = await attacker.get(
                "/v2/customers/12345/points/balance", auth=(A_BCRYPT.username, f"guess-{attempt}")
            )
            assert_error(response, 401, 401)
    # The right password, sent for the first time since the app started (e.g. after the cache's TTL).
    assert_error(await api.by_user(12345, A_BCRYPT), 8015, 404)


@pytest.mark.parametrize(
    "user_id",
    [
        "abc",
        "0",
        "-5",
        "00",
        "1.5",
        "1e3",
        "+7",
        "%207",
        "0x10",
        "99999999999999999999",
        "9223372036854775808",
        "9" * 5000,  # more digits than Python's int() converts
        "1" + "0" * 19,
        "\u0663",
        "\uff11\uff12",
    ],
)
async def test_user_id_not_a_positive_integer_is_1632(api, user_id):
    assert_error(await api.by_user(user_id), 1632, 400)


async def test_user_id_checks_order(api):
    # userId (1632) before entityType (1212) and the other parameters (400)
    assert_error(
        await api.by_user("abc", entityType="GROUP", programId="x", fetchDataForAllPrograms="maybe"), 1632, 400
    )
    # entityType (1212) before the other parameters (400)
    assert_error(await api.by_user(12345, entityType="GROUP", programId="x"), 1212, 400)
    assert_error(await api.by_user(12345, entityType="LEDGER"), 1212, 400)
    # other parameters (400) before resolution (8015)
    assert_error(await api.by_user(12345, programId="x"), 400, 400)
    assert_error(await api.by_user(12345, fetchDataForAllPrograms="maybe"), 400, 400)
    # programId: an int32, however many digits it is sent with
    for program_id in ("9" * 5000, str(2**31), str(2**31 - 1), "0"):
        assert_error(await api.by_user(12345, programId=program_id), 400, 400)
    assert_error(await api.by_user(12345, programId="0" * 5000 + str(A_DEFAULT)), 8015, 404)  # it is A_DEFAULT
    # the largest 64-bit id is a valid userId: unknown, not invalid (leading zeros or not)
    assert_error(await api.by_user(2**63 - 1), 8015, 404)
    assert_error(await api.by_user("0" * 5000 + str(2**63 - 1)), 8015, 404)
    assert_error(await api.by_user(12345), 8015, 404)


async def test_entity_type_is_case_insensitive_and_only_customer(api):
    a = api.org_a
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(a, customer, {"mobile": mobile}), earned(a, customer, A_DEFAULT, "2"))
    for value in ("CUSTOMER", "customer", "Customer"):
        assert_balance(await api.by_user(customer, entityType=value), balance(customer, main="2"))
        assert_balance(
            await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, entityType=value),
            balance(customer, main="2"),
        )
    for value in ("GROUP", "CUSTOMERS", "USER"):
        assert_error(await api.by_user(customer, entityType=value), 1212, 400)
        assert_error(
            await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, entityType=value),
            1212,
            400,
        )


LOOKUP_TABLE = [
    # (why, params, code, HTTP status) -- caller: org A (dual eligibility on, primary mobile)
    ("nothing", {}, 11013, 400),
    ("entityType before missing source", {"entityType": "GROUP"}, 1212, 400),
    (
        "entityType before invalid source",
        {"entityType": "GROUP", "source": "BAD", "identifierName": "mobile", "identifierValue": "1"},
        1212,
        400,
    ),
    ("source missing", {"identifierName": "mobile", "identifierValue": "1"}, 11013, 400),
    ("identifierName missing", {"source": "INSTORE", "identifierValue": "1"}, 11013, 400),
    ("identifierValue missing", {"source": "INSTORE", "identifierName": "mobile"}, 11013, 400),
    ("source empty", {"source": "", "identifierName": "mobile", "identifierValue": "1"}, 11013, 400),
    ("identifierName empty", {"source": "INSTORE", "identifierName": "", "identifierValue": "1"}, 11013, 400),
    ("identifierValue empty", {"source": "INSTORE", "identifierName": "mobile", "identifierValue": ""}, 11013, 400),
    ("identifierValue blank", {"source": "INSTORE", "identifierName": "mobile", "identifierValue": "  "}, 11013, 400),
    (
        "parameter names are case-sensitive",
        {"Source": "INSTORE", "identifierName": "mobile", "identifierValue": "1"},
        11013,
        400,
    ),
    ("missing before invalid source", {"source": "BAD", "identifierName": "mobile"}, 11013, 400),
    ("invalid source", {"source": "BAD", "identifierName": "mobile", "identifierValue": "1"}, 8003, 400),
    ("source with a suffix", {"source": "INSTORE2", "identifierName": "mobile", "identifierValue": "1"}, 8003, 400),
    ("source before identifierName", {"source": "BAD", "identifierName": "phone", "identifierValue": "1"}, 8003, 400),
    ("source before count", {"source": "BAD", "identifierName": "mobile,email", "identifierValue": "1"}, 8003, 400),
    ("unknown identifierName", {"source": "INSTORE", "identifierName": "phone", "identifierValue": "1"}, 8013, 400),
    (
        "unknown identifierName among pairs",
        {"source": "INSTORE", "identifierName": "mobile,phone", "identifierValue": "1,2"},
        8013,
        400,
    ),
    (
        "names and values differ in count",
        {"source": "INSTORE", "identifierName": "mobile,email", "identifierValue": "1"},
        8013,
        400,
    ),
    ("values outnumber names", {"source": "INSTORE", "identifierName": "mobile", "identifierValue": "1,2"}, 8013, 400),
    (
        "identifierName before other parameters",
        {"source": "INSTORE", "identifierName": "phone", "identifierValue": "1", "programId": "x"},
        8013,
        400,
    ),
    (
        "programId before accountId",
        {"source": "WECHAT", "identifierName": "mobile", "identifierValue": "1", "programId": "x"},
        400,
        400,
    ),
    (
        "boolean before accountId",
        {"source": "MARTJACK", "identifierName": "mobile", "identifierValue": "1", "fetchDataForAllPrograms": "maybe"},
        400,
        400,
    ),
    (
        "waitMs before accountId",
        {"source": "MARTJACK", "identifierName": "mobile", "identifierValue": "1", "waitMs": "abc"},
        400,
        400,
    ),
    (
        "waitMs before resolution (dual eligibility without the primary)",
        {"source": "INSTORE", "identifierName": "email", "identifierValue": "x@example.com", "waitMs": "9999"},
        400,
        400,
    ),
    ("other org's programId", {**GOOD_LOOKUP, "programId": str(B_DEFAULT)}, 400, 400),
    ("programId of 5000 digits", {**GOOD_LOOKUP, "programId": "9" * 5000}, 400, 400),
    ("programId above int32", {**GOOD_LOOKUP, "programId": str(2**31)}, 400, 400),
    ("WECHAT without accountId", {"source": "WECHAT", "identifierName": "mobile", "identifierValue": "1"}, 8015, 404),
    (
        "MAPP_SDK with empty accountId",
        {"source": "MAPP_SDK", "accountId": "", "identifierName": "mobile", "identifierValue": "1"},
        8015,
        404,
    ),
    (
        "MARTJACK without accountId",
        {"source": "martjack", "identifierName": "mobile", "identifierValue": "1"},
        8015,
        404,
    ),
    ("unknown customer", GOOD_LOOKUP, 8015, 404),
    ("unknown customer, source ALL", {**GOOD_LOOKUP, "source": "ALL"}, 8015, 404),
    (
        "dual eligibility without the primary",
        {"source": "INSTORE", "identifierName": "email", "identifierValue": "nobody@example.com"},
        8015,
        404,
    ),
]


@pytest.mark.parametrize("params,code,status", [row[1:] for row in LOOKUP_TABLE], ids=[row[0] for row in LOOKUP_TABLE])
async def test_lookup_errors_and_their_order(api, params, code, status):
    assert_error(await api.lookup(**params), code, status)


async def test_several_pairs_without_dual_eligibility_are_8013(api):
    b = api.org_b
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(b, customer, {"mobile": mobile, "email": f"{mobile}@example.com"}))
    single = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}
    assert_balance(await api.lookup(B_BCRYPT, **single), balance(customer, main="0"))
    for names, values in (
        ("mobile,email", f"{mobile},{mobile}@example.com"),
        ("email,mobile", f"{mobile}@example.com,{mobile}"),
        ("mobile,mobile", f"{mobile},{mobile}"),
    ):
        assert_error(
            await api.lookup(B_BCRYPT, source="INSTORE", identifierName=names, identifierValue=values), 8013, 400
        )


async def test_accountId_is_required_for_other_sources_even_for_a_known_customer(api):
    b = api.org_b
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(b, customer, {"mobile": mobile}, source="WECHAT", account="wx-1"))
    found = {"source": "WECHAT", "identifierName": "mobile", "identifierValue": mobile}
    assert_balance(await api.lookup(B_BCRYPT, accountId="wx-1", **found), balance(customer, main="0"))
    assert_error(await api.lookup(B_BCRYPT, **found), 8015, 404)
    assert_error(await api.lookup(B_BCRYPT, accountId="", **found), 8015, 404)
    assert_error(await api.lookup(B_BCRYPT, accountId="  ", **found), 8015, 404)


async def test_unknown_parameters_are_ignored(api):
    a = api.org_a
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(profile(a, customer, {"mobile": mobile}), earned(a, customer, A_DEFAULT, "1.5"))
    assert_balance(await api.by_user(customer, foo="bar", programid="x", embed="points"), balance(customer, main="1.5"))
    assert_balance(
        await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, foo="bar", ProgramId="x"),
        balance(customer, main="1.5"),
    )
