"""The balance arithmetic of EVENTS.md: `apply(state, event)`, a pure fold, and the derived figures.

`apply` and `fold` never change their input; `apply_in_place` is the same
step on a customer the caller owns (the batch planner folds a fresh copy).
Each points event also makes a ledger entry (projections/ledger.py): the
newest `ledger_entries` of them are kept (0: none).
"""

import copy
from functools import singledispatch

from projections.events import (
    AdjustedData,
    CardData,
    Category,
    EarnedData,
    Event,
    ExpiredData,
    MergedData,
    ProfileData,
    PromotedData,
    RedeemedData,
    ReturnedData,
    StatusData,
    TierData,
    UnmergedData,
)
from projections.ledger import LEDGER_ENTRIES, new_entry
from projections.state import NEVER, Balance, Card, Customer, Profile, Status, Tier, balance_key, profile_key

# What a points event did, for its ledger entry: its balance, the category changed, the signed change in
# thousandths and, for a promotion, the promised category it came from.
Change = tuple[Balance, Category | None, int, Category | None]


def apply(state: Customer | None, event: Event, ledger_entries: int = LEDGER_ENTRIES) -> Customer:
    return fold(state, [event], ledger_entries)


def fold(state: Customer | None, events: list[Event], ledger_entries: int = LEDGER_ENTRIES) -> Customer:
    customer = copy.deepcopy(state) if state else None
    for event in events:
        customer = apply_in_place(customer, event, ledger_entries)
    assert customer is not None, "fold needs a state or at least one event"
    return customer


def apply_in_place(customer: Customer | None, event: Event, ledger_entries: int = LEDGER_ENTRIES) -> Customer:
    if customer is None:
        customer = Customer(orgId=event.orgId, customerId=event.customerId)
    elif not customer.ledgerSeq and customer.balances:
        customer.ledgerSeq = 1  # stored before the ledger existed: its earlier points events are not counted
    change = _apply.dispatch(type(event.data))(event.data, customer, event)  # (the wrapper's lookups, once)
    if change is not None:
        _record(customer, event, change, ledger_entries)
    return customer


def _record(customer: Customer, event: Event, change: Change, ledger_entries: int) -> None:
    """The event's ledger entry, and the oldest dropped beyond `ledger_entries` (0: the ledger is off)."""
    customer.ledgerSeq += 1
    ledger = customer.ledger
    if not ledger_entries:
        if ledger:
            customer.ledger = []  # kept entries must stay the newest, consecutive
        return
    balance, category, points, from_category = change
    ledger.append(new_entry(event, category, points, from_category, (balance.main, balance.promised)))
    if len(ledger) > ledger_entries:
        del ledger[: len(ledger) - ledger_entries]


@singledispatch
def _apply(data, customer: Customer, event: Event) -> Change | None:
    raise TypeError(f"no projection for {type(data).__name__}")


@_apply.register
def _profile(data: ProfileData, customer: Customer, event: Event) -> None:
    key = profile_key(data.source, data.accountId)
    customer.seq += 1
    previous = customer.profiles.get(key)
    customer.profiles[key] = Profile(
        source=data.source,
        accountId=data.accountId,
        firstName=data.firstName,
        lastName=data.lastName,
        identifiers=[{"type": i.type, "value": i.value} for i in data.identifiers],
        commChannels=data.commChannels,
        extendedFields=data.extendedFields,
        createdAt=previous.createdAt if previous else event.occurredAt,
        modifiedAt=event.occurredAt,
        seq=customer.seq,
    )


@_apply.register
def _earned(data: EarnedData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    _add(balance, data.category, data.points)
    if data.category is Category.MAIN:
        balance.lifetime += data.points
        _fill(balance, data.expiresAt, data.points)
    else:
        balance.delayedLifetime += data.points
    if data.purchaseAmount and data.is_points:
        balance.purchases += data.purchaseAmount
    return balance, data.category, data.points, None


@_apply.register
def _redeemed(data: RedeemedData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    balance.redeemed += data.points
    _drain(balance, data.points)
    return balance, Category.MAIN, -data.points, None


@_apply.register
def _expired(data: ExpiredData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    if data.category is Category.MAIN:
        balance.expired += data.points
        day = event.occurredAt[:10]
        balance.expiredByDay[day] = balance.expiredByDay.get(day, 0) + data.points
        _drain(balance, data.points)
    else:
        _add(balance, data.category, -data.points)
        balance.delayedExpired += data.points
    return balance, data.category, -data.points, None


@_apply.register
def _promoted(data: PromotedData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    _add(balance, data.fromCategory, -data.points)
    balance.lifetime += data.points
    _fill(balance, data.expiresAt, data.points)
    return balance, Category.MAIN, data.points, data.fromCategory


@_apply.register
def _returned(data: ReturnedData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    if data.category is Category.MAIN:
        balance.returned += data.points
        _drain(balance, data.points)
    else:
        _add(balance, data.category, -data.points)
        balance.delayedReturned += data.points
    if data.purchaseAmount and data.is_points:
        balance.purchases -= data.purchaseAmount
    return balance, data.category, -data.points, None


@_apply.register
def _adjusted(data: AdjustedData, customer: Customer, event: Event) -> Change:
    balance = _balance(customer, data.programId, data.currency)
    balance.adjusted += data.points
    if data.points > 0:
        _fill(balance, None, data.points)
    else:
        _drain(balance, -data.points)
    return balance, Category.MAIN, data.points, None


@_apply.register
def _tier(data: TierData, customer: Customer, event: Event) -> None:
    customer.tiers[str(data.programId)] = Tier(
        serial=data.slabSerial,
        name=data.slabName,
        description=data.slabDescription,
        expiryDate=data.slabExpiryDate,
    )


@_apply.register
def _status(data: StatusData, customer: Customer, event: Event) -> None:
    customer.status = Status(label=data.label, reason=data.reason or "", since=event.occurredAt)


@_apply.register
def _merged(data: MergedData, customer: Customer, event: Event) -> None:
    customer.mergedInto = data.survivorId  # a later merge of the same victim replaces the survivor


@_apply.register
def _unmerged(data: UnmergedData, customer: Customer, event: Event) -> None:
    customer.mergedInto = None


@_apply.register
def _card(data: CardData, customer: Customer, event: Event) -> None:
    """Upserts the card by its number: an update replaces its fields, keeps when it was first seen and
    claimed; card.issued claims it anew."""
    previous = customer.cards.get(data.cardNumber)
    at = event.occurredAt
    customer.cards[data.cardNumber] = Card(
        seriesId=data.seriesId,
        statusLabel=data.statusLabel,
        seriesCode=data.seriesCode,
        type=data.type,
        statusReason=data.statusReason,
        customFields=data.customFields,
        expiresAt=data.expiresAt,
        createdOn=previous.createdOn if previous else at,
        claimedAt=at if previous is None or event.eventType == "card.issued" else previous.claimedAt,
        statusSince=previous.statusSince if previous and previous.statusLabel == data.statusLabel else at,
    )


def _balance(customer: Customer, program_id: int, currency: str) -> Balance:
    key = balance_key(program_id, currency)
    balance = customer.balances.get(key)
    if balance is None:  # not setdefault: a Balance built for every event costs more than the rest
        balance = customer.balances[key] = Balance()
    return balance


def _add(balance: Balance, category: Category | None, points: int) -> None:
    """Changes a category's balance; MAIN is derived from the totals, so only promised ones move here."""
    if category is Category.DELAYED_ACCRUAL:
        balance.delayedAccrual += points
    elif category is Category.EXTERNAL_TRIGGER:
        balance.externalTrigger += points


def _fill(balance: Balance, expires_at: str | None, points: int) -> None:
    bucket = expires_at or NEVER
    balance.buckets[bucket] = balance.buckets.get(bucket, 0) + points


def _drain(balance: Balance, points: int) -> None:
    """Takes points from the earliest-expiring bucket first, the never-expiring one last."""
    for bucket in sorted(balance.buckets, key=_expiry_order):
        taken = min(points, balance.buckets[bucket])
        balance.buckets[bucket] -= taken
        points -= taken
        if not balance.buckets[bucket]:
            del balance.buckets[bucket]
        if not points:
            return  # a deficit beyond the buckets is not scheduled


def _expiry_order(bucket: str) -> tuple[bool, str, str]:
    # keys are `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`: whole seconds first, then any fraction
    return bucket == NEVER, bucket[:19], bucket[19:].rstrip("Z")


# --- derived figures (EVENTS.md "Derived figures") ---


def figures(balance: Balance) -> dict[str, int]:
    main = balance.main
    promised = balance.promised
    return {
        "mainPoints": main,
        "delayedAccrualPoints": balance.delayedAccrual,
        "externalTriggerBasedPoints": balance.externalTrigger,
        "promisedPoints": promised,
        "totalPoints": main + promised,
        "totalReturnedPoints": balance.returned + balance.delayedReturned,
        "lifetimePoints": balance.lifetime,
        "redeemed": balance.redeemed,
        "expired": balance.expired,
        "returned": balance.returned,
        "adjusted": balance.adjusted,
        "delayedExpiredPoints": balance.delayedExpired,
        "delayedReturnedPoints": balance.delayedReturned,
        "delayedLifetimePoints": balance.delayedLifetime,
        "cumulativePurchases": balance.purchases,
    }


def sum_figures(balances: list[Balance]) -> dict[str, int]:
    total = figures(Balance())
    for balance in balances:
        for name, value in figures(balance).items():
            total[name] += value
    return total
