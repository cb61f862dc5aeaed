"""GETs of the read endpoints answered in pure ASGI, before FastAPI's middleware and router.

FastAPI's stack (five middlewares, route matching, Request and Response objects, dependency
solving) cost more per request than the Redis read behind a balance. Here a GET on one of the
three read paths is matched from the raw scope and answered by the same Endpoints coroutines as
FastAPI's routes, with the same bodies, headers, status codes and metrics labels; anything else
(HEAD, other paths and methods, a root path) goes on to FastAPI.
"""

import time
from urllib.parse import parse_qsl

from redis.exceptions import RedisError

from service.endpoints import Endpoints
from service.errors import ApiError, error_answer, unavailable_answer
from service.metrics import record

USER_BALANCE = "/v2/customers/{userId}/points/balance"
LOOKUP_BALANCE = "/v2/customers/lookup/points/balance"
CUSTOMER_DETAILS = "/v2/customers/lookup/customerDetails"
_USER_PREFIX, _USER_SUFFIX = "/v2/customers/", "/points/balance"
_JSON = (b"content-type", b"application/json")


def query_of(scope) -> dict[str, str]:
    """Each parameter's last value, decoded as Starlette's QueryParams decodes them (parse_qsl, blank
    values kept), which without escapes (% or +) is a plain split."""
    text = scope["query_string"].decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(piece.partition("=")[::2] for piece in text.split("&") if piece)


def _request_of(scope) -> tuple[str | None, str]:
    """(the Authorization header, the client's address)."""
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
            break
    client = scope.get("client")
    return authorization, client[0] if client else ""


class FastPath:
    def __init__(self, endpoints: Endpoints):
        self.endpoints = endpoints

    def route(self, scope) -> str | None:
        """The route template a request is for, when this module answers it."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path = scope["path"]
        if path == LOOKUP_BALANCE:  # before the userId route, as FastAPI's routes are declared
            return LOOKUP_BALANCE
        if path == CUSTOMER_DETAILS:
            return CUSTOMER_DETAILS
        if path.startswith(_USER_PREFIX) and path.endswith(_USER_SUFFIX):
            user_id = path[len(_USER_PREFIX):-len(_USER_SUFFIX)]
            if user_id and "/" not in user_id:  # what Starlette's {userId} matches
                return USER_BALANCE
        return None

    async def answer(self, route: str, scope, send) -> None:
        started = time.perf_counter()
        status = 500
        try:
            status, body, headers = await self._answer(route, scope)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-length", str(len(body)).encode()), _JSON, *headers]})
            await send({"type": "http.response.body", "body": body})
        finally:
            record(route, status, time.perf_counter() - started)

    async def _answer(self, route: str, scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        authorization, address = _request_of(scope)
        endpoints = self.endpoints
        try:
            if route == USER_BALANCE:
                user_id = scope["path"][len(_USER_PREFIX):-len(_USER_SUFFIX)]
                body = await endpoints.user_balance(authorization, address, user_id, query_of(scope))
            elif route == LOOKUP_BALANCE:
                body = await endpoints.lookup_balance(authorization, address, query_of(scope))
            else:
                body = await endpoints.customer_details(authorization, address, query_of(scope))
            return 200, body, []
        except ApiError as error:
            status, body, headers = error_answer(error)
        except RedisError:
            status, body, headers = unavailable_answer()
        return status, body, [(name.lower().encode(), value.encode()) for name, value in headers.items()]
