"""Per-customer read-model state: plain data, stored as compact MessagePack.

Amounts are integer thousandths. Figures that follow from others (mainPoints,
promisedPoints, ...) are not stored; `figures()` in apply.py derives them. The
customer's points ledger (its newest entries, projections/ledger.py) comes last.
The structs encode as arrays (field order is the format: append new fields at
the end, with defaults), which keeps Redis small and decoding a few microseconds.
They hold no reference cycles, so the garbage collector does not track them
(gc=False): the projector's cache of customers costs no collection time.
"""

from datetime import datetime
from typing import Any, TypedDict

import msgspec

from projections.ledger import compacted, expanded

NEVER = ""  # expiry-bucket key of points that never expire; sorts after no date


class CorruptValue(ValueError):
    """A stored value that cannot be decoded: its customer's reads answer 503 and its events are
    dead-lettered until a rebuild replaces it (docs/how-to/rebuild.md)."""


class Balance(msgspec.Struct, array_like=True, gc=False):
    """One (program, currency) balance. Keys of `buckets`: UTC expiry instants."""

    lifetime: int = 0
    redeemed: int = 0
    expired: int = 0
    returned: int = 0
    adjusted: int = 0
    delayedAccrual: int = 0
    externalTrigger: int = 0
    delayedExpired: int = 0
    delayedReturned: int = 0
    delayedLifetime: int = 0  # promised points ever earned (alternate currencies' delayedLifetimeEarned)
    purchases: int = 0
    buckets: dict[str, int] = {}
    expiredByDay: dict[str, int] = {}

    @property
    def main(self) -> int:
        return self.lifetime - self.redeemed - self.expired - self.returned + self.adjusted

    @property
    def promised(self) -> int:
        return self.delayedAccrual + self.externalTrigger


class Tier(msgspec.Struct, array_like=True, gc=False):
    serial: int
    name: str
    description: str | None = None
    expiryDate: str | None = None


class StoredIdentifier(TypedDict):
    """An identifier of a profile as stored: a map, so both keys are checked when it is read back."""

    type: str
    value: str


class Profile(msgspec.Struct, array_like=True, gc=False):
    source: str
    accountId: str
    firstName: str | None
    lastName: str | None
    identifiers: list[StoredIdentifier]
    commChannels: list[dict[str, Any]]
    extendedFields: dict[str, Any]
    createdAt: str
    modifiedAt: str
    seq: int  # the customer's profile-event count at this profile's last change: orders profiles


class Status(msgspec.Struct, array_like=True, gc=False):
    label: str
    reason: str
    since: str  # the occurredAt of the event that set it


class Card(msgspec.Struct, array_like=True, gc=False):
    """A card the customer holds (card.issued / card.updated), by its number."""

    seriesId: int
    statusLabel: str
    seriesCode: str | None
    type: str | None
    statusReason: str | None
    customFields: dict[str, Any] | None
    expiresAt: str | None
    createdOn: str  # the first card event's occurredAt
    claimedAt: str  # the last card.issued's occurredAt (the first event's, if none): the latest claim resolves
    statusSince: str  # when the current statusLabel was set

    def __post_init__(self) -> None:
        # also when read back: the planner turns the claim time into a score (plan.epoch_ms)
        if not self.claimedAt.endswith("Z"):
            raise ValueError(f"claimedAt: {self.claimedAt!r} is not a UTC timestamp")
        datetime.fromisoformat(self.claimedAt)


class CustomerCore(msgspec.Struct, array_like=True, gc=False):
    """A customer without its ledger: what the balance and details reads decode (`decode_customer_core`
    skips a stored customer's trailing ledger instead of building its entries)."""

    orgId: int
    customerId: int
    seq: int = 0  # profile events applied (all on one topic, so the order is the log's)
    profiles: dict[str, Profile] = {}  # "SOURCE|accountId"
    balances: dict[str, Balance] = {}  # "programId|currency"
    tiers: dict[str, Tier] = {}  # "programId"
    status: Status | None = None  # customer.status.changed (none: ACTIVE)
    mergedInto: int | None = None  # customer.merged: reads of this customer answer for this survivor
    cards: dict[str, Card] = {}  # cardNumber -> its card


class Customer(CustomerCore, array_like=True, gc=False):
    ledger: list[bytes] = []  # the newest points ledger entries, oldest first, encoded (projections/ledger.py)
    ledgerSeq: int = 0  # points events applied: the newest entry's sequence number (a page cursor's position)

    def ledger_seqs(self) -> range:
        """The sequence numbers of `ledger`'s entries, in its order (consecutive: the newest are kept)."""
        return range(self.ledgerSeq - len(self.ledger) + 1, self.ledgerSeq + 1)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Customer)
_core_decoder = msgspec.msgpack.Decoder(CustomerCore)


def encode_customer(customer: Customer) -> bytes:
    return _encoder.encode(customer)


def decode_customer(raw: bytes) -> Customer:
    try:
        return _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        raise CorruptValue(f"state: {exc}") from None


def decode_customer_core(raw: bytes) -> CustomerCore:
    try:
        return _core_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise CorruptValue(f"state: {exc}") from None


def profile_key(source: str, account_id: str) -> str:
    return f"{source}|{account_id}"


def balance_key(program_id: int, currency: str) -> str:
    return f"{program_id}|{currency}"


def split_balance_key(key: str) -> tuple[int, str]:
    """CorruptValue for a key not of balance_key's form (checked here, when needed: a check of every key
    when a state is decoded would cost a third more)."""
    program, bar, currency = key.partition("|")
    if not (bar and program.isascii() and program.isdigit() and len(program) <= 19):
        raise CorruptValue(f"state: balance key {key!r} is not programId|currency")
    return int(program), currency


# --- a readable form (verify's differences, tests): optional fields at their default are left out ---


def _compact(obj: msgspec.Struct) -> dict[str, Any]:
    required = {f.name for f in msgspec.structs.fields(obj) if f.required}
    return {name: value for name, value in msgspec.structs.asdict(obj).items() if value or name in required}


def customer_to_dict(c: Customer) -> dict[str, Any]:
    return {
        "o": c.orgId,
        "c": c.customerId,
        "n": c.seq,
        "p": {k: _compact(p) for k, p in c.profiles.items()},
        "b": {k: _compact(b) for k, b in c.balances.items()},
        "t": {k: _compact(t) for k, t in c.tiers.items()},
        "s": msgspec.structs.asdict(c.status) if c.status else None,
        "m": c.mergedInto,
        "k": {k: msgspec.structs.asdict(card) for k, card in c.cards.items()},
        "l": {str(seq): expanded(entry) for seq, entry in zip(c.ledger_seqs(), c.ledger)},
        "q": c.ledgerSeq,
    }


def customer_from_dict(d: dict[str, Any]) -> Customer:
    return Customer(
        orgId=d["o"],
        customerId=d["c"],
        seq=d["n"],
        profiles={k: Profile(**p) for k, p in d["p"].items()},
        balances={k: Balance(**b) for k, b in d["b"].items()},
        tiers={k: Tier(**t) for k, t in d["t"].items()},
        status=Status(**d["s"]) if d.get("s") else None,
        mergedInto=d.get("m"),
        cards={k: Card(**card) for k, card in d.get("k", {}).items()},
        ledger=[compacted(entry) for _, entry in sorted(d.get("l", {}).items(), key=lambda item: int(item[0]))],
        ledgerSeq=d.get("q", 0),
    )
