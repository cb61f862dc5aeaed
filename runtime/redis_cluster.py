"""Redis Cluster for the API, the projector and the rebuild: runtime.redis_mux's pipelined connection, one
per master, each command sent to the master of its key's slot.

The slot map comes from CLUSTER SLOTS, asked of the URL's node or any master known. A MOVED reply
(a slot moved, a replica took over) refreshes the map and sends the command again; an ASK reply (a slot
migrating) sends it once more to the importing node behind ASKING. A node that cannot be reached fails its
commands with `ConnectionError` at once, like the single-server client, and marks the map stale: the
caller retries (the projector) or answers 503 (the API) and the next command asks the cluster again, so
both go on by themselves after a failover. That reading prefers a map that sends no slot to the node just
lost (a node that has not heard of the failover yet still names the old master). Every key a command
names must lie in one slot (the Store groups its keys by slot); commands over the whole key space (SCAN,
KEYS, FLUSHDB) are refused: the operations commands use redis-py's RedisCluster for those. Every master's
connection has the URL's TLS (rediss://, the same SSL context) and ACL user, and authenticates again
whenever it reconnects.
"""

import asyncio
from collections import defaultdict

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import AskError, AuthenticationError, MovedError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from runtime.redis_mux import MultiplexedRedis, Multiplexer, multiplexer_for

Address = tuple[str, int]
KEYLESS = {"PING", "ECHO", "PUBLISH", "INFO"}  # any node answers (PUBLISH reaches every node's subscribers)
WHOLE_KEY_SPACE = {"SCAN", "KEYS", "FLUSHDB", "FLUSHALL", "DBSIZE", "RANDOMKEY"}
REDIRECTIONS = 5  # MOVED/ASK followed per command before giving up (a failover in progress)


def _name(args: tuple) -> str:
    name = args[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def _encoded(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def slot_of(key) -> int:
    return key_slot(_encoded(key))


def command_slot(args: tuple) -> int | None:
    """The slot a command's keys lie in (the first key's: the server refuses keys of several slots);
    None for a command that names no key."""
    name = _name(args)
    if name in WHOLE_KEY_SPACE:
        raise RedisError(f"{name} spans every node of a Redis Cluster: use the operations client (RedisCluster)")
    if name in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "FCALL", "FCALL_RO"):
        return slot_of(args[3]) if int(args[2]) > 0 else None
    if name in KEYLESS or len(args) < 2:
        return None
    return slot_of(args[1])


SlotMap = list[Address | None]  # the master of each slot


def slot_map(reply: list, asked: Address) -> SlotMap:
    """The map a CLUSTER SLOTS reply gives (`asked`: the node that gave it)."""
    slots: SlotMap = [None] * REDIS_CLUSTER_HASH_SLOTS
    for start, end, master, *_replicas in reply:
        host = master[0].decode() if master[0] else asked[0]  # empty: the node we asked
        slots[start : end + 1] = [(host, int(master[1]))] * (end - start + 1)
    return slots


def slots_on(slots: SlotMap, nodes: set[Address]) -> int:
    """How many slots a map sends to `nodes`."""
    return sum(1 for address in slots if address in nodes) if nodes else 0


class ClusterRouter:
    """Multiplexers to the cluster's masters and the slot map that picks one; the same `call` and
    `call_many` as a single server's Multiplexer."""

    def __init__(self, host: str, port: int, **options):
        self.seeds: list[Address] = [(host, port)]
        self.options = {**options, "db": 0}  # a cluster has database 0 only
        self.nodes: dict[Address, Multiplexer] = {}
        self.slots: SlotMap = [None] * REDIS_CLUSTER_HASH_SLOTS
        self.masters: list[Address] = []
        self.stale = True
        self.lost: set[Address] = set()  # nodes whose connection failed since the map was last read
        self._refreshing: asyncio.Future | None = None

    def node(self, address: Address) -> Multiplexer:
        if address not in self.nodes:
            self.nodes[address] = Multiplexer(*address, **self.options)
        return self.nodes[address]

    async def refresh(self) -> None:
        """Reads the slot map again (concurrent callers share one reading)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read_slots())
        refreshing = self._refreshing
        try:
            await asyncio.shield(refreshing)
        finally:
            if refreshing.done() and not refreshing.cancelled():
                refreshing.exception()  # retrieved by every waiter alike

    async def _read_slots(self) -> None:
        """Asks the nodes in turn (those just lost last) and takes the first map that sends no slot to a
        lost node: after a failover, a node that has not heard of it yet still names the old master. If
        every map does, the one that sends the fewest slots there."""
        lost, errors = set(self.lost), []
        best: SlotMap | None = None
        for address in sorted(dict.fromkeys([*self.masters, *self.seeds]), key=lambda a: a in lost):
            slots = await self._slots_of(address, errors)
            if slots is not None and (best is None or slots_on(slots, lost) < slots_on(best, lost)):
                best = slots
            if best is not None and not slots_on(best, lost):
                break
        if best is None:
            raise RedisConnectionError(f"no Redis Cluster node answered ({'; '.join(errors)})")
        self.slots, self.masters, self.stale = best, list(dict.fromkeys(s for s in best if s)), False
        self.lost -= lost

    async def _slots_of(self, address: Address, errors: list[str]) -> SlotMap | None:
        try:
            return slot_map(await self.node(address).call(("CLUSTER", "SLOTS")), address)
        except AuthenticationError:
            raise  # every node has the same users: no other node would take these credentials
        except (RedisError, OSError) as exc:
            errors.append(f"{address[0]}:{address[1]}: {exc}")
            return None

    def _node_for(self, slot: int | None) -> Multiplexer:
        address = self.slots[slot] if slot is not None else self.masters[0] if self.masters else None
        if address is None:
            self.stale = True
            raise RedisConnectionError(f"no Redis Cluster node serves slot {slot}")
        return self.node(address)

    async def call(self, args: tuple):
        name = _name(args)
        if name == "SCRIPT LOAD" or (name == "SCRIPT" and _name(args[1:]) == "LOAD"):
            return (await self._on_every_master(args))[0]
        if name == "WAIT":  # the replication of this client's writes, on every master it writes to
            return min(await self._on_every_master(args, connected_only=True), default=args[1])
        reply = (await self.call_many([args]))[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _on_every_master(self, args: tuple, connected_only: bool = False) -> list:
        if self.stale:
            await self.refresh()
        nodes = [self.node(a) for a in self.masters if not connected_only or self.node(a).connected]
        return list(await asyncio.gather(*(node.call(args) for node in nodes)))

    async def call_many(self, commands: list[tuple]) -> list:
        """Every reply, in order; a command's error reply is its result, not raised. Commands to different
        masters run concurrently (no order between them); to one master, in the order given."""
        replies: list = [None] * len(commands)
        todo = list(range(len(commands)))
        asking: dict[int, Address] = {}
        for _ in range(REDIRECTIONS):
            if self.stale:
                await self.refresh()
            by_node: dict[Multiplexer, list[int]] = defaultdict(list)
            for i in todo:
                node = self.node(asking[i]) if i in asking else self._node_for(command_slot(commands[i]))
                by_node[node].append(i)
            try:
                sent = (self._send(node, commands, at, asking) for node, at in by_node.items())
                answers = await asyncio.gather(*sent)
            except (RedisConnectionError, OSError):
                self.stale = True  # a node went away: a replica may be taking over its slots
                raise
            todo, asking = [], {}
            for at, got in zip(by_node.values(), answers):
                for i, reply in zip(at, got):
                    replies[i] = reply
                    if isinstance(reply, MovedError):
                        self.stale = True
                        todo.append(i)
                    elif isinstance(reply, AskError):
                        asking[i] = reply.node_addr
                        todo.append(i)
            if not todo:
                return replies
        return replies  # still redirected: the MOVED/ASK errors are the replies

    async def _send(self, node: Multiplexer, commands: list[tuple], at: list[int], asking: dict[int, Address]) -> list:
        try:
            return await self._exchange(node, commands, at, asking)
        except (RedisConnectionError, OSError):
            self.lost.add((node.host, node.port))  # the next map read prefers one that avoids it
            raise

    @staticmethod
    async def _exchange(node: Multiplexer, commands: list[tuple], at: list[int], asking: dict[int, Address]) -> list:
        if not asking:
            return await node.call_many([commands[i] for i in at])
        sent = [c for i in at for c in ((("ASKING",), commands[i]) if i in asking else (commands[i],))]
        got = await node.call_many(sent)
        replies, position = [], 0
        for i in at:
            position += 2 if i in asking else 1
            replies.append(got[position - 1])
        return replies

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


class MultiplexedCluster(MultiplexedRedis):
    """`MultiplexedRedis` on a Redis Cluster: the same single commands, plain pipelines and scripts, each
    routed to the master of its slot. Pub/sub stays on the URL's node (a cluster delivers PUBLISH to every
    node's subscribers)."""

    def _multiplexer(self) -> ClusterRouter:  # type: ignore[override]
        if not self._mux_checked:
            kwargs = self.connection_pool.connection_kwargs
            plain = multiplexer_for(self)
            if plain is None:
                raise RedisError("REDIS_CLUSTER=1 supports TCP and TLS connections, with a password or none")
            self._mux = ClusterRouter(
                plain.host,
                plain.port,
                username=kwargs.get("username"),
                password=kwargs.get("password"),
                resp3=plain.resp3,
                connect_timeout=plain.connect_timeout,
                timeout=plain.timeout,
                tls=plain.tls,
            )
            self._mux_checked = True
        return self._mux  # type: ignore[return-value]
