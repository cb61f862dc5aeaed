"""`create_app(settings)`: the HTTP API over the Redis read-model (API.md)."""

import asyncio
import gc
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException

from projections.read_model import ReadModel
from runtime import bootstrap
from runtime.settings import Settings
from service.auth import Authenticator
from service.cursors import Cursors, cursor_key
from service.endpoints import Endpoints
from service.errors import INVALID_PARAMETER, ApiError, api_error_handler, error_body, response_of, unavailable_answer
from service.limits import Limiter
from service.loyalty import LoyaltyConfig, load_loyalty_config
from service.metrics import MetricsMiddleware, metrics_response
from service.models import BalanceResponse, ErrorResponse, LedgerResponse, TokenRequest, TokenResponse
from service.routes import ReadRoute, ReadRoutes, read_routes
from service.tokens import token_keys

ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (400, 401, 404, 429, 503)}
SECURITY_SCHEMES = {
    "HTTPBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "A client of the org (CONFIG.md); the password as the till sends it",
    },
    "BearerToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /v3/oauth/token/generate",
    },
    "CapOAuthToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CAP-API-OAUTH-TOKEN",
        "description": "The same access token in Capillary's header (when non-empty it alone decides)",
    },
}
READ_SECURITY = [{"HTTPBasic": []}, {"BearerToken": []}, {"CapOAuthToken": []}]  # any one of them


def json_response(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _with_security(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = schema
    return app.openapi_schema


class PointsApi(FastAPI):
    """FastAPI, with requests for the read routes answered by service.routes before its middleware and
    router; FastAPI's copies of those routes document them (and answer them under a root path)."""

    read_routes: ReadRoutes

    async def __call__(self, scope, receive, send) -> None:
        found = self.read_routes.route(scope)
        if found is None:
            await super().__call__(scope, receive, send)
        else:
            await self.read_routes.answer(*found, scope, send)


def _register(app: FastAPI, routes: ReadRoutes, route: ReadRoute) -> None:
    """The route's FastAPI copy: documented from its declaration, answered by the same code."""

    async def endpoint(request: Request) -> Response:
        status, body, headers = await routes.respond(route, dict(request.path_params), request.scope)
        response = Response(
            body, status, headers={k.decode(): v.decode() for k, v in headers}, media_type="application/json"
        )
        if request.method == "HEAD":
            response.body = b""  # its Content-Length stays the GET's
        return response

    responses = {
        200: {"model": route.response_model} if route.response_model else {"description": "OK"},
        **ERROR_RESPONSES,
    }
    parameters = [
        {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": p.schema}
        for p in route.parameters
    ]
    app.add_api_route(
        route.path,
        endpoint,
        methods=["GET"],
        name=route.name,
        tags=[route.tag],
        summary=route.summary,
        description=route.description,
        response_model=None,
        responses=responses,
        openapi_extra={"security": READ_SECURITY, "parameters": parameters},
    )
    app.add_api_route(route.path, endpoint, methods=["HEAD"], name=f"{route.name}_head", include_in_schema=False)


def create_app(settings: Settings, config: LoyaltyConfig | None = None, read_model: ReadModel | None = None) -> FastAPI:
    config = config or load_loyalty_config(settings.loyalty_config)
    tokens = token_keys(settings, config)  # ConfigError: oauthClients without a signing key, a bad key file
    read_model = read_model or bootstrap.read_model(settings)
    app = PointsApi(
        title="pointsview",
        version="0.1.0",
        lifespan=_lifespan(read_model),
        description="Capillary-compatible v2 points balance reads from an event-driven read-model.",
    )
    app.state.read_model = read_model
    limiter = Limiter(read_model.store.redis, read_model.store.keys.meta)
    authenticator = Authenticator(config, tokens=tokens, limiter=limiter)
    ledger = LedgerResponse if settings.ledger_entries else None  # off: its routes are unknown paths (404)
    endpoints = Endpoints(authenticator, read_model, Cursors(cursor_key(settings)))
    app.read_routes = ReadRoutes(read_routes(BalanceResponse, ledger), endpoints)
    for route in app.read_routes.routes:
        _register(app, app.read_routes, route)
    app.openapi = lambda: _with_security(app)
    app.add_middleware(MetricsMiddleware)
    _add_error_handlers(app)
    _add_token_route(app, authenticator)
    _add_operations_routes(app, read_model)
    return app


def _lifespan(read_model: ReadModel):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.follower = asyncio.create_task(read_model.follow_live())
        gc.freeze()  # start-up objects (app, config, schema) never collected again: short gen2 pauses
        yield
        app.state.follower.cancel()
        await read_model.store.redis.aclose()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_handler)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        return Response(error_body(INVALID_PARAMETER, "Invalid request"), 400, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> Response:
        return Response(
            error_body(exc.status_code, str(exc.detail)),
            exc.status_code,
            media_type="application/json",
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RedisError)
    async def _store_down(_request: Request, exc: RedisError) -> Response:
        return response_of(unavailable_answer())


def _add_token_route(app: FastAPI, authenticator: Authenticator) -> None:
    @app.post(
        "/v3/oauth/token/generate",
        tags=["oauth"],
        summary="An access token for an OAuth client's key and secret (no other auth)",
        response_model=TokenResponse,
        responses={status: {"model": ErrorResponse} for status in (400, 401)},
    )
    async def generate_token(body: TokenRequest, request: Request) -> Response:
        address = request.client.host if request.client else ""
        token, ttl = await authenticator.token(body.key, body.secret, address)
        data = {"accessToken": token, "expiresIn": ttl, "tokenType": "Bearer"}
        return json_response({"data": data, "errors": [], "warnings": []})


def _add_operations_routes(app: FastAPI, read_model: ReadModel) -> None:
    @app.get("/health/live", tags=["operations"])
    async def live() -> dict:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["operations"], responses={503: {"description": "Redis unreachable"}})
    async def ready() -> Response:
        try:
            await read_model.store.redis.ping()
        except (RedisError, OSError) as exc:
            return json_response({"status": "unavailable", "redis": f"unreachable: {exc}"}, 503)
        return json_response({"status": "ok", "redis": "ok"})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()


def app_from_environment() -> FastAPI:
    """The uvicorn factory used by `pointsview api` (each worker builds its own app)."""
    return create_app(Settings())
