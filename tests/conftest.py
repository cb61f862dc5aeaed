"""Fixtures over real servers: KAFKA_BOOTSTRAP_SERVERS / REDIS_URL when set, else local binaries
(devtools.localstack), or testcontainers when a Docker engine answers and POINTSVIEW_TESTCONTAINERS=1."""

import asyncio
import json
import logging
import os

import pytest
from aiokafka import AIOKafkaConsumer
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from consumers.projector import run_projector
from consumers.topics import create_topics
from devtools.localstack import LocalBroker, LocalRedis, LocalRedisCluster
from projections.keys import Keys
from projections.store import Store
from runtime import bootstrap
from runtime.logs import configure
from runtime.settings import Settings
from tests.support import ON_CLUSTER, isolated_settings, redis_client, unwatch, watch

USE_CONTAINERS = os.environ.get("POINTSVIEW_TESTCONTAINERS") == "1"


@pytest.fixture(scope="session")
def kafka_servers() -> dict[str, str]:
    """The settings that reach the broker (the local broker's need its own end-offset reading, unless
    POINTSVIEW_KAFKA_END_OFFSETS says otherwise: `list-offsets` runs the suite on its lagging answers)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield {"KAFKA_BOOTSTRAP_SERVERS": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}
    elif USE_CONTAINERS:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield {"KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server()}
    else:
        broker = LocalBroker().start()
        own = {} if os.environ.get("POINTSVIEW_KAFKA_END_OFFSETS") else LocalBroker.SETTINGS
        yield {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, **own}
        broker.stop()


@pytest.fixture
def lagging_list_offsets(monkeypatch):
    """ListOffsets answers 3 short of each partition's end (the local broker's name its last batch's base
    offset), and 2 past its start: on any broker, what is known to lag the log."""
    end_offsets, beginning_offsets = AIOKafkaConsumer.end_offsets, AIOKafkaConsumer.beginning_offsets

    async def lagging(self, partitions):
        return {tp: max(0, end - 3) for tp, end in (await end_offsets(self, partitions)).items()}

    async def late(self, partitions):
        return {tp: start + 2 for tp, start in (await beginning_offsets(self, partitions)).items()}

    monkeypatch.setattr(AIOKafkaConsumer, "end_offsets", lagging)
    monkeypatch.setattr(AIOKafkaConsumer, "beginning_offsets", late)


@pytest.fixture
def json_logs(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure("INFO", "json")
    capsys.readouterr()

    def lines() -> list[dict]:
        """The JSON lines logged since the last call."""
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    yield lines
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def local_redis():
    """A Redis server of this test's own (restartable, with AOF)."""
    server = LocalRedis(appendonly=True).start()
    yield server
    server.cleanup()


def pytest_collection_modifyitems(config, items):
    """On a cluster, tests that stop or restart a server of their own (`local_redis`) or test the
    single-server client do not apply: the cluster's faults have tests of their own."""
    if ON_CLUSTER:
        skip = pytest.mark.skip(reason="single Redis server only (POINTSVIEW_TEST_REDIS=cluster)")
        for item in items:
            if "local_redis" in getattr(item, "fixturenames", ()) or item.get_closest_marker("single_redis"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def redis_cluster():
    """A three-master Redis Cluster shared by the session (tests keep apart by key prefix)."""
    cluster = LocalRedisCluster(masters=3).start()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def redis_url(request):
    """REDIS_URL when set; else the session's cluster (POINTSVIEW_TEST_REDIS=cluster) or a Redis of the
    test's own."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    return request.getfixturevalue("redis_cluster" if ON_CLUSTER else "local_redis").url


@pytest.fixture
def settings(kafka_servers, redis_url) -> Settings:
    """Unique topics, group and key prefix: tests never see each other's data."""
    return isolated_settings(kafka_servers, redis_url)


@pytest.fixture
async def topics(settings):
    """Creates the test's topics with the configured partition count (the broker would auto-create 4)."""
    await create_topics(settings)
    return settings.topic_list


@pytest.fixture
async def redis(redis_url):
    client = redis_client(redis_url, retry=Retry(ExponentialBackoff(cap=1), 5), retry_on_error=[RedisConnectionError])
    yield client
    await client.aclose()


@pytest.fixture
def keys(settings) -> Keys:
    return Keys(settings.key_prefix)


@pytest.fixture
async def projector_redis(settings):
    """The projector's and the rebuild's Redis client (on a cluster, the slot-routing one)."""
    client = bootstrap.pipelined_redis_client(settings)
    yield client
    await client.aclose()


@pytest.fixture
def store(settings, projector_redis) -> Store:
    return bootstrap.store(settings, projector_redis)


@pytest.fixture
async def start_projector(settings, topics):
    """Runs the projector in-process; stopped (batch finished) at the end of the test. One that dies under
    the test fails the test's next wait_until with its own exception (and its teardown, if none came)."""
    running = []

    async def start(custom: Settings | None = None):
        stop = asyncio.Event()
        task = asyncio.create_task(run_projector(custom or settings, stop))
        running.append((stop, task))
        watch(task, stop)
        return stop, task

    yield start
    crashed = [  # not raised by a wait_until already
        t
        for stop, t in running
        if unwatch(t) and t.done() and not stop.is_set() and not t.cancelled() and t.exception()
    ]
    for stop, _task in running:
        stop.set()
    await asyncio.gather(*(t for _, t in running), return_exceptions=True)
    if crashed:  # a projector that died under the test: its reason, not only the test's symptom
        raise crashed[0].exception()
