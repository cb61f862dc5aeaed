"""Two orgs with the same userIds and identifiers never see each other (API.md, CONFIG.md)."""

from tests.e2e.helpers import (
    A_ARGON2,
    A_BCRYPT,
    A_DEFAULT,
    B_BCRYPT,
    B_DEFAULT,
    assert_balance,
    assert_error,
    balance,
    earned,
    new_customer_id,
    new_mobile,
    new_org_id,
    profile,
)


async def test_two_orgs_with_the_same_user_id_and_identifiers_never_see_each_other(api):
    a, b = api.org_a, api.org_b
    shared_id, mobile, email = new_customer_id(), new_mobile(), "same.person@example.com"
    only_b, only_b_mobile = new_customer_id(), new_mobile()
    unconfigured_org, stranger, stranger_mobile = new_org_id(), new_customer_id(), new_mobile()
    await api.publish(
        profile(a, shared_id, {"mobile": mobile, "email": email}),
        earned(a, shared_id, A_DEFAULT, "10.125"),
        profile(b, shared_id, {"mobile": mobile, "email": email}),
        earned(b, shared_id, B_DEFAULT, "20.5"),
        earned(b, shared_id, A_DEFAULT, "999"),  # org B's events in a program id that org A configures
        profile(b, only_b, {"mobile": only_b_mobile}),
        earned(b, only_b, B_DEFAULT, "7"),
        profile(unconfigured_org, stranger, {"mobile": stranger_mobile}),  # an org nobody may call for
        earned(unconfigured_org, stranger, A_DEFAULT, "1"),
    )
    by_mobile = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile}

    for caller in (A_BCRYPT, A_ARGON2):
        for params in ({}, {"fetchDataForAllPrograms": "true"}):
            assert_balance(await api.by_user(shared_id, caller, **params), balance(shared_id, main="10.125"))
            assert_balance(await api.lookup(caller, **by_mobile, **params), balance(shared_id, main="10.125"))
        assert_balance(
            await api.lookup(caller, source="ALL", identifierName="email,mobile", identifierValue=f"{email},{mobile}"),
            balance(shared_id, main="10.125"),
        )
    assert_balance(await api.by_user(shared_id, B_BCRYPT), balance(shared_id, main="20.5"))
    assert_balance(await api.lookup(B_BCRYPT, **by_mobile), balance(shared_id, main="20.5"))
    assert_balance(
        await api.lookup(B_BCRYPT, source="ALL", identifierName="email", identifierValue=email),
        balance(shared_id, main="20.5"),
    )
    assert_balance(
        await api.by_user(shared_id, B_BCRYPT, fetchDataForAllPrograms="true"), balance(shared_id, main="20.5")
    )

    # A customer of the other org is "not found", answered exactly as a customer nobody has.
    nobody, nobody_mobile = new_customer_id(), new_mobile()
    for caller, foreign, foreign_mobile in (
        (A_BCRYPT, only_b, only_b_mobile),
        (A_ARGON2, only_b, only_b_mobile),
        (A_BCRYPT, stranger, stranger_mobile),
        (B_BCRYPT, stranger, stranger_mobile),
    ):
        unknown = await api.by_user(nobody, caller)
        assert_error(unknown, 8015, 404)
        response = await api.by_user(foreign, caller)
        assert_error(response, 8015, 404)
        assert response.content == unknown.content
        for source in ("INSTORE", "ALL"):
            unknown = await api.lookup(caller, source=source, identifierName="mobile", identifierValue=nobody_mobile)
            response = await api.lookup(caller, source=source, identifierName="mobile", identifierValue=foreign_mobile)
            assert_error(response, 8015, 404)
            assert response.content == unknown.content
