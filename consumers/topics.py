"""Creates the projector's topics when they are missing (existing ones are left as they are)."""

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code


async def ensure_topics(admin: AIOKafkaAdminClient, names: list[str], partitions: int, replication: int):
    existing = set(await admin.list_topics())
    missing = [NewTopic(n, partitions, replication) for n in names if n not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing)
    for topic, code, *_ in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise RuntimeError(f"cannot create topic {topic}: {for_code(code).__name__}")


async def create_topics(settings) -> None:
    """The configured event and dead-letter topics, with the configured partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await ensure_topics(
            admin,
            [*settings.topic_list, settings.deadletter_topic],
            settings.topic_partitions,
            settings.topic_replication_factor,
        )
    finally:
        await admin.close()
