"""No event lost or counted twice: projector SIGKILLed, Redis restarted, Redis emptied."""

import asyncio
import os
import signal
import subprocess
import sys

import psutil
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from consumers.topics import ensure_topics
from consumers.verify import differences
from devtools.localstack import LocalBroker
from devtools.produce import produce
from devtools.synthetic import Load, generate
from projections.store import Store
from tests.support import read_model, reference_fold, wait_until

pytestmark = pytest.mark.slow
EVENTS = 20_000


def _stream(settings, customers=2_000):
    topic_customers, topic_points = settings.topic_list
    return generate(
        Load(
            customers=customers,
            events_per_customer=EVENTS // customers,
            customers_topic=topic_customers,
            points_topic=topic_points,
            seed=11,
        )
    )


def _env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url,
        "REDIS_CLUSTER": str(int(settings.redis_cluster)),
        "POINTSVIEW_TOPICS": settings.topics,
        "POINTSVIEW_DEADLETTER_TOPIC": settings.deadletter_topic,
        "POINTSVIEW_GROUP_ID": settings.group_id,
        "POINTSVIEW_KEY_PREFIX": settings.key_prefix,
        "POINTSVIEW_SESSION_TIMEOUT_MS": "6000",
        "POINTSVIEW_HEARTBEAT_INTERVAL_MS": "1000",
        "POINTSVIEW_BATCH_MAX_RECORDS": "300",
        # written behind by 5 batches: kills land mid-stream, with folded records not yet written
        "POINTSVIEW_WRITE_BEHIND_RECORDS": "1500",
        "POINTSVIEW_BATCH_TIMEOUT_MS": "50",
        "POINTSVIEW_LOG_LEVEL": "WARNING",
        "POINTSVIEW_KAFKA_END_OFFSETS": settings.kafka_end_offsets,
    }


def _spawn(settings, *options: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", "projector", *options], env={**_env(settings), **env})


async def _topics_of_5_and_6_partitions(settings) -> None:
    """A customer's two partitions then often belong to different members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        customers_topic, points_topic = settings.topic_list
        await ensure_topics(admin, [customers_topic, settings.deadletter_topic], 5, 1)
        await ensure_topics(admin, [points_topic], 6, 1)
    finally:
        await admin.close()


async def _partitions(settings):
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        return [(t, p) for t in settings.topic_list for p in await producer.partitions_for(t)]
    finally:
        await producer.stop()


def _replays() -> float:
    return REGISTRY.get_sample_value("pointsview_replays_total") or 0


async def _consumed(redis, keys) -> int:
    return sum(int(v) for v in (await redis.hgetall(keys.positions())).values())


async def _equals_fold(redis, keys, expected, timeout=120):
    async def done():
        try:
            return await read_model(redis, keys) == expected
        except RedisConnectionError:  # the test's own client, while Redis restarts
            return False

    try:
        await wait_until(done, timeout=timeout, interval=0.5, message="the read-model to equal the fold")
    except AssertionError:  # what differs, and where the positions stand: the failure's evidence
        found = await read_model(redis, keys)
        print("\n".join(differences(found, expected, "read-model", "fold", limit=10)), file=sys.stderr)
        print(f"positions: {await redis.hgetall(keys.positions())}", file=sys.stderr)
        raise


@pytest.mark.single_redis  # 54 s, mostly waiting for the dead member's session; on a cluster the kills of
# test_members_joining_and_leaving... and test_two_projectors_sharing_a_group... cover the same writes
async def test_sigkilled_projector_loses_nothing_and_counts_nothing_twice(settings, topics, redis, keys):
    stream = _stream(settings)
    await produce(settings, stream)
    expected = reference_fold(stream)
    assert len(await _partitions(settings)) == 2 * 6
    kills = 0
    process = _spawn(settings)
    try:
        for fraction in (0.2, 0.45, 0.7):  # three kills, each costing the dead member's session (6 s) and a join

            async def progressed(fraction=fraction):
                return await _consumed(redis, keys) >= fraction * len(stream)

            await wait_until(progressed, timeout=90, interval=0.02, message=f"{fraction:.0%} consumed")
            if await _consumed(redis, keys) < len(stream):
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process = _spawn(settings)
        await _equals_fold(redis, keys, expected)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0  # SIGTERM: finishes the batch, exits 0
    assert kills >= 3, "the stream was consumed before the kills landed; make it longer"


async def test_two_projectors_sharing_a_group_one_killed_lose_nothing_and_count_nothing_twice(settings, redis, keys):
    # The topics have different partition counts, so a customer's two partitions often belong to
    # different processes, which then write it at the same time (compare-and-set conflicts, batches
    # fetched again); then one is killed and the other takes its partitions over, with customers in its
    # cache that the dead one wrote since. Their ledgers keep 3 entries: trimmed while the kill lands.
    await _topics_of_5_and_6_partitions(settings)
    stream = _stream(settings)
    await produce(settings, stream)
    expected = reference_fold(stream, ledger_entries=3)
    first, second = (_spawn(settings, POINTSVIEW_LEDGER_ENTRIES="3") for _ in range(2))
    try:

        async def half_consumed():
            return await _consumed(redis, keys) >= 0.5 * len(stream)

        await wait_until(half_consumed, timeout=90, interval=0.02, message="half consumed")
        assert await _consumed(redis, keys) < len(stream), "the stream was consumed before the kill; make it longer"
        first.send_signal(signal.SIGKILL)
        first.wait()
        await _equals_fold(redis, keys, expected)
    finally:
        for process in (first, second):
            process.terminate()
        assert second.wait(timeout=30) == 0


@pytest.mark.parametrize("outage_s", [1, 3])  # 3 s: several retries fail, the replay's own reads among them
async def test_redis_restarted_with_aof_mid_stream(outage_s, settings, redis, keys, local_redis, start_projector):
    if os.environ.get("REDIS_URL"):
        pytest.skip("needs a Redis server of the test's own to restart")
    stream = _stream(settings)
    expected = reference_fold(stream)
    await start_projector(settings.model_copy(update={"batch_max_records": 300}))
    await produce(settings, stream)

    async def halfway():
        return await _consumed(redis, keys) >= len(stream) // 3

    await wait_until(halfway, timeout=60, interval=0.02, message="a third consumed")
    local_redis.kill()  # a crash: with appendfsync everysec the last second may be lost
    await asyncio.sleep(outage_s)
    local_redis.start()
    await _equals_fold(redis, keys, expected)


async def test_a_failed_write_is_replayed_even_when_the_replay_first_fails_too(
    settings, redis, keys, start_projector, monkeypatch
):
    # Redis down for a while: a write fails (what it held is read again from the log), then the replay's
    # own first read of the positions fails as well; the replay must still happen once Redis answers.
    faults = {"write": 2, "read_positions": 0}  # the second write fails
    write, read_positions = Store.write, Store.read_positions

    async def failing_write(self, writes):
        faults["write"] = max(0, faults["write"] - 1)
        if faults["write"] == 0 and faults["read_positions"] == 0 and "failed" not in faults:
            faults["failed"], faults["read_positions"] = 1, 1
            raise RedisConnectionError("injected: Redis went down during the write")
        return await write(self, writes)

    async def failing_read_positions(self, positions):
        if faults["read_positions"]:
            faults["read_positions"] = 0
            raise RedisConnectionError("injected: Redis still down")
        return await read_positions(self, positions)

    monkeypatch.setattr(Store, "write", failing_write)
    monkeypatch.setattr(Store, "read_positions", failing_read_positions)
    stream = _stream(settings, customers=500)
    await start_projector(settings.model_copy(update={"batch_max_records": 300, "write_behind_records": 300}))
    await produce(settings, stream)
    await _equals_fold(redis, keys, reference_fold(stream))
    assert faults == {"write": 0, "read_positions": 0, "failed": 1}, "both faults were injected"


@pytest.mark.parametrize("fault", ["customers lost", "reply lost"])
async def test_redis_failing_between_a_write_and_its_positions_reads_the_batch_again(
    fault, settings, redis, keys, start_projector, monkeypatch
):
    # Redis goes down between a batch's two steps: its customers' write was acknowledged, then its positions'
    # save failed. "customers lost": Redis lost the acknowledged write in its crash (an AOF written every
    # second may lose the last one) and never ran the save; "reply lost": it ran the save, the reply never
    # came. The batch must be read again from the positions Redis holds, whichever happened, or its events
    # are missing for good (with the positions where they were before) or the positions stop moving.
    topic_customers, topic_points = settings.topic_list
    first, second, third = (
        generate(
            Load(
                customers=n,
                events_per_customer=e,
                first_customer_id=c,
                customers_topic=topic_customers,
                points_topic=topic_points,
                seed=c,
            )
        )
        for n, e, c in ((200, 10, 1_000), (5, 4, 50_000), (5, 4, 60_000))
    )
    await start_projector(settings.model_copy(update={"batch_max_records": 300, "write_behind_records": 300}))
    await produce(settings, first)
    await _equals_fold(redis, keys, reference_fold(first))
    faults = _fail_the_next_positions_save(monkeypatch, lose_the_write=fault == "customers lost")
    await produce(settings, second)
    await wait_until(lambda: asyncio.sleep(0, not faults), timeout=60, message="the fault injected")
    await produce(settings, third)
    stream = first + second + third
    await _equals_fold(redis, keys, reference_fold(stream), timeout=60)

    async def positions_at_the_end():
        return await _consumed(redis, keys) == len(stream)

    await wait_until(positions_at_the_end, timeout=30, message="the positions at the end of the log")


def _fail_the_next_positions_save(monkeypatch, lose_the_write: bool) -> list[str]:
    """Faults for the next write (Redis acknowledges it and loses it) and positions' save (it fails: not run,
    or run without a reply); the list empties once they fired."""
    faults = ["write", "save"] if lose_the_write else ["save"]
    write, save_positions = Store.write, Store.save_positions

    async def lost_write(self, writes):
        if faults == ["write", "save"]:
            faults.remove("write")
            return []  # acknowledged, all held: then lost in the crash
        return await write(self, writes)

    async def failing_save(self, expected, positions):
        if faults == ["save"]:
            faults.remove("save")
            if not lose_the_write:
                await save_positions(self, expected, positions)
            raise RedisConnectionError("injected: Redis went down")
        return await save_positions(self, expected, positions)

    monkeypatch.setattr(Store, "write", lost_write)
    monkeypatch.setattr(Store, "save_positions", failing_save)
    return faults


@pytest.mark.single_redis  # about Kafka: once is enough
async def test_a_projector_stops_on_sigterm_when_its_broker_is_gone(settings, redis, keys):
    # Kafka commits are for monitoring: a last commit (or a consumer leaving its group) must not hold up a
    # stop when no broker answers (aiokafka retries a commit with no coordinator without end).
    broker = LocalBroker().start()
    try:
        own = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        stream = _stream(own, customers=50)
        process = _spawn(own)
        await produce(own, stream)
        await _equals_fold(redis, keys, reference_fold(stream))
    finally:
        broker.stop()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 60) == 0


@pytest.mark.parametrize("how", ["restart without persistence", "flushall"])
async def test_redis_back_empty_is_refilled_from_the_log(how, settings, redis, keys, local_redis, start_projector):
    if os.environ.get("REDIS_URL") and how != "flushall":
        pytest.skip("needs a Redis server of the test's own to restart")
    stream = _stream(settings, customers=1_000)
    expected = reference_fold(stream)
    await start_projector()
    await produce(settings, stream)
    await _equals_fold(redis, keys, expected)
    replays_before = _replays()
    if how == "flushall":
        await redis.flushall()
    else:
        local_redis.appendonly = False
        local_redis.kill()
        for leftover in os.listdir(local_redis.directory):  # an empty replacement server
            subprocess.run(["rm", "-rf", os.path.join(local_redis.directory, leftover)], check=True)
        local_redis.start()
    await _equals_fold(redis, keys, expected)
    assert _replays() >= replays_before + 2 * 6, "every partition replayed from the start"


async def test_a_projector_restarted_on_lagging_list_offsets_answers_resumes(
    settings, redis, keys, start_projector, lagging_list_offsets
):
    # The read-model's positions lie past the end ListOffsets names (the local broker's names its last
    # batch's base offset; made so here on any broker): a fetch finds the log holds them, nothing was lost.
    lying = settings.model_copy(update={"kafka_end_offsets": "list-offsets"})
    stream = _stream(settings, customers=1_000)
    first, second = stream[: len(stream) // 2], stream[len(stream) // 2 :]
    stop, task = await start_projector(lying)
    await produce(settings, first)
    await _equals_fold(redis, keys, reference_fold(first))
    stop.set()
    await task
    await start_projector(lying)
    await produce(settings, second)
    await _equals_fold(redis, keys, reference_fold(stream))


@pytest.mark.single_redis  # 39 s, mostly the broker deleting and creating topics; on a cluster the other crash
# tests read and save the same positions
async def test_a_recreated_topic_stops_the_projector_saying_the_position_is_past_the_end(
    settings, topics, redis, keys, start_projector
):
    from consumers.projector import LogTruncated, run_projector

    stream = generate(Load(customers=20, events_per_customer=5, customers_topic=topics[0], points_topic=topics[1]))
    stop, task = await start_projector()
    await produce(settings, stream)
    await _equals_fold(redis, keys, reference_fold(stream))
    stop.set()
    await task
    await _recreate(settings, topics)
    with pytest.raises(LogTruncated, match="the position is past the end of the log: the topic was recreated") as e:
        await asyncio.wait_for(run_projector(settings, asyncio.Event()), timeout=60)
    assert "run `pointsview rebuild`" in str(e.value)


async def _recreate(settings, topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(topics)
        missing = set(topics)

        async def created():  # the broker may not have finished deleting them
            response = await admin.create_topics([NewTopic(t, settings.topic_partitions, 1) for t in missing])
            missing.difference_update(topic for topic, code, *_ in response.topic_errors if not code)
            return not missing

        await wait_until(created, timeout=30, interval=0.5, message="the topics created again")
    finally:
        await admin.close()


async def test_two_member_processes_under_one_command_fold_the_log_and_stop_together(settings, redis, keys, topics):
    stream = _stream(settings, customers=2_000)
    await produce(settings, stream)
    command = _spawn(settings, "--processes", "2")
    try:
        await _equals_fold(redis, keys, reference_fold(stream))
        children = psutil.Process(command.pid).children()  # the members, not multiprocessing's resource tracker
        members = [p for p in children if "spawn_main" in " ".join(p.cmdline())]
        assert len(members) >= 2, members
    finally:
        command.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(command.wait, 60) == 0
    assert not [p for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


async def test_two_members_sharing_customers_with_the_whole_log_written_behind_still_fold_it(settings, redis, keys):
    # Topics of 5 and 6 partitions: most customers' two partitions belong to different members, and the
    # default write-behind span holds the whole stream, so their first writes conflict: the loser reads
    # everything again, writing every batch on its own until its writes hold.
    await _topics_of_5_and_6_partitions(settings)
    stream = _stream(settings)
    await produce(settings, stream)
    members = [_spawn(settings, POINTSVIEW_WRITE_BEHIND_RECORDS="100000") for _ in range(2)]
    try:
        await _equals_fold(redis, keys, reference_fold(stream))
    finally:
        for member in members:
            member.terminate()
        assert [member.wait(timeout=30) for member in members] == [0, 0]


async def test_members_joining_and_leaving_while_events_flow_fold_the_log_of_12_partitions(settings, redis, keys):
    # Three members over topics of 12 partitions while the stream is being produced; one leaves cleanly
    # (SIGTERM), one is killed (SIGKILL), two new ones join: every rebalance hands partitions over mid-stream.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await ensure_topics(admin, [*settings.topic_list, settings.deadletter_topic], 12, 1)
    finally:
        await admin.close()
    stream = _stream(settings, customers=3_000)
    expected = reference_fold(stream)
    members = [_spawn(settings) for _ in range(3)]
    chunks = [stream[i : i + 1_000] for i in range(0, len(stream), 1_000)]

    async def produce_slowly() -> None:
        for chunk in chunks:
            await produce(settings, chunk)
            await asyncio.sleep(0.3)

    producing = asyncio.create_task(produce_slowly())
    try:
        for fraction, change in ((0.2, signal.SIGTERM), (0.45, signal.SIGKILL), (0.7, None)):

            async def progressed(fraction=fraction):
                return await _consumed(redis, keys) >= fraction * len(stream)

            await wait_until(progressed, timeout=120, interval=0.05, message=f"{fraction:.0%} consumed")
            if change is not None:
                leaving = members.pop(0)
                leaving.send_signal(change)
                assert leaving.wait(timeout=30) == (0 if change == signal.SIGTERM else -signal.SIGKILL)
            members.append(_spawn(settings))
        await producing
        await _equals_fold(redis, keys, expected, timeout=180)
    finally:
        producing.cancel()
        for process in members:
            process.terminate()
        for process in members:
            assert process.wait(timeout=30) == 0
