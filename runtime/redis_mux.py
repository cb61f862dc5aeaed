"""The API's and the projector's Redis client: redis-py, with its single commands and plain pipelines
multiplexed on one pipelined connection.

redis-py's asyncio client spends about 100 us of CPU per command (pool checkout, retry and
observability wrappers, a read loop per reply), more than the rest of a balance request. Here every
command is packed by hiredis and written at once on one shared connection; replies come back in
order and are matched to their waiters from the protocol's data callback (RESP is FIFO per
connection), then go through redis-py's own response callbacks, so the Store's code cannot tell.

Failure semantics are the API's: Redis down is a `ConnectionError` at once (no retry loop: the
request answers 503), and the next command reconnects, so the API recovers by itself. A reply
missing for `socket_timeout` seconds fails every waiting command with `TimeoutError` and drops the
connection. TLS (rediss://) uses the SSL context redis-py would build from the same settings, and ACL
users (redis://user:password@host) authenticate in the HELLO (or AUTH) of every connection, reconnections
included. Transactions, watches, scripts queued in a pipeline, pub/sub, and connection kinds this module
does not handshake (Unix sockets, credential providers, decoded responses) go through redis-py unchanged.
"""

import asyncio
import collections
import inspect
import ssl

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import check_protocol_version


def _packed(args: tuple) -> bytes:
    name = args[0]
    if isinstance(name, str) and " " in name:  # "SCRIPT LOAD": words sent as separate arguments
        args = (*name.split(), *args[1:])
    return hiredis.pack_command(args)


class _Link(asyncio.Protocol):
    """One connection: commands written as they come, each reply resolving the oldest waiter."""

    def __init__(self, timeout: float | None):
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self._waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._timeout = timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._unsent: list[bytes] = []  # written together once the running callbacks are done
        self.alive = False

    def connection_made(self, transport) -> None:
        self._transport = transport
        self.alive = True

    def send(self, packed: bytes) -> asyncio.Future:
        """The future of the reply to one packed command."""
        if not self.alive:
            raise RedisConnectionError("Connection to Redis closed")
        future = self._loop.create_future()
        now = self._loop.time()
        self._waiting.append((future, now))
        self._write(packed, now)
        return future

    def send_many(self, packed: bytes, replies: int) -> list[asyncio.Future]:
        """The futures of the replies to several commands packed together (one write)."""
        if not self.alive:
            raise RedisConnectionError("Connection to Redis closed")
        now = self._loop.time()
        futures = [self._loop.create_future() for _ in range(replies)]
        self._waiting.extend((future, now) for future in futures)
        self._write(packed, now)
        return futures

    def _write(self, packed: bytes, now: float) -> None:
        """Commands sent during one pass of the event loop leave in one write (one syscall)."""
        if not self._unsent:
            self._loop.call_soon(self._flush)
            if self._watchdog is None and self._timeout:
                self._watchdog = self._loop.call_at(now + self._timeout, self._check_timeout)
        self._unsent.append(packed)

    def _flush(self) -> None:
        if self.alive:
            self._transport.write(b"".join(self._unsent))
        self._unsent.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                if isinstance(reply, hiredis.PushNotification):
                    continue  # out-of-band (RESP3 push): no command waits for it
                future = self._waiting.popleft()[0]
                if not future.done():  # its caller may have been cancelled
                    if isinstance(reply, Exception):  # an error reply, as redis-py's parse_error classes it
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._drop(InvalidResponse(f"Unexpected data from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop(RedisConnectionError(f"Connection to Redis lost: {exc}" if exc else "Connection closed by Redis"))

    def close(self) -> None:
        self._drop(RedisConnectionError("Connection to Redis closed"))

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        oldest = self._waiting[0][1]
        if self._loop.time() - oldest >= self._timeout:
            self._drop(RedisTimeoutError("Timeout reading from Redis"))
        else:
            self._watchdog = self._loop.call_at(oldest + self._timeout, self._check_timeout)

    def _drop(self, error: Exception) -> None:
        self.alive = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: a cancelled caller leaves no "never retrieved" warning


class Multiplexer:
    """A `_Link` to one server, opened on first use and again after it is lost; concurrent callers
    share one connection attempt."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        resp3: bool = True,
        connect_timeout: float | None = None,
        timeout: float | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.host, self.port, self.db = host, port, db
        self.username, self.password, self.resp3 = username, password, resp3
        self.connect_timeout, self.timeout, self.tls = connect_timeout, timeout, tls
        self._link: _Link | None = None
        self._connecting: asyncio.Future | None = None

    async def call(self, args: tuple):
        link = self._link if self._link is not None and self._link.alive else await self._connected()
        return await link.send(_packed(args))

    async def call_many(self, commands: list[tuple]) -> list:
        """Every reply, in order; a command's error reply is its result, not raised."""
        link = self._link if self._link is not None and self._link.alive else await self._connected()
        replies = []
        for future in link.send_many(b"".join(map(_packed, commands)), len(commands)):
            try:
                replies.append(await future)
            except ResponseError as error:
                replies.append(error)
        return replies

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.alive

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    async def _connected(self) -> _Link:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and not connecting.cancelled():
                connecting.exception()  # retrieved by every waiter alike

    async def _open(self) -> _Link:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, link = await loop.create_connection(
                    lambda: _Link(self.timeout),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                )
                try:
                    await self._handshake(link)
                except BaseException:
                    link.close()
                    raise
        except (TimeoutError, OSError) as exc:
            raise RedisConnectionError(f"Error connecting to {self.host}:{self.port}: {exc or 'timed out'}") from None
        self._link = link
        return link

    async def _handshake(self, link: _Link) -> None:
        """What redis-py's Connection.on_connect sends: HELLO 3 (with AUTH), or AUTH; then SELECT."""
        if self.resp3:
            auth = ("AUTH", self.username or "default", self.password) if self.password else ()
            await link.send(_packed(("HELLO", 3, *auth)))
        elif self.password:
            await link.send(_packed(("AUTH", *([self.username] if self.username else []), self.password)))
        if self.db:
            await link.send(_packed(("SELECT", self.db)))


def multiplexer_for(redis: Redis) -> Multiplexer | None:
    """A Multiplexer speaking to the pool's server exactly as redis-py would, or None when this
    module does not handshake that kind of connection."""
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    if (
        pool.connection_class not in (Connection, SSLConnection)
        or redis.single_connection_client
        or kwargs.get("credential_provider")
        or kwargs.get("decode_responses")
    ):
        return None
    return Multiplexer(
        kwargs.get("host", "localhost"),
        int(kwargs.get("port", 6379)),
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        resp3=check_protocol_version(kwargs.get("protocol"), 3),
        connect_timeout=kwargs.get("socket_connect_timeout"),
        timeout=kwargs.get("socket_timeout"),
        tls=SSLConnection(**kwargs).ssl_context.get() if pool.connection_class is SSLConnection else None,
    )


async def _parsed(response_callbacks, command_name, reply, options: dict):
    """What redis-py's `parse_response` makes of a reply."""
    if isinstance(reply, ResponseError):
        if EMPTY_RESPONSE in options:
            return options[EMPTY_RESPONSE]
        raise reply
    for option in (EMPTY_RESPONSE, NEVER_DECODE, "keys"):
        options.pop(option, None)
    callback = response_callbacks.get(command_name)
    if callback is None:
        return reply
    parsed = callback(reply, **options)
    return await parsed if inspect.isawaitable(parsed) else parsed


class MultiplexedRedis(Redis):
    """`redis.asyncio.Redis` whose single commands and plain pipelines share one pipelined connection."""

    _mux: Multiplexer | None = None
    _mux_checked = False

    def _multiplexer(self) -> Multiplexer | None:
        if not self._mux_checked:
            self._mux, self._mux_checked = multiplexer_for(self), True
        return self._mux

    async def execute_command(self, *args, **options):
        mux = self._mux if self._mux_checked else self._multiplexer()
        if mux is None:
            return await super().execute_command(*args, **options)
        try:
            reply = await mux.call(args)
        except ResponseError as error:
            reply = error
        return await _parsed(self.response_callbacks, args[0], reply, options)

    def register_script(self, script) -> AsyncScript:
        return MultiplexedScript(self, script)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return MultiplexedPipeline(
            self._multiplexer(), self.connection_pool, self.response_callbacks, transaction, shard_hint
        )

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._mux is not None:
            self._mux.close()
        await super().aclose(close_connection_pool)


class MultiplexedPipeline(Pipeline):
    """A non-transactional pipeline without scripts is one write and its replies on the multiplexer."""

    def __init__(self, mux: Multiplexer | None, *args):
        super().__init__(*args)
        self._mux = mux

    async def execute(self, raise_on_error: bool = True) -> list:
        if (
            self._mux is None
            or self.is_transaction
            or self.explicit_transaction
            or self.watching
            or self.scripts
            or not self.command_stack
        ):
            return await super().execute(raise_on_error)
        stack = self.command_stack
        try:
            replies = await self._mux.call_many([args for args, _ in stack])
        finally:
            await self.reset()
        results = []
        for (args, options), reply in zip(stack, replies):
            try:
                results.append(await _parsed(self.response_callbacks, args[0], reply, dict(options)))
            except ResponseError as error:
                results.append(error)
        if raise_on_error:
            self.raise_first_error(stack, results)
        return results


class MultiplexedScript(AsyncScript):
    """A script called on its own client is one EVALSHA (SCRIPT LOAD first when the server lacks it),
    without redis-py's per-call checks of the client's type."""

    async def __call__(self, keys=None, args=None, client=None):
        if client is not None and client is not self.registered_client:
            return await super().__call__(keys, args, client)
        keys, args = keys or [], args or []
        try:
            return await self.registered_client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self.registered_client.script_load(self.script)
            return await self.registered_client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
