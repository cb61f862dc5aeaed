"""Events produced to a real broker end up in a real Redis, each counted once."""

from aiokafka import AIOKafkaConsumer

from devtools.produce import produce
from devtools.synthetic import Load, generate
from projections.apply import figures
from tests.support import event, read_model, record, reference_fold, wait_until


async def test_a_stream_becomes_the_reference_fold(settings, redis, keys, start_projector):
    customers, points = settings.topic_list
    stream = generate(Load(customers=200, events_per_customer=10, customers_topic=customers, points_topic=points))
    await start_projector()
    await produce(settings, stream)
    expected = reference_fold(stream)

    async def caught_up():
        return await read_model(redis, keys) == expected

    await wait_until(caught_up, message="the read-model to equal the fold of the stream")


async def _balance(redis, keys, org_id, customer_id, program=973):
    customer = (await read_model(redis, keys)).get((org_id, customer_id))
    if customer is None or f"{program}|POINTS" not in customer.balances:
        return None
    return figures(customer.balances[f"{program}|POINTS"])


async def test_a_republished_event_counts_once(settings, redis, keys, start_projector):
    customers, points = settings.topic_list
    earned = event("points.earned", {"programId": 973, "points": "10.5", "category": "MAIN"}, customer_id=7)
    redeemed = event("points.redeemed", {"programId": 973, "points": "0.25"}, customer_id=7)
    marker = event("tier.changed", {"programId": 973, "slabSerial": 2, "slabName": "Silver"}, customer_id=7)
    await start_projector()
    await produce(
        settings,
        [record(points, earned), record(points, redeemed), record(points, earned), record(points, marker)],
    )

    async def marker_applied():  # the same partition, after the duplicate
        customer = (await read_model(redis, keys)).get((100737, 7))
        return customer and "973" in customer.tiers and customer

    customer = await wait_until(marker_applied, message="the events after the duplicate")
    result = figures(customer.balances["973|POINTS"])
    assert result["mainPoints"] == 10250
    assert result["lifetimePoints"] == 10500


async def test_malformed_records_are_dead_lettered_and_the_partition_moves_on(settings, redis, keys, start_projector):
    customers, points = settings.topic_list
    bad = [
        (b"100737:8", b"{not json", "not JSON"),
        (b"100737:8", b'{"specVersion": 2, "eventId": "x"}', "unsupported specVersion"),
        (
            b"100737:8",
            record(points, event("points.gifted", {"programId": 973}, customer_id=8))[2],
            "unknown eventType",
        ),
        (
            b"100737:8",
            record(points, event("points.earned", {"programId": 973, "points": -5, "category": "MAIN"}, customer_id=8))[
                2
            ],
            "points",
        ),
        (
            b"100737:8",
            record(points, event("points.redeemed", {"programId": 973}, customer_id=8))[2],
            "points: Field required",
        ),
    ]
    good = event("points.earned", {"programId": 973, "points": 42, "category": "MAIN"}, customer_id=8)
    await start_projector()
    await produce(settings, [(points, key, value) for key, value, _ in bad] + [record(points, good)])

    async def good_applied():
        return await _balance(redis, keys, 100737, 8)

    assert (await wait_until(good_applied, message="the valid event after the bad ones"))["mainPoints"] == 42000
    await _assert_dead_lettered_once(settings, points, bad)


async def test_invalid_round_2_events_are_dead_lettered_and_the_customer_moves_on(
    settings, redis, keys, start_projector
):
    customers, _ = settings.topic_list
    card = {"cardNumber": "C1", "seriesId": 195, "statusLabel": "ACTIVE"}
    invalid = [
        ("customer.merged", {"survivorId": 9}, "a customer cannot be merged into itself"),
        ("customer.merged", {}, "survivorId: Field required"),
        ("customer.merged", {"survivorId": 0}, "survivorId"),
        ("card.issued", {**card, "cardNumber": ""}, "cardNumber"),
        ("card.updated", {**card, "seriesId": -1}, "seriesId"),
        ("card.issued", {**card, "customFields": [1]}, "customFields"),
        ("customer.status.changed", {"label": "X" * 65}, "label"),
    ]
    bad = [
        (b"100737:9", record(customers, event(kind, data, customer_id=9))[2], reason) for kind, data, reason in invalid
    ]
    good = event("customer.status.changed", {"label": "FRAUD_SUSPECTED"}, customer_id=9)
    await start_projector()
    await produce(settings, [(customers, key, value) for key, value, _ in bad] + [record(customers, good)])

    async def good_applied():
        customer = (await read_model(redis, keys)).get((100737, 9))
        return customer and customer.status and customer

    customer = await wait_until(good_applied, message="the valid event after the invalid ones")
    assert customer.status.label == "FRAUD_SUSPECTED" and customer.mergedInto is None and not customer.cards
    await _assert_dead_lettered_once(settings, customers, bad)


async def _assert_dead_lettered_once(settings, topic: str, bad: list[tuple[bytes, bytes, str]]) -> None:
    """Each bad record is in the dead-letter topic once (nothing crashed), its key and bytes unchanged, with
    its reason and where it came from."""
    reader = AIOKafkaConsumer(
        settings.deadletter_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        dead = []
        while len(dead) < len(bad):
            for records in (await reader.getmany(timeout_ms=1000)).values():
                dead += records
        for records in (await reader.getmany(timeout_ms=1500)).values():
            dead += records  # nothing more: each bad record is dead-lettered once when nothing crashed
    finally:
        await reader.stop()
    by_value = {r.value: r for r in dead}
    assert len(dead) == len(by_value) == len(bad)
    source_offsets = set()
    for key, value, reason in bad:
        letter = by_value[value]
        headers = {k: v.decode() for k, v in letter.headers}
        assert letter.key == key
        assert reason in headers["dlq.reason"], headers["dlq.reason"]
        assert headers["dlq.topic"] == topic
        source_offsets.add(int(headers["dlq.offset"]))
        assert set(headers) == {"dlq.reason", "dlq.topic", "dlq.partition", "dlq.offset"}
    assert len(source_offsets) == len(bad)


async def test_progress_is_logged_as_fields_a_log_query_can_select_on(settings, start_projector, json_logs):
    customers, points = settings.topic_list
    stream = generate(Load(customers=5, events_per_customer=4, customers_topic=customers, points_topic=points))
    await produce(settings, stream)
    await start_projector(settings.model_copy(update={"progress_interval_seconds": 0.05}))
    seen: list[dict] = []

    async def reported_everything():
        seen.extend(line for line in json_logs() if line["logger"] == "pointsview.projector")
        return [line for line in seen if line["event"] == "progress" and line["applied"] == len(stream)]

    line = (await wait_until(reported_everything, message="a progress line with every event applied"))[0]
    assert (line["deadlettered"], line["lag"], line["partitions"]) == (0, 0, 2 * settings.topic_partitions)
