"""The balance endpoints' rules (API.md): parameter checks in the contract's order,
identifier resolution with dual eligibility, and the program table.

Checks run in this order, the first failure answers: credentials (401, in
the route's dependency); userId (1632); entityType (1212); source,
identifierName or identifierValue missing or empty (11013); source (8003);
identifierName, or names and values differing in count (8013); other
parameters (400); accountId (8015); resolution (8015).
"""

from dataclasses import dataclass

from projections.apply import sum_figures
from projections.events import POINTS
from projections.identity import lookup_form
from projections.money import to_number
from projections.state import CustomerCore, balance_key
from service.errors import (
    CUSTOMER_NOT_FOUND,
    INVALID_ENTITY_TYPE,
    INVALID_IDENTIFIER,
    INVALID_PARAMETER,
    INVALID_SOURCE,
    INVALID_USER_ID,
    MISSING_IDENTIFIER,
    ApiError,
)
from service.integers import INT32, INT64, bounded_int
from service.loyalty import OrgConfig

SOURCES = {"INSTORE", "MARTJACK", "WECHAT", "MAPP_SDK", "ALL"}


@dataclass(frozen=True, slots=True)
class Lookup:
    source: str  # upper-case; "ALL" searches every source of the org
    account_id: str
    identifier: tuple[str, str]  # (type, value) in lookup form: the pair that decides


def user_id(raw: str) -> int:
    value = bounded_int(raw, INT64, 1)
    if value is None:
        raise ApiError(INVALID_USER_ID)
    return value


def check_entity_type(raw: str | None) -> None:
    if raw is not None and raw.upper() != "CUSTOMER":
        raise ApiError(INVALID_ENTITY_TYPE)


def lookup(org: OrgConfig, source: str | None, account_id: str | None, names: str | None, values: str | None) -> Lookup:
    """Everything of a lookup up to the accountId check, which `account_scope` does after the rest."""
    if not (source or "").strip() or not (names or "").strip() or not (values or "").strip():
        raise ApiError(MISSING_IDENTIFIER)
    name_list = [n.strip() for n in names.split(",")]
    value_list = [v.strip() for v in values.split(",")]
    if not all(value_list):
        raise ApiError(MISSING_IDENTIFIER, "identifierValue has an empty value")
    source = source.strip().upper()
    if source not in SOURCES:
        raise ApiError(INVALID_SOURCE)
    if len(name_list) != len(value_list):
        raise ApiError(INVALID_IDENTIFIER, "identifierName and identifierValue differ in count")
    pairs = [lookup_form(n, v) for n, v in zip(name_list, value_list)]
    if None in pairs:
        raise ApiError(INVALID_IDENTIFIER, f"Invalid identifierName {names!r}")
    if len(pairs) > 1 and not org.dualEligibility:
        raise ApiError(INVALID_IDENTIFIER, "several identifiers need dual eligibility")
    decisive = pairs[0]
    if org.dualEligibility:
        primary = [p for p in pairs if p[0] == org.primaryIdentifier]
        decisive = primary[0] if primary else None
    return Lookup(source, (account_id or "").strip(), decisive)


def account_scope(request: Lookup) -> None:
    """The accountId check (8015), after the other parameters as the contract orders it."""
    if request.source not in ("INSTORE", "ALL") and not request.account_id:
        raise ApiError(CUSTOMER_NOT_FOUND, "accountId is required for this source")
    if request.identifier is None:  # dual eligibility without the primary identifier
        raise ApiError(CUSTOMER_NOT_FOUND)


def scope(request: Lookup) -> tuple[str, str] | None:
    """The (source, accountId) a lookup searches; None: every source of the org (source=ALL)."""
    if request.source == "ALL":
        return None
    return request.source, "" if request.source == "INSTORE" else request.account_id


def programs(org: OrgConfig, program_id: str | None, all_programs: str | None) -> list[int]:
    """The seeds' table: all programs when fetchDataForAllPrograms, else programId, else the default."""
    fetch_all = _boolean("fetchDataForAllPrograms", all_programs)
    chosen = None
    if program_id is not None:
        chosen = bounded_int(program_id, INT32, 1)
        if chosen is None or org.program(chosen) is None:
            raise ApiError(INVALID_PARAMETER, f"programId {program_id[:32]!r} is not a program of this org")
    if fetch_all:
        return [p.programId for p in org.programs]
    return [chosen or org.defaultProgramId]


def _boolean(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ApiError(INVALID_PARAMETER, f"{name} must be true or false")
    return value == "true"


def balance_body(customer_id: int, customer: CustomerCore, program_ids: list[int]) -> dict:
    held = [b for p in program_ids if (b := customer.balances.get(balance_key(p, POINTS))) is not None]
    figures = sum_figures(held)
    return {
        "entityId": customer_id,
        "entityType": "CUSTOMER",
        "totalPoints": to_number(figures["totalPoints"]),
        "mainPoints": to_number(figures["mainPoints"]),
        "promisedPoints": to_number(figures["promisedPoints"]),
        "promisedPointsBreakup": {
            "delayedAccrualPoints": to_number(figures["delayedAccrualPoints"]),
            "externalTriggerBasedPoints": to_number(figures["externalTriggerBasedPoints"]),
        },
        "warnings": [],
    }
