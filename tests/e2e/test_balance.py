"""Events produced to Kafka, applied by the projector, read through both balance endpoints (API.md)."""

import pytest

from tests.e2e.helpers import (
    A_ARGON2,
    A_BCRYPT,
    A_DEFAULT,
    A_OTHER,
    B_BCRYPT,
    B_DEFAULT,
    B_OTHER,
    UNCONFIGURED,
    assert_balance,
    assert_error,
    balance,
    earned,
    new_customer_id,
    new_mobile,
    new_value,
    points_event,
    profile,
)


async def test_events_become_visible_through_both_endpoints_exact_to_three_decimals(api):
    a, b = api.org_a, api.org_b
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(
        profile(a, customer, {"mobile": mobile, "email": new_value("x") + "@example.com"}),
        earned(a, customer, A_DEFAULT, "0.1"),
        earned(a, customer, A_DEFAULT, "0.2"),
        earned(a, customer, A_DEFAULT, "1.125", "DELAYED_ACCRUAL"),
        earned(a, customer, A_DEFAULT, "2.5", "EXTERNAL_TRIGGER"),
    )
    expected = balance(customer, main="0.3", delayed="1.125", external="2.5")
    assert expected["totalPoints"] == expected["mainPoints"] + expected["promisedPoints"]
    for caller in (A_BCRYPT, A_ARGON2):  # a bcrypt client and an argon2 client of the same org
        assert_balance(await api.by_user(customer, caller), expected)
        assert_balance(
            await api.lookup(caller, source="INSTORE", identifierName="mobile", identifierValue=mobile), expected
        )

    # The org without dual eligibility, amounts as JSON numbers (not strings) in the events.
    other, email = new_customer_id(), new_value("pv.") + "@example.com"
    await api.publish(
        profile(b, other, {"mobile": new_mobile(), "email": email}),
        earned(b, other, B_DEFAULT, 8500),
        earned(b, other, B_DEFAULT, 12.125, "DELAYED_ACCRUAL"),
    )
    expected = balance(other, main="8500", delayed="12.125")
    assert_balance(await api.by_user(other, B_BCRYPT), expected)
    assert_balance(
        await api.lookup(B_BCRYPT, source="INSTORE", identifierName="email", identifierValue=email), expected
    )


async def test_every_points_event_type_is_reflected_exactly(api):
    a = api.org_a
    customer, overdrawn = new_customer_id(), new_customer_id()
    await api.publish(
        earned(a, customer, A_DEFAULT, "100.125"),
        points_event("points.redeemed", a, customer, A_DEFAULT, "0.125"),
        points_event("points.adjusted", a, customer, A_DEFAULT, "-0.5"),
        earned(a, customer, A_DEFAULT, "2", "DELAYED_ACCRUAL"),
        points_event("points.promoted", a, customer, A_DEFAULT, "1.5", fromCategory="DELAYED_ACCRUAL"),
        points_event("points.expired", a, customer, A_DEFAULT, "0.001", category="MAIN"),
        points_event("points.returned", a, customer, A_DEFAULT, "0.25", category="DELAYED_ACCRUAL"),
        earned(a, customer, A_DEFAULT, "3", "EXTERNAL_TRIGGER"),
        points_event("points.expired", a, customer, A_DEFAULT, "1", category="EXTERNAL_TRIGGER"),
        # Events are facts: a redemption larger than the balance leaves it negative, shown as it is.
        earned(a, overdrawn, A_DEFAULT, "1"),
        points_event("points.redeemed", a, overdrawn, A_DEFAULT, "3.5"),
    )
    # main = 100.125 - 0.125 - 0.5 + 1.5 - 0.001; delayed = 2 - 1.5 - 0.25; external = 3 - 1
    assert_balance(await api.by_user(customer), balance(customer, main="100.999", delayed="0.25", external="2"))
    assert_balance(await api.by_user(overdrawn), balance(overdrawn, main="-2.5"))


async def test_the_program_table(api):
    a = api.org_a
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(
        profile(a, customer, {"mobile": mobile}),
        earned(a, customer, A_DEFAULT, "10"),
        earned(a, customer, A_OTHER, "5.5"),
        earned(a, customer, A_OTHER, "0.25", "DELAYED_ACCRUAL"),
        earned(a, customer, UNCONFIGURED, "100"),  # applied, but not a program of the org: never summed
        earned(a, customer, B_DEFAULT, "1000"),  # the other org's program id, in this org: not configured here
    )
    default = balance(customer, main="10")
    other = balance(customer, main="5.5", delayed="0.25")
    every = balance(customer, main="15.5", delayed="0.25")
    table = [
        ({}, default),
        ({"fetchDataForAllPrograms": "false"}, default),
        ({"programId": str(A_DEFAULT)}, default),
        ({"programId": str(A_OTHER)}, other),
        ({"programId": str(A_OTHER), "fetchDataForAllPrograms": "false"}, other),
        ({"fetchDataForAllPrograms": "true"}, every),
        ({"fetchDataForAllPrograms": "true", "programId": str(A_OTHER)}, every),
        ({"fetchDataForAllPrograms": "true", "programId": str(A_DEFAULT)}, every),
    ]
    for params, expected in table:
        assert_balance(await api.by_user(customer, **params), expected)
        assert_balance(
            await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, **params), expected
        )


@pytest.mark.parametrize(
    "params",
    [
        {"programId": str(UNCONFIGURED)},  # has events, but is not configured
        {"programId": str(UNCONFIGURED), "fetchDataForAllPrograms": "true"},  # whatever fetchData... says
        {"programId": str(B_DEFAULT)},  # the other org's program
        {"programId": "abc"},
        {"programId": "-1"},
        {"programId": "0"},
        {"programId": "9" * 30},
        {"programId": ""},
        {"fetchDataForAllPrograms": "yes"},
        {"fetchDataForAllPrograms": "1"},
        {"fetchDataForAllPrograms": ""},
        {"fetchDataForAllPrograms": "maybe", "programId": str(A_DEFAULT)},
    ],
    ids=lambda params: "&".join(f"{k}={v[:12]}" for k, v in params.items()),
)
async def test_invalid_program_or_boolean_is_400(api, params):
    a = api.org_a
    customer, mobile = new_customer_id(), new_mobile()
    await api.publish(
        profile(a, customer, {"mobile": mobile}),
        earned(a, customer, UNCONFIGURED, "1"),
        earned(a, customer, A_DEFAULT, "1"),
    )
    assert_error(await api.by_user(customer, **params), 400, 400)
    assert_error(
        await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, **params), 400, 400
    )


async def test_a_known_customer_without_activity_in_the_program_gets_zeros(api):
    a, b = api.org_a, api.org_b
    registered_only, other_program_only, points_only = new_customer_id(), new_customer_id(), new_customer_id()
    mobile = new_mobile()
    await api.publish(
        profile(a, registered_only, {"mobile": mobile}),
        earned(a, other_program_only, A_OTHER, "4.75"),  # exists through a points event alone
        earned(b, points_only, B_OTHER, "3"),
    )
    zeros = balance(registered_only, main="0")
    for params in ({}, {"programId": str(A_OTHER)}, {"fetchDataForAllPrograms": "true"}):
        assert_balance(await api.by_user(registered_only, **params), zeros)
        assert_balance(
            await api.lookup(source="INSTORE", identifierName="mobile", identifierValue=mobile, **params), zeros
        )
    assert_balance(await api.by_user(other_program_only), balance(other_program_only, main="0"))
    assert_balance(
        await api.by_user(other_program_only, programId=str(A_OTHER)), balance(other_program_only, main="4.75")
    )
    # Org B's default program is its second configured one.
    assert_balance(await api.by_user(points_only, B_BCRYPT), balance(points_only, main="0"))
    assert_balance(
        await api.by_user(points_only, B_BCRYPT, fetchDataForAllPrograms="true"), balance(points_only, main="3")
    )
