"""Batch planning: which records of a batch change a customer, and what to write.

Pure: the store reads a customer's stored state, the planner folds the new
records onto it and says what to write; the store writes it atomically with
the new watermarks. A record at or below its partition's watermark
(redelivered) or with an eventId already applied (re-published) is a no-op.
"""

from dataclasses import dataclass, field
from datetime import datetime

from projections.apply import apply_in_place
from projections.dedup import DedupWindow, dedup_key
from projections.events import DELETED, CardData, Event, ProfileData
from projections.identity import IndexKey, indexed_identifiers
from projections.keys import position_name
from projections.ledger import LEDGER_ENTRIES
from projections.state import Customer, profile_key


@dataclass(slots=True)
class Record:
    """One consumed record that parsed into an event."""

    topic: str
    partition: int
    offset: int
    event: Event
    position: str = field(init=False)  # the partition's name in the watermarks

    def __post_init__(self) -> None:
        self.position = position_name(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class IndexChange:
    key: IndexKey
    customerId: int
    claimed: bool  # False: the customer no longer lists it
    score: int = 0  # claim time (occurredAt, ms): the latest claim resolves
    at: tuple[str, int, int] = field(default=("", 0, 0), compare=False)  # (topic, partition, offset): write order


@dataclass(frozen=True, slots=True)
class CardClaim:
    """The customer's entry for a card number in its org's card index: its claim time (occurredAt, ms), or
    None when its card is DELETED (it no longer resolves to this customer)."""

    orgId: int
    cardNumber: str
    customerId: int
    claim: int | None


@dataclass(slots=True)
class CustomerWrite:
    orgId: int
    customerId: int
    customer: Customer | None  # None when nothing new was applied
    watermarks: dict[str, int]  # the partitions this write advances
    applied_event_ids: list[str] = field(default_factory=list)
    applied_keys: list[bytes] = field(default_factory=list)  # their dedup keys
    index_changes: list[IndexChange] = field(default_factory=list)
    card_claims: list[CardClaim] = field(default_factory=list)  # in order: a later one replaces an earlier

    def absorb(self, later: "CustomerWrite") -> None:
        """This write followed by `later` (the same customer's next batch), as one write."""
        self.customer = later.customer or self.customer
        self.watermarks.update(later.watermarks)
        self.applied_event_ids += later.applied_event_ids
        self.applied_keys += later.applied_keys
        self.index_changes += later.index_changes
        self.card_claims += later.card_claims


@dataclass(slots=True)
class Stored:
    """What Redis holds for one customer, as far as planning needs it."""

    customer: Customer | None
    watermarks: dict[str, int]  # position -> last applied offset; also the write's compare-and-set token
    seen: DedupWindow  # the eventIds it applied recently


def stored_after(before: Stored, write: CustomerWrite, now_ms: int, window_ms: int) -> Stored:
    """What Redis holds once `write` is stored on top of `before`."""
    seen = before.seen.added(write.applied_keys, now_ms, window_ms)
    return Stored(write.customer or before.customer, {**before.watermarks, **write.watermarks}, seen)


def plan_customer(
    stored: Customer | None,
    watermarks: dict[str, int],
    seen: DedupWindow | set[bytes],
    records: list[Record],
    ledger_entries: int = LEDGER_ENTRIES,
) -> CustomerWrite:
    """Folds `records` (one customer's, in log order) onto `stored`, which the planner takes over, keeping
    the newest `ledger_entries` points ledger entries."""
    first = records[0].event
    write = CustomerWrite(orgId=first.orgId, customerId=first.customerId, customer=None, watermarks={})
    customer = stored
    applied = set()
    cards: dict[str, None] = {}  # the card numbers these records touch
    for record in records:
        position = record.position
        if record.offset <= write.watermarks.get(position, watermarks.get(position, -1)):
            continue
        write.watermarks[position] = record.offset
        event = record.event
        key = dedup_key(event.eventId)
        if event.eventId in applied or key in seen:
            continue
        applied.add(event.eventId)
        if type(event.data) is ProfileData:
            write.index_changes += _index_changes(
                customer, event, event.data, (record.topic, record.partition, record.offset)
            )
        elif type(event.data) is CardData:
            cards[event.data.cardNumber] = None
        customer = apply_in_place(customer, event, ledger_entries)
        write.applied_event_ids.append(event.eventId)
        write.applied_keys.append(key)
    write.customer = customer if write.applied_event_ids else None
    if customer is not None:
        write.card_claims = [_card_claim(customer, number) for number in cards]
    return write


def _card_claim(customer: Customer, number: str) -> CardClaim:
    card = customer.cards[number]
    claim = None if card.statusLabel == DELETED else epoch_ms(card.claimedAt)
    return CardClaim(customer.orgId, number, customer.customerId, claim)


def _index_changes(
    customer: Customer | None, event: Event, data: ProfileData, at: tuple[str, int, int]
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
