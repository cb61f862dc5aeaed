"""`create_app(settings)`: the HTTP API over the Redis read-model (API.md)."""

import asyncio
import gc
import time
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.openapi.utils import get_openapi
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from projections.keys import FIRST_GENERATION, Keys, MetaKeys
from projections.state import Customer
from projections.store import Store
from service import balance
from service.auth import Authenticator
from service.config import LoyaltyConfig, load_config
from service.endpoints import Endpoints
from service.errors import (
    INVALID_PARAMETER,
    ApiError,
    api_error_handler,
    error_body,
    response_of,
    unavailable_answer,
)
from service.fastpath import CUSTOMER_DETAILS, LOOKUP_BALANCE, USER_BALANCE, FastPath
from service.metrics import MetricsMiddleware, metrics_response
from service.models import BalanceResponse, ErrorResponse
from service.redis_mux import MultiplexedRedis
from service.settings import Settings

SOURCES_CACHE_SECONDS = 1.0  # source=ALL: the org's sources, re-read at most this often (and on a miss)


class ReadModel:
    """The API's view of the store: the live generation, followed without a round trip per request
    (pub/sub on the pointer's channel, re-read every second in case a message was missed), and the
    org's sources cached briefly for source=ALL lookups."""

    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.meta = MetaKeys(prefix)
        self._stores = {FIRST_GENERATION: Store(redis, Keys(prefix, FIRST_GENERATION), 0)}
        self.store = self._stores[FIRST_GENERATION]
        self._sources: dict[int, tuple[list[tuple[str, str]], float]] = {}

    def use(self, generation: int) -> None:
        if generation != self.store.keys.generation:
            self._stores.setdefault(generation, self.store.for_generation(generation))
            self.store = self._stores[generation]
            self._sources.clear()

    async def follow_live(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.meta.live())
                while True:
                    live = await self.redis.get(self.meta.live())
                    self.use(int(live) if live else FIRST_GENERATION)
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (RedisError, OSError):
                await asyncio.sleep(1)  # Redis down: requests answer 503 meanwhile
            finally:
                await pubsub.aclose()

    async def sources(self, org_id: int, fresh: bool = False) -> list[tuple[str, str]]:
        cached = self._sources.get(org_id)
        if cached and not fresh and time.monotonic() - cached[1] < SOURCES_CACHE_SECONDS:
            return cached[0]
        sources = await self.store.sources(org_id)
        self._sources[org_id] = (sources, time.monotonic())
        return sources

    async def resolve(self, org_id: int, request: balance.Lookup) -> tuple[int, Customer | None] | None:
        """The latest claimant of the lookup's identifier and its state (one round trip)."""
        sources = await self.sources(org_id) if request.source == "ALL" else []
        found = await self.store.resolve_customer(org_id, balance.index_keys(org_id, request, sources))
        if found is None and request.source == "ALL":  # a source new since the cache was filled?
            cached_at = self._sources[org_id][1]
            if time.monotonic() - cached_at > 0.05:
                sources = await self.sources(org_id, fresh=True)
                found = await self.store.resolve_customer(org_id, balance.index_keys(org_id, request, sources))
        return found


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 404, 503)}
LOOKUP_PARAMETERS = (
    ("source", "INSTORE, MARTJACK, WECHAT, MAPP_SDK or ALL"),
    ("accountId", "required unless source is INSTORE or ALL"),
    ("identifierName", "mobile, email, externalId, cardnumber, wechat; comma-separated with dual eligibility"),
    ("identifierValue", "the values, in the order of identifierName"),
)
PROGRAM_PARAMETERS = (
    ("programId", "a program of the caller's org"),
    ("fetchDataForAllPrograms", "true or false"),
    ("entityType", "CUSTOMER"),
)
DETAILS_PARAMETERS = (
    ("embed", "comma-separated: points, mlp, expirySchedules, expiredPoints, alternateCurrencies, "
              "ignoreCardDetails, ..."),
    ("gapToUpgrade", "days ahead (integer >= 0), with embed=mlp"),
    ("gapToRenew", "days ahead (integer >= 0), with embed=mlp"),
)


def documented(*parameters: tuple[str, str]) -> dict:
    """OpenAPI for query parameters a route reads itself, and its HTTP Basic security."""
    return {"security": [{"HTTPBasic": []}],
            "parameters": [{"name": name, "in": "query", "required": False, "description": text,
                            "schema": {"type": "string"}} for name, text in parameters]}


def _with_basic_security(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"HTTPBasic": {
            "type": "http", "scheme": "basic",
            "description": "A client of the org (CONFIG.md); the password as the till sends it"}}
        app.openapi_schema = schema
    return app.openapi_schema


class PointsApi(FastAPI):
    """FastAPI, with GETs of the read endpoints answered by the fast path before its middleware and
    router (service.fastpath); FastAPI's routes document them and answer everything else."""

    fast_path: FastPath

    async def __call__(self, scope, receive, send) -> None:
        route = self.fast_path.route(scope)
        if route is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path.answer(route, scope, send)


def create_app(settings: Settings, config: LoyaltyConfig | None = None) -> FastAPI:
    config = config or load_config(settings.loyalty_config)
    endpoints = Endpoints(Authenticator(config))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        redis = MultiplexedRedis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2,
                                          max_connections=settings.redis_max_connections)
        app.state.redis = redis
        app.state.read_model = endpoints.reads = ReadModel(redis, settings.key_prefix)
        follower = asyncio.create_task(app.state.read_model.follow_live())
        gc.freeze()  # start-up objects (app, config, schema) never collected again: short gen2 pauses
        yield
        follower.cancel()
        await redis.aclose()

    app = PointsApi(title="pointsview", version="0.1.0", lifespan=lifespan,
                    description="Capillary-compatible v2 points balance reads from an event-driven read-model.")
    app.fast_path = FastPath(endpoints)
    app.openapi = lambda: _with_basic_security(app)
    app.add_middleware(MetricsMiddleware)
    app.add_exception_handler(ApiError, api_error_handler)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        return Response(error_body(INVALID_PARAMETER, "Invalid request"), 400, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> Response:
        return Response(error_body(exc.status_code, str(exc.detail)), exc.status_code,
                        media_type="application/json", headers=getattr(exc, "headers", None))

    @app.exception_handler(RedisError)
    async def _store_down(_request: Request, exc: RedisError) -> Response:
        return response_of(unavailable_answer())

    # The read routes take the raw request and read their query parameters themselves (documented in the
    # OpenAPI through `openapi_extra`), in the contract's order, through the same Endpoints as the fast
    # path, which answers their GETs before FastAPI sees them; these answer HEAD and document them.
    def caller(request: Request) -> tuple[str | None, str]:
        return request.headers.get("authorization"), request.client.host if request.client else ""

    def json_body(body: bytes) -> Response:
        return Response(body, media_type="application/json")

    # Declared before /{userId}/... so that "lookup" is never taken for a userId.
    @app.get(LOOKUP_BALANCE, response_model=None, tags=["balance"],
             responses={200: {"model": BalanceResponse}, **ERROR_RESPONSES},
             openapi_extra=documented(*LOOKUP_PARAMETERS, *PROGRAM_PARAMETERS))
    async def lookup_balance(request: Request) -> Response:
        return json_body(await endpoints.lookup_balance(*caller(request), request.query_params))

    @app.get(CUSTOMER_DETAILS, response_model=None, tags=["customers"],
             responses={200: {"description": "The customer (seeds 002/003)"}, **ERROR_RESPONSES},
             openapi_extra=documented(*LOOKUP_PARAMETERS, *DETAILS_PARAMETERS))
    async def customer_details(request: Request) -> Response:
        return json_body(await endpoints.customer_details(*caller(request), request.query_params))

    @app.get(USER_BALANCE, response_model=None, tags=["balance"],
             responses={200: {"model": BalanceResponse}, **ERROR_RESPONSES},
             openapi_extra=documented(*PROGRAM_PARAMETERS))
    async def user_balance(userId: str, request: Request) -> Response:
        return json_body(await endpoints.user_balance(*caller(request), userId, request.query_params))

    @app.get("/health/live", tags=["operations"])
    async def live() -> dict:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["operations"], responses={503: {"description": "Redis unreachable"}})
    async def ready(request: Request) -> Response:
        try:
            await request.app.state.redis.ping()
        except (RedisError, OSError) as exc:
            return json_response({"status": "unavailable", "redis": f"unreachable: {exc}"}, 503)
        return json_response({"status": "ok", "redis": "ok"})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    return app


def app_from_environment() -> FastAPI:
    """The uvicorn factory used by `pointsview api` (each worker builds its own app)."""
    return create_app(Settings())
