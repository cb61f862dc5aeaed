"""The points ledger (API.md "Round 3 / Points ledger"): one compact entry per applied points event.

An entry is stored inside the customer's state (projections/state.py), newest last, the newest
`ledger_entries` kept. Its sequence number is not stored: the customer counts its points events
(`Customer.ledgerSeq`), and its entries are the newest of them, consecutive. Stored compactly (about
47 bytes an entry): a canonical UUID eventId as its 16 bytes, the event type and categories as small
codes, whole-second timestamps as epoch seconds, amounts in thousandths, POINTS as None. Each entry is
kept encoded (MessagePack bytes): the projector decodes and encodes a customer on every write, and
building twenty entries' structs each time would cost more than the rest of the customer; only the
ledger endpoints and verify read them (`entry`). `expanded` gives an entry back in its readable form,
exactly as the event said it.
"""

from datetime import date, datetime
from functools import lru_cache
from typing import Any

import msgspec

from projections.events import POINTS, Category, Event

LEDGER_ENTRIES = 20  # the default of POINTSVIEW_LEDGER_ENTRIES
EVENT_TYPES = (
    "points.earned",
    "points.redeemed",
    "points.expired",
    "points.promoted",
    "points.returned",
    "points.adjusted",
)
CATEGORIES = (Category.MAIN, Category.DELAYED_ACCRUAL, Category.EXTERNAL_TRIGGER)
_TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
_CATEGORY_CODES: dict[Category | None, int] = {category: code for code, category in enumerate(CATEGORIES)}
_EPOCH = date(1970, 1, 1).toordinal()
_TWO = tuple(f"{n:02d}" for n in range(100))  # hours, minutes, seconds as two digits (no format parsing per call)


class LedgerEntry(msgspec.Struct, array_like=True, gc=False):
    eventId: Any  # bytes: a canonical lowercase UUID's 16 bytes; else the eventId (str)
    eventType: int  # index in EVENT_TYPES
    occurredAt: int | str  # epoch seconds when whole seconds (the usual case); else the normalised string
    programId: int
    points: int  # thousandths: the signed change to `category`
    mainAfter: int  # the program and currency's mainPoints right after the event (thousandths)
    promisedAfter: int  # its promisedPoints (delayed accrual + external trigger) then
    category: int = 0  # index in CATEGORIES
    fromCategory: int | None = None  # a promotion's promised category (it fell by `points`)
    currency: str | None = None  # None: POINTS
    expiresAt: int | str | None = None  # as occurredAt
    transactionId: str | int | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(LedgerEntry)


def entry(raw: bytes) -> LedgerEntry:
    """An entry as the customer's state keeps it (encoded), decoded."""
    return _decoder.decode(raw)


def encoded(entry: LedgerEntry) -> bytes:
    return _encoder.encode(entry)


def new_entry(
    event: Event, category: Category | None, points: int, from_category: Category | None, after: tuple[int, int]
) -> bytes:
    """`event`'s entry, encoded: `points` changed `category` (a promotion's came from `from_category`),
    leaving its program and currency's balance at `after` (mainPoints, promisedPoints)."""
    data: Any = event.data
    expires_at = getattr(data, "expiresAt", None)
    return _encoder.encode(
        LedgerEntry(
            _compact_id(event.eventId),
            _TYPE_CODES[event.eventType],
            _compact_time(event.occurredAt),
            data.programId,
            points,
            *after,
            _CATEGORY_CODES[category],
            None if from_category is None else _CATEGORY_CODES[from_category],
            None if data.currency == POINTS else data.currency,
            None if expires_at is None else _compact_expiry(expires_at),
            getattr(data, "transactionId", None),
        )
    )


def event_id(entry: LedgerEntry) -> str:
    raw = entry.eventId
    if type(raw) is not bytes:
        return raw
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def timestamp(value: int | str) -> str:
    if isinstance(value, str):
        return value
    days, seconds = divmod(value, 86400)
    return f"{_day(days)}T{_TWO[seconds // 3600]}:{_TWO[seconds // 60 % 60]}:{_TWO[seconds % 60]}Z"


def currency(entry: LedgerEntry) -> str:
    return POINTS if entry.currency is None else entry.currency


def _compact_id(value: str) -> bytes | str:
    """A canonical lowercase UUID as its 16 bytes (`event_id` gives the same string back); any other as it
    is. Checked by the round trip (no regex: this runs for every points event)."""
    if len(value) != 36 or not value[8] == value[13] == value[18] == value[23] == "-":
        return value
    digits = value.replace("-", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return value
    return raw if raw.hex() == digits else value


def _compact_time(value: str) -> int | str:
    """A normalised timestamp (projections.events: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`) of whole seconds as
    epoch seconds, which `timestamp` turns back into the same string; any other as it is."""
    return int(datetime.fromisoformat(value).timestamp()) if len(value) == 20 else value


# Expiry times recur (most are the end of a day): cached.
_compact_expiry = lru_cache(maxsize=4096)(_compact_time)


@lru_cache(maxsize=4096)
def _day(epoch_day: int) -> str:
    return date.fromordinal(epoch_day + _EPOCH).isoformat()


# --- the readable form (verify's differences, tests): what the event said, amounts in thousandths ---


def expanded(raw: bytes) -> dict[str, Any]:
    entry = _decoder.decode(raw)
    return {
        "eventId": event_id(entry),
        "eventType": EVENT_TYPES[entry.eventType],
        "occurredAt": timestamp(entry.occurredAt),
        "programId": entry.programId,
        "currency": currency(entry),
        "category": CATEGORIES[entry.category].value,
        "points": entry.points,
        "fromCategory": None if entry.fromCategory is None else CATEGORIES[entry.fromCategory].value,
        "expiresAt": None if entry.expiresAt is None else timestamp(entry.expiresAt),
        "transactionId": entry.transactionId,
        "mainAfter": entry.mainAfter,
        "promisedAfter": entry.promisedAfter,
    }


def compacted(d: dict[str, Any]) -> bytes:
    """`expanded`'s inverse: the entry, encoded."""
    return encoded(
        LedgerEntry(
            _compact_id(d["eventId"]),
            _TYPE_CODES[d["eventType"]],
            _compact_time(d["occurredAt"]),
            d["programId"],
            d["points"],
            d["mainAfter"],
            d["promisedAfter"],
            _CATEGORY_CODES[Category(d["category"])],
            None if d["fromCategory"] is None else _CATEGORY_CODES[Category(d["fromCategory"])],
            None if d["currency"] == POINTS else d["currency"],
            None if d["expiresAt"] is None else _compact_time(d["expiresAt"]),
            d["transactionId"],
        )
    )
