"""Rate limits per client (API.md "OAuth tokens ... and rate limits"): one token bucket per client shared by
every API worker and replica, which each process spends from leases.

The bucket lives in Redis (one hash per client: one cluster slot) and LEASE_SCRIPT is its only arithmetic:
it refills the bucket at `requestsPerSecond` up to `burst` by Redis's clock, hands out up to the tokens asked
for, and says how long until the next one. A process leases a few tokens at a time (about LEASE_SECONDS of
the client's rate, plus every request waiting) and spends them locally: a request that finds one costs a
decrement, no Redis round trip. When its lease runs low it asks for the next in the background. When it has
none but the shared bucket had tokens at its last lease (refilled since at the client's rate), one request is
admitted on credit and the next lease, started at once in the background, pays it back first: a client that
sends now and then (its leased tokens dropped after POCKET_SECONDS) or at a rate whose lease is one token
never waits for Redis. Otherwise the requests that find the pocket empty wait together on one lease (a
client's first request in a process, or a bucket that was nearly empty). A bucket found empty answers 429
locally until its next token is due (at least a short pause, so that a saturated client costs one lease per
pause, not one per request). Every admitted request spent a token of the shared bucket or is a process's one
request on credit, so the total over any window is at most burst + rate x seconds plus, per process, the
tokens it held when the window began (at most LEASE_SECONDS of the rate; a lease unspent for POCKET_SECONDS
is dropped) and one request.
"""

import asyncio
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from projections.keys import MetaKeys
from service.loyalty import RateLimit

LEASE_SECONDS = 0.02  # a lease: about this long of the client's rate
POCKET_SECONDS = 1.0  # leased tokens unspent for this long are dropped (an idle client returns to its burst)

# KEYS[1]: the bucket; ARGV: requestsPerSecond, burst, tokens wanted.
# Returns {granted, ms until the next token, whole tokens left}.
LEASE_SCRIPT = """
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = burst, now
elseif now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local granted = math.max(0, math.min(wanted, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
-- at most 100 days: a longer time would be written as 1e+14, which PEXPIRE refuses
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - tokens) / rate * 1000) + 1000, 8640000000))
local wait = 0
if tokens < 1 then wait = math.ceil((1 - tokens) / rate * 1000) end
return {granted, wait, math.floor(tokens)}
"""


class RateLimited(Exception):
    def __init__(self, retry_after: float):
        self.retry_after = retry_after  # seconds until the client's bucket has a token again


@dataclass
class _Pocket:
    """One process's share of one client's bucket."""

    key: str
    limit: RateLimit
    reserve: int  # tokens a lease asks for besides the requests waiting: about LEASE_SECONDS of the rate
    tokens: int = 0
    leased_at: float = 0.0
    empty_until: float = 0.0  # the shared bucket was found empty: refuse locally until then
    lease: asyncio.Future | None = None
    waiting: int = 0  # requests waiting for the lease in flight
    owed: int = 0  # admitted on credit, not yet paid with a token of the shared bucket (at most one)
    bucket: int = 0  # the shared bucket's whole tokens left after the last lease
    bucket_at: float | None = None  # when that lease came back (none yet: no credit)

    def on_credit(self, now: float) -> bool:
        """Whether one request may go now and be paid by the next lease: none owed yet, and the shared
        bucket, as last seen and refilled since at the client's rate, has a token for it."""
        if self.owed or self.bucket_at is None or now < self.empty_until:
            return False
        return self.bucket + (now - self.bucket_at) * self.limit.requestsPerSecond >= 1


class Limiter:
    def __init__(self, redis: Redis, keys: MetaKeys):
        self.keys = keys
        self._lease = redis.register_script(LEASE_SCRIPT)
        self._pockets: dict[str, _Pocket] = {}
        self.leases = 0  # calls to Redis (the tests and the benchmark count them)

    async def admit(self, client_id: str, limit: RateLimit) -> None:
        """Spends one of the client's tokens, or raises RateLimited."""
        pocket = self._pockets.get(client_id)
        if pocket is None or pocket.limit is not limit:
            reserve = max(1, min(limit.burst, math.ceil(limit.requestsPerSecond * LEASE_SECONDS)))
            pocket = self._pockets[client_id] = _Pocket(self.keys.rate_limit(client_id), limit, reserve)
        now = time.monotonic()
        if pocket.tokens and now - pocket.leased_at > POCKET_SECONDS:
            pocket.tokens = 0
        if pocket.tokens:
            pocket.tokens -= 1
            if pocket.tokens * 2 <= pocket.reserve and pocket.lease is None:
                self._start_lease(pocket)  # the next lease while this one lasts
            return
        if pocket.on_credit(now):
            pocket.owed = 1
            if pocket.lease is None:
                self._start_lease(pocket)  # pays for this request first
            return
        await self._wait_for_token(pocket, now)

    async def _wait_for_token(self, pocket: _Pocket, now: float) -> None:
        pocket.waiting += 1
        try:
            while not pocket.tokens:
                if now < pocket.empty_until:
                    raise RateLimited(pocket.empty_until - now)
                lease = pocket.lease or self._start_lease(pocket)
                await asyncio.shield(lease)
                now = time.monotonic()
            pocket.tokens -= 1
        finally:
            pocket.waiting -= 1

    def _start_lease(self, pocket: _Pocket) -> asyncio.Future:
        pocket.lease = asyncio.ensure_future(self._leased(pocket))
        pocket.lease.add_done_callback(_retrieved)
        return pocket.lease

    async def _leased(self, pocket: _Pocket) -> None:
        limit = pocket.limit
        wanted = min(limit.burst, pocket.owed + pocket.waiting + pocket.reserve)
        try:
            self.leases += 1
            granted, wait_ms, left = await self._lease(
                keys=[pocket.key], args=[repr(limit.requestsPerSecond), limit.burst, wanted]
            )
        finally:
            pocket.lease = None
        now = time.monotonic()
        pocket.bucket, pocket.bucket_at = int(left), now
        if granted:
            paid = min(pocket.owed, int(granted))  # the request admitted on credit first
            pocket.owed -= paid
            pocket.tokens += int(granted) - paid
            pocket.leased_at = now
        if int(granted) < wanted and wait_ms:
            # the shared bucket is empty: ask again when its next token is due, or after a pause of about
            # one lease (tokens gather in the bucket meanwhile: none lost below burst)
            pause = min(LEASE_SECONDS, limit.burst / limit.requestsPerSecond / 2)
            pocket.empty_until = now + max(int(wait_ms) / 1000, pause)


def _retrieved(future: asyncio.Future) -> None:
    """A background lease's failure (Redis down) is the next waiting request's to raise, or nobody's."""
    if not future.cancelled():
        future.exception()
