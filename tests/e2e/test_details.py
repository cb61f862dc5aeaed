"""GET /v2/customers/lookup/customerDetails through the real stack, every figure computed by hand."""

import pytest

from service.loyalty import LoyaltyConfig
from tests.e2e.helpers import (
    A_BCRYPT,
    assert_error,
    new_customer_id,
    new_mobile,
    new_org_id,
    new_value,
    running_app,
)
from tests.support import event

P1, P2, P3 = 7301, 7302, 7303


@pytest.fixture
async def details(stack, password_hashes):
    org = new_org_id()
    config = LoyaltyConfig.model_validate(
        {
            "orgs": [
                {
                    "orgId": org,
                    "dualEligibility": True,
                    "primaryIdentifier": "mobile",
                    "defaultProgramId": P1,
                    "programs": [
                        {
                            "programId": P1,
                            "title": "Main",
                            "description": "Default",
                            "pointsToCurrencyRatio": 0.5,
                            "tiers": [
                                {"serial": 1, "name": "Bronze", "description": "Tier 1"},
                                {
                                    "serial": 2,
                                    "name": "Silver",
                                    "description": "Tier 2",
                                    "upgradeBasedOn": "CUMULATIVE_PURCHASES",
                                    "upgradeThreshold": 5000,
                                },
                                {
                                    "serial": 3,
                                    "name": "Gold",
                                    "description": "Tier 3",
                                    "upgradeBasedOn": "CURRENT_POINTS",
                                    "upgradeThreshold": 3000,
                                },
                            ],
                        },
                        {
                            "programId": P2,
                            "title": "Partner",
                            "tiers": [
                                {"serial": 1, "name": "Blue"},
                                {
                                    "serial": 2,
                                    "name": "Red",
                                    "description": "Tier R",
                                    "upgradeBasedOn": "LIFETIME_POINTS",
                                    "upgradeThreshold": 1000,
                                },
                            ],
                        },
                        {"programId": P3, "title": "Untiered"},
                    ],
                    "clients": [{"username": A_BCRYPT.username, "passwordHash": password_hashes[A_BCRYPT.username]}],
                }
            ]
        }
    )
    customer, mobile = new_customer_id(), new_mobile()
    card1, card2, wechat = new_value("CARD"), new_value("CARD"), new_value("wx")

    def ev(event_type, data, at="2026-01-05T10:00:00Z"):
        return event(event_type, data, customer_id=customer, org_id=org, occurred_at=at)

    def points(event_type, program, amount, at="2026-01-05T10:00:00Z", **data):
        return ev(event_type, {"programId": program, "points": amount, **data}, at)

    instore = [
        {"type": "mobile", "value": mobile},
        {"type": "email", "value": "Tom@Example.com"},
        {"type": "cardnumber", "value": card1},
        {"type": "externalId", "value": "X1"},
    ]
    await stack.publish(
        ev(
            "customer.registered",
            {
                "source": "INSTORE",
                "firstName": "Tom",
                "lastName": "Sawyer",
                "identifiers": instore,
                "extendedFields": {"city": "Mumbai", "gender": "Male"},
                "commChannels": [{"type": "mobile", "value": mobile, "primary": True}],
            },
            "2026-01-01T10:00:00Z",
        ),
        ev(
            "customer.registered",
            {
                "source": "WECHAT",
                "accountId": "wx1",
                "firstName": "Tom",
                "identifiers": [{"type": "wechat", "value": wechat}, {"type": "cardnumber", "value": card2}],
                "extendedFields": {"city": "Pune"},
            },
            "2026-01-02T10:00:00Z",
        ),
        ev(
            "customer.updated",
            {
                "source": "INSTORE",
                "firstName": "Tom",
                "lastName": "Sawyer",
                "identifiers": instore + [{"type": "loyaltyTag", "value": "T9"}],
                "extendedFields": {"gender": "Female"},
            },
            "2026-01-03T10:00:00Z",
        ),
        points("points.earned", P1, 1000, category="MAIN", expiresAt="2099-01-31", purchaseAmount="4000.5"),
        points("points.earned", P1, 500, category="MAIN", expiresAt="2098-06-30", purchaseAmount=1500),
        points("points.earned", P1, 200, category="MAIN"),
        points("points.earned", P1, 300, category="DELAYED_ACCRUAL"),
        points("points.earned", P1, 150, category="EXTERNAL_TRIGGER"),
        points("points.redeemed", P1, 600),
        points("points.promoted", P1, 100, fromCategory="DELAYED_ACCRUAL", expiresAt="2099-12-31T23:59:59Z"),
        points("points.expired", P1, 50, category="DELAYED_ACCRUAL"),
        points("points.returned", P1, 100, category="MAIN", purchaseAmount="500.5"),
        points("points.adjusted", P1, "-25.5"),
        points("points.adjusted", P1, 10),
        points("points.expired", P1, 30, "2026-02-01T03:00:00Z", category="MAIN"),
        points("points.returned", P1, 20, category="EXTERNAL_TRIGGER"),
        ev(
            "tier.changed",
            {
                "programId": P1,
                "slabSerial": 2,
                "slabName": "Silver",
                "slabDescription": "Tier 2",
                "slabExpiryDate": "2027-03-31T23:59:59Z",
            },
        ),
        points("points.earned", P2, 700, category="MAIN"),
        points("points.earned", P2, 40, category="MAIN", currency="Stars"),
        points("points.redeemed", P2, 15, currency="Stars"),
        points("points.earned", P2, 5, category="DELAYED_ACCRUAL", currency="Stars"),
    )
    async with running_app(stack.settings, config) as (_app, client):

        async def get(**params):
            query = {"source": "INSTORE", "identifierName": "mobile", "identifierValue": mobile, **params}
            return await client.get("/v2/customers/lookup/customerDetails", params=query, headers=A_BCRYPT.headers)

        yield get, customer, mobile, (card1, card2, wechat)


async def test_the_base_response(details):
    get, customer, mobile, (card1, card2, wechat) = details
    body = (await get()).json()
    assert body["id"] == customer
    assert body["warnings"] == []
    profiles = {p["source"]: p for p in body["profiles"]}
    instore, chat = profiles["INSTORE"], profiles["WECHAT"]
    assert instore["attribution"] == {"createDate": "2026-01-01T10:00:00Z", "modifiedDate": "2026-01-03T10:00:00Z"}
    assert chat["attribution"] == {"createDate": "2026-01-02T10:00:00Z", "modifiedDate": "2026-01-02T10:00:00Z"}
    assert (instore["accountId"], chat["accountId"]) == ("", "wx1")
    assert instore["userId"] == chat["userId"] == customer
    assert [i["type"] for i in instore["identifiers"]] == ["mobile", "email", "cardnumber", "externalId"]
    assert instore["identifiersAll"][-1] == {"type": "loyaltyTag", "value": "T9"}
    assert instore["commChannels"] == []  # the update replaced the profile's channels
    assert (instore["firstName"], instore["lastName"], instore["fields"], instore["allFields"]) == (
        "Tom",
        "Sawyer",
        {},
        {},
    )
    assert body["extendedFields"] == {"city": "Pune", "gender": "Female"}  # the latest event wins per field
    assert body["segments"] == {}
    assert body["loyaltyInfo"] == {
        "loyaltyType": "loyalty",
        "lifetimePurchases": 5000.0,  # 4000.5 + 1500 - 500.5 in the default program
        "attributionV2": {
            "createDate": "2026-01-01T10:00:00Z",
            "modifiedDate": "2026-01-03T10:00:00Z",
            "createdFromSource": "instore",
        },
    }
    cards = {c["cardNumber"]: c for c in body["cardDetails"]}
    assert set(cards) == {card1, card2}
    assert cards[card1]["statusInfo"]["status"] == "ACTIVE" and cards[card1]["customerId"] == customer
    for embed_only in (
        "pointsSummary",
        "loyaltyProgramDetails",
        "expirySchedules",
        "expiredPoints",
        "alternateCurrencyDetails",
    ):
        assert embed_only not in body


async def test_embed_points_is_the_default_programs_summary(details):
    get, *_ = details
    body = (await get(embed="points")).json()
    assert body["pointsSummary"] == {
        "adjusted": -15.5,
        "cumulativePurchases": 5000.0,
        "expired": 30.0,
        "lifetimePoints": 1800.0,
        "loyaltyPoints": 1054.5,
        "redeemed": 600.0,
        "returned": 100.0,
        "currentSlab": "Silver",
        "nextSlab": "Gold",
        "nextSlabDescription": "Tier 3",
        "nextSlabSerialNumber": 3,
        "slabExpiryDate": "2027-03-31T23:59:59Z",
        "slabSNo": 2,
    }


async def test_embed_mlp_lists_every_program_with_tiers_and_gaps(details):
    get, *_ = details
    programs = {p["programId"]: p for p in (await get(embed="MLP", gapToUpgrade="0")).json()["loyaltyProgramDetails"]}
    assert list(programs) == [P1, P2, P3]
    main = programs[P1]
    assert {
        k: main[k]
        for k in (
            "redeemed",
            "expired",
            "returned",
            "adjusted",
            "lifetimePoints",
            "loyaltyPoints",
            "cumulativePurchases",
            "delayedPoints",
            "delayedReturnedPoints",
            "delayedExpiredPoints",
            "totalAvailablePoints",
            "totalReturnedPoints",
        )
    } == {
        "redeemed": 600.0,
        "expired": 30.0,
        "returned": 100.0,
        "adjusted": -15.5,
        "lifetimePoints": 1800.0,
        "loyaltyPoints": 1054.5,
        "cumulativePurchases": 5000.0,
        "delayedPoints": 280.0,
        "delayedReturnedPoints": 20.0,
        "delayedExpiredPoints": 50.0,
        "totalAvailablePoints": 1054.5,
        "totalReturnedPoints": 120.0,
    }
    assert (main["currentSlab"], main["currentSlabDescription"], main["slabSNo"], main["slabExpiryDate"]) == (
        "Silver",
        "Tier 2",
        2,
        "2027-03-31T23:59:59Z",
    )
    assert (main["nextSlab"], main["nextSlabSerialNumber"], main["nextSlabDescription"]) == ("Gold", 3, "Tier 3")
    assert (main["programTitle"], main["programDescription"], main["programPointsToCurrencyRatio"]) == (
        "Main",
        "Default",
        0.5,
    )
    assert main["linkedPartnerPrograms"] == []
    assert main["upgradeStrategies"] == [
        {
            "upgradeBasedOn": "CURRENT_POINTS",
            "upgradeThreshold": 3000.0,
            "customerUpgradeEntityValues": {
                "currentValue": 1054.5,
                "gapToUpgrade": 1945.5,
                "valueValidUpto": "2027-03-31",
            },
        }
    ]
    assert main["gapToRenewSummary"] == [
        {  # Silver is renewed by what reached it: 5000 of purchases
            "tierExpiryDate": "2027-03-31",
            "renewConfirmed": True,
            "renewStrategies": [
                {
                    "renewBasedOn": "CUMULATIVE_PURCHASES",
                    "renewThreshold": 5000.0,
                    "customerRenewEntityValue": 5000.0,
                    "customerGapToRenewValue": 0.0,
                }
            ],
        }
    ]

    partner = programs[P2]  # no tier.changed: the lowest configured tier
    assert (partner["currentSlab"], partner["slabSNo"], partner["nextSlab"], partner["lifetimePoints"]) == (
        "Blue",
        1,
        "Red",
        700.0,
    )
    assert partner["upgradeStrategies"][0]["customerUpgradeEntityValues"]["gapToUpgrade"] == 300.0
    assert "gapToRenewSummary" not in partner  # the base tier

    untiered = programs[P3]
    assert (untiered["currentSlab"], untiered["slabSNo"], untiered["nextSlab"], untiered["nextSlabSerialNumber"]) == (
        "",
        -1,
        "",
        -1,
    )
    assert untiered["loyaltyPoints"] == 0.0 and untiered["upgradeStrategies"] == []


async def test_embed_expiry_schedules_and_expired_points(details):
    get, *_ = details
    body = (await get(embed="expirySchedules,expiredPoints")).json()
    assert body["expirySchedules"] == [  # 2098-06-30 was drained first by the redemption
        {"points": 744.5, "expiryDate": "2099-01-31T23:59:59Z", "programId": P1, "pointsType": "REGULAR"},
        {"points": 100.0, "expiryDate": "2099-12-31T23:59:59Z", "programId": P1, "pointsType": "REGULAR"},
    ]
    assert body["expiredPoints"] == [{"points": 30.0, "expiredOn": "2026-02-01", "programId": P1}]


async def test_embed_alternate_currencies(details):
    get, *_ = details
    assert (await get(embed="alternateCurrencies")).json()["alternateCurrencyDetails"] == [
        {
            "programId": P2,
            "programName": "Partner",
            "alternateCurrencyData": {
                "name": "Stars",
                "earned": 25.0,
                "lifetimeEarned": 40.0,
                "redeemed": 15.0,
                "expired": 0.0,
                "returned": 0.0,
                "delayedEarned": 5.0,
                "delayedLifetimeEarned": 5.0,
                "delayedReturned": 0.0,
                "delayedExpired": 0.0,
                "totalAvailable": 30.0,
                "totalRedeemed": 15.0,
                "totalReturned": 0.0,
                "totalExpired": 0.0,
            },
        }
    ]


async def test_embeds_combine_and_other_documented_ones_warn(details):
    get, *_ = details
    body = (
        await get(embed="points,mlp,expirySchedules,expiredPoints,alternateCurrencies,ignoreCardDetails,subscriptions")
    ).json()
    for section in (
        "pointsSummary",
        "loyaltyProgramDetails",
        "expirySchedules",
        "expiredPoints",
        "alternateCurrencyDetails",
    ):
        assert section in body
    assert "cardDetails" not in body
    assert [w["code"] for w in body["warnings"]] == [1002]
    assert "subscriptions" in body["warnings"][0]["message"]


async def test_sources_and_the_primary_identifier(details):
    get, customer, mobile, (_c1, _c2, wechat) = details
    response = await get(source="ALL", identifierName="wechat,mobile", identifierValue=f"{wechat},{mobile}")
    assert response.json()["id"] == customer  # dual eligibility: the primary (mobile) decides, on any source
    # the mobile is on the INSTORE profile, not on the WECHAT account's
    assert_error(await get(source="WECHAT", accountId="wx1"), 8015, 404)
    assert_error(await get(source="WECHAT"), 8015, 404)  # no accountId
    assert_error(
        await get(source="WECHAT", accountId="wx1", identifierName="wechat", identifierValue=wechat), 8015, 404
    )  # a secondary identifier alone


@pytest.mark.parametrize(
    "params, code, status",
    [
        ({"embed": "points,bogus"}, 400, 400),
        ({"gapToUpgrade": "5"}, 400, 400),  # only with embed=mlp
        ({"embed": "mlp", "gapToRenew": "-1"}, 400, 400),
        ({"embed": "mlp", "gapToUpgrade": "x"}, 400, 400),
        ({"embed": "mlp", "gapToUpgrade": "9" * 5000}, 400, 400),
        ({"embed": "mlp", "gapToRenew": str(2**31)}, 400, 400),
        ({"source": "SHOP"}, 8003, 400),
        ({"identifierName": "shoe"}, 8013, 400),
        ({"identifierValue": ""}, 11013, 400),
        ({"identifierName": "email", "identifierValue": "tom@example.com"}, 8015, 404),  # no primary identifier
        ({"identifierValue": "0000"}, 8015, 404),
        ({"source": "WECHAT", "waitMs": "abc"}, 400, 400),  # a parameter before the accountId
        ({"identifierName": "email", "identifierValue": "tom@example.com", "waitMs": "-1"}, 400, 400),
    ],
)
async def test_errors_as_in_the_balance_endpoints(details, params, code, status):
    get, *_ = details
    assert_error(await get(**params), code, status)


async def test_credentials_are_checked_first(details, stack):
    get, *_ = details
    response = await get(source="SHOP")
    assert response.status_code == 400
    async with running_app(stack.settings, LoyaltyConfig(orgs=[])) as (_app, client):
        response = await client.get("/v2/customers/lookup/customerDetails", params={"source": "SHOP"})
        assert_error(response, 401, 401)
