"""The whole log folded in memory: what a read-model built from it must equal (`pointsview verify`)."""

from collections.abc import Iterable

from projections.apply import apply_in_place
from projections.events import InvalidEvent, parse_event
from projections.ledger import LEDGER_ENTRIES
from projections.state import Customer


def fold_log(values: Iterable[bytes], ledger_entries: int = LEDGER_ENTRIES) -> dict[tuple[int, int], Customer]:
    """Every valid event applied once per eventId and customer, in the given (log) order, keeping the newest
    `ledger_entries` points ledger entries of each."""
    customers: dict[tuple[int, int], Customer] = {}
    seen: set[tuple[tuple[int, int], str]] = set()
    for value in values:
        try:
            event = parse_event(value)
        except InvalidEvent:
            continue
        if (event.customer_key, event.eventId) not in seen:
            seen.add((event.customer_key, event.eventId))
            customers[event.customer_key] = apply_in_place(customers.get(event.customer_key), event, ledger_entries)
    return customers
