"""Which identifiers resolve to customers, and in which normal form (EVENTS.md)."""

from typing import NamedTuple

from projections.state import StoredIdentifier

CARD_NUMBER = "cardnumber"  # also resolves to the org's card holders (card.issued), on any source
INDEXED_TYPES = {
    "mobile": "mobile",
    "email": "email",
    "externalid": "externalId",
    "cardnumber": CARD_NUMBER,
    "wechat": "wechat",
}


def lookup_form(type_: str, value: str) -> tuple[str, str] | None:
    """(type, value) as the index holds it; None for types that are not looked up."""
    canonical = INDEXED_TYPES.get(type_.lower())
    if canonical is None:
        return None
    return canonical, value.lower() if canonical == "email" else value


def indexed_identifiers(identifiers: list[StoredIdentifier]) -> set[tuple[str, str]]:
    return {form for i in identifiers if (form := lookup_form(i["type"], i["value"]))}


class IndexKey(NamedTuple):
    """One identifier of one org's source and account, in lookup form: what the index maps to claimants."""

    orgId: int
    source: str
    accountId: str
    type: str
    value: str
