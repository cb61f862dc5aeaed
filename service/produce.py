"""Publishing events to Kafka (demo data, benchmarks, tests). This service never publishes in production."""

from aiokafka import AIOKafkaProducer


async def produce(bootstrap_servers: str, stream: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all",
                                enable_idempotence=False, linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for topic, key, value in stream:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
