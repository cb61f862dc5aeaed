"""Reading topics from outside the projector's group, for the operations commands (status, dead letters)
and the projector's checks of its stored positions."""

import asyncio
import time
from contextlib import asynccontextmanager

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord

from projections.keys import position_name
from runtime.progress import Progress
from runtime.settings import Settings
from runtime.transport import kafka_options

log = structlog.get_logger("pointsview.offsets")


@asynccontextmanager
async def reader(settings: Settings, group_id: str | None = None, **config):
    """A consumer that joins no group and commits nothing (a group id only to read its commits)."""
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        **{"auto_offset_reset": "earliest", **config},
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """From the metadata a fresh consumer loads at start; a missing topic has none."""
    return [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def end_offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], how: str, timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """Each partition's end offset: the high watermark a fetch reports, fetching where the client's ListOffsets
    request puts the end (`how="list-offsets"`: an answer can lag the log, as the local Tansu broker's does,
    which names its last batch's base offset; a fetch never does), or (`"fetch"`, POINTSVIEW_KAFKA_END_OFFSETS)
    at the log's start, without ListOffsets. The fetch assigns `tps` to the consumer."""
    if not tps:
        return {}
    listed = await asyncio.wait_for(consumer.end_offsets(tps), timeout) if how == "list-offsets" else None
    return await _fetched_ends(consumer, tps, timeout, listed)


async def _fetched_ends(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float, listed: dict[TopicPartition, int] | None
) -> dict[TopicPartition, int]:
    consumer.assign(tps)
    if listed is None:
        await consumer.seek_to_beginning(*tps)
    for tp, offset in (listed or {}).items():
        consumer.seek(tp, offset)
    deadline = time.monotonic() + timeout
    while any(consumer.highwater(tp) is None for tp in tps):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no fetch answer within {timeout:.0f}s")
        await consumer.getmany(timeout_ms=100, max_records=1)
    return {tp: consumer.highwater(tp) for tp in tps}


async def read_all(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    how: str,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> list[ConsumerRecord]:
    """Every record of the partitions, from the start up to their end at the time of the call."""
    ends = await end_offsets(consumer, tps, how)
    progress = progress or Progress()
    progress.total = sum(ends.values())
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while any([await consumer.position(tp) < ends[tp] for tp in tps]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read to the end within {timeout:.0f}s")
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records += batch
            progress.done += len(batch)
    return [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]


async def log_ends(settings: Settings, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Each partition's end offset, read by a throwaway reader (it may assign partitions to itself)."""
    async with reader(settings) as probe:
        return await end_offsets(probe, partitions, settings.kafka_end_offsets)


async def outside_the_log(
    settings: Settings, positions: dict[TopicPartition, int]
) -> dict[TopicPartition, tuple[int, int]]:
    """The partitions whose log does not hold their position (the next offset to read), each with the
    log's bounds (first offset, end). ListOffsets answers are a first look only (one can lag the log: the local
    broker's names its last batch's base offset): a position outside them is confirmed by a fetch at it,
    and the log's bounds by a fetch at its start."""
    if not positions:
        return {}
    async with reader(settings, auto_offset_reset="none") as probe:  # out of range: an error, not a reset
        tps = list(positions)
        starts = await asyncio.wait_for(probe.beginning_offsets(tps), 10.0)
        ends = await end_offsets(probe, tps, settings.kafka_end_offsets)
        outside = {}
        for tp, position in positions.items():
            if not starts[tp] <= position <= ends[tp] and not await _holds(probe, tp, position, ends[tp]):
                outside[tp] = await _fetched_bounds(probe, tp)
        return outside


async def _holds(probe: AIOKafkaConsumer, tp: TopicPartition, position: int, listed_end: int) -> bool:
    """Past the listed end, the last record read before `position` must still be there; before the listed
    start, `position` itself. Either way the log's end, as the fetch reports it, must reach `position`."""
    try:
        _, end = await _fetched(probe, tp, position - 1 if position > listed_end else position)
    except OffsetOutOfRangeError:
        return False
    if end >= position:
        log.info("a ListOffsets answer lags the log; a fetch finds the position", partition=_name(tp), end=end)
    return end >= position


async def _fetched_bounds(probe: AIOKafkaConsumer, tp: TopicPartition) -> tuple[int, int]:
    records, end = await _fetched(probe, tp, None)
    return records[0].offset if records else end, end


async def _fetched(
    probe: AIOKafkaConsumer, tp: TopicPartition, offset: int | None, timeout: float = 10.0
) -> tuple[list[ConsumerRecord], int]:
    """The first records a fetch at `offset` (None: the log's start) returns, and the log's end it reports."""
    probe.assign([tp])
    if offset is None:
        await probe.seek_to_beginning(tp)
    else:
        probe.seek(tp, offset)
    deadline = time.monotonic() + timeout
    records: list[ConsumerRecord] = []
    while (end := probe.highwater(tp)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{_name(tp)}: no fetch answer within {timeout:.0f}s")
        records = (await probe.getmany(tp, timeout_ms=100, max_records=1)).get(tp, [])
    return records, end


def _name(tp: TopicPartition) -> str:
    return position_name(tp.topic, tp.partition)


async def committed_offsets(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The projector group's committed offsets (reading them does not join the group)."""
    async with reader(settings, settings.group_id) as consumer:
        return {tp: await consumer.committed(tp) for tp in tps}
