"""Who calls: HTTP Basic against the config's clients, or an OAuth token (service.tokens) issued to one of its
oauthClients; then the caller's rate limit (service.limits).

Verified credentials and tokens are remembered by the request's Authorization header as
sent (a token until its exp), so a steady-state request costs one dict lookup; every other answer
(wrong passwords included) is cached under a SHA-256 digest of the
credentials, never the password itself. Both caches are bounded and expiring,
so steady-state requests pay no bcrypt/argon2. A username that keeps failing from one
address is refused there without hashing for a while (its owner, elsewhere,
is not locked out), and at most two hashes run at once: a flood of wrong
passwords cannot buy CPU. The key and secret of an OAuth client asking for a token are checked by the same
machinery.
"""

import asyncio
import base64
import binascii
import hashlib
import math
import time
from collections import OrderedDict
from typing import Literal

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.errors import RATE_LIMITED, UNAUTHORIZED, ApiError
from service.limits import Limiter, RateLimited
from service.loyalty import Client, LoyaltyConfig, OrgConfig
from service.tokens import InvalidToken, TokenKeys

Kind = Literal["basic", "oauth"]

_argon2 = PasswordHasher()


def verify_password(password_hash: str, password: str) -> bool:
    """Constant-time by construction: both libraries compare digests in constant time."""
    try:
        if password_hash.startswith("$argon2"):
            return _argon2.verify(password_hash, password)
        return bcrypt.checkpw(password.encode(), password_hash.encode())
    except (VerificationError, InvalidHashError, ValueError):
        return False


def parse_basic(header: str | None) -> tuple[str, str]:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise ApiError(UNAUTHORIZED)
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
        raise ApiError(UNAUTHORIZED) from None
    if not sep or not username:
        raise ApiError(UNAUTHORIZED)
    return username, password


class Authenticator:
    def __init__(
        self,
        config: LoyaltyConfig,
        ttl_seconds: float = 300,
        max_entries: int = 10_000,
        failures_before_cooldown: int = 5,
        cooldown_seconds: float = 10,
        tokens: TokenKeys | None = None,
        limiter: Limiter | None = None,
    ):
        self.config = config
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.failures_before_cooldown = failures_before_cooldown
        self.cooldown = cooldown_seconds
        self.tokens = tokens
        self.limiter = limiter
        self._cache: OrderedDict[bytes, tuple[Client | None, float]] = OrderedDict()
        self._accepted: dict[str, tuple[Client, float]] = {}  # Authorization header -> (client, expiry)
        self._in_flight: dict[bytes, asyncio.Future] = {}
        self._failures: dict[tuple[Kind, str, str], tuple[int, float]] = {}  # (kind, name, address) -> (count, last)
        self._hashing = asyncio.Semaphore(2)

    async def org(self, authorization: str | None, address: str = "") -> OrgConfig:
        """The caller's org, once its credentials are good and its rate limit lets the request through."""
        accepted = self._accepted.get(authorization)
        if accepted is None or accepted[1] <= time.monotonic():
            accepted = await self._accept(authorization, address)
        client = accepted[0]
        if client.rate_limit is not None and self.limiter is not None:
            try:
                await self.limiter.admit(client.id, client.rate_limit)
            except RateLimited as limited:
                raise ApiError(RATE_LIMITED, headers={"Retry-After": str(max(1, math.ceil(limited.retry_after)))})
        return client.org

    async def token(self, key: str, secret: str, address: str = "") -> tuple[str, int]:
        """(an access token, its lifetime in seconds) for an OAuth client's key and secret."""
        client, _ = await self._answer("oauth", key, secret, address)
        if client is None or self.tokens is None:
            raise ApiError(UNAUTHORIZED)
        return self.tokens.issue(client.org.orgId, client.name, client.token_ttl_seconds), client.token_ttl_seconds

    async def _accept(self, authorization: str | None, address: str) -> tuple[Client, float]:
        scheme, _, credential = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            accepted = self._bearer(credential.strip())
        else:
            client, expires = await self._answer("basic", *parse_basic(authorization), address)
            if client is None:
                raise ApiError(UNAUTHORIZED)
            accepted = (client, expires)
        if len(self._accepted) >= self.max_entries:
            del self._accepted[next(iter(self._accepted))]  # the oldest
        self._accepted[authorization] = accepted
        return accepted

    def _bearer(self, token: str) -> tuple[Client, float]:
        """A token's client, and until when (monotonic) the token stays good: its exp."""
        if self.tokens is None or not token:
            raise ApiError(UNAUTHORIZED)
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise ApiError(UNAUTHORIZED) from None
        client = self.config.client("oauth", claims.client_id)
        if client is None or client.org.orgId != claims.org_id:  # a key removed, or moved to another org
            raise ApiError(UNAUTHORIZED)
        return client, time.monotonic() + claims.expires_at - time.time()

    async def _answer(self, kind: Kind, name: str, secret: str, address: str) -> tuple[Client | None, float]:
        """The client these credentials are (None: refused) and until when that answer may be reused."""
        digest = hashlib.sha256(f"{kind}\0{name}\0{secret}".encode()).digest()
        cached = self._cache.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached
        if digest in self._in_flight:  # the same credentials are being checked: share the answer
            return await asyncio.shield(self._in_flight[digest])
        future = asyncio.get_running_loop().create_future()
        self._in_flight[digest] = future
        try:
            client, verified = await self._verify(kind, name, secret, address)
            answer = (client, time.monotonic() + self.ttl if verified else 0.0)
            if verified:
                self._remember(digest, answer)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waits
            raise
        finally:
            del self._in_flight[digest]

    async def _verify(self, kind: Kind, name: str, secret: str, address: str) -> tuple[Client | None, bool]:
        """(the client or None, whether that answer was verified and may be cached)."""
        client = self.config.client(kind, name)
        if client is None:
            return None, True
        attempt = (kind, name, address)
        count, last = self._failures.get(attempt, (0, 0.0))
        if count >= self.failures_before_cooldown and time.monotonic() - last < self.cooldown:
            return None, False  # refused unverified: a right password works again after the cooldown
        async with self._hashing:
            ok = await asyncio.to_thread(verify_password, client.secret_hash, secret)
        if ok:
            self._failures.pop(attempt, None)
            return client, True
        if len(self._failures) >= self.max_entries:
            self._failures.clear()  # bounded: forgetting old failures only re-allows a few hashes
        self._failures[attempt] = (count + 1, time.monotonic())
        return None, True

    def _remember(self, digest: bytes, answer: tuple[Client | None, float]) -> None:
        self._cache[digest] = answer
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
