"""The points ledger endpoints' rules (API.md "Round 3 / Points ledger"): their parameters, and a page of
one customer's ledger, newest first. Pure: no I/O here.

A page lists entries older than its cursor's position (none: from the newest) of the chosen program (none:
every program of the org), at most `limit`. Positions are the customer's count of points events, which
only grows: entries applied while a client pages through come before its first page's position, and never
shift the later pages.
"""

from dataclasses import dataclass

from projections import ledger
from projections.events import POINTS
from projections.ledger import LedgerEntry
from projections.money import to_number
from projections.state import Customer
from service.cursors import Cursor, Cursors
from service.errors import INVALID_PARAMETER, ApiError
from service.integers import INT32, bounded_int
from service.loyalty import OrgConfig

LIMIT_DEFAULT, LIMIT_MAX = 20, 100
CATEGORIES = [category.value for category in ledger.CATEGORIES]


@dataclass(frozen=True, slots=True)
class PageRequest:
    program_id: int  # 0: every program of the org
    programs: frozenset[int]  # the programs whose entries are listed
    limit: int
    before: Cursor | None


def page_request(
    org: OrgConfig, program_id: str | None, limit: str | None, before: str | None, cursors: Cursors
) -> PageRequest:
    """programId (a program of the org), limit (1..100) and before (a cursor of this org, for this program
    filter): the checks of "other parameters" (400). Whose customer a cursor names is checked once the
    request is resolved (`ledger_body`)."""
    chosen = 0
    if program_id is not None:
        chosen = bounded_int(program_id, INT32, 1) or 0
        if org.program(chosen) is None:
            raise ApiError(INVALID_PARAMETER, f"programId {program_id[:32]!r} is not a program of this org")
    size = LIMIT_DEFAULT if limit is None else bounded_int(limit, LIMIT_MAX, 1)
    if size is None:
        raise ApiError(INVALID_PARAMETER, f"limit must be an integer from 1 to {LIMIT_MAX}")
    cursor = None if before is None else cursors.decode(before)
    if before is not None and (cursor is None or cursor.org_id != org.orgId or cursor.program_id != chosen):
        raise ApiError(INVALID_PARAMETER, "before must be the nextCursor of the previous page")
    programs = frozenset([chosen] if chosen else [p.programId for p in org.programs])
    return PageRequest(chosen, programs, size, cursor)


def ledger_body(customer_id: int, customer: Customer, request: PageRequest, cursors: Cursors) -> dict:
    """The page of `customer`'s ledger (`customer_id`'s: the survivor's, for a merge victim)."""
    cursor = request.before
    if cursor is not None and cursor.customer_id != customer_id:
        raise ApiError(INVALID_PARAMETER, "before must be the nextCursor of the previous page")
    listed, more = _page(customer, request)
    oldest_kept = customer.ledgerSeq - len(customer.ledger) + 1
    following = cursors.encode(Cursor(customer.orgId, customer_id, listed[-1][0], request.program_id)) if more else None
    return {
        "entityId": customer_id,
        "entityType": "CUSTOMER",
        "entries": [_entry(entry) for _, entry in listed],
        "nextCursor": following,
        "complete": more or oldest_kept <= 1,  # older entries were dropped: the last page says so
        "warnings": [],
    }


def _page(customer: Customer, request: PageRequest) -> tuple[list[tuple[int, LedgerEntry]], bool]:
    """Up to `limit` (position, entry) of the chosen programs before the cursor, newest first; and whether
    older ones of those programs follow."""
    before = request.before.seq if request.before else customer.ledgerSeq + 1
    listed: list[tuple[int, LedgerEntry]] = []
    for seq, raw in zip(reversed(customer.ledger_seqs()), reversed(customer.ledger)):
        entry = ledger.entry(raw) if seq < before else None
        if entry is None or entry.programId not in request.programs:
            continue
        if len(listed) == request.limit:
            return listed, True
        listed.append((seq, entry))
    return listed, False


def _entry(entry: LedgerEntry) -> dict:
    return {
        "eventId": ledger.event_id(entry),
        "eventType": ledger.EVENT_TYPES[entry.eventType],
        "occurredAt": ledger.timestamp(entry.occurredAt),
        "programId": entry.programId,
        "currency": POINTS if entry.currency is None else entry.currency,
        "category": CATEGORIES[entry.category],
        "points": to_number(entry.points),
        "fromCategory": None if entry.fromCategory is None else CATEGORIES[entry.fromCategory],
        "expiresAt": None if entry.expiresAt is None else ledger.timestamp(entry.expiresAt),
        "transactionId": entry.transactionId,
        "balanceAfter": {"mainPoints": to_number(entry.mainAfter), "promisedPoints": to_number(entry.promisedAfter)},
    }
