"""The read endpoints of API.md, from what a request carries to the JSON body of a 200.

The read routes (service.routes) call these. A failed check raises ApiError, an unreachable Redis
RedisError; the caller turns either into its response. `query` maps each parameter name to its last
value, as Starlette's QueryParams does.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from projections.read_model import ReadModel, Slots
from projections.state import Customer, CustomerCore
from projections.store import CorruptValue
from service import balance, details, ledger
from service.auth import Authenticator
from service.cursors import Cursors
from service.errors import CUSTOMER_NOT_FOUND, INVALID_PARAMETER, ApiError
from service.integers import bounded_int
from service.loyalty import OrgConfig

Query = Mapping[str, str]
AFTER_HEADER = b"x-pv-after-event-id"  # the header form of afterEventId
WAIT_MS_DEFAULT, WAIT_MS_MAX = 1000, 5000
NOT_APPLIED = 90001
MAX_HOPS = 5  # merge redirects followed
MERGED = "Retrieved survivor account for the requested merge victim"
MERGED_WARNING = {"status": False, "code": 91009, "message": MERGED}


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
    wait_ms = WAIT_MS_DEFAULT if raw is None else bounded_int(raw, WAIT_MS_MAX)
    if wait_ms is None:
        raise ApiError(INVALID_PARAMETER, f"waitMs must be an integer from 0 to {WAIT_MS_MAX}")
    event_id = query.get("afterEventId")
    return After(event_id, wait_ms / 1000) if event_id else None


class Endpoints:
    def __init__(self, authenticator: Authenticator, read_model: ReadModel, cursors: Cursors | None = None):
        self.authenticator = authenticator
        self.read_model = read_model
        self.cursors = cursors or Cursors(b"")  # the ledger's page cursors (its routes exist when it is on)

    async def user_balance(self, authorization: str | None, address: str, user_id: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        customer_id = balance.user_id(user_id)
        balance.check_entity_type(query.get("entityType"))
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        after = after_event(query)

        async def read() -> tuple[Found | None, bool, Slots]:
            return await self._survivor(org.orgId, customer_id, after)

        found = await self._answer(read, after)
        body = balance.balance_body(found.customer_id, found.customer, program_ids)
        body["warnings"] += found.warnings
        return found.json(body)

    async def lookup_balance(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        balance.check_entity_type(query.get("entityType"))
        lookup = _lookup(org, query)
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        after = after_event(query)  # a parameter (400) before the account (8015): API.md's order of checks
        balance.account_scope(lookup)
        found = await self._resolved(org, lookup, after)
        body = balance.balance_body(found.customer_id, found.customer, program_ids)
        body["warnings"] += found.warnings
        return found.json(body)

    async def customer_details(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        lookup = _lookup(org, query)
        wanted = details.embeds(query.get("embed"))
        details.gap_days("gapToUpgrade", query.get("gapToUpgrade"), wanted)
        details.gap_days("gapToRenew", query.get("gapToRenew"), wanted)
        after = after_event(query)
        balance.account_scope(lookup)
        found = await self._resolved(org, lookup, after)
        body = details.details_body(found.customer, org, wanted)
        body["warnings"] += found.warnings
        return found.json(body)

    async def user_ledger(self, authorization: str | None, address: str, user_id: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        customer_id = balance.user_id(user_id)
        balance.check_entity_type(query.get("entityType"))
        page = self._page_request(org, query)
        after = after_event(query)

        async def read() -> tuple[Found | None, bool, Slots]:
            return await self._survivor(org.orgId, customer_id, after, ledger=True)

        return self._ledger_body(await self._answer(read, after), page)

    async def lookup_ledger(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        balance.check_entity_type(query.get("entityType"))
        lookup = _lookup(org, query)
        page = self._page_request(org, query)
        after = after_event(query)
        balance.account_scope(lookup)
        return self._ledger_body(await self._resolved(org, lookup, after, ledger=True), page)

    def _page_request(self, org: OrgConfig, query: Query) -> ledger.PageRequest:
        return ledger.page_request(org, query.get("programId"), query.get("limit"), query.get("before"), self.cursors)

    def _ledger_body(self, found: "Found", page: ledger.PageRequest) -> bytes:
        assert isinstance(found.customer, Customer)  # read with its ledger
        body = ledger.ledger_body(found.customer_id, found.customer, page, self.cursors)
        body["warnings"] += found.warnings
        return orjson.dumps(body)

    async def _resolved(
        self, org: OrgConfig, lookup: balance.Lookup, after: After | None, ledger: bool = False
    ) -> "Found":
        """The customer the lookup resolves to (its survivor, when merged), with its state (and its ledger,
        when asked); with `after`, once the event is applied on that path (or resolution succeeds at all, for
        an event that creates the customer), or when the wait ends."""

        async def read() -> tuple[Found | None, bool, Slots]:
            claimant = await self.read_model.resolve(org.orgId, balance.scope(lookup), lookup.identifier, ledger)
            if claimant is None or claimant[1] is None:
                return None, False, None  # any write may be the one that creates the customer
            return await self._survivor(org.orgId, claimant[0], after, None if after else claimant[1], ledger)

        return await self._answer(read, after)

    async def _answer(self, read, after: After | None) -> "Found":
        found, done, *_ = await (self.read_model.waited(read, after.seconds) if after else read())
        if found is None:
            raise ApiError(CUSTOMER_NOT_FOUND)
        if after and not done:
            found.warnings += after.warnings(False)
        return found

    async def _survivor(
        self,
        org_id: int,
        customer_id: int,
        after: After | None,
        customer: CustomerCore | None = None,
        ledger: bool = False,
    ) -> tuple["Found | None", bool, Slots]:
        """The customer, or the survivor its merges redirect to (at most MAX_HOPS; a loop, a longer chain or
        a survivor the org does not have: 8015), whether `after`'s event is applied on that path, and the
        slots of the path's customers (a wait for the event watches them). Every read is under the caller's
        org: another org's customer is never reached."""
        path = [customer_id]
        applied = after is None
        while True:
            if customer is None or after:
                customer, on_it = await self._read(org_id, customer_id, after, ledger)
                applied = applied or on_it
            if customer is None:
                if len(path) > 1:
                    raise ApiError(CUSTOMER_NOT_FOUND)  # a survivor the org does not have
                return None, applied, self._watched(org_id, path, after)
            if customer.mergedInto is None:
                warnings = [MERGED_WARNING] if len(path) > 1 else []
                return Found(customer_id, customer, warnings), applied, self._watched(org_id, path, after)
            customer_id = customer.mergedInto
            if customer_id in path or len(path) > MAX_HOPS:
                raise ApiError(CUSTOMER_NOT_FOUND)
            path.append(customer_id)
            customer = None

    def _watched(self, org_id: int, path: list[int], after: After | None) -> Slots:
        """The slots a wait for `after` watches: those of the path's customers (none without a wait: the
        hashing costs an ordinary read a few percent)."""
        return self.read_model.slots(org_id, path) if after else None

    async def _read(
        self, org_id: int, customer_id: int, after: After | None, ledger: bool
    ) -> tuple[CustomerCore | None, bool]:
        if after is None:
            return await self.read_model.customer(org_id, customer_id, ledger), True
        return await self.read_model.customer_applied(org_id, customer_id, after.event_id)  # with its ledger


@dataclass
class Found:
    customer_id: int  # the survivor's, when the request resolved to a merge victim
    customer: CustomerCore  # a Customer (with its ledger) when read for the ledger
    warnings: list[dict]

    def json(self, body: dict) -> bytes:
        """The body of the customer's answer; CorruptValue when its state holds what JSON cannot carry (a
        stored value that decoded, yet was not written by the fold: bytes, keys that are not strings)."""
        try:
            return orjson.dumps(body)
        except orjson.JSONEncodeError as exc:
            raise CorruptValue(f"the stored value of customer {self.customer_id} is unreadable: {exc}") from None


def _lookup(org: OrgConfig, query: Query) -> balance.Lookup:
    return balance.lookup(
        org, query.get("source"), query.get("accountId"), query.get("identifierName"), query.get("identifierValue")
    )
