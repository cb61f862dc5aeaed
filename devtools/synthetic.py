"""Deterministic synthetic event streams: the demo data, the benchmarks and the tests' loads.

Pure: returns (topic, key, value) triples; producing them is `devtools.produce`.
"""

import itertools
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CUSTOMERS_TOPIC = "loyalty.customers.v1"
POINTS_TOPIC = "loyalty.points.v1"
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Load:
    org_id: int = 100737
    customers: int = 100
    programs: tuple[int, ...] = (973, 983)
    events_per_customer: int = 20
    first_customer_id: int = 1000
    seed: int = 7
    customers_topic: str = CUSTOMERS_TOPIC
    points_topic: str = POINTS_TOPIC


def _amount(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low * 1000, high * 1000) / 1000:.3f}"


def _envelope(rng, event_type, org_id, customer_id, at, data) -> dict:
    return {
        "specVersion": 1,
        "eventId": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventType": event_type,
        "orgId": org_id,
        "customerId": customer_id,
        "occurredAt": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": data,
    }


def profile(customer_id: int, mobile: str, email: str, source: str = "INSTORE", account: str = "", **extra) -> dict:
    return {
        "source": source,
        "accountId": account,
        "firstName": f"First{customer_id}",
        "lastName": f"Last{customer_id}",
        "identifiers": [
            {"type": "mobile", "value": mobile},
            {"type": "email", "value": email},
            {"type": "externalId", "value": f"ext{customer_id}"},
        ],
        "commChannels": [{"type": "mobile", "value": mobile, "primary": True, "verified": False}],
        "extendedFields": {"city": "Mumbai"},
        **extra,
    }


POINTS_KINDS = ("earned", "earned_delayed", "redeemed", "expired", "promoted", "returned", "adjusted", "tier")
POINTS_WEIGHTS = (40, 10, 15, 5, 8, 6, 6, 4)


def _points_event(rng: random.Random, program: int, held: dict) -> tuple[str, dict]:
    """A random points event; debits never exceed what the customer holds, like a real points engine."""
    kind = rng.choices(POINTS_KINDS, weights=POINTS_WEIGHTS)[0]
    currency = "Stars" if rng.random() < 0.05 else "POINTS"
    points = rng.randint(1_000, 500_000)
    promised = rng.choice(["DELAYED_ACCRUAL", "EXTERNAL_TRIGGER"])
    debit_from = _debit_category(rng, kind, promised)
    if debit_from:
        kind, debit_from, points = _debit_or_earn(
            rng, kind, debit_from, points, held.get((program, currency, debit_from), 0)
        )
    amount = f"{points / 1000:.3f}"
    base = {"programId": program, "points": amount, **({"currency": currency} if currency != "POINTS" else {})}

    def move(cat: str, delta: int) -> None:
        held[(program, currency, cat)] = held.get((program, currency, cat), 0) + delta

    if kind in ("earned", "earned_delayed"):
        category = promised if kind == "earned_delayed" else "MAIN"
        move(category, points)
        return _earned(rng, category, base)
    if kind == "adjusted":
        sign = -1 if debit_from else 1
        move("MAIN", sign * points)
        return "points.adjusted", {**base, "points": ("-" if sign < 0 else "") + amount}
    if kind == "tier":
        serial = rng.randint(1, 3)
        return "tier.changed", {"programId": program, "slabSerial": serial, "slabName": f"Tier{serial}"}
    move(debit_from, -points)
    if kind == "promoted":
        move("MAIN", points)
    return _debit(rng, kind, debit_from, base)


def _debit_category(rng: random.Random, kind: str, promised: str) -> str | None:
    """The category a debit takes its points from (None: not a debit)."""
    expired_from = rng.choice(["MAIN", promised])  # drawn for every event: the seed's stream stays the same
    debits = {"redeemed": "MAIN", "expired": expired_from, "promoted": promised, "returned": "MAIN", "adjusted": "MAIN"}
    return debits.get(kind)


def _debit_or_earn(
    rng: random.Random, kind: str, debit_from: str, points: int, have: int
) -> tuple[str, str | None, int]:
    """A debit of at most what is held; with less than 1 point held, an earn instead (an adjustment: a credit,
    as half of the adjustments are)."""
    if have < 1_000 or (kind == "adjusted" and rng.random() < 0.5):
        return ("earned" if kind != "adjusted" else kind), None, points
    return kind, debit_from, rng.randint(1_000, have)


def _earned(rng: random.Random, category: str, base: dict) -> tuple[str, dict]:
    if category != "MAIN":
        return "points.earned", {**base, "category": category}
    expiry = (
        {"expiresAt": (START + timedelta(days=rng.randint(30, 720))).strftime("%Y-%m-%dT23:59:59Z")}
        if rng.random() < 0.7
        else {}
    )
    return "points.earned", {**base, "category": "MAIN", "purchaseAmount": _amount(rng, 10, 5000), **expiry}


def _debit(rng: random.Random, kind: str, debit_from: str, base: dict) -> tuple[str, dict]:
    if kind == "redeemed":
        return "points.redeemed", base
    if kind == "expired":
        return "points.expired", {**base, "category": debit_from}
    if kind == "promoted":
        return "points.promoted", {**base, "fromCategory": debit_from}
    return "points.returned", {**base, "category": "MAIN", "purchaseAmount": _amount(rng, 1, 100)}


def _lifecycle_event(rng: random.Random, customer_id: int, survivor: int | None) -> tuple[str, dict]:
    """A card, status or merge event. Merges go into `survivor`, a customer that is never merged itself
    (so redirects stay one hop: no loops, no 8015 for the benchmarks' reads); a card number is now and
    then the survivor's too (several holders: the latest claim resolves)."""
    roll = rng.random()
    if roll < 0.25:
        return "customer.status.changed", {"label": rng.choice(["ACTIVE", "SUSPENDED"]), "reason": "synthetic"}
    if roll < 0.35 and survivor is not None:
        return ("customer.merged", {"survivorId": survivor}) if roll < 0.32 else ("customer.unmerged", {})
    holder = survivor if survivor is not None and roll > 0.95 else customer_id
    card = {
        "cardNumber": f"CARD{holder:010d}{rng.randint(1, 2)}",
        "seriesId": 195,
        "statusLabel": rng.choice(["ACTIVE", "ACTIVE", "SUSPENDED", "DELETED"]),
        "seriesCode": "synthetic",
        "customFields": {"vehicle_type": rng.choice(["Bike", "Car"])},
    }
    return rng.choice(["card.issued", "card.updated"]), card


def _survivor(load: Load, customer_id: int) -> int | None:
    """The customer of its group of ten that merges may go into (None for that customer itself)."""
    first = load.first_customer_id + (customer_id - load.first_customer_id) // 10 * 10
    return None if first == customer_id else first


def generate(load: Load) -> list[tuple[str, bytes, bytes]]:
    """The whole stream, interleaving customers the way a live system would."""
    rng = random.Random(load.seed)
    per_customer = [_customer_events(rng, load, n) for n in range(load.customers)]
    return _interleaved(rng, per_customer)


def _customer_events(rng: random.Random, load: Load, n: int) -> list[tuple[str, dict]]:
    """The n-th customer's registration, then its other events a few minutes to hours apart."""
    cid = load.first_customer_id + n
    at = START + timedelta(seconds=n)
    registered = profile(cid, f"9{cid:09d}", f"user{cid}@example.com")
    events = [(load.customers_topic, _envelope(rng, "customer.registered", load.org_id, cid, at, registered))]
    held: dict = {}
    for i in range(load.events_per_customer - 1):
        at += timedelta(minutes=rng.randint(1, 600))
        roll = rng.random()
        if roll < 0.05:
            data = profile(cid, f"9{cid:09d}", f"User{cid}.{i}@Example.com")
            events.append((load.customers_topic, _envelope(rng, "customer.updated", load.org_id, cid, at, data)))
        elif roll < 0.07:  # the customer lifecycle of the contract's Round 2: cards, status, merges
            event_type, data = _lifecycle_event(rng, cid, _survivor(load, cid))
            events.append((load.customers_topic, _envelope(rng, event_type, load.org_id, cid, at, data)))
        else:
            event_type, data = _points_event(rng, rng.choice(load.programs), held)
            events.append((load.points_topic, _envelope(rng, event_type, load.org_id, cid, at, data)))
    return events


def _interleaved(rng: random.Random, per_customer: list[list[tuple[str, dict]]]) -> list[tuple[str, bytes, bytes]]:
    """Each customer's events in their order, the customers' turns drawn at random."""
    stream = []
    cursors = [0] * len(per_customer)
    live = list(range(len(per_customer)))
    while live:
        pick = rng.randrange(len(live))
        i = live[pick]
        topic, event = per_customer[i][cursors[i]]
        stream.append((topic, f"{event['orgId']}:{event['customerId']}".encode(), json.dumps(event).encode()))
        cursors[i] += 1
        if cursors[i] == len(per_customer[i]):
            live[pick] = live[-1]  # O(1) removal: a list.remove would make large loads quadratic
            live.pop()
    return stream


def ongoing(load: Load) -> Iterator[tuple[str, bytes, bytes]]:
    """Endless events of the load's customers once registered (`generate` with one event per customer
    registers them): the same mix as `generate`, each event for a customer drawn at random."""
    rng = random.Random(load.seed + 1)
    held: dict[int, dict] = {}
    at = START + timedelta(days=1)
    for n in itertools.count():
        cid = load.first_customer_id + rng.randrange(load.customers)
        at += timedelta(seconds=1)
        if rng.random() < 0.05:
            data = profile(cid, f"9{cid:09d}", f"User{cid}.{n}@Example.com")
            topic, event = load.customers_topic, _envelope(rng, "customer.updated", load.org_id, cid, at, data)
        else:
            event_type, data = _points_event(rng, rng.choice(load.programs), held.setdefault(cid, {}))
            topic, event = load.points_topic, _envelope(rng, event_type, load.org_id, cid, at, data)
        yield topic, f"{load.org_id}:{cid}".encode(), json.dumps(event).encode()
