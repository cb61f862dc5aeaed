"""End-to-end fixtures: real broker, real Redis, the projector in-process, the API in-process.

One projector (with its own topics, consumer group, key prefix and Redis) serves the whole
session, because joining a consumer group costs seconds; every test builds its own app over
it with a LoyaltyConfig of two orgs whose ids are new for that test, so no test sees another
test's customers. The Redis-outage test builds its own stack from tests/conftest.py's
function-scoped fixtures (it stops and restarts its Redis).
"""

import asyncio
import os

import bcrypt
import pytest
from argon2 import PasswordHasher

from consumers.projector import run_projector
from consumers.topics import create_topics
from devtools.localstack import LocalRedis
from projections.keys import Keys
from tests.e2e.helpers import A_ARGON2, CLIENTS, Api, Stack, loyalty_config, new_org_id, running_app
from tests.support import ON_CLUSTER, isolated_settings, redis_client, unwatch, watch


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    """One argon2 client, the others bcrypt (cheap rounds)."""
    return {
        client.username: PasswordHasher().hash(client.password)
        if client is A_ARGON2
        else bcrypt.hashpw(client.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        for client in CLIENTS
    }


@pytest.fixture(scope="session")
def e2e_redis_url(request):
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if ON_CLUSTER:
        yield request.getfixturevalue("redis_cluster").url
        return
    server = LocalRedis().start()
    yield server.url
    server.cleanup()


@pytest.fixture(scope="session")
async def stack(kafka_servers, e2e_redis_url):
    """Topics with one partition each (so "log order" is one order), a consumer group and a projector."""
    settings = isolated_settings(
        kafka_servers,
        e2e_redis_url,
        "e2e",
        topic_partitions=1,
        session_timeout_ms=10000,
        batch_timeout_ms=20,
        startup_timeout_seconds=15,
    )
    await create_topics(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_projector(settings, stop))
    watch(task, stop)  # a projector that dies fails the next wait_until with its exception
    redis = redis_client(settings.redis_url)
    try:
        yield Stack(settings, redis, Keys(settings.key_prefix))
    finally:
        died = unwatch(task) and task.done() and not task.cancelled() and task.exception()
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()
    if died:  # not raised by a wait_until already
        raise died


@pytest.fixture
async def api(stack, password_hashes):
    org_a, org_b = new_org_id(), new_org_id()
    config = loyalty_config(org_a, org_b, password_hashes)
    async with running_app(stack.settings, config) as (app, client):
        yield Api(client, stack, org_a, org_b, config, app)
