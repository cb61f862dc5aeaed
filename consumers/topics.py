"""Creates the projector's topics when they are missing (existing ones are left as they are)."""

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from runtime.settings import Settings
from runtime.transport import kafka_options


async def ensure_topics(admin: AIOKafkaAdminClient, names: list[str], partitions: int, replication: int):
    existing = set(await admin.list_topics())
    missing = [NewTopic(n, partitions, replication) for n in names if n not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing)
    for topic, code, *_ in response.topic_errors:
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise RuntimeError(f"cannot create topic {topic}: {for_code(code).__name__}")


async def create_topics(settings: Settings) -> None:
    """The configured event and dead-letter topics, with the configured partition count."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
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


async def group_members(settings: Settings) -> int | None:
    """How many members the projector's consumer group has (None when the broker does not say)."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    try:
        await admin.start()
        (response,) = await admin.describe_consumer_groups([settings.group_id])
        (group,) = response.groups
        return None if group[0] else len(group[-1])  # (error_code, ..., members)
    except (KafkaError, ValueError, IndexError):
        return None
    finally:
        await admin.close()
