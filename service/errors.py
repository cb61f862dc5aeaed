"""Capillary-shaped errors: one table of codes, one exception, one body."""

import orjson
from fastapi import Request
from fastapi.responses import Response

CUSTOMER_NOT_FOUND = 8015
INVALID_SOURCE = 8003
INVALID_IDENTIFIER = 8013
MISSING_IDENTIFIER = 11013
INVALID_ENTITY_TYPE = 1212
INVALID_USER_ID = 1632
UNAUTHORIZED = 401
INVALID_PARAMETER = 400  # programId not configured, bad boolean/integer (docs/reference/errors.md)
UNAVAILABLE = 503  # the read-model store is unreachable, or the customer's stored value unreadable
RATE_LIMITED = 429  # the client's rate limit (CONFIG.md), with Retry-After

ERRORS: dict[int, tuple[int, str]] = {  # code -> (HTTP status, message)
    CUSTOMER_NOT_FOUND: (404, "Customer not found for the given identifiers"),
    INVALID_SOURCE: (400, "Invalid source"),
    INVALID_IDENTIFIER: (400, "Invalid identifier name, or identifier names and values differ in count"),
    MISSING_IDENTIFIER: (400, "identifierName, identifierValue and source are required"),
    INVALID_ENTITY_TYPE: (400, "Entity type passed is not valid"),
    INVALID_USER_ID: (400, "group id/externalId/primary userId passed is not valid"),
    UNAUTHORIZED: (401, "Invalid or missing credentials"),
    INVALID_PARAMETER: (400, "Invalid parameter"),
    UNAVAILABLE: (503, "The points read-model is unavailable; retry shortly"),
    RATE_LIMITED: (429, "Rate limit exceeded; retry after Retry-After seconds"),
}


class ApiError(Exception):
    def __init__(self, code: int, message: str | None = None, headers: dict[str, str] | None = None):
        self.code = code
        self.status, default = ERRORS[code]
        self.message = message or default
        self.headers = headers or {}


def error_body(code: int, message: str) -> bytes:
    return orjson.dumps({"errors": [{"status": False, "code": code, "message": message}], "warnings": []})


def error_answer(error: ApiError) -> tuple[int, bytes, dict[str, str]]:
    """(HTTP status, body, headers besides Content-Type) of an error."""
    headers = {"WWW-Authenticate": 'Basic realm="pointsview"'} if error.code == UNAUTHORIZED else {}
    return error.status, error_body(error.code, error.message), {**headers, **error.headers}


def unavailable_answer() -> tuple[int, bytes, dict[str, str]]:
    """The read-model store is unreachable (any RedisError)."""
    return 503, error_body(UNAVAILABLE, ERRORS[UNAVAILABLE][1]), {"Retry-After": "1"}


def unreadable_answer() -> tuple[int, bytes, dict[str, str]]:
    """The customer's stored value cannot be read (CorruptValue): no Retry-After, it stays so until an operator
    rebuilds the read-model (`pointsview verify` names the customer)."""
    return 503, error_body(UNAVAILABLE, "The points of this customer are unavailable; retry later"), {}


def response_of(answer: tuple[int, bytes, dict[str, str]]) -> Response:
    status, body, headers = answer
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


async def api_error_handler(_request: Request, exc: ApiError) -> Response:
    return response_of(error_answer(exc))
