"""The applied channel's messages (projections.keys): which customers' slots a write names."""

import pytest

from projections.keys import applied_message, applied_slots


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 16384])
def test_an_applied_message_names_exactly_the_written_slots_listed_or_as_a_bitmap(count):
    slots = set(range(0, 16384, 16384 // count)) if count else set()
    named = applied_slots(applied_message(7, [*slots, *slots]))
    assert named is not None
    assert {slot for slot in range(16384) if named(slot)} == slots
    assert len(applied_message(7, slots)) <= 2 + 2048 + 1


def test_an_applied_message_that_names_no_slots_means_any():
    assert applied_slots(b"7") is None and applied_slots(b"7\nL1") is None and applied_slots(b"7\nB12") is None
