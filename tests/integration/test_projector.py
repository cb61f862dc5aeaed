"""Events produced to a real broker end up in a real Redis, each counted once."""

import asyncio

from aiokafka import AIOKafkaConsumer

from projections.apply import figures
from service.produce import produce
from service.synthetic import Load, generate
from tests.support import read_model, record, reference_fold, wait_until, event


async def test_a_stream_becomes_the_reference_fold(settings, redis, keys, start_projector):
    customers, points = settings.topic_list
    stream = generate(Load(customers=200, events_per_customer=10, customers_topic=customers, points_topic=points))
    await start_projector()
    await produce(settings.kafka_bootstrap_servers, stream)
    expected = reference_fold(stream)

    async def caught_up():
        return await read_model(redis, keys) == expected

    await wait_until(caught_up, message="the read-model to equal the fold of the stream")
