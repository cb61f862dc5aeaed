"""The identifier and card indexes that customers' states imply, and how a stored index differs from them
(`pointsview verify`).

Every customer whose profile lists an identifier has an entry in its index field, and every holder of a
card an entry in the card's field: its claim time, or `D` when the card is DELETED (projections.plan
writes them so). A card entry is the holder's whole card state, so it is compared exactly. An identifier's
stored claim time depends on the order claims were written (claims.lua lifts a later-written claim above
the others), which the states do not hold: for identifiers, verify compares who holds an entry, and names
a lookup that resolves to a customer holding no claim.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from projections.identity import IndexKey, indexed_identifiers
from projections.keys import Keys
from projections.plan import card_claim, epoch_ms
from projections.state import Customer

Entries = dict[int, int | None]  # customerId -> claim time (ms); None: its card is DELETED (`customerId:D`)
Field = tuple[str, str]  # (index hash, field)


@dataclass
class Index:
    identifiers: dict[Field, Entries] = field(default_factory=dict)
    cards: dict[Field, Entries] = field(default_factory=dict)


def expected_index(customers: Iterable[Customer], keys: Keys) -> Index:
    """The entries the customers' profiles (claimed at their last profile event) and cards make."""
    index = Index()
    for customer in customers:
        for profile in customer.profiles.values():
            claimed = epoch_ms(profile.modifiedAt)
            for type_, value in sorted(indexed_identifiers(profile.identifiers)):
                key = IndexKey(customer.orgId, profile.source, profile.accountId, type_, value)
                index.identifiers.setdefault(keys.identifier(key), {})[customer.customerId] = claimed
        for number in customer.cards:
            claim = card_claim(customer, number)
            index.cards.setdefault(keys.card(customer.orgId, number), {})[customer.customerId] = claim.claim
    return index


def decode_entries(value: bytes) -> Entries:
    """An index field's value: `customerId:claimTime,...`, `customerId:D` for a DELETED card."""
    entries: Entries = {}
    for entry in filter(None, value.split(b",")):
        customer_id, _, claim = entry.partition(b":")
        entries[int(customer_id)] = None if claim == b"D" else int(claim)
    return entries


def resolver(entries: Entries) -> int | None:
    """Who a field resolves to: the latest claim (ties: the higher customerId), DELETED cards left out."""
    claims = [(claim, customer_id) for customer_id, claim in entries.items() if claim is not None]
    return max(claims)[1] if claims else None


def index_differences(expected: Index, found: Index, limit: int = 50) -> list[str]:
    """One line per wrong resolution, missing entry, stale entry and (cards) differing entry."""
    lines = []
    for want, got, exact in ((expected.identifiers, found.identifiers, False), (expected.cards, found.cards, True)):
        for at in sorted(want.keys() | got.keys()):
            lines += _field_differences(f"index {at[0]} {at[1]}", want.get(at, {}), got.get(at, {}), exact)
            if len(lines) >= limit:
                return lines[:limit] + ["... (more index differences not shown)"]
    return lines


def _field_differences(name: str, want: Entries, got: Entries, exact: bool) -> list[str]:
    lines, named = [], set()
    expected, found = resolver(want), resolver(got)
    if expected is not None and found is not None and expected != found and (exact or found not in want):
        lines.append(f"{name}: expected customer {expected}, found {found}")
        named = {expected, found}
    lines += [f"{name}: missing entry for customer {c}" for c in sorted(want.keys() - got.keys() - named)]
    lines += [f"{name}: stale entry for customer {c}" for c in sorted(got.keys() - want.keys() - named)]
    if exact:
        lines += [
            f"{name}: expected entry {_entry(c, want[c])}, found {_entry(c, got[c])}"
            for c in sorted(want.keys() & got.keys())
            if want[c] != got[c]
        ]
    return lines


def _entry(customer_id: int, claim: int | None) -> str:
    return f"{customer_id}:{'D' if claim is None else claim}"
