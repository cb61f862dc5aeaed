"""Reading the dead-letter topic and redriving chosen records to their original topic, after a fix."""

from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer

from consumers.offsets import partitions_of, read_all, reader
from runtime.settings import Settings
from runtime.transport import kafka_options

log = structlog.get_logger("pointsview.deadletters")


class DeadLetterError(LookupError):
    pass


@dataclass(frozen=True)
class DeadLetter:
    partition: int  # in the dead-letter topic
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get("dlq.reason", "")

    @property
    def origin(self) -> tuple[str | None, int | None, int | None]:
        """(topic, partition, offset) the record was first read from."""
        partition, offset = self.headers.get("dlq.partition"), self.headers.get("dlq.offset")
        return (
            self.headers.get("dlq.topic"),
            int(partition) if partition and partition.isdigit() else None,
            int(offset) if offset and offset.isdigit() else None,
        )

    def payload_text(self) -> str:
        return (self.value or b"").decode("utf-8", errors="replace")


async def read_deadletters(settings: Settings) -> list[DeadLetter]:
    """Every record of the dead-letter topic, oldest first per partition."""
    async with reader(settings) as consumer:
        tps = partitions_of(consumer, [settings.deadletter_topic])
        records = await read_all(consumer, tps, settings.kafka_end_offsets) if tps else []
    return [
        DeadLetter(
            r.partition,
            r.offset,
            r.timestamp,
            r.key,
            r.value,
            {name: value.decode("utf-8", errors="replace") for name, value in r.headers},
        )
        for r in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))
    ]


def select(letters: list[DeadLetter], refs: list[str]) -> list[DeadLetter]:
    """`PARTITION:OFFSET`, or a bare OFFSET when only one partition has a record there."""
    chosen = []
    for ref in refs:
        partition, _, offset = ref.rpartition(":")
        found = [d for d in letters if str(d.offset) == offset and partition in ("", str(d.partition))]
        if not found:
            raise DeadLetterError(f"no dead letter at {ref}")
        if len(found) > 1:
            raise DeadLetterError(
                f"offset {ref} is in several partitions; say which: " + ", ".join(d.ref for d in found)
            )
        chosen.append(found[0])
    return chosen


async def redrive(settings: Settings, letters: list[DeadLetter]) -> list[tuple[DeadLetter, str, int, int]]:
    """Re-publishes each record's original key and bytes to its original topic and partition.

    The original partition keeps the customer's events in one partition even when the
    upstream producer partitions keys differently from ours.
    """
    for letter in letters:
        if letter.origin[0] is None:
            raise DeadLetterError(f"dead letter {letter.ref} has no dlq.topic header")
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", enable_idempotence=False)
    await producer.start()
    try:
        return [await _redrive_one(producer, settings.deadletter_topic, letter) for letter in letters]
    finally:
        await producer.stop()


async def _redrive_one(producer: AIOKafkaProducer, deadletter_topic: str, letter: DeadLetter):
    topic, partition, _ = letter.origin
    sent = await producer.send_and_wait(
        topic,
        value=letter.value,
        key=letter.key,
        partition=partition,
        headers=[("dlq.redriven-from", f"{deadletter_topic}:{letter.ref}".encode())],
    )
    org_id, _, customer_id = (letter.key or b"").decode(errors="replace").partition(":")
    log.info(
        "dead letter redriven",
        deadletter=letter.ref,
        topic=topic,
        partition=sent.partition,
        offset=sent.offset,
        orgId=org_id,
        customerId=customer_id,
    )
    return letter, topic, sent.partition, sent.offset
