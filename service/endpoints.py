"""The three read endpoints of API.md, from what a request carries to the JSON body of a 200.

The read routes (service.routes) call these. A failed check raises ApiError, an unreachable Redis
RedisError; the caller turns either into its response. `query` maps each parameter name to its last
value, as Starlette's QueryParams does.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from projections.read_model import ReadModel
from projections.state import Customer
from service import balance, details
from service.auth import Authenticator
from service.errors import CUSTOMER_NOT_FOUND, INVALID_PARAMETER, ApiError
from service.loyalty import OrgConfig

Query = Mapping[str, str]
AFTER_HEADER = b"x-pv-after-event-id"  # the header form of afterEventId
WAIT_MS_DEFAULT, WAIT_MS_MAX = 1000, 5000
NOT_APPLIED = 90001


@dataclass(frozen=True)
class After:
    """Read your own writes: answer once `event_id` is applied to the customer, or after `seconds`."""

    event_id: str
    seconds: float

    def warnings(self, done: bool) -> list[dict]:
        message = f"event {self.event_id} is not applied yet; the answer may be stale"
        return [] if done else [{"status": False, "code": NOT_APPLIED, "message": message}]


def after_event(query: Query) -> After | None:
    """afterEventId (or its header, merged into the query by the caller) and waitMs (0..5000, default 1000)."""
    raw = query.get("waitMs")
    wait_ms = WAIT_MS_DEFAULT
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or int(raw) > WAIT_MS_MAX:
            raise ApiError(INVALID_PARAMETER, f"waitMs must be an integer from 0 to {WAIT_MS_MAX}")
        wait_ms = int(raw)
    event_id = query.get("afterEventId")
    return After(event_id, wait_ms / 1000) if event_id else None


class Endpoints:
    def __init__(self, authenticator: Authenticator, read_model: ReadModel):
        self.authenticator = authenticator
        self.read_model = read_model

    async def user_balance(self, authorization: str | None, address: str, user_id: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        customer_id = balance.user_id(user_id)
        balance.check_entity_type(query.get("entityType"))
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        after = after_event(query)
        if after is None:
            customer, done = await self.read_model.customer(org.orgId, customer_id), True
        else:
            applied = self.read_model.customer_applied
            customer, done = await self.read_model.waited(
                lambda: applied(org.orgId, customer_id, after.event_id), after.seconds
            )
        if customer is None:
            raise ApiError(CUSTOMER_NOT_FOUND)
        body = balance.balance_body(customer_id, customer, program_ids)
        if after:
            body["warnings"] += after.warnings(done)
        return orjson.dumps(body)

    async def lookup_balance(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        balance.check_entity_type(query.get("entityType"))
        lookup = _lookup(org, query)
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        balance.account_scope(lookup)
        after = after_event(query)
        (customer_id, customer), warnings = await self._resolved(org, lookup, after)
        body = balance.balance_body(customer_id, customer, program_ids)
        body["warnings"] += warnings
        return orjson.dumps(body)

    async def customer_details(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        lookup = _lookup(org, query)
        wanted = details.embeds(query.get("embed"))
        details.gap_days("gapToUpgrade", query.get("gapToUpgrade"), wanted)
        details.gap_days("gapToRenew", query.get("gapToRenew"), wanted)
        balance.account_scope(lookup)
        after = after_event(query)
        (_customer_id, customer), warnings = await self._resolved(org, lookup, after)
        body = details.details_body(customer, org, wanted)
        body["warnings"] += warnings
        return orjson.dumps(body)

    async def _resolved(
        self, org: OrgConfig, lookup: balance.Lookup, after: After | None
    ) -> tuple[tuple[int, Customer], list[dict]]:
        """The customer the lookup resolves to, with its state; with `after`, once the event is applied to
        it (or resolution succeeds at all, for an event that creates the customer), or when the wait ends."""

        async def resolved() -> tuple[tuple[int, Customer | None] | None, bool]:
            found = await self.read_model.resolve(org.orgId, balance.scope(lookup), lookup.identifier)
            if found is None or found[1] is None or after is None:
                return found, after is None
            state, applied = await self.read_model.customer_applied(org.orgId, found[0], after.event_id)
            return (found[0], state), applied

        found, done = await (self.read_model.waited(resolved, after.seconds) if after else resolved())
        if found is None or found[1] is None:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return found, after.warnings(done) if after else []


def _lookup(org: OrgConfig, query: Query) -> balance.Lookup:
    return balance.lookup(
        org, query.get("source"), query.get("accountId"), query.get("identifierName"), query.get("identifierValue")
    )
