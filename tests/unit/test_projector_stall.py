"""A projector behind the log that applies nothing says so, once per stall, with what its tasks wait on."""

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from consumers.projector import Projector
from runtime.settings import Settings
from tests.support import wait_until

TP = TopicPartition("loyalty.points.v1", 0)


class _Behind:
    """A consumer whose last fetch saw the partition end at offset 10."""

    def highwater(self, tp):
        return 10


def _stalls() -> float:
    return REGISTRY.get_sample_value("pointsview_projector_stalled_total") or 0


def _projector(position: int) -> Projector:
    projector = Projector(Settings(stall_seconds=0.2), _Behind(), None, None, asyncio.Event())
    projector.positions, projector.expected = {TP: position}, {TP: position}
    return projector


async def _counted(stalls: float) -> bool:
    return _stalls() == stalls


async def test_a_projector_behind_the_log_applying_nothing_warns_once_per_stall(json_logs):
    projector = _projector(position=4)
    before = _stalls()
    watching = asyncio.create_task(projector._watch_for_stalls())
    try:
        await wait_until(lambda: _counted(before + 1), timeout=10, interval=0.05, message="a stall")
        await asyncio.sleep(0.5)  # the same stall, longer: still one
        assert _stalls() == before + 1
        projector.applied += 1  # it moved: the stall is over; then a second one
        await wait_until(lambda: _counted(before + 2), timeout=10, interval=0.05, message="a second stall")
    finally:
        watching.cancel()
    warnings = [line for line in json_logs() if line["event"].startswith("projector stalled")]
    assert len(warnings) == 2 and warnings[0]["lag"] == 6 and warnings[0]["level"] == "warning"
    chains = warnings[0]["waiting"].values()
    assert any("_watch_for_stalls" in step for chain in chains for step in chain), "each task's chain of awaits"


async def test_no_stall_at_the_end_of_the_log_nor_while_paused_for_a_hand_over(json_logs):
    caught_up, paused = _projector(position=10), _projector(position=4)
    paused.paused_for = 2
    before = _stalls()
    watching = [asyncio.create_task(p._watch_for_stalls()) for p in (caught_up, paused)]
    await asyncio.sleep(1.0)  # five times the stall time
    for task in watching:
        task.cancel()
    assert _stalls() == before
    assert not [line for line in json_logs() if line["event"].startswith("projector stalled")]


class _NoBroker:
    async def read_positions(self, names):
        raise KafkaConnectionError("injected: no broker")


async def test_partitions_that_could_not_be_sought_on_assignment_stop_the_projector():
    # aiokafka logs a listener's error and goes on: the partitions, never sought, would be assigned and dropped
    projector = Projector(Settings(), _Behind(), None, _NoBroker(), asyncio.Event())
    await projector.on_partitions_assigned([TP])
    assert isinstance(projector.fatal, KafkaConnectionError)
