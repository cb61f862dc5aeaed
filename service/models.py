"""Response shapes for the OpenAPI document (responses are rendered with orjson, not validated)."""

from pydantic import BaseModel


class PromisedPointsBreakup(BaseModel):
    delayedAccrualPoints: float
    externalTriggerBasedPoints: float


class Warning(BaseModel):
    status: bool
    code: int
    message: str


class BalanceResponse(BaseModel):
    entityId: int
    entityType: str
    totalPoints: float
    mainPoints: float
    promisedPoints: float
    promisedPointsBreakup: PromisedPointsBreakup
    warnings: list[Warning]


class BalanceAfter(BaseModel):
    mainPoints: float
    promisedPoints: float


class LedgerEntry(BaseModel):
    eventId: str
    eventType: str
    occurredAt: str
    programId: int
    currency: str
    category: str
    points: float
    fromCategory: str | None
    expiresAt: str | None
    transactionId: str | int | None
    balanceAfter: BalanceAfter


class LedgerResponse(BaseModel):
    entityId: int
    entityType: str
    entries: list[LedgerEntry]
    nextCursor: str | None
    complete: bool
    warnings: list[Warning]


class ErrorResponse(BaseModel):
    errors: list[Warning]
    warnings: list[Warning]


class TokenRequest(BaseModel):
    """An OAuth client's key and secret (CONFIG.md oauthClients); missing counts as empty (401)."""

    key: str = ""
    secret: str = ""


class Token(BaseModel):
    accessToken: str
    expiresIn: int
    tokenType: str


class TokenResponse(BaseModel):
    data: Token
    errors: list[Warning]
    warnings: list[Warning]
