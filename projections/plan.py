"""Planning writes: each customer held once, its records folded on as they come, what it owes Redis.

Pure: the store reads a customer's stored value once, the projector keeps it
as a `Held` while it stays in the process and folds every record onto it; the
store writes what it owes atomically with the new watermarks. A record at or
below its partition's watermark (redelivered) or with an eventId already
applied (re-published) is a no-op.
"""

from dataclasses import dataclass, field
from datetime import datetime

from projections.apply import apply_in_place
from projections.dedup import DedupWindow, dedup_key
from projections.events import DELETED, CardData, Event, ProfileData
from projections.identity import IndexKey, indexed_identifiers
from projections.ledger import LEDGER_ENTRIES
from projections.state import Customer, profile_key


@dataclass(slots=True)  # not frozen: built per identifier of every profile event, and a frozen one builds slowly
class IndexChange:
    key: IndexKey
    customerId: int
    claimed: bool  # False: the customer no longer lists it
    score: int = 0  # claim time (occurredAt, ms): the latest claim resolves
    at: tuple[str, int] = field(default=("", 0), compare=False)  # (position, offset): write order


@dataclass(frozen=True, slots=True)
class CardClaim:
    """The customer's entry for a card number in its org's card index: its claim time (occurredAt, ms), or
    None when its card is DELETED (it no longer resolves to this customer)."""

    orgId: int
    cardNumber: str
    customerId: int
    claim: int | None


@dataclass(slots=True)
class Held:
    """One customer for as long as it stays in the projector: its newest state, watermarks (position -> last
    offset applied) and dedup window, decoded once; `token`, the watermarks its value in Redis starts with
    (the write's compare-and-set token); and what it owes Redis since its last write."""

    orgId: int
    customerId: int
    customer: Customer | None
    watermarks: dict[str, int]
    seen: DedupWindow  # the eventIds written as applied
    token: bytes = b""
    applied_event_ids: list[str] = field(default_factory=list)
    applied_keys: list[bytes] = field(default_factory=list)  # their dedup keys, not in `seen` yet
    index_changes: list[IndexChange] = field(default_factory=list)
    cards: dict[str, None] = field(default_factory=dict)  # the card numbers touched, in order
    advanced: bool = False  # a watermark moved: the value must be written

    def take(self, position: str, offset: int, event: Event, ledger_entries: int = LEDGER_ENTRIES) -> bool:
        """Folds one record on, keeping the newest `ledger_entries` ledger entries; False for a redelivery (at
        or below the watermark), which changes nothing."""
        watermarks = self.watermarks
        if offset <= watermarks.get(position, -1):
            return False
        watermarks[position] = offset
        self.advanced = True
        key = dedup_key(event.eventId)
        if key in self.seen or key in self.applied_keys:
            return True  # re-published: only the watermark moves
        data = event.data
        if type(data) is ProfileData:
            self.index_changes += _index_changes(self.customer, event, data, (position, offset))
        elif type(data) is CardData:
            self.cards[data.cardNumber] = None
        self.customer = apply_in_place(self.customer, event, ledger_entries)
        self.applied_event_ids.append(event.eventId)
        self.applied_keys.append(key)
        return True

    @property
    def card_claims(self) -> list["CardClaim"]:
        customer = self.customer
        return [card_claim(customer, number) for number in self.cards] if customer else []

    def written(self, token: bytes, seen: DedupWindow) -> None:
        """Redis holds everything owed: its value now starts with `token` and holds `seen`."""
        self.seen, self.token = seen, token
        self.applied_event_ids, self.applied_keys, self.index_changes, self.cards = [], [], [], {}
        self.advanced = False


@dataclass(slots=True)
class Stored:
    """What Redis holds for one customer."""

    customer: Customer | None
    watermarks: dict[str, int]  # position -> last applied offset; also the write's compare-and-set token
    seen: DedupWindow  # the eventIds it applied recently


def plan_customer(
    stored: Customer | None,
    watermarks: dict[str, int],
    seen: DedupWindow,
    records: list[tuple[str, int, Event]],
    ledger_entries: int = LEDGER_ENTRIES,
) -> Held:
    """Folds `records` ((position, offset, event), one customer's, in log order) onto what Redis holds,
    keeping the newest `ledger_entries` points ledger entries."""
    first = records[0][2]
    held = Held(first.orgId, first.customerId, stored, dict(watermarks), seen)
    for position, offset, event in records:
        held.take(position, offset, event, ledger_entries)
    return held


def card_claim(customer: Customer, number: str) -> CardClaim:
    card = customer.cards[number]
    claim = None if card.statusLabel == DELETED else epoch_ms(card.claimedAt)
    return CardClaim(customer.orgId, number, customer.customerId, claim)


def _index_changes(
    customer: Customer | None, event: Event, data: ProfileData, at: tuple[str, int]
) -> list[IndexChange]:
    previous = customer.profiles.get(profile_key(data.source, data.accountId)) if customer else None
    before = indexed_identifiers(previous.identifiers) if previous else set()
    after = indexed_identifiers([{"type": i.type, "value": i.value} for i in data.identifiers])
    score = epoch_ms(event.occurredAt)

    def key(type_value: tuple[str, str]) -> IndexKey:
        return IndexKey(event.orgId, data.source, data.accountId, *type_value)

    return [IndexChange(key(tv), event.customerId, False, at=at) for tv in sorted(before - after)] + [
        IndexChange(key(tv), event.customerId, True, score, at) for tv in sorted(after)
    ]


def epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
