"""The API's multiplexed Redis client against a real Redis: same answers as redis-py, replies matched to
their commands under concurrency, fail-fast when Redis is down, recovery, timeouts."""

import asyncio
import os
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from devtools.localstack import free_port
from runtime.redis_mux import MultiplexedRedis

# the single-server client (tests/integration/test_redis_cluster.py tests the cluster's)
pytestmark = pytest.mark.single_redis
own_redis = pytest.mark.skipif(
    bool(os.environ.get("REDIS_URL")), reason="stops and restarts the test's own Redis (REDIS_URL is external)"
)


@pytest.fixture
async def clients(redis_url):
    plain = Redis.from_url(redis_url)
    mux = MultiplexedRedis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
    await plain.flushdb()
    yield plain, mux
    await mux.aclose()
    await plain.aclose()


async def test_the_stores_read_commands_answer_as_redis_py_does(clients):
    plain, mux = clients
    await plain.set("s", b"\x00value\n")
    await plain.hset("h", mapping={"d": "x"})
    await plain.zadd("z", {"7": 1700000000000, "9": 1700000000001})
    await plain.sadd("set", "INSTORE|", "MARTJACK|acc")
    calls = [
        ("get", ("s",)),
        ("get", ("missing",)),
        ("hget", ("h", "d")),
        ("mget", ("s", "missing")),
        ("zrevrange", ("z", 0, 0)),
        ("smembers", ("set",)),
        ("ping", ()),
        ("echo", ("hi",)),
    ]
    for name, args in calls:
        assert await getattr(mux, name)(*args) == await getattr(plain, name)(*args), name
    assert (
        await mux.zrevrange("z", 0, 0, withscores=True)
        == await plain.zrevrange("z", 0, 0, withscores=True)
        == [(b"9", 1700000000001.0)]
    )


async def test_an_error_reply_raises_and_the_connection_goes_on(clients):
    plain, mux = clients
    await plain.set("s", "v")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await mux.hget("s", "d")
    assert await mux.get("s") == b"v"


async def test_concurrent_commands_each_get_their_own_reply(clients):
    plain, mux = clients
    await plain.mset({f"k{i}": i for i in range(500)})
    replies = await asyncio.gather(*(mux.get(f"k{i}") for i in range(500)))
    assert replies == [str(i).encode() for i in range(500)]


async def test_a_cancelled_command_does_not_shift_the_replies_of_later_ones(clients):
    plain, mux = clients
    await plain.mset({"a": "1", "b": "2"})
    slow = asyncio.ensure_future(mux.blpop(["empty-list"], timeout=0.3))  # its nil reply comes last
    await asyncio.sleep(0.05)
    slow.cancel()
    assert await asyncio.gather(mux.get("a"), mux.get("b")) == [b"1", b"2"]
    assert slow.cancelled()


async def test_a_script_is_loaded_again_when_the_server_lost_it(clients):
    plain, mux = clients
    script = mux.register_script("return {KEYS[1], ARGV[1], redis.call('GET', KEYS[1])}")
    await plain.set("k", "v")
    assert await script(keys=["k"], args=["a"]) == [b"k", b"a", b"v"]
    await plain.script_flush()
    assert await script(keys=["k"], args=["b"]) == [b"k", b"b", b"v"]


async def test_pipelines_answer_as_redis_py_does(clients):
    plain, mux = clients
    await plain.zadd("z", {"1": 5})
    await plain.set("s", "v")

    async def run(client, raise_on_error=True, transaction=False):
        pipe = client.pipeline(transaction=transaction)
        pipe.zrevrange("z", 0, 0, withscores=True)
        pipe.get("missing")
        pipe.hget("s", "d") if not raise_on_error else pipe.get("s")
        return await pipe.execute(raise_on_error=raise_on_error)

    assert await run(mux) == await run(plain) == [[(b"1", 5.0)], None, b"v"]
    answered = await run(mux, raise_on_error=False)
    assert answered[:2] == [[(b"1", 5.0)], None] and isinstance(answered[2], ResponseError)
    assert await run(mux, transaction=True) == [[(b"1", 5.0)], None, b"v"]  # MULTI/EXEC: redis-py's own way
    pipe = mux.pipeline(transaction=False)
    pipe.get("s")
    pipe.hget("s", "d")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await pipe.execute()


async def test_the_database_of_the_url_is_selected(local_redis):
    url = local_redis.url.rsplit("/", 1)[0] + "/3"
    mux, plain, db0 = MultiplexedRedis.from_url(url), Redis.from_url(url), Redis.from_url(local_redis.url)
    try:
        await mux.set("in-db-3", "yes")
        assert await plain.get("in-db-3") == b"yes"
        assert await db0.get("in-db-3") is None
    finally:
        for client in (mux, plain, db0):
            await client.aclose()


@own_redis
@pytest.mark.parametrize("protocol", [2, 3])
async def test_the_credentials_of_the_url_are_sent(local_redis, protocol):
    admin = Redis.from_url(local_redis.url)
    await admin.acl_setuser("reader", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    await admin.config_set("requirepass", "s3cret")
    base = local_redis.url.split("//", 1)[1]
    try:
        for url in (f"redis://:s3cret@{base}", f"redis://reader:pw@{base}"):
            mux = MultiplexedRedis.from_url(url, protocol=protocol)
            assert await mux.ping() is True
            await mux.aclose()
        mux = MultiplexedRedis.from_url(f"redis://reader:wrong@{base}", protocol=protocol)
        with pytest.raises(AuthenticationError):
            await mux.ping()
        await mux.aclose()
    finally:
        authenticated = Redis.from_url(f"redis://:s3cret@{base}")
        await authenticated.config_set("requirepass", "")
        await authenticated.aclose()
        await admin.aclose()


@own_redis
async def test_redis_down_fails_at_once_and_the_client_recovers_by_itself(local_redis):
    mux = MultiplexedRedis.from_url(local_redis.url, socket_connect_timeout=1, socket_timeout=2)
    try:
        await mux.set("k", "v")
        local_redis.kill()
        started = time.monotonic()
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                await mux.get("k")
        assert time.monotonic() - started < 1
        local_redis.start()
        await mux.set("k", "again")
        assert await mux.get("k") == b"again"
    finally:
        await mux.aclose()


async def test_a_server_that_stops_answering_times_out_and_the_next_command_reconnects():
    """A fake server: answers the connection's first command (HELLO), then only on new connections."""
    connections = []

    async def serve(reader, writer):
        connections.append(writer)
        try:
            await reader.read(1024)
            writer.write(b"%0\r\n")  # HELLO's (empty) map
            await reader.read(1024)
            if len(connections) > 1:  # the first connection's command is never answered
                writer.write(b"+PONG\r\n")
            await reader.read()  # until the client hangs up
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    mux = MultiplexedRedis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await mux.ping()
        assert 0.3 <= time.monotonic() - started < 1.5
        assert await mux.ping() is True
        assert len(connections) == 2
    finally:
        await mux.aclose()
        server.close()
        await server.wait_closed()
