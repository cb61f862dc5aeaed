"""The operations commands against a real broker and Redis: produce, status, dead letters."""

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import start_http_server
from typer.testing import CliRunner

from cli.main import app
from cli.rebuild import rebuild
from devtools.bench.common import settings_env
from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.localstack import free_port
from devtools.synthetic import Load, generate
from projections.events import on_customers_topic
from runtime.settings import Settings
from tests.support import event, read_model, record, reference_fold, wait_until

pytestmark = pytest.mark.timeout(120)


def env_of(settings: Settings, **overrides) -> dict[str, str]:
    return {
        **settings_env(settings),
        "POINTSVIEW_LOG_FORMAT": "json",
        "POINTSVIEW_API_PORT": str(free_port()),
        **overrides,
    }


async def pointsview(settings: Settings, *args: str, expect: int = 0, **env: str):
    """Runs a command in-process (in a thread: the commands run their own event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env_of(settings, **env))
    assert result.exit_code == expect, (result.output, result.stderr, result.exception)
    return result


async def as_json(settings: Settings, *args: str, **env: str):
    return json.loads((await pointsview(settings, *args, "--json", **env)).stdout)


async def wait_for_fold(redis, keys, stream):
    expected = reference_fold(stream)

    async def caught_up():
        return await read_model(redis, keys) == expected

    await wait_until(caught_up, message="the read-model to equal the fold of what was produced")


async def test_a_synthetic_load_is_applied_without_dead_letters(settings, redis, keys, topics, start_projector):
    customers, points = topics
    result = await pointsview(
        settings,
        "produce",
        "--customers",
        "40",
        "--events-per-customer",
        "8",
        "--programs",
        "973,983",
        "--seed",
        "11",
        "--rate",
        "2000",
    )
    assert result.stdout.startswith("produced 320 events of 40 customers")
    await start_projector()
    await wait_for_fold(
        redis,
        keys,
        generate(Load(customers=40, events_per_customer=8, seed=11, customers_topic=customers, points_topic=points)),
    )
    assert await as_json(settings, "deadletters", "list") == []


async def test_events_from_a_file_are_applied(settings, redis, keys, topics, start_projector, tmp_path):
    customers, points = topics
    docs = [
        event("customer.registered", {"source": "INSTORE", "accountId": "", "identifiers": []}, customer_id=5),
        event("points.earned", {"programId": 973, "points": "12.5", "category": "MAIN"}, customer_id=5),
        event("points.redeemed", {"programId": 973, "points": 2}, customer_id=5),
        event("tier.changed", {"programId": 973, "slabSerial": 2, "slabName": "Silver"}, customer_id=6),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    await start_projector()
    assert (await pointsview(settings, "produce", "--file", str(events))).stdout.startswith(
        "produced 4 events of 2 customers"
    )
    stream = [record(customers if on_customers_topic(doc["eventType"]) else points, doc) for doc in docs]
    await wait_for_fold(redis, keys, stream)


async def test_status_reports_the_lag_per_partition_until_the_projector_catches_up(settings, topics, start_projector):
    per_partition = 7
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for topic in topics:
            for partition in range(settings.topic_partitions):
                for _n in range(per_partition):
                    doc = event("points.adjusted", {"programId": 973, "points": 1}, customer_id=100 + partition)
                    await producer.send(topic, json.dumps(doc).encode(), key=b"k", partition=partition)
        await producer.flush()
    finally:
        await producer.stop()

    before = await as_json(settings, "status")
    assert len(before["partitions"]) == len(topics) * settings.topic_partitions
    assert {(row["lag"], row["end"], row["redis_position"], row["committed"]) for row in before["partitions"]} == {
        (per_partition, per_partition, None, None)
    }
    assert before["events_applied"] is None and before["api"]["ready"] is False

    server, thread = start_http_server(0, addr="127.0.0.1")
    try:
        await start_projector()

        async def caught_up():
            status = await as_json(settings, "status", POINTSVIEW_METRICS_PORT=str(server.server_port))
            return status["lag"] == 0 and status

        after = await wait_until(caught_up, timeout=60, message="status to report no lag")
    finally:
        server.shutdown()
    assert {(row["lag"], row["redis_position"]) for row in after["partitions"]} == {(0, per_partition)}
    assert after["events_applied"] >= len(topics) * settings.topic_partitions * per_partition
    assert after["events_deadlettered"] is not None
    ledger = after["ledger"]  # each of the 6 customers: 7 events on each topic, each a ledger entry
    assert (ledger["entries_kept"], ledger["customers_sampled"], ledger["entries_per_customer"]) == (20, 6, 14)
    assert 20 < ledger["bytes_per_entry"] < 64


async def test_dead_letters_are_listed_shown_and_redriven(settings, redis, keys, topics, start_projector):
    customers, points = topics
    unknown = event("points.gifted", {"programId": 973, "points": 1}, customer_id=9)
    await produce_records(settings, [(points, b"100737:9", b"{not json"), record(points, unknown)])
    await start_projector()

    async def both_listed():  # at least once: a record may be dead-lettered twice
        letters = await as_json(settings, "deadletters", "list")
        return len({letter["origin"]["offset"] for letter in letters}) == 2 and letters

    letters = await wait_until(both_listed, message="the two rejected records in the dead-letter topic")
    by_payload = {letter["payload"]: letter for letter in letters}
    malformed = by_payload["{not json"]
    assert malformed["origin"]["topic"] == points and malformed["key"] == "100737:9"
    assert "unknown eventType" in by_payload[json.dumps(unknown)]["reason"]

    # A record dead-lettered by a bug since fixed: valid now, so a replay applies it.
    fixed = event("points.earned", {"programId": 973, "points": 42, "category": "MAIN"}, customer_id=9)
    headers = [("dlq.reason", b"a bug"), ("dlq.topic", points.encode()), ("dlq.partition", b"0"), ("dlq.offset", b"0")]
    await produce_records(settings, [(settings.deadletter_topic, b"100737:9", json.dumps(fixed).encode())], headers)
    letters = await as_json(settings, "deadletters", "list")
    ref = next(letter["id"] for letter in letters if letter["reason"] == "a bug")
    shown = await as_json(settings, "deadletters", "show", ref)
    assert json.loads(shown["payload"]) == fixed and shown["headers"]["dlq.topic"] == points
    assert (await pointsview(settings, "deadletters", "show", "99:99", expect=1)).stderr.startswith(
        "pointsview: no dead letter at 99:99"
    )

    redriven = await pointsview(settings, "deadletters", "redrive", ref)
    assert redriven.stdout.startswith(f"redriven {ref} -> {points}[0]@")

    async def applied():
        customer = (await read_model(redis, keys)).get((100737, 9))
        return customer and "973|POINTS" in customer.balances

    await wait_until(applied, message="the redriven event to be applied")
    assert ref in {letter["id"] for letter in await as_json(settings, "deadletters", "list")}  # still listed


async def produce_records(settings: Settings, records, headers=()) -> None:
    """To partition 0, so that offsets are known."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key, headers=list(headers), partition=0)
    finally:
        await producer.stop()


async def test_rebuild_logs_in_the_configured_format_and_an_interrupted_one_exits_1(settings, topics):
    async def rebuild_command(log_format: str) -> str:
        # a process of its own: the command's signal handlers need the main thread
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli", "rebuild", "--no-switch"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env_of(settings, POINTSVIEW_LOG_FORMAT=log_format)},
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    console = await rebuild_command("console")
    assert "rebuilding" in console
    assert not [line for line in console.splitlines() if line.startswith("{")]
    lines = (await rebuild_command("json")).splitlines()
    assert [json.loads(line)["generation"] for line in lines if '"rebuilding"' in line] == [3]
    stop = asyncio.Event()
    stop.set()
    assert await rebuild(settings, True, stop) == 1


async def test_api_processes_sharing_one_port_answer_the_same_data(settings, topics, start_projector, redis, keys):
    # `--workers 2` and a second process with --reuse-port on the same port; one stops, the rest go on.
    await start_projector()
    earned = event("points.earned", {"programId": 973, "points": 12.5, "category": "MAIN"}, customer_id=77)
    await produce_records(settings, [record(settings.topic_list[1], earned)])

    async def applied() -> bool:
        return (100737, 77) in await read_model(redis, keys)

    await wait_until(applied, message="the event applied")
    port = free_port()
    env = {**os.environ, **env_of(settings, LOYALTY_CONFIG=str(DEMO_CONFIG), POINTSVIEW_API_PORT=str(port))}
    command = [sys.executable, "-m", "cli", "api", "--reuse-port"]
    servers = [subprocess.Popen([*command, "--workers", "2"], env=env), subprocess.Popen(command, env=env)]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH_HEADERS) as client:

            async def listening() -> bool:
                try:
                    return (await client.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return False

            async def bodies(count: int = 40) -> set[bytes]:
                # a connection each: the kernel spreads new connections over the processes
                answers = []
                for _ in range(count):
                    response = await client.get("/v2/customers/77/points/balance", headers={"Connection": "close"})
                    assert response.status_code == 200, response.text
                    answers.append(response.content)
                return set(answers)

            await wait_until(listening, timeout=30, message="the API processes to listen")
            assert len(first := await bodies()) == 1 and b"12.5" in next(iter(first))
            assert [server.poll() for server in servers] == [None, None]  # both bound the port
            servers[0].terminate()
            assert servers[0].wait(timeout=30) == 0
            assert await bodies() == first
        alone = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=30)
        assert alone.returncode == 1 and "cannot bind" in alone.stderr  # no --reuse-port: the port is taken
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
