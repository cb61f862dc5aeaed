"""The event contract (EVENTS.md): envelope, per-type data, and `parse_event`.

Parsing never goes through binary floats: JSON numbers become int or Decimal
before validation, and every amount is held as integer thousandths.
"""

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from projections.money import to_thousandths

SPEC_VERSION = 1
POINTS = "POINTS"


class InvalidEvent(ValueError):
    """A record that must be dead-lettered; the message is the `dlq.reason`."""


class Category(str, Enum):
    MAIN = "MAIN"
    DELAYED_ACCRUAL = "DELAYED_ACCRUAL"
    EXTERNAL_TRIGGER = "EXTERNAL_TRIGGER"


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError("must be > 0")
    return v


def _non_zero(v: int) -> int:
    if v == 0:
        raise ValueError("must be non-zero")
    return v


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _timestamp(v: object) -> str:
    """RFC 3339 (offset required), normalised to UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`."""
    if not isinstance(v, str) or not _RFC3339.fullmatch(v):
        raise ValueError(f"{v!r} is not an RFC 3339 timestamp with an offset")
    try:
        parsed = datetime.fromisoformat(v.upper())
    except ValueError:
        raise ValueError(f"{v!r} is not a valid date and time") from None
    return _utc_iso(parsed)


def _expiry(v: object) -> str:
    """A timestamp, or a bare date meaning the end of that day (UTC)."""
    if isinstance(v, str) and len(v) == 10:
        try:
            day = date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a date") from None
        return _utc_iso(datetime.combine(day, time(23, 59, 59), timezone.utc))
    return _timestamp(v)


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


Amount = Annotated[int, BeforeValidator(to_thousandths), AfterValidator(_positive)]
SignedAmount = Annotated[int, BeforeValidator(to_thousandths), AfterValidator(_non_zero)]
PositiveInt = Annotated[StrictInt, AfterValidator(_positive)]
Timestamp = Annotated[str, BeforeValidator(_timestamp)]
ExpiryTimestamp = Annotated[str, BeforeValidator(_expiry)]
Currency = Annotated[StrictStr, Field(min_length=1, max_length=64)]


def _storable(value: Any) -> Any:
    """Free-form JSON as the state stores it: decimals as numbers, integers within 64 bits."""
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, Decimal) or isinstance(value, int) and not isinstance(value, bool) \
            and not -2**63 <= value < 2**64:
        return float(value)
    return value


FreeForm = Annotated[Any, AfterValidator(_storable)]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Identifier(_Data):
    type: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    value: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class ProfileData(_Data):
    source: Annotated[StrictStr, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
    accountId: Annotated[StrictStr, Field(max_length=128)] = ""
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    identifiers: list[Identifier] = []
    commChannels: list[dict[str, FreeForm]] = []
    extendedFields: dict[str, FreeForm] = {}

    @model_validator(mode="before")
    @classmethod
    def _instore_ignores_account(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("source") == "INSTORE":
            return {**data, "accountId": ""}
        return data

    @model_validator(mode="after")
    def _account_required(self) -> "ProfileData":
        if self.source != "INSTORE" and not self.accountId:
            raise ValueError(f"accountId is required for source {self.source}")
        return self


class _PointsData(_Data):
    programId: PositiveInt
    currency: Currency = POINTS

    @property
    def is_points(self) -> bool:
        return self.currency == POINTS


class EarnedData(_PointsData):
    points: Amount
    category: Category
    expiresAt: ExpiryTimestamp | None = None
    purchaseAmount: Amount | None = None
    transactionId: StrictStr | StrictInt | None = None


class RedeemedData(_PointsData):
    points: Amount


class ExpiredData(_PointsData):
    points: Amount
    category: Category


class PromotedData(_PointsData):
    points: Amount
    fromCategory: Literal[Category.DELAYED_ACCRUAL, Category.EXTERNAL_TRIGGER]
    expiresAt: ExpiryTimestamp | None = None


class ReturnedData(_PointsData):
    points: Amount
    category: Category
    purchaseAmount: Amount | None = None


class AdjustedData(_PointsData):
    points: SignedAmount


class TierData(_Data):
    programId: PositiveInt
    slabSerial: PositiveInt
    slabName: Annotated[StrictStr, Field(min_length=1)]
    slabDescription: StrictStr | None = None
    slabExpiryDate: Timestamp | None = None


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
}

EventData = Union[
    ProfileData, EarnedData, RedeemedData, ExpiredData, PromotedData,
    ReturnedData, AdjustedData, TierData,
]


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    specVersion: StrictInt
    eventId: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    eventType: StrictStr
    orgId: PositiveInt
    customerId: PositiveInt
    occurredAt: Timestamp
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event: the envelope's identity plus its typed data."""

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
    # Exponent forms stay floats so that the amount validator rejects them,
    # while unknown extra fields holding such numbers are still ignored.
    return float(text) if "e" in text or "E" in text else Decimal(text)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "data"
    return f"{where}: {err['msg']}"


def parse_event(raw: bytes | None) -> Event:
    """Decode and validate one record value; `InvalidEvent` says why it can't be applied."""
    if raw is None:
        raise InvalidEvent("empty record value")
    try:
        doc = json.loads(raw, parse_float=_json_float, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidEvent("not JSON: the value is not an object")
    version = doc.get("specVersion")
    if type(version) is not int or version != SPEC_VERSION:
        raise InvalidEvent(f"unsupported specVersion {version!r}")
    try:
        envelope = Envelope.model_validate(doc)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid envelope: {_first_error(exc)}") from None
    model = DATA_MODELS.get(envelope.eventType)
    if model is None:
        raise InvalidEvent(f"unknown eventType {envelope.eventType!r}")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid data: {_first_error(exc)}") from None
    return Event(
        eventId=envelope.eventId,
        eventType=envelope.eventType,
        orgId=envelope.orgId,
        customerId=envelope.customerId,
        occurredAt=envelope.occurredAt,
        data=data,
    )


def event_to_json(event: Event) -> bytes:
    """The wire form of an event (used by producers, tests and the demo)."""
    data = event.data.model_dump(mode="json", exclude_none=True)
    for field in ("points", "purchaseAmount"):
        if field in data:
            data[field] = str(to_decimal_str(data[field]))
    return json.dumps({
        "specVersion": SPEC_VERSION,
        "eventId": event.eventId,
        "eventType": event.eventType,
        "orgId": event.orgId,
        "customerId": event.customerId,
        "occurredAt": event.occurredAt,
        "data": data,
    }).encode()


def to_decimal_str(thousandths: int) -> str:
    return format(Decimal(thousandths).scaleb(-3), "f")
