"""HTTP Basic authentication against the config's clients, verified once and then cached.

Verified credentials are remembered by the request's Authorization header as
sent, so a steady-state request costs one dict lookup; every other answer
(wrong passwords included) is cached under a SHA-256 digest of the
credentials, never the password itself. Both caches are bounded and expiring,
so steady-state requests pay no bcrypt/argon2. A username that keeps failing from one
address is refused there without hashing for a while (its owner, elsewhere,
is not locked out), and at most two hashes run at once: a flood of wrong
passwords cannot buy CPU.
"""

import asyncio
import base64
import binascii
import hashlib
import time
from collections import OrderedDict

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.errors import UNAUTHORIZED, ApiError
from service.loyalty import LoyaltyConfig, OrgConfig

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
    ):
        self.config = config
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.failures_before_cooldown = failures_before_cooldown
        self.cooldown = cooldown_seconds
        self._cache: OrderedDict[bytes, tuple[OrgConfig | None, float]] = OrderedDict()
        self._accepted: dict[str, tuple[OrgConfig, float]] = {}  # Authorization header -> (org, expiry)
        self._in_flight: dict[bytes, asyncio.Future] = {}
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (username, address) -> (count, last)
        self._hashing = asyncio.Semaphore(2)

    async def org(self, authorization: str | None, address: str = "") -> OrgConfig:
        accepted = self._accepted.get(authorization)
        if accepted is not None and accepted[1] > time.monotonic():
            return accepted[0]
        org, expires = await self._answer(authorization, address)
        if org is None:
            raise ApiError(UNAUTHORIZED)
        if len(self._accepted) >= self.max_entries:
            del self._accepted[next(iter(self._accepted))]  # the oldest
        self._accepted[authorization] = (org, expires)
        return org

    async def _answer(self, authorization: str | None, address: str) -> tuple[OrgConfig | None, float]:
        """The caller's org (None: refused) and until when that answer may be reused."""
        username, password = parse_basic(authorization)
        digest = hashlib.sha256(f"{username}\0{password}".encode()).digest()
        cached = self._cache.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached
        if digest in self._in_flight:  # the same credentials are being checked: share the answer
            return await asyncio.shield(self._in_flight[digest])
        future = asyncio.get_running_loop().create_future()
        self._in_flight[digest] = future
        try:
            org, verified = await self._verify(username, password, address)
            answer = (org, time.monotonic() + self.ttl if verified else 0.0)
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

    async def _verify(self, username: str, password: str, address: str) -> tuple[OrgConfig | None, bool]:
        """(the caller's org or None, whether that answer was verified and may be cached)."""
        found = self.config.client_org(username)
        if found is None:
            return None, True
        attempt = (username, address)
        count, last = self._failures.get(attempt, (0, 0.0))
        if count >= self.failures_before_cooldown and time.monotonic() - last < self.cooldown:
            return None, False  # refused unverified: a right password works again after the cooldown
        org, client = found
        async with self._hashing:
            ok = await asyncio.to_thread(verify_password, client.passwordHash, password)
        if ok:
            self._failures.pop(attempt, None)
            return org, True
        if len(self._failures) >= self.max_entries:
            self._failures.clear()  # bounded: forgetting old failures only re-allows a few hashes
        self._failures[attempt] = (count + 1, time.monotonic())
        return None, True

    def _remember(self, digest: bytes, answer: tuple[OrgConfig | None, float]) -> None:
        self._cache[digest] = answer
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
