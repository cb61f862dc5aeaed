"""Small builders for unit tests: events go through the real parser, as on the wire."""

import json

from projections.events import Event, parse_event
from tests.support import event

AT = "2026-01-08T10:03:21Z"


def encode(doc: dict, **raw_numbers: str) -> bytes:
    """JSON bytes of `doc`; a value "<name>" written as raw_numbers[name] (e.g. 1e2 as a JSON number)."""
    text = json.dumps(doc)
    for name, number in raw_numbers.items():
        text = text.replace(f'"<{name}>"', number)
    return text.encode()


def ev(event_type: str, customer_id: int = 1, event_id: str | None = None, occurred_at: str = AT, **data) -> Event:
    return parse_event(
        encode(event(event_type, data, customer_id=customer_id, event_id=event_id, occurred_at=occurred_at))
    )


def earned(points, category="MAIN", programId=1, **extra) -> Event:
    return ev("points.earned", programId=programId, points=points, category=category, **extra)


def redeemed(points, programId=1, **extra) -> Event:
    return ev("points.redeemed", programId=programId, points=points, **extra)


def expired(points, category="MAIN", programId=1, **extra) -> Event:
    return ev("points.expired", programId=programId, points=points, category=category, **extra)


def promoted(points, fromCategory="DELAYED_ACCRUAL", programId=1, **extra) -> Event:
    return ev("points.promoted", programId=programId, points=points, fromCategory=fromCategory, **extra)


def returned(points, category="MAIN", programId=1, **extra) -> Event:
    return ev("points.returned", programId=programId, points=points, category=category, **extra)


def adjusted(points, programId=1, **extra) -> Event:
    return ev("points.adjusted", programId=programId, points=points, **extra)


def registered(
    source="INSTORE",
    accountId="",
    identifiers=(),
    event_type="customer.registered",
    occurred_at=AT,
    customer_id=1,
    **extra,
) -> Event:
    return ev(
        event_type,
        customer_id=customer_id,
        occurred_at=occurred_at,
        source=source,
        accountId=accountId,
        identifiers=[{"type": t, "value": v} for t, v in identifiers],
        **extra,
    )
