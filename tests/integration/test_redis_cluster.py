"""The cluster client (runtime.redis_cluster) against a real three-master Redis Cluster: the same answers as
redis-py's RedisCluster, commands routed by slot, MOVED and ASK followed, whole-key-space commands
refused, a node down failing at once and recovering by itself."""

import asyncio

import hiredis
import pytest
import redis
from redis.asyncio import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from devtools.localstack import HOST, LocalRedisCluster
from runtime.redis_cluster import MultiplexedCluster
from tests.support import ON_CLUSTER, unique

pytestmark = pytest.mark.skipif(ON_CLUSTER, reason="starts clusters of its own: runs in the single-Redis pass")


@pytest.fixture
def cluster(redis_cluster):
    """The session's three-master cluster (tests/conftest.py): in the single-Redis pass, only this module's."""
    return redis_cluster


@pytest.fixture
async def clients(cluster):
    plain = RedisCluster.from_url(cluster.url)
    mux = MultiplexedCluster.from_url(cluster.url, socket_connect_timeout=1, socket_timeout=2)
    yield plain, mux
    await mux.aclose()
    await plain.aclose()


def _node_ids(cluster: LocalRedisCluster) -> dict[int, str]:
    return {
        node.port: redis.Redis(host=HOST, port=node.port).execute_command("CLUSTER MYID").decode()
        for node in cluster.nodes
    }


async def test_commands_on_keys_of_every_slot_answer_as_redis_py(clients):
    plain, mux = clients
    prefix = unique("k")
    keys = [f"{prefix}:{{{i}}}" for i in range(200)]  # spread over the three masters
    assert len({key_slot(k.encode()) for k in keys}) > 150
    pipe = mux.pipeline(transaction=False)
    for i, key in enumerate(keys):
        pipe.set(key, i)
        pipe.hset(f"{key}:h", mapping={"a": i, "b": -i})
        pipe.sadd(f"{key}:s", "x", "y")
    assert await pipe.execute() == [True, 2, 2] * len(keys)
    for key in keys[:20]:
        assert await mux.get(key) == await plain.get(key)
        assert await mux.hgetall(f"{key}:h") == await plain.hgetall(f"{key}:h")
        assert await mux.smembers(f"{key}:s") == await plain.smembers(f"{key}:s")
    pipe = mux.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.mget([key, f"{key[:-1]}}}:other"])  # two keys, one slot
    replies = await pipe.execute()
    assert replies[0::2] == [str(i).encode() for i in range(len(keys))]
    assert replies[1::2] == [[str(i).encode(), None] for i in range(len(keys))]


async def test_scripts_are_loaded_on_every_master_and_run_where_their_keys_live(clients):
    plain, mux = clients
    script = mux.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await plain.script_flush()
    key = unique("n")
    for i in range(50):
        assert await script(keys=[f"{key}{{{i}}}"], args=[i]) == i  # NOSCRIPT on each master once: loaded
    assert await plain.get(f"{key}{{49}}") == b"49"


async def test_a_moved_slot_and_a_migrating_slot_are_followed(cluster, clients):
    plain, mux = clients
    key = unique("moving")
    await mux.set(key, "v")  # the client's slot map is now read
    slot, source = key_slot(key.encode()), cluster.master_of(key)
    target = next(node for node in cluster.nodes[:3] if node is not source)
    ids = _node_ids(cluster)
    with redis.Redis(host=HOST, port=source.port) as src, redis.Redis(host=HOST, port=target.port) as dst:
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source.port])
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target.port])
        src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", key)
        assert await mux.get(key) == b"v"  # ASK: the key left for the importing node
        for node in cluster.nodes:
            with redis.Redis(host=HOST, port=node.port) as each:
                each.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target.port])
    assert await mux.get(key) == b"v"  # MOVED: the map is read again
    assert mux._multiplexer().slots[slot][1] == target.port


async def test_commands_over_the_whole_key_space_are_refused_with_a_reason(clients):
    _, mux = clients
    with pytest.raises(RedisError, match="every node"):
        await mux.scan()


async def test_a_node_down_fails_its_commands_at_once_and_the_client_recovers_when_it_is_back(cluster, clients):
    _, mux = clients
    key = unique("down")
    await mux.set(key, "v")
    node = cluster.master_of(key)
    node.stop()  # a clean stop: nodes.conf keeps its slots; no replica takes over
    try:
        with pytest.raises(RedisConnectionError):
            await mux.get(key)
    finally:
        node.start()
    for _ in range(50):
        try:
            if await mux.get(key) is None:  # no persistence here: back empty, serving its slots again
                break
        except RedisError:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("the client did not recover after the node came back")


def _resp(value) -> bytes:
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str | bytes):
        data = value.encode() if isinstance(value, str) else value
        return b"$%d\r\n%s\r\n" % (len(data), data)
    return b"*%d\r\n" % len(value) + b"".join(map(_resp, value))


class FakeNode:
    """A Redis Cluster node in a few lines, on a free loopback port: it answers HELLO, and CLUSTER SLOTS with
    `slots` ((start, end, (host, port)) each); any other command, when it `dies`, drops the connection and
    stops listening (a master killed), else it is refused."""

    def __init__(self, dies: bool = False):
        self.dies, self.slots = dies, []
        self.connections: list[tuple[asyncio.Task, asyncio.StreamWriter]] = []

    async def start(self) -> "FakeNode":
        self.server = await asyncio.start_server(self._serve, HOST, 0)
        self.address = HOST, self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append((asyncio.current_task(), writer))
        commands = hiredis.Reader()
        try:
            while data := await reader.read(65536):
                commands.feed(data)
                while (command := commands.gets()) is not False:
                    if (reply := self._reply(command)) is None:
                        self.server.close()  # it dies: this connection drops, others are refused
                        return
                    writer.write(reply)
        except ConnectionError:
            pass  # the client went away
        finally:
            writer.close()

    def _reply(self, command: list[bytes]) -> bytes | None:
        name = b" ".join(command[:2]).upper()
        if name.startswith(b"HELLO"):
            return b"+OK\r\n"
        if name == b"CLUSTER SLOTS":
            return _resp([[start, end, [host, port]] for start, end, (host, port) in self.slots])
        return None if self.dies else b"-ERR not served by this fake node\r\n"

    async def stop(self) -> None:
        self.server.close()
        for _, writer in self.connections:
            writer.close()
        await asyncio.gather(*(task for task, _ in self.connections), return_exceptions=True)


async def test_after_losing_a_node_the_client_takes_a_map_that_does_not_route_to_it(cluster):
    """A failover as the client sees it: the master of a key's slot dies (`dead`: a fake node that drops the
    connection), and the first node asked afterwards (`stale`: a fake node that has not heard of the
    failover) still sends the slot there; the next node's map (the real cluster's) does not: it is taken."""
    key = unique("failover")
    with cluster.master_of(key).client() as real:
        real.set(key, "v")
        ranges = [(start, end, (HOST, int(node[1]))) for start, end, node, *_ in real.execute_command("CLUSTER SLOTS")]
    dead_master = next(owner for start, end, owner in ranges if start <= key_slot(key.encode()) <= end)
    stale_master = min(r for r in ranges if r[2] != dead_master)[2]  # the lowest slots: asked before the others
    dead, stale = await FakeNode(dies=True).start(), await FakeNode().start()
    stand_ins = {dead_master: dead.address, stale_master: stale.address}
    stale.slots = [(start, end, stand_ins.get(owner, owner)) for start, end, owner in ranges]
    mux = MultiplexedCluster.from_url(f"redis://{HOST}:{stale.address[1]}", socket_connect_timeout=1, socket_timeout=2)
    try:
        with pytest.raises(RedisConnectionError):
            await mux.get(key)  # the stale node's map: sent to the master that dies
        assert await mux.get(key) == b"v"
        assert dead.address not in mux._multiplexer().masters
    finally:
        await mux.aclose()
        await dead.stop()
        await stale.stop()
