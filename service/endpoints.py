"""The three read endpoints of API.md, from what a request carries to the JSON body of a 200.

The read routes (service.routes) call these. A failed check raises ApiError, an unreachable Redis
RedisError; the caller turns either into its response. `query` maps each parameter name to its last
value, as Starlette's QueryParams does.
"""

from collections.abc import Mapping

import orjson

from projections.read_model import ReadModel
from projections.state import Customer
from service import balance, details
from service.auth import Authenticator
from service.errors import CUSTOMER_NOT_FOUND, ApiError
from service.loyalty import OrgConfig

Query = Mapping[str, str]


class Endpoints:
    def __init__(self, authenticator: Authenticator, read_model: ReadModel):
        self.authenticator = authenticator
        self.read_model = read_model

    async def user_balance(self, authorization: str | None, address: str, user_id: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        customer_id = balance.user_id(user_id)
        balance.check_entity_type(query.get("entityType"))
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        customer = await self.read_model.customer(org.orgId, customer_id)
        if customer is None:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return orjson.dumps(balance.balance_body(customer_id, customer, program_ids))

    async def lookup_balance(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        balance.check_entity_type(query.get("entityType"))
        lookup = _lookup(org, query)
        program_ids = balance.programs(org, query.get("programId"), query.get("fetchDataForAllPrograms"))
        balance.account_scope(lookup)
        customer_id, customer = await self._resolved(org, lookup)
        return orjson.dumps(balance.balance_body(customer_id, customer, program_ids))

    async def customer_details(self, authorization: str | None, address: str, query: Query) -> bytes:
        org = await self.authenticator.org(authorization, address)
        lookup = _lookup(org, query)
        wanted = details.embeds(query.get("embed"))
        details.gap_days("gapToUpgrade", query.get("gapToUpgrade"), wanted)
        details.gap_days("gapToRenew", query.get("gapToRenew"), wanted)
        balance.account_scope(lookup)
        _customer_id, customer = await self._resolved(org, lookup)
        return orjson.dumps(details.details_body(customer, org, wanted))

    async def _resolved(self, org: OrgConfig, lookup: balance.Lookup) -> tuple[int, Customer]:
        found = await self.read_model.resolve(org.orgId, balance.scope(lookup), lookup.identifier)
        if found is None or found[1] is None:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return found


def _lookup(org: OrgConfig, query: Query) -> balance.Lookup:
    return balance.lookup(
        org, query.get("source"), query.get("accountId"), query.get("identifierName"), query.get("identifierValue")
    )
