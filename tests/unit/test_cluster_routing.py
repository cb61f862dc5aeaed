"""Pure parts of Redis Cluster support: which slot a command goes to, and the latest claimant chosen in
Python as the single-server lookup script chooses it."""

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from projections.store import latest_claimant
from runtime.redis_cluster import command_slot


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
