"""Both ways of reading a partition's end offset (POINTSVIEW_KAFKA_END_OFFSETS) against the real broker, and
the check of a stored position that never trusts one ListOffsets answer alone."""

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from consumers.offsets import end_offsets, outside_the_log, read_all, reader

pytestmark = pytest.mark.single_redis  # the broker only


async def test_list_offsets_and_fetch_agree_on_records_sent_one_by_one(settings, topics):
    # One record per produce request: the local broker's ListOffsets answer is right for single-record
    # batches (for larger ones it answers the last batch's base offset, hence the fetch path), Kafka's always.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for n in range(7):
            await producer.send_and_wait(topics[0], b"x", partition=n % 2)
    finally:
        await producer.stop()
    tps = [TopicPartition(topics[0], p) for p in range(3)]
    expected = {tps[0]: 4, tps[1]: 3, tps[2]: 0}
    for how in ("list-offsets", "fetch"):
        async with reader(settings) as consumer:
            assert await end_offsets(consumer, tps, how) == expected, how
            assert len(await read_all(consumer, tps, how)) == 7, how


async def _produce_batches(settings, topic: str, records: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        batch = producer.create_batch()
        for _ in range(records):
            batch.append(key=None, value=b"x", timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def test_a_position_outside_lagging_list_offsets_answers_is_confirmed_by_a_fetch(
    settings, topics, lagging_list_offsets
):
    await _produce_batches(settings, topics[0], 10)
    lying = settings.model_copy(update={"kafka_end_offsets": "list-offsets"})
    tp, empty = TopicPartition(topics[0], 0), TopicPartition(topics[0], 1)
    assert await outside_the_log(lying, {tp: 0, empty: 0}) == {}, "before the start ListOffsets names"
    assert await outside_the_log(lying, {tp: 10}) == {}, "the whole log applied: nothing lost"
    assert await outside_the_log(lying, {tp: 11, empty: 1}) == {tp: (0, 10), empty: (0, 0)}, "past the end"


async def test_an_end_offset_is_the_high_watermark_a_fetch_reports_not_a_lagging_list_offsets_answer(
    settings, topics, lagging_list_offsets
):
    await _produce_batches(settings, topics[0], 10)
    tps = [TopicPartition(topics[0], 0), TopicPartition(topics[0], 1)]
    async with reader(settings) as consumer:
        assert await end_offsets(consumer, tps, "list-offsets") == {tps[0]: 10, tps[1]: 0}
        assert len(await read_all(consumer, tps, "list-offsets")) == 10
