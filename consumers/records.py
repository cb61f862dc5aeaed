"""A batch's records as events: parsed, or rejected with why (to be dead-lettered)."""

import structlog
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from consumers.log_reader import partition_name
from consumers.metrics import KEY_MISMATCH
from projections.events import Event, InvalidEvent, parse_event
from projections.store import CorruptValue, CustomerId

log = structlog.get_logger("pointsview.projector")


def parsed(
    batch: dict[TopicPartition, list[ConsumerRecord]],
) -> tuple[list[tuple[str, int, Event, CustomerId]], list[tuple[ConsumerRecord, str]]]:
    """The batch's events as (position, offset, event, its customer), in log order per partition; and the records that
    are not valid events, with why."""
    events, rejected = [], []
    for tp, records in batch.items():
        position = partition_name(tp)
        for record in records:
            try:
                event = parse_event(record.value)
            except InvalidEvent as exc:
                rejected.append((record, str(exc)))
                continue
            cid = (event.orgId, event.customerId)
            if record.key != f"{cid[0]}:{cid[1]}".encode():
                KEY_MISMATCH.inc()
            events.append((position, record.offset, event, cid))
    return events, rejected


def unreadable_reason(cid: CustomerId, exc: CorruptValue) -> str:
    """Why the events of a customer whose stored value cannot be decoded are dead-lettered: its value is left
    as it is (its reads answer 503, verify names it) and the projector goes on. A rebuild replays the log
    into a fresh generation; a redrive after it is deduplicated."""
    log.error("stored value unreadable; its events are dead-lettered", customer=cid, error=str(exc))
    return f"stored state of customer {cid[0]}:{cid[1]} unreadable; run pointsview rebuild ({exc})"


def dead_letter_customers(
    reasons: dict[CustomerId, str], events: list, batch: dict[TopicPartition, list[ConsumerRecord]], rejected: list
) -> list:
    """Adds the records of the customers in `reasons` to `rejected`; returns the other customers' events."""
    at = {(position, offset): reasons[cid] for position, offset, _, cid in events if cid in reasons}
    for tp, records in batch.items():
        position = partition_name(tp)
        rejected += [(record, at[position, record.offset]) for record in records if (position, record.offset) in at]
    return [event for event in events if event[3] not in reasons]
