"""Identifier resolution (API.md, EVENTS.md): dual eligibility, case rules, profile updates,
sources and accountIds, several claimants of one identifier."""

from tests.e2e.helpers import (
    A_DEFAULT,
    B_BCRYPT,
    B_DEFAULT,
    assert_balance,
    assert_error,
    balance,
    earned,
    new_customer_id,
    new_mobile,
    new_value,
    profile,
)


async def test_dual_eligibility_the_primary_identifier_decides(api):
    a = api.org_a
    first, second = new_customer_id(), new_customer_id()
    m1, m2 = new_mobile(), new_mobile()
    shared = new_value("Shared.Household") + "@Example.COM"  # a secondary identifier of two customers
    ext1 = new_value("EXT-")
    await api.publish(
        profile(a, first, {"mobile": m1, "email": shared, "externalId": ext1}),
        profile(a, second, {"mobile": m2, "email": shared}),
        earned(a, first, A_DEFAULT, "11.5"),
        earned(a, second, A_DEFAULT, "22.25"),
    )
    one, two = balance(first, main="11.5"), balance(second, main="22.25")

    async def look(names, values, **params):
        return await api.lookup(source="INSTORE", identifierName=names, identifierValue=values, **params)

    # the primary alone
    assert_balance(await look("mobile", m1), one)
    assert_balance(await look("mobile", m2), two)
    # the primary among secondaries, in any order
    assert_balance(await look("mobile,email", f"{m1},{shared}"), one)
    assert_balance(await look("email,mobile", f"{shared},{m1}"), one)
    assert_balance(await look("externalId,email,mobile", f"{ext1},{shared},{m1}"), one)
    # the shared email with each one's mobile gives each one
    assert_balance(await look("email,mobile", f"{shared},{m2}"), two)
    assert_balance(await look("mobile,email", f"{m2},{shared.lower()}"), two)
    # the primary decides even when a secondary belongs to someone else
    assert_balance(await look("externalId,mobile", f"{ext1},{m2}"), two)
    # identifier types are case-insensitive, the primary too
    assert_balance(await look("MOBILE", m1), one)
    assert_balance(await look("EMAIL,Mobile", f"{shared},{m2}"), two)
    assert_balance(await look("ExternalID,mObIlE", f"{ext1},{m1}"), one)
    # only secondaries: 8015, even though they match
    assert_error(await look("email", shared), 8015, 404)
    assert_error(await look("externalId", ext1), 8015, 404)
    assert_error(await look("email,externalId", f"{shared},{ext1}"), 8015, 404)
    # a primary that matches nobody, with secondaries that do
    assert_error(await look("mobile,email,externalId", f"{new_mobile()},{shared},{ext1}"), 8015, 404)
    # source=ALL and fetchDataForAllPrograms go with dual eligibility too
    assert_balance(
        await api.lookup(
            source="ALL",
            identifierName="email,mobile",
            identifierValue=f"{shared},{m1}",
            fetchDataForAllPrograms="true",
        ),
        one,
    )


async def test_single_identifier_matching_rules(api):
    """Type case-insensitive, value exact, except email which is case-insensitive (EVENTS.md)."""
    b = api.org_b
    customer = new_customer_id()
    mobile, email = new_mobile(), new_value("Tom.Sawyer") + "@Example.com"
    ext, card = new_value("AbC-"), new_value("mtest")
    await api.publish(
        profile(b, customer, {"mobile": mobile, "email": email, "externalId": ext, "cardnumber": card}),
        earned(b, customer, B_DEFAULT, "7"),
    )
    found = balance(customer, main="7")

    async def look(name, value):
        return await api.lookup(B_BCRYPT, source="INSTORE", identifierName=name, identifierValue=value)

    for name, value in (
        ("mobile", mobile),
        ("MOBILE", mobile),
        ("email", email),
        ("Email", email.lower()),
        ("EMAIL", email.upper()),
        ("externalId", ext),
        ("EXTERNALID", ext),
        ("externalid", ext),
        ("cardnumber", card),
        ("CardNumber", card),
    ):
        assert_balance(await look(name, value), found)
    for name, value in (
        ("externalId", ext.lower()),
        ("externalId", ext.upper()),
        ("cardnumber", card.upper()),
        ("mobile", mobile + "0"),
        ("email", "x" + email),
        ("mobile", email),
        ("email", mobile),
    ):
        assert_error(await look(name, value), 8015, 404)


async def test_identifiers_follow_profile_updates(api):
    a, b = api.org_a, api.org_b
    customer, dual_customer = new_customer_id(), new_customer_id()
    old_mobile, new_mobile_, old_email, new_email = (
        new_mobile(),
        new_mobile(),
        new_value("old") + "@example.com",
        new_value("new") + "@example.com",
    )
    dual_old, dual_new = new_mobile(), new_mobile()
    await api.publish(
        profile(b, customer, {"mobile": old_mobile, "email": old_email}),
        earned(b, customer, B_DEFAULT, "5"),
        profile(a, dual_customer, {"mobile": dual_old, "email": old_email}),
        earned(a, dual_customer, A_DEFAULT, "6"),
    )

    async def look_b(name, value):
        return await api.lookup(B_BCRYPT, source="INSTORE", identifierName=name, identifierValue=value)

    async def look_a(name, value):
        return await api.lookup(source="INSTORE", identifierName=name, identifierValue=value)

    assert_balance(await look_b("mobile", old_mobile), balance(customer, main="5"))
    assert_balance(await look_b("email", old_email), balance(customer, main="5"))
    assert_balance(await look_a("mobile", dual_old), balance(dual_customer, main="6"))

    await api.publish(
        profile(b, customer, {"mobile": new_mobile_, "email": new_email}, event_type="customer.updated"),
        profile(a, dual_customer, {"mobile": dual_new, "email": old_email}, event_type="customer.updated"),
    )
    assert_error(await look_b("mobile", old_mobile), 8015, 404)
    assert_error(await look_b("email", old_email), 8015, 404)
    assert_balance(await look_b("mobile", new_mobile_), balance(customer, main="5"))
    assert_balance(await look_b("email", new_email), balance(customer, main="5"))
    assert_error(await look_a("mobile", dual_old), 8015, 404)
    assert_error(await look_a("mobile,email", f"{dual_old},{old_email}"), 8015, 404)
    assert_balance(await look_a("email,mobile", f"{old_email},{dual_new}"), balance(dual_customer, main="6"))

    # An update that drops every identifier: the customer still exists by userId, resolves by nothing.
    await api.publish(profile(b, customer, {}, event_type="customer.updated"))
    assert_error(await look_b("mobile", new_mobile_), 8015, 404)
    assert_error(await look_b("email", new_email), 8015, 404)
    assert_balance(await api.by_user(customer, B_BCRYPT), balance(customer, main="5"))


async def test_sources_and_account_ids(api):
    b = api.org_b
    wechat_customer, instore_customer = new_customer_id(), new_customer_id()
    wechat_mobile, wechat_id, instore_mobile = new_mobile(), new_value("wx_"), new_mobile()
    await api.publish(
        profile(
            b, wechat_customer, {"mobile": wechat_mobile, "wechat": wechat_id}, source="WECHAT", account="wx-account-1"
        ),
        earned(b, wechat_customer, B_DEFAULT, "3.5"),
        profile(b, instore_customer, {"mobile": instore_mobile}, source="INSTORE"),
        earned(b, instore_customer, B_DEFAULT, "4.5"),
    )
    on_wechat, in_store = balance(wechat_customer, main="3.5"), balance(instore_customer, main="4.5")

    async def look(name, value, **params):
        return await api.lookup(B_BCRYPT, identifierName=name, identifierValue=value, **params)

    # WECHAT with its accountId, source case-insensitive
    assert_balance(await look("mobile", wechat_mobile, source="WECHAT", accountId="wx-account-1"), on_wechat)
    assert_balance(await look("wechat", wechat_id, source="wechat", accountId="wx-account-1"), on_wechat)
    # another accountId, no accountId, another source: not found
    assert_error(await look("mobile", wechat_mobile, source="WECHAT", accountId="wx-account-2"), 8015, 404)
    assert_error(await look("mobile", wechat_mobile, source="WECHAT"), 8015, 404)
    assert_error(await look("mobile", wechat_mobile, source="MARTJACK", accountId="wx-account-1"), 8015, 404)
    assert_error(await look("mobile", wechat_mobile, source="INSTORE"), 8015, 404)
    assert_error(await look("mobile", wechat_mobile, source="INSTORE", accountId="wx-account-1"), 8015, 404)
    # ALL searches every source, without accountId
    assert_balance(await look("mobile", wechat_mobile, source="ALL"), on_wechat)
    assert_balance(await look("wechat", wechat_id, source="all"), on_wechat)
    assert_balance(await look("mobile", instore_mobile, source="ALL"), in_store)
    # INSTORE ignores accountId
    assert_balance(await look("mobile", instore_mobile, source="INSTORE"), in_store)
    assert_balance(await look("mobile", instore_mobile, source="INSTORE", accountId="anything"), in_store)
    assert_error(await look("mobile", instore_mobile, source="WECHAT", accountId="wx-account-1"), 8015, 404)


async def test_a_profile_on_a_new_source_is_found_by_source_all(api):
    """source=ALL must not miss a source that appeared after an earlier ALL lookup of the org."""
    b = api.org_b
    first, later = new_customer_id(), new_customer_id()
    m1, m2 = new_mobile(), new_mobile()
    await api.publish(profile(b, first, {"mobile": m1}))
    assert_balance(
        await api.lookup(B_BCRYPT, source="ALL", identifierName="mobile", identifierValue=m1), balance(first, main="0")
    )
    await api.publish(profile(b, later, {"mobile": m2}, source="MAPP_SDK", account="app-1"))
    assert_balance(
        await api.lookup(B_BCRYPT, source="ALL", identifierName="mobile", identifierValue=m2), balance(later, main="0")
    )


async def test_the_latest_claim_resolves(api):
    """Several customers claiming one identifier: the latest claim resolves; the earlier claimant keeps it
    in its profile (it can still be read by userId)."""
    b = api.org_b
    earlier, latest = new_customer_id(), new_customer_id()
    mobile = new_mobile()
    await api.publish(
        profile(b, earlier, {"mobile": mobile}, occurred_at="2026-01-08T10:00:00Z"),
        profile(b, latest, {"mobile": mobile}, occurred_at="2026-01-08T11:00:00Z"),
    )
    assert_balance(
        await api.lookup(B_BCRYPT, source="INSTORE", identifierName="mobile", identifierValue=mobile),
        balance(latest, main="0"),
    )
    assert_balance(await api.by_user(earlier, B_BCRYPT), balance(earlier, main="0"))


async def test_the_latest_claim_in_log_order_resolves_when_timestamps_are_equal(api):
    """EVENTS.md: "the latest claim (in log order) resolves". Both claims on one partition, same occurredAt
    (second precision is common upstream): the one later in the log must win, whatever the customer ids."""
    b = api.org_b
    low, high = new_customer_id(), new_customer_id()
    mobile = new_mobile()
    same_time = "2026-01-08T10:03:21Z"
    await api.publish(
        profile(b, high, {"mobile": mobile}, occurred_at=same_time),
        profile(b, low, {"mobile": mobile}, occurred_at=same_time),  # the latest claim in log order
    )
    assert_balance(
        await api.lookup(B_BCRYPT, source="INSTORE", identifierName="mobile", identifierValue=mobile),
        balance(low, main="0"),
    )


async def test_the_latest_claim_in_log_order_resolves_over_occurred_at(api):
    """EVENTS.md: "the latest claim (in log order) resolves" -- log order, not the upstream timestamp."""
    b = api.org_b
    first, second = new_customer_id(), new_customer_id()
    mobile = new_mobile()
    await api.publish(
        profile(b, first, {"mobile": mobile}, occurred_at="2026-01-08T12:00:00Z"),
        profile(b, second, {"mobile": mobile}, occurred_at="2026-01-08T11:59:59Z"),  # later in the log
    )
    assert_balance(
        await api.lookup(B_BCRYPT, source="INSTORE", identifierName="mobile", identifierValue=mobile),
        balance(second, main="0"),
    )
