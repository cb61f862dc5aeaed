"""The event contract (EVENTS.md): envelope, per-type data, and `parse_event`.

Decoding is msgspec (a few microseconds per event on the projector's hot path).
Parsing never goes through binary floats: JSON numbers that are not integers
are decoded from their text as Decimal, and every amount is held as integer
thousandths. Rules msgspec cannot state as types (amounts, timestamps, the
profile's accountId) are checked in `__post_init__`, which names the field.
"""

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any

import msgspec

from projections.money import to_thousandths

SPEC_VERSION = 1
POINTS = "POINTS"
DELETED = "DELETED"  # a card's status label: it no longer resolves for its holder
MAX_NESTING = 32  # levels of free-form JSON (extendedFields, commChannels, customFields)


class InvalidEvent(ValueError):
    """A record that must be dead-lettered; the message is the `dlq.reason`."""


class Category(str, Enum):
    MAIN = "MAIN"
    DELAYED_ACCRUAL = "DELAYED_ACCRUAL"
    EXTERNAL_TRIGGER = "EXTERNAL_TRIGGER"


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_CANONICAL_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _timestamp(v: object) -> str:
    """RFC 3339 (offset required), normalised to UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`."""
    if not isinstance(v, str):
        raise ValueError(f"{v!r} is not an RFC 3339 timestamp with an offset")
    return _utc_timestamp(v)


def _utc_timestamp(v: str) -> str:
    # The common case, canonical UTC to the second (kept as it is), checked without parsing: a few days
    # recur (cached), the time of day is a range check; anything else goes through fromisoformat.
    if _CANONICAL_UTC.fullmatch(v) and _valid_day(v[:10]) and v[11:13] < "24" and v[14:16] < "60" and v[17:19] < "60":
        return v
    if not _RFC3339.fullmatch(v):
        raise ValueError(f"{v!r} is not an RFC 3339 timestamp with an offset")
    try:
        return _utc_iso(datetime.fromisoformat(v.upper()))
    except (ValueError, OverflowError):  # overflow: an offset takes it past year 1 or 9999 in UTC
        raise ValueError(f"{v!r} is not a valid date and time") from None


@lru_cache(maxsize=4096)
def _valid_day(day: str) -> bool:
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _expiry(v: object) -> str:
    """A timestamp, or a bare date meaning the end of that day (UTC)."""
    if isinstance(v, str) and len(v) == 10:
        try:
            day = date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a date") from None
        return _utc_iso(datetime.combine(day, time(23, 59, 59), UTC))
    return _timestamp(v)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _checked(field: str, check, value):
    try:
        return check(value)
    except ValueError as exc:
        raise _FieldError(field, str(exc)) from None


def _amount(field: str, value: object, signed: bool = False) -> int:
    thousandths = _checked(field, to_thousandths, value)
    if signed and thousandths == 0:
        raise _FieldError(field, "must be non-zero")
    if not signed and thousandths <= 0:
        raise _FieldError(field, "must be > 0")
    return thousandths


def _storable(field: str, value: Any) -> Any:
    """Free-form JSON as the state stores it: numbers as JSON gave them (profiles are decoded with binary
    floats: only amounts need decimals), integers within 64 bits, at most MAX_NESTING levels deep (a state
    nested near the interpreter's recursion limit could not be read back). Checked by encoding it as the
    state will (a fraction of walking it); only a value that does not fit is walked."""
    _check_nesting(field, value)
    try:
        _MSGPACK.encode(value)
        return value
    except OverflowError:
        return _fitted(value)


def _check_nesting(field: str, value: Any) -> None:
    """Level by level (no recursion): a dict or list of dicts and lists ... more than MAX_NESTING deep."""
    layer, level = [value], 0
    while layer:
        level += 1
        if level > MAX_NESTING:
            raise _FieldError(field, f"nested more than {MAX_NESTING} levels deep")
        layer = [v for c in layer for v in (c.values() if type(c) is dict else c) if type(v) in (dict, list)]


def _fitted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fitted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fitted(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


_MSGPACK = msgspec.msgpack.Encoder()
PositiveInt = Annotated[int, msgspec.Meta(gt=0, le=2**63 - 1)]  # ids are stored as 64-bit integers
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _Data(msgspec.Struct, frozen=True, gc=False):
    pass


def _set(obj: msgspec.Struct, field: str, value: Any) -> None:
    msgspec.structs.force_setattr(obj, field, value)


class Identifier(_Data, frozen=True, gc=False):
    type: Name
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ProfileData(_Data, frozen=True, gc=False):
    source: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
    accountId: Annotated[str, msgspec.Meta(max_length=128)] = ""
    firstName: str | None = None
    lastName: str | None = None
    identifiers: list[Identifier] = []
    commChannels: list[dict[str, Any]] = []
    extendedFields: dict[str, Any] = {}

    def __post_init__(self):
        if self.source == "INSTORE":
            _set(self, "accountId", "")  # INSTORE ignores accountId
        elif not self.accountId:
            raise ValueError(f"accountId is required for source {self.source}")
        _set(self, "commChannels", _storable("commChannels", self.commChannels))
        _set(self, "extendedFields", _storable("extendedFields", self.extendedFields))


class _PointsData(_Data, frozen=True, gc=False):
    programId: PositiveInt
    points: Any
    currency: Name = POINTS

    def __post_init__(self):
        _set(self, "points", _amount("points", self.points))

    @property
    def is_points(self) -> bool:
        return self.currency == POINTS


class EarnedData(_PointsData, frozen=True, gc=False):
    category: Category | None = None  # required: checked below (a default keeps the field order of the base)
    expiresAt: str | None = None
    purchaseAmount: Any = None
    transactionId: str | int | None = None

    def __post_init__(self):
        super().__post_init__()
        _required(self, "category")
        _optional_expiry(self)
        _optional_purchase(self)


class RedeemedData(_PointsData, frozen=True, gc=False):
    pass


class ExpiredData(_PointsData, frozen=True, gc=False):
    category: Category | None = None

    def __post_init__(self):
        super().__post_init__()
        _required(self, "category")


class PromotedData(_PointsData, frozen=True, gc=False):
    fromCategory: Category | None = None
    expiresAt: str | None = None

    def __post_init__(self):
        super().__post_init__()
        _required(self, "fromCategory")
        if self.fromCategory is Category.MAIN:
            raise _FieldError("fromCategory", "must be DELAYED_ACCRUAL or EXTERNAL_TRIGGER")
        _optional_expiry(self)


class ReturnedData(_PointsData, frozen=True, gc=False):
    category: Category | None = None
    purchaseAmount: Any = None

    def __post_init__(self):
        super().__post_init__()
        _required(self, "category")
        _optional_purchase(self)


class AdjustedData(_PointsData, frozen=True, gc=False):
    def __post_init__(self):
        _set(self, "points", _amount("points", self.points, signed=True))


def _required(data: _Data, field: str) -> None:
    if getattr(data, field) is None:
        raise _FieldError(field, "field required")


def _optional_expiry(data: Any) -> None:
    if data.expiresAt is not None:
        _set(data, "expiresAt", _checked("expiresAt", _expiry, data.expiresAt))


def _optional_purchase(data: Any) -> None:
    if data.purchaseAmount is not None:
        _set(data, "purchaseAmount", _amount("purchaseAmount", data.purchaseAmount))


class TierData(_Data, frozen=True, gc=False):
    programId: PositiveInt
    slabSerial: PositiveInt
    slabName: Annotated[str, msgspec.Meta(min_length=1)]
    slabDescription: str | None = None
    slabExpiryDate: str | None = None

    def __post_init__(self):
        if self.slabExpiryDate is not None:
            _set(self, "slabExpiryDate", _checked("slabExpiryDate", _timestamp, self.slabExpiryDate))


class StatusData(_Data, frozen=True, gc=False):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # ACTIVE, SUSPENDED, FRAUD_SUSPECTED, ...
    reason: str | None = None


class MergedData(_Data, frozen=True, gc=False):
    survivorId: PositiveInt  # a customer of the same org; not the envelope's customerId (parse_event checks)


class UnmergedData(_Data, frozen=True, gc=False):
    pass


class CardData(_Data, frozen=True, gc=False):
    """card.issued / card.updated: the card's fields as they now are (an update replaces them all)."""

    cardNumber: Name
    seriesId: PositiveInt
    statusLabel: Name  # ACTIVE, SUSPENDED, DELETED, ...
    seriesCode: str | None = None
    type: str | None = None
    statusReason: str | None = None
    customFields: dict[str, Any] | None = None
    expiresAt: str | None = None

    def __post_init__(self):
        _optional_expiry(self)
        if self.customFields is not None:
            _set(self, "customFields", _storable("customFields", self.customFields))

    @property
    def deleted(self) -> bool:
        return self.statusLabel == DELETED


DATA_MODELS: dict[str, type[_Data]] = {
    "customer.registered": ProfileData,
    "customer.updated": ProfileData,
    "points.earned": EarnedData,
    "points.redeemed": RedeemedData,
    "points.expired": ExpiredData,
    "points.promoted": PromotedData,
    "points.returned": ReturnedData,
    "points.adjusted": AdjustedData,
    "tier.changed": TierData,
    "customer.status.changed": StatusData,
    "customer.merged": MergedData,
    "customer.unmerged": UnmergedData,
    "card.issued": CardData,
    "card.updated": CardData,
}

EventData = (
    ProfileData
    | EarnedData
    | RedeemedData
    | ExpiredData
    | PromotedData
    | ReturnedData
    | AdjustedData
    | TierData
    | StatusData
    | MergedData
    | UnmergedData
    | CardData
)


class Envelope(msgspec.Struct, frozen=True, gc=False):
    specVersion: Any
    eventId: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    eventType: str
    orgId: PositiveInt
    customerId: PositiveInt
    occurredAt: str
    data: msgspec.Raw

    def __post_init__(self):
        if type(self.specVersion) is not int or self.specVersion != SPEC_VERSION:
            raise ValueError("specVersion: unsupported")  # _envelope_error says which
        _set(self, "occurredAt", _checked("occurredAt", _timestamp, self.occurredAt))


class Event(msgspec.Struct, frozen=True, gc=False):
    """A validated event: the envelope's identity plus its typed data (a Struct: built in C, one per record)."""

    eventId: str
    eventType: str
    orgId: int
    customerId: int
    occurredAt: str
    data: EventData

    @property
    def customer_key(self) -> tuple[int, int]:
        return self.orgId, self.customerId


def _json_float(text: str) -> Decimal | float:
    # Exponent forms stay floats so that the amount check rejects them,
    # while unknown extra fields holding such numbers are still ignored.
    return float(text) if "e" in text or "E" in text else Decimal(text)


_ENVELOPE = msgspec.json.Decoder(Envelope, float_hook=_json_float)
_DATA = {  # amounts exact (decimals); free-form numbers (profiles, cards) as binary floats, as the state stores them
    name: msgspec.json.Decoder(model)
    if model in (ProfileData, CardData)
    else msgspec.json.Decoder(model, float_hook=_json_float)
    for name, model in DATA_MODELS.items()
}
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
_AT = re.compile(r"^(.*) - at `\$\.?([^`]*)`$", re.S)


def _reason(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int` >= 1 - at `$.orgId`" as "orgId: Expected `int` >= 1", and a missing
    field as "<field>: Field required"."""
    message, where = str(exc), ""
    if found := _AT.match(message):
        message, where = found.groups()
    if missing := _MISSING.fullmatch(message):
        where, message = ".".join(filter(None, (where, missing[1]))), "Field required"
    return f"{where}: {message}" if where else message  # our own checks name their field


class _Version(msgspec.Struct, gc=False):
    specVersion: msgspec.Raw = msgspec.Raw(b"")  # as written: any JSON value (an integer of any size too)


_VERSION = msgspec.json.Decoder(_Version)


def _envelope_error(raw: bytes, exc: msgspec.ValidationError) -> str:
    """Why an envelope was refused, checked in the contract's order: JSON, an object, then its specVersion."""
    try:
        version = bytes(_VERSION.decode(raw).specVersion)
    except msgspec.ValidationError:
        return "not JSON: the value is not an object"
    except (msgspec.DecodeError, RecursionError) as error:
        return f"not JSON: {error}"
    if version != b"%d" % SPEC_VERSION:
        return f"unsupported specVersion {version.decode(errors='replace')[:40] if version else 'missing'}"
    return f"invalid envelope: {_reason(exc)}"


def parse_event(raw: bytes | None) -> Event:
    """Decode and validate one record value; `InvalidEvent` says why it can't be applied."""
    if raw is None:
        raise InvalidEvent("empty record value")
    try:
        envelope = _ENVELOPE.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(_envelope_error(raw, exc)) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    decoder = _DATA.get(envelope.eventType)
    if decoder is None:
        raise InvalidEvent(f"unknown eventType {envelope.eventType!r}")
    try:
        data = decoder.decode(envelope.data)
    except msgspec.ValidationError as exc:
        reason = _reason(exc)
        if reason.startswith("Expected `object`"):
            raise InvalidEvent("invalid envelope: data: must be an object") from None
        raise InvalidEvent(f"invalid data: {reason}") from None
    except (msgspec.DecodeError, RecursionError) as exc:  # the envelope skipped over data without reading it
        raise InvalidEvent(f"not JSON: data: {exc}") from None
    if type(data) is MergedData and data.survivorId == envelope.customerId:
        raise InvalidEvent("invalid data: survivorId: a customer cannot be merged into itself")
    return Event(  # the decoder of the event's type: one of EventData
        eventId=envelope.eventId,
        eventType=envelope.eventType,
        orgId=envelope.orgId,
        customerId=envelope.customerId,
        occurredAt=envelope.occurredAt,
        data=data,  # type: ignore[arg-type]
    )


def on_customers_topic(event_type: str) -> bool:
    """Whether an event type belongs on loyalty.customers.v1 (profiles, status, merges, cards) rather than
    loyalty.points.v1."""
    return event_type.startswith(("customer.", "card."))


def event_to_json(event: Event) -> bytes:
    """The wire form of an event (used by producers, tests and the demo)."""
    data = {k: v for k, v in msgspec.structs.asdict(event.data).items() if v is not None}
    for field in ("points", "purchaseAmount"):
        if field in data:
            data[field] = to_decimal_str(data[field])
    return msgspec.json.encode(
        {
            "specVersion": SPEC_VERSION,
            "eventId": event.eventId,
            "eventType": event.eventType,
            "orgId": event.orgId,
            "customerId": event.customerId,
            "occurredAt": event.occurredAt,
            "data": data,
        }
    )


def to_decimal_str(thousandths: int) -> str:
    return format(Decimal(thousandths).scaleb(-3), "f")
