"""GET /v2/customers/lookup/customerDetails (API.md, seeds 002/003): the response, built from one
customer's stored state and the org's configuration. Pure: no I/O here.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter

from projections.apply import figures
from projections.events import DELETED, POINTS
from projections.identity import CARD_NUMBER, lookup_form
from projections.money import to_number
from projections.state import NEVER, Balance, Card, CustomerCore, Tier, balance_key, split_balance_key
from service.errors import INVALID_PARAMETER, ApiError
from service.integers import INT32, bounded_int
from service.loyalty import OrgConfig, ProgramConfig, TierConfig

SERVED_EMBEDS = {
    "points",
    "mlp",
    "expiryschedules",
    "expiredpoints",
    "alternatecurrencies",
    "ignorecarddetails",
    "customerstatus",
    "cardloyaltydetails",  # accepted: adds nothing beyond cardDetails
}
OTHER_EMBEDS = {
    "subscriptions",
    "promotionalpoints",
    "segments",
    "usergroup",
    "customerimage",
    "fleetparentdetails",
}
NOT_SERVED = 1002  # warning code: a documented embed this read-model does not serve
UPGRADE_VALUE = {
    "CUMULATIVE_PURCHASES": "cumulativePurchases",
    "CURRENT_POINTS": "mainPoints",
    "LIFETIME_POINTS": "lifetimePoints",
}


def embeds(raw: str | None) -> set[str]:
    names = {e.strip().lower() for e in (raw or "").split(",") if e.strip()}
    unknown = names - SERVED_EMBEDS - OTHER_EMBEDS
    if unknown:
        raise ApiError(INVALID_PARAMETER, f"unknown embed value(s): {', '.join(sorted(unknown))}")
    return names


def gap_days(name: str, raw: str | None, wanted: set[str]) -> None:
    """gapToUpgrade/gapToRenew: int >= 0 and only with embed=mlp. Gaps are computed as of now."""
    if raw is None:
        return
    if bounded_int(raw, INT32) is None:
        raise ApiError(INVALID_PARAMETER, f"{name} must be an integer from 0 to {INT32}")
    if "mlp" not in wanted:
        raise ApiError(INVALID_PARAMETER, f"{name} needs embed=mlp")


def details_body(customer: CustomerCore, org: OrgConfig, wanted: set[str], now: datetime | None = None) -> dict:
    profiles = sorted(customer.profiles.values(), key=attrgetter("seq"))
    programs = [_standing(customer, program) for program in org.programs]
    default = next(p for p in programs if p.program.programId == org.defaultProgramId)
    body = {
        "id": customer.customerId,
        "profiles": [_profile(p, customer) for p in profiles],
        "loyaltyInfo": _loyalty_info(default, profiles),
        "segments": {},
        "extendedFields": _merged_extended_fields(profiles),
    }
    if "ignorecarddetails" not in wanted:
        body["cardDetails"] = _cards(customer, profiles)
    if "points" in wanted:
        body["pointsSummary"] = _points_summary(default)
    if "mlp" in wanted:
        body["loyaltyProgramDetails"] = [_program_details(p) for p in programs]
    if "expiryschedules" in wanted:
        body["expirySchedules"] = _expiry_schedules(customer, org, now or datetime.now(UTC))
    if "expiredpoints" in wanted:
        body["expiredPoints"] = _expired_points(customer, org)
    if "alternatecurrencies" in wanted:
        body["alternateCurrencyDetails"] = _alternate_currencies(customer, org)
    if "customerstatus" in wanted:
        body["customerStatus"] = _customer_status(customer)
    body["warnings"] = [
        {"status": False, "code": NOT_SERVED, "message": f"embed {name} is not served by this read-model"}
        for name in sorted(wanted & OTHER_EMBEDS)
    ]
    return body


def _loyalty_info(default: "_Standing", profiles) -> dict:
    return {
        "loyaltyType": "loyalty",
        "lifetimePurchases": to_number(default.figures["cumulativePurchases"]),
        "attributionV2": {
            "createDate": min((p.createdAt for p in profiles), default=None),
            "modifiedDate": max((p.modifiedAt for p in profiles), default=None),
            "createdFromSource": min(profiles, key=lambda p: p.createdAt).source.lower() if profiles else None,
        },
    }


def _customer_status(customer: CustomerCore) -> dict:
    status = customer.status
    if status:
        return {"label": status.label, "reason": status.reason, "lastUpdated": status.since}
    return {"label": "ACTIVE", "reason": "", "lastUpdated": None}


def _profile(profile, customer: CustomerCore) -> dict:
    indexed = [_annotated(i, customer) for i in profile.identifiers if lookup_form(i["type"], i["value"])]
    customer_id = customer.customerId
    return {
        "firstName": profile.firstName,
        "lastName": profile.lastName,
        "attribution": {"createDate": profile.createdAt, "modifiedDate": profile.modifiedAt},
        "fields": {},
        "allFields": {},
        "identifiers": indexed,
        "identifiersAll": profile.identifiers,
        "commChannels": profile.commChannels,
        "source": profile.source,
        "userId": customer_id,
        "accountId": profile.accountId,
        "conflictingProfileList": [],
        "autoUpdateTime": profile.modifiedAt,
    }


def _merged_extended_fields(profiles) -> dict:
    merged = {}
    for profile in profiles:  # in the order of their last change: the latest event wins per field
        merged.update(profile.extendedFields)
    return merged


def _annotated(identifier: dict, customer: CustomerCore) -> dict:
    """A cardnumber identifier whose card is known carries its seriesId and statusLabel."""
    card = customer.cards.get(identifier["value"]) if identifier["type"].lower() == CARD_NUMBER else None
    return {**identifier, "seriesId": card.seriesId, "statusLabel": card.statusLabel} if card else identifier


def _cards(customer: CustomerCore, profiles) -> list[dict]:
    """The customer's cards but DELETED ones, then each cardnumber identifier of a profile with no card
    event (all its fields unknown but the number; ACTIVE)."""
    listed = dict.fromkeys(i["value"] for p in profiles for i in p.identifiers if i["type"].lower() == CARD_NUMBER)
    cards = [_card(customer, number, card) for number, card in customer.cards.items() if card.statusLabel != DELETED]
    return cards + [_card(customer, number, None) for number in listed if number not in customer.cards]


def _card(customer: CustomerCore, number: str, card: Card | None) -> dict:
    label = card.statusLabel if card else "ACTIVE"
    return {
        "cardNumber": number,
        "type": card.type if card else None,
        "seriesId": card.seriesId if card else None,
        "seriesCode": card.seriesCode if card else None,
        "orgId": customer.orgId,
        "entityId": customer.customerId,
        "customerId": customer.customerId,  # as Capillary's answers also carry it
        "createdOn": card.createdOn if card else None,
        "expiryDate": card.expiresAt if card else None,
        "customFields": card.customFields if card else None,
        "statusInfo": {
            "label": label,
            "status": label,
            "isActive": label == "ACTIVE",
            "reason": card.statusReason if card else None,
            "createdOn": card.statusSince if card else None,
            "autoUpdateTime": None,
        },
    }


def _balance(customer: CustomerCore, program_id: int, currency: str = POINTS) -> Balance:
    return customer.balances.get(balance_key(program_id, currency)) or Balance()


@dataclass(frozen=True, slots=True)
class _Standing:
    """A customer in one program: its figures, its tier (without tier.changed: the lowest configured) and
    the next configured tier, worked out once per response."""

    program: ProgramConfig
    figures: dict[str, int]
    current: Tier | None
    following: TierConfig | None
    slab: dict  # the slab fields of pointsSummary and loyaltyProgramDetails


def _standing(customer: CustomerCore, program: ProgramConfig) -> _Standing:
    current = customer.tiers.get(str(program.programId))
    if current is None and program.tiers:
        lowest = program.tiers[0]
        current = Tier(serial=lowest.serial, name=lowest.name, description=lowest.description)
    following = next((t for t in program.tiers if current and t.serial > current.serial), None)
    slab = {
        "currentSlab": current.name if current else "",
        "currentSlabDescription": (current.description or "") if current else "",
        "slabSNo": current.serial if current else -1,
        "slabExpiryDate": current.expiryDate if current else None,
        "nextSlab": following.name if following else "",
        "nextSlabSerialNumber": following.serial if following else -1,
        "nextSlabDescription": following.description if following else "",
    }
    return _Standing(program, figures(_balance(customer, program.programId)), current, following, slab)


def _points_summary(default: _Standing) -> dict:
    f, slab = default.figures, default.slab
    return {
        "adjusted": to_number(f["adjusted"]),
        "cumulativePurchases": to_number(f["cumulativePurchases"]),
        "expired": to_number(f["expired"]),
        "lifetimePoints": to_number(f["lifetimePoints"]),
        "loyaltyPoints": to_number(f["mainPoints"]),
        "redeemed": to_number(f["redeemed"]),
        "returned": to_number(f["returned"]),
        **{
            k: slab[k]
            for k in (
                "currentSlab",
                "nextSlab",
                "nextSlabDescription",
                "nextSlabSerialNumber",
                "slabExpiryDate",
                "slabSNo",
            )
        },
    }


def _program_details(standing: _Standing) -> dict:
    program, f, current, following = standing.program, standing.figures, standing.current, standing.following
    details = {
        "redeemed": to_number(f["redeemed"]),
        "expired": to_number(f["expired"]),
        "returned": to_number(f["returned"]),
        "adjusted": to_number(f["adjusted"]),
        "lifetimePoints": to_number(f["lifetimePoints"]),
        "loyaltyPoints": to_number(f["mainPoints"]),
        "cumulativePurchases": to_number(f["cumulativePurchases"]),
        "loyaltyId": -1,
        **standing.slab,
        "programId": program.programId,
        "delayedPoints": to_number(f["promisedPoints"]),
        "delayedReturnedPoints": to_number(f["delayedReturnedPoints"]),
        "delayedExpiredPoints": to_number(f["delayedExpiredPoints"]),
        "totalAvailablePoints": to_number(f["mainPoints"]),
        "totalReturnedPoints": to_number(f["totalReturnedPoints"]),
        "linkedPartnerPrograms": [],
        "programTitle": program.title,
        "programDescription": program.description,
        "programPointsToCurrencyRatio": program.pointsToCurrencyRatio,
        "upgradeStrategies": [],
    }
    if following and following.upgradeBasedOn:
        details["upgradeStrategies"] = [_upgrade_strategy(following, current, f)]
    if current and program.tiers and current.serial > program.tiers[0].serial:
        details["gapToRenewSummary"] = [_renewal(program, current, f)]
    return details


def _upgrade_strategy(following: TierConfig, current: Tier | None, f: dict[str, int]) -> dict:
    """What reaching the next tier takes, by its upgrade rule."""
    value, gap = _gap(following, f)
    return {
        "upgradeBasedOn": following.upgradeBasedOn,
        "upgradeThreshold": to_number(following.threshold),
        "customerUpgradeEntityValues": {
            "currentValue": value,
            "gapToUpgrade": gap,
            "valueValidUpto": (current.expiryDate or "")[:10] if current else "",
        },
    }


def _gap(tier: TierConfig, f: dict[str, int]) -> tuple[float, float]:
    """(current value, what is missing to the tier's threshold, never below 0), exact to 3 decimals."""
    value = f[UPGRADE_VALUE[tier.upgradeBasedOn]]
    return to_number(value), to_number(max(0, tier.threshold - value))


def _renewal(program: ProgramConfig, current: Tier, f: dict[str, int]) -> dict:
    """Renewing a tier takes what reaching it took: its own upgrade rule, if it has one."""
    rule = next((t for t in program.tiers if t.serial == current.serial and t.upgradeBasedOn), None)
    strategies = []
    if rule:
        value, gap = _gap(rule, f)
        strategies.append(
            {
                "renewBasedOn": rule.upgradeBasedOn,
                "renewThreshold": to_number(rule.threshold),
                "customerRenewEntityValue": value,
                "customerGapToRenewValue": gap,
            }
        )
    return {
        "tierExpiryDate": (current.expiryDate or "")[:10],
        "renewConfirmed": bool(strategies) and strategies[0]["customerGapToRenewValue"] == 0,
        "renewStrategies": strategies,
    }


def _expiry_schedules(customer: CustomerCore, org: OrgConfig, now: datetime) -> list[dict]:
    today = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    schedules = []
    for program in org.programs:
        buckets = _balance(customer, program.programId).buckets
        for expiry in sorted(b for b in buckets if b != NEVER and b[:19] > today):
            schedules.append(
                {
                    "points": to_number(buckets[expiry]),
                    "expiryDate": expiry,
                    "programId": program.programId,
                    "pointsType": "REGULAR",
                }
            )
    return schedules


def _expired_points(customer: CustomerCore, org: OrgConfig) -> list[dict]:
    return [
        {"points": to_number(points), "expiredOn": day, "programId": program.programId}
        for program in org.programs
        for day, points in sorted(_balance(customer, program.programId).expiredByDay.items())
    ]


def _alternate_currencies(customer: CustomerCore, org: OrgConfig) -> list[dict]:
    titles = {p.programId: p.title for p in org.programs}
    details = []
    for key in sorted(customer.balances):
        program_id, currency = split_balance_key(key)
        if currency == POINTS or program_id not in titles:
            continue
        f = figures(customer.balances[key])
        details.append(
            {
                "programId": program_id,
                "programName": titles[program_id],
                "alternateCurrencyData": {
                    "name": currency,
                    "earned": to_number(f["mainPoints"]),
                    "lifetimeEarned": to_number(f["lifetimePoints"]),
                    "redeemed": to_number(f["redeemed"]),
                    "expired": to_number(f["expired"]),
                    "returned": to_number(f["returned"]),
                    "delayedEarned": to_number(f["promisedPoints"]),
                    "delayedLifetimeEarned": to_number(f["delayedLifetimePoints"]),
                    "delayedReturned": to_number(f["delayedReturnedPoints"]),
                    "delayedExpired": to_number(f["delayedExpiredPoints"]),
                    "totalAvailable": to_number(f["totalPoints"]),
                    "totalRedeemed": to_number(f["redeemed"]),
                    "totalReturned": to_number(f["totalReturnedPoints"]),
                    "totalExpired": to_number(f["expired"] + f["delayedExpiredPoints"]),
                },
            }
        )
    return details
