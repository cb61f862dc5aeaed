"""Records that cannot be applied go to the dead-letter topic, unchanged, with why and whence."""

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from consumers.metrics import DEAD_LETTERED


def deadletter_headers(record: ConsumerRecord, reason: str) -> list[tuple[str, bytes]]:
    return [
        ("dlq.reason", reason.encode()[:1000]),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
    ]


async def send_deadletters(producer: AIOKafkaProducer, topic: str, rejected: list[tuple[ConsumerRecord, str]]) -> None:
    """Returns once the broker has every record: only then may the batch be committed."""
    sent = [
        await producer.send(topic, value=record.value, key=record.key, headers=deadletter_headers(record, reason))
        for record, reason in rejected
    ]
    await asyncio.gather(*sent)
    DEAD_LETTERED.inc(len(rejected))
