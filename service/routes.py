"""The read routes of API.md, declared once: what each answers, its parameters (the OpenAPI document is
built from them) and how its requests are matched.

Requests for them (GET, and HEAD: the same answer without the body) are answered here in pure ASGI,
before FastAPI's middleware and router: FastAPI's stack (middlewares, route matching, Request and
Response objects, dependency solving) cost more per request than the Redis read behind a balance. The
app (service.app) registers each route with FastAPI from the same declaration, for the OpenAPI
document and for requests that arrive through FastAPI (a root path), and answers those with `respond`
below: one table, one way to answer.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from redis.exceptions import RedisError

from projections.store import CorruptValue
from service.endpoints import AFTER_HEADER, WAIT_MS_DEFAULT, WAIT_MS_MAX, Endpoints, Query
from service.errors import ApiError, error_answer, unavailable_answer, unreadable_answer
from service.integers import INT32, INT64
from service.ledger import LIMIT_DEFAULT, LIMIT_MAX
from service.metrics import record

log = logging.getLogger("pointsview.api")
_JSON = (b"content-type", b"application/json")
OAUTH_HEADER = b"x-cap-api-oauth-token"  # Capillary's: an access token in place of Authorization
Answer = Callable[[Endpoints, str | None, str, dict[str, str], Query], Awaitable[bytes]]


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    schema: dict  # OpenAPI schema of the value (what it must be; anything else is that parameter's error)
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class ReadRoute:
    path: str  # the template; `{name}` is one path segment, handed to `answer` by name
    name: str
    tag: str
    summary: str
    parameters: tuple[Parameter, ...]
    answer: Answer  # (endpoints, Authorization header, client address, path parameters, query) -> body
    response_model: type | None = None
    description: str = ""

    def match(self, path: str) -> dict[str, str] | None:
        head, brace, rest = self.path.partition("{")
        if not brace:
            return {} if path == self.path else None
        name, _, tail = rest.partition("}")
        if not (path.startswith(head) and path.endswith(tail)):
            return None
        value = path[len(head) : len(path) - len(tail)]
        return {name: value} if value and "/" not in value else None  # what Starlette's {name} matches


LOOKUP = (
    Parameter("source", "INSTORE, MARTJACK, WECHAT, MAPP_SDK or ALL (any case)", {"type": "string"}, True),
    Parameter("accountId", "required unless source is INSTORE or ALL", {"type": "string"}),
    Parameter(
        "identifierName",
        "mobile, email, externalId, cardnumber, wechat (any case); comma-separated with dual eligibility",
        {"type": "string"},
        True,
    ),
    Parameter("identifierValue", "the values, in the order of identifierName", {"type": "string"}, True),
)
PROGRAMS = (
    Parameter(
        "programId",
        "a program of the caller's org (default: the org's default program)",
        {"type": "integer", "minimum": 1, "maximum": INT32},
    ),
    Parameter("fetchDataForAllPrograms", "sum every program of the org", {"type": "boolean", "default": False}),
    Parameter("entityType", "CUSTOMER (any case)", {"type": "string", "default": "CUSTOMER"}),
)
DETAILS = (
    Parameter(
        "embed",
        "comma-separated, any case: points, mlp, expirySchedules, expiredPoints, alternateCurrencies, "
        "customerStatus (the customerStatus section: label, reason, since; ACTIVE without a status event), "
        "ignoreCardDetails, cardLoyaltyDetails (accepted; cardDetails already carries the cards); subscriptions, "
        "promotionalPoints, segments, userGroup, customerImage, fleetParentDetails are accepted with warning 1002",
        {"type": "string"},
    ),
    Parameter("gapToUpgrade", "days ahead, with embed=mlp", {"type": "integer", "minimum": 0, "maximum": INT32}),
    Parameter("gapToRenew", "days ahead, with embed=mlp", {"type": "integer", "minimum": 0, "maximum": INT32}),
)
AFTER = (
    Parameter(
        "afterEventId",
        "read your own writes: answer once this event is applied to the customer (or with warning 90001 when "
        "waitMs passes first); also as the header X-PV-After-Event-Id",
        {"type": "string"},
    ),
    Parameter(
        "waitMs",
        "how long to wait for afterEventId (ms)",
        {"type": "integer", "minimum": 0, "maximum": WAIT_MS_MAX, "default": WAIT_MS_DEFAULT},
    ),
    Parameter("X-PV-After-Event-Id", "afterEventId as a header", {"type": "string"}, where="header"),
)
WARNINGS = (
    "Warnings (`warnings[]`, the answer is still 200): **91009** the customer asked for was merged: the answer "
    "is its survivor's (followed up to 5 hops; a loop, a 6th hop or a survivor the org lacks is 8015); "
    "**90001** afterEventId was not applied within waitMs: the answer may be stale."
)
CARDS = (
    " `cardDetails[]`: the customer's cards from card.issued/card.updated events (cardNumber, seriesId, seriesCode, "
    "type, statusInfo {label, status, isActive, reason, createdOn}, customFields, createdOn, expiryDate; DELETED "
    "cards left out), then cardnumber identifiers of its profiles not issued as cards; a profile's cardnumber "
    "identifier carries the card's seriesId and statusLabel. A card number resolves on any source and account "
    "of the org."
)
LEDGER = (
    Parameter(
        "programId",
        "a program of the caller's org (default: every program of the org)",
        {"type": "integer", "minimum": 1, "maximum": INT32},
    ),
    Parameter(
        "limit", "entries per page", {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT}
    ),
    Parameter(
        "before",
        "the nextCursor of the previous page, with the same programId (any other value is 400)",
        {"type": "string"},
    ),
    Parameter("entityType", "CUSTOMER (any case)", {"type": "string", "default": "CUSTOMER"}),
)
LEDGER_DESCRIPTION = (
    " One entry per applied points event of the customer, newest first: `points` is the signed change to "
    "`category` (a promotion: MAIN, with `fromCategory` the promised category it came from), `balanceAfter` "
    "that program and currency's mainPoints and promisedPoints right after it. The newest "
    "POINTSVIEW_LEDGER_ENTRIES entries are kept, across programs; `complete` is false on the last page when "
    "older ones were dropped. `nextCursor` (null on the last page) names a position in the customer's history: "
    "entries applied meanwhile neither repeat nor skip entries on later pages."
)
USER_ID = Parameter(
    "userId", "the customer's userId", {"type": "integer", "minimum": 1, "maximum": INT64}, True, "path"
)


def _user_balance(endpoints: Endpoints, authorization, address, path, query) -> Awaitable[bytes]:
    return endpoints.user_balance(authorization, address, path["userId"], query)


def _lookup_balance(endpoints: Endpoints, authorization, address, _path, query) -> Awaitable[bytes]:
    return endpoints.lookup_balance(authorization, address, query)


def _customer_details(endpoints: Endpoints, authorization, address, _path, query) -> Awaitable[bytes]:
    return endpoints.customer_details(authorization, address, query)


def _user_ledger(endpoints: Endpoints, authorization, address, path, query) -> Awaitable[bytes]:
    return endpoints.user_ledger(authorization, address, path["userId"], query)


def _lookup_ledger(endpoints: Endpoints, authorization, address, _path, query) -> Awaitable[bytes]:
    return endpoints.lookup_ledger(authorization, address, query)


def read_routes(balance_model: type, ledger_model: type | None = None) -> tuple[ReadRoute, ...]:
    """In matching order: "lookup" is never taken for a userId. The ledger's with `ledger_model` (on)."""
    return _balance_routes(balance_model) + (_ledger_routes(ledger_model) if ledger_model else ())


def _ledger_routes(ledger_model: type) -> tuple[ReadRoute, ...]:
    return (
        ReadRoute(
            "/v2/customers/lookup/points/ledger",
            "lookup_ledger",
            "ledger",
            "Points ledger of the customer an identifier resolves to",
            (*LOOKUP, *LEDGER, *AFTER),
            _lookup_ledger,
            ledger_model,
            WARNINGS + LEDGER_DESCRIPTION,
        ),
        ReadRoute(
            "/v2/customers/{userId}/points/ledger",
            "user_ledger",
            "ledger",
            "Points ledger by userId",
            (USER_ID, *LEDGER, *AFTER),
            _user_ledger,
            ledger_model,
            WARNINGS + LEDGER_DESCRIPTION,
        ),
    )


def _balance_routes(balance_model: type) -> tuple[ReadRoute, ...]:
    return (
        ReadRoute(
            "/v2/customers/lookup/points/balance",
            "lookup_balance",
            "balance",
            "Points balance of the customer an identifier resolves to",
            (*LOOKUP, *PROGRAMS, *AFTER),
            _lookup_balance,
            balance_model,
            WARNINGS,
        ),
        ReadRoute(
            "/v2/customers/lookup/customerDetails",
            "customer_details",
            "customers",
            "The customer an identifier resolves to (seeds 002/003)",
            (*LOOKUP, *DETAILS, *AFTER),
            _customer_details,
            description=WARNINGS + CARDS,
        ),
        ReadRoute(
            "/v2/customers/{userId}/points/balance",
            "user_balance",
            "balance",
            "Points balance by userId",
            (USER_ID, *PROGRAMS, *AFTER),
            _user_balance,
            balance_model,
            WARNINGS,
        ),
    )


def query_of(scope) -> dict[str, str]:
    """Each parameter's last value, decoded as Starlette's QueryParams decodes them (parse_qsl, blank
    values kept), which without escapes (% or +) is a plain split."""
    text = scope["query_string"].decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(piece.partition("=")[::2] for piece in text.split("&") if piece)


def _caller(scope) -> tuple[str | None, str, str | None]:
    """(the credentials: the Authorization header, or `Bearer <token>` for a non-empty X-CAP-API-OAUTH-TOKEN,
    which alone then decides; the client's address; the X-PV-After-Event-Id header), in one pass."""
    authorization = token = after = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == OAUTH_HEADER and value.strip() and token is None:
            token = "Bearer " + value.decode("latin-1").strip()
        elif name == AFTER_HEADER:
            after = value.decode("latin-1")
    client = scope.get("client")
    return token or authorization, client[0] if client else "", after


class ReadRoutes:
    def __init__(self, routes: tuple[ReadRoute, ...], endpoints: Endpoints):
        self.routes = routes
        self.endpoints = endpoints

    def route(self, scope) -> tuple[ReadRoute, dict[str, str]] | None:
        """The route a request is for, and its path parameters, when it is answered here first."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope.get("root_path"):
            return None
        for route in self.routes:
            path_parameters = route.match(scope["path"])
            if path_parameters is not None:
                return route, path_parameters
        return None

    async def answer(self, route: ReadRoute, path_parameters: dict[str, str], scope, send) -> None:
        started = time.perf_counter()
        status = 500
        try:
            status, body, headers = await self.respond(route, path_parameters, scope)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), _JSON, *headers],
                }
            )
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
        finally:
            record(route.path, status, time.perf_counter() - started)

    async def respond(
        self, route: ReadRoute, path_parameters: dict[str, str], scope
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        authorization, address, after = _caller(scope)
        query = query_of(scope)
        if after is not None and not query.get("afterEventId"):  # an empty parameter counts as absent
            query["afterEventId"] = after
        try:
            body = await route.answer(self.endpoints, authorization, address, path_parameters, query)
            return 200, body, []
        except ApiError as error:
            status, body, headers = error_answer(error)
        except RedisError:
            status, body, headers = unavailable_answer()
        except CorruptValue as exc:
            log.error("a customer's stored value is unreadable; run pointsview rebuild", extra={"error": str(exc)})
            status, body, headers = unreadable_answer()
        return status, body, [(name.lower().encode(), value.encode()) for name, value in headers.items()]
