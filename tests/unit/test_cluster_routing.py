"""Pure parts of Redis Cluster support: which slot a command goes to, the latest claimant chosen in Python
as the single-server lookup script chooses it, and which slot map the client takes (nodes faked)."""

import pytest
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from projections.store import latest_claimant
from runtime.redis_cluster import ClusterRouter, command_slot


def test_a_command_goes_to_the_slot_of_its_first_key_and_a_script_to_its_first_key():
    assert command_slot(("GET", "pv:1:c:{7:1}")) == key_slot(b"7:1")
    assert command_slot(("MGET", "a{x}", "b{x}")) == key_slot(b"x")
    assert command_slot(("EVALSHA", "sha", 2, "pv:1:i:{7:a}", "pv:1:i:{7:a}:2", "arg")) == key_slot(b"7:a")
    assert command_slot(("EVALSHA", "sha", 0, "arg")) is None
    assert command_slot(("PING",)) is None and command_slot(("PUBLISH", "pv:live", 2)) is None


def test_commands_over_the_whole_key_space_are_refused():
    with pytest.raises(RedisError, match="every node"):
        command_slot(("SCAN", 0))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([None], None),
        ([b""], None),
        ([b"4:1000", b"3:1500,5:2000"], 5),
        ([b"4:1000,6:2000", b"3:1500,5:2000"], 6),  # a tie: the higher customerId
        ([b"9:-5", None, b"2:-7"], 9),  # claim times before 1970 are negative
    ],
)
def test_the_latest_claim_wins_and_a_tie_goes_to_the_higher_customer_id(fields, expected):
    assert latest_claimant(fields) == expected


@pytest.mark.parametrize(
    ("fields", "card", "expected"),
    [
        ([], b"4:1000,6:900", 4),  # a card's holders claim without any profile
        ([b"3:1500"], b"4:1000", 3),
        ([b"3:1500"], b"3:D,4:1000", 4),  # a deleted card: no claim through any field, the next holder resolves
        ([b"3:1500"], b"3:D", None),
        ([None], None, None),
        ([b"12:5"], b"112:D", 12),  # ids are whole entries
    ],
)
def test_card_holders_claim_and_a_deleted_card_hides_its_holder(fields, card, expected):
    assert latest_claimant(fields, card) == expected


# --- which slot map the client takes after losing a node ---

A, B, C, D = ("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.3", 7000), ("10.0.0.4", 7000)


class FakeNode:
    """A node's CLUSTER SLOTS answer (an exception: the node cannot be reached), and how often it was asked."""

    def __init__(self, address, answer):
        self.host, self.port = address
        self.answer, self.asked = answer, 0

    async def call(self, args):
        self.asked += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def call_many(self, commands):
        return [await self.call(args) for args in commands]


def slots_reply(*owners):
    """CLUSTER SLOTS sharing the slots in equal ranges among `owners`, in order."""
    share = 16384 // len(owners)
    return [
        [i * share, 16383 if i == len(owners) - 1 else (i + 1) * share - 1, [host.encode(), port, b"id"]]
        for i, (host, port) in enumerate(owners)
    ]


def router(answers: dict, lost=()) -> ClusterRouter:
    cluster = ClusterRouter(*A)
    cluster.nodes = {address: FakeNode(address, answer) for address, answer in answers.items()}
    cluster.masters, cluster.lost = list(answers), set(lost)
    return cluster


async def test_after_losing_a_node_the_first_map_that_avoids_it_is_taken():
    cluster = router(
        {A: RedisConnectionError("refused"), B: slots_reply(A, B, C), C: slots_reply(D, B, C), D: slots_reply(D, B, C)},
        lost={A},
    )
    await cluster.refresh()
    assert cluster.slots[0] == D and cluster.masters == [D, B, C]
    assert [cluster.nodes[n].asked for n in (A, B, C, D)] == [0, 1, 1, 0]  # the lost node last: not needed
    assert cluster.lost == set() and not cluster.stale


async def test_when_every_map_routes_to_the_lost_node_the_one_routing_fewest_slots_is_taken():
    cluster = router({B: slots_reply(A, A, C), C: slots_reply(A, B, C), D: slots_reply(A, A, A)}, lost={A})
    await cluster.refresh()
    assert cluster.masters == [A, B, C]
    assert cluster.lost == set()  # the map was read: a node lost again is noted again


async def test_with_no_node_lost_the_first_answer_is_taken():
    cluster = router({B: slots_reply(A, B, C), C: slots_reply(D, B, C)})
    await cluster.refresh()
    assert cluster.slots[0] == A and cluster.nodes[C].asked == 0


async def test_a_node_whose_connection_fails_is_noted_as_lost():
    cluster = router({A: RedisConnectionError("Connection to Redis lost"), B: slots_reply(A, B)})
    cluster.slots, cluster.stale = [A] * 16384, False
    with pytest.raises(RedisConnectionError):
        await cluster.call(("GET", "k"))
    assert cluster.lost == {A} and cluster.stale
