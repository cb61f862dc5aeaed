"""`create_app(settings)`: the HTTP API over the Redis read-model (API.md)."""

import asyncio
import gc
import time
from contextlib import asynccontextmanager
from typing import Annotated

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPBasic
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from projections.keys import FIRST_GENERATION, Keys, MetaKeys
from projections.store import Store
from projections.state import customer_from_dict
from service import balance, details
from service.auth import Authenticator
from service.config import LoyaltyConfig, OrgConfig, load_config
from service.errors import (
    CUSTOMER_NOT_FOUND,
    INVALID_PARAMETER,
    UNAVAILABLE,
    ApiError,
    api_error_handler,
    error_body,
)
from service.metrics import MetricsMiddleware, metrics_response
from service.models import BalanceResponse, ErrorResponse
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

    async def resolve(self, org_id: int, request: balance.Lookup) -> int | None:
        sources = await self.sources(org_id) if request.source == "ALL" else []
        found = await self.store.latest_claimant(balance.index_keys(org_id, request, sources))
        if found is None and request.source == "ALL":  # a source new since the cache was filled?
            cached_at = self._sources[org_id][1]
            if time.monotonic() - cached_at > 0.05:
                sources = await self.sources(org_id, fresh=True)
                found = await self.store.latest_claimant(balance.index_keys(org_id, request, sources))
        return found


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 404, 503)}
class _DocumentedBasic(HTTPBasic):
    """Puts HTTP Basic in the OpenAPI document; service.auth parses the header (UTF-8, not just ASCII)."""

    async def __call__(self, request: Request) -> None:
        return None


basic = _DocumentedBasic(description="A client of the org (CONFIG.md); password as sent by the till")


def create_app(settings: Settings, config: LoyaltyConfig | None = None) -> FastAPI:
    config = config or load_config(settings.loyalty_config)
    authenticator = Authenticator(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2,
                               max_connections=settings.redis_max_connections)
        app.state.redis = redis
        app.state.read_model = ReadModel(redis, settings.key_prefix)
        follower = asyncio.create_task(app.state.read_model.follow_live())
        gc.freeze()  # start-up objects (app, config, schema) never collected again: short gen2 pauses
        yield
        follower.cancel()
        await redis.aclose()

    app = FastAPI(title="pointsview", version="0.1.0", lifespan=lifespan,
                  description="Capillary-compatible v2 points balance reads from an event-driven read-model.")
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
        return Response(error_body(UNAVAILABLE, "The points read-model is unavailable; retry shortly"), 503,
                        media_type="application/json", headers={"Retry-After": "1"})

    async def caller(request: Request, _credentials=Depends(basic)) -> OrgConfig:
        return await authenticator.org(request.headers.get("authorization"),
                                       request.client.host if request.client else "")

    Caller = Annotated[OrgConfig, Depends(caller)]

    async def read_model(request: Request) -> ReadModel:  # async: a plain def would cost a threadpool hop
        return request.app.state.read_model

    Reads = Annotated[ReadModel, Depends(read_model)]

    # Declared before /{userId}/... so that "lookup" is never taken for a userId.
    @app.get("/v2/customers/lookup/points/balance", response_model=None, tags=["balance"],
             responses={200: {"model": BalanceResponse}, **ERROR_RESPONSES})
    async def lookup_balance(
        org: Caller, reads: Reads,
        source: Annotated[str | None, Query(description="INSTORE, MARTJACK, WECHAT, MAPP_SDK or ALL")] = None,
        accountId: Annotated[str | None, Query(description="required unless source is INSTORE or ALL")] = None,
        identifierName: Annotated[str | None, Query(description="comma-separated with dual eligibility")] = None,
        identifierValue: Annotated[str | None, Query()] = None,
        programId: Annotated[str | None, Query(description="a program of the org")] = None,
        fetchDataForAllPrograms: Annotated[str | None, Query(description="true or false")] = None,
        entityType: Annotated[str | None, Query(description="CUSTOMER")] = None,
    ) -> Response:
        balance.check_entity_type(entityType)
        request = balance.lookup(org, source, accountId, identifierName, identifierValue)
        program_ids = balance.programs(org, programId, fetchDataForAllPrograms)
        balance.account_scope(request)
        customer_id = await reads.resolve(org.orgId, request)
        doc = customer_id and await reads.store.customer_doc(org.orgId, customer_id)
        if not doc:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return json_response(balance.balance_body(customer_id, doc, program_ids))

    @app.get("/v2/customers/lookup/customerDetails", response_model=None, tags=["customers"],
             responses={200: {"description": "The customer (seeds 002/003)"}, **ERROR_RESPONSES})
    async def customer_details(
        org: Caller, reads: Reads,
        source: Annotated[str | None, Query(description="INSTORE, MARTJACK, WECHAT, MAPP_SDK or ALL")] = None,
        accountId: Annotated[str | None, Query(description="required unless source is INSTORE or ALL")] = None,
        identifierName: Annotated[str | None, Query(description="comma-separated with dual eligibility")] = None,
        identifierValue: Annotated[str | None, Query()] = None,
        embed: Annotated[str | None, Query(description="comma-separated: points, mlp, expirySchedules, "
                                           "expiredPoints, alternateCurrencies, ignoreCardDetails, ...")] = None,
        gapToUpgrade: Annotated[str | None, Query(description="days ahead (int >= 0), with embed=mlp")] = None,
        gapToRenew: Annotated[str | None, Query(description="days ahead (int >= 0), with embed=mlp")] = None,
    ) -> Response:
        request = balance.lookup(org, source, accountId, identifierName, identifierValue)
        wanted = details.embeds(embed)
        details.gap_days("gapToUpgrade", gapToUpgrade, wanted)
        details.gap_days("gapToRenew", gapToRenew, wanted)
        balance.account_scope(request)
        customer_id = await reads.resolve(org.orgId, request)
        doc = customer_id and await reads.store.customer_doc(org.orgId, customer_id)
        if not doc:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return json_response(details.details_body(customer_from_dict(doc), org, wanted))

    @app.get("/v2/customers/{userId}/points/balance", response_model=None, tags=["balance"],
             responses={200: {"model": BalanceResponse}, **ERROR_RESPONSES})
    async def user_balance(
        userId: str, org: Caller, reads: Reads,
        programId: Annotated[str | None, Query(description="a program of the org")] = None,
        fetchDataForAllPrograms: Annotated[str | None, Query(description="true or false")] = None,
        entityType: Annotated[str | None, Query(description="CUSTOMER")] = None,
    ) -> Response:
        customer_id = balance.user_id(userId)
        balance.check_entity_type(entityType)
        program_ids = balance.programs(org, programId, fetchDataForAllPrograms)
        doc = await reads.store.customer_doc(org.orgId, customer_id)
        if not doc:
            raise ApiError(CUSTOMER_NOT_FOUND)
        return json_response(balance.balance_body(customer_id, doc, program_ids))

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
