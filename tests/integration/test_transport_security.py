"""Redis over TLS as an ACL user (the default user off), on a single server and on a cluster: the projector
writes and the API reads through the multiplexed clients; reconnections authenticate again; a wrong
password or a certificate of another CA fails at once, naming the cause and never the password."""

import asyncio
from dataclasses import dataclass

import bcrypt
import pytest
import trustme
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from consumers.projector import StartupError, run_projector
from consumers.topics import create_topics
from devtools.localstack import HOST, LocalRedis, LocalRedisCluster, TlsFiles
from devtools.produce import produce
from runtime import bootstrap
from runtime.redis_cluster import ClusterRouter
from runtime.redis_mux import Multiplexer
from runtime.settings import Settings
from tests.e2e.helpers import (
    A_BCRYPT,
    A_DEFAULT,
    CLIENTS,
    assert_balance,
    balance,
    earned,
    loyalty_config,
    new_customer_id,
    new_mobile,
    new_org_id,
    profile,
    running_app,
)
from tests.support import isolated_settings, record, unique, wait_until

pytestmark = pytest.mark.single_redis  # its own TLS server and cluster, in the single-Redis pass

USER = "pointsview-app"
PASSWORD = "tls-test-" + unique("secret")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> TlsFiles:
    """A CA of the test's own and a server certificate it signed for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert(HOST)
    files = TlsFiles(
        cert=str(directory / "server.pem"), key=str(directory / "server.key"), ca=str(directory / "ca.pem")
    )
    server.cert_chain_pems[0].write_to_path(files.cert)
    server.private_key_pem.write_to_path(files.key)
    ca.cert_pem.write_to_path(files.ca)
    return files


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("stranger") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@dataclass
class Secure:
    url: str
    cluster: bool
    nodes: list[LocalRedis]
    ca: str


@pytest.fixture(scope="module", params=["server", "cluster"])
def secure(request, certificates):
    """TLS only, the default user off, one ACL user; a single server or a three-master cluster."""
    if request.param == "server":
        server = LocalRedis(tls=certificates, user=(USER, PASSWORD)).start()
        yield Secure(server.url, False, [server], certificates.ca)
        server.cleanup()
    else:
        cluster = LocalRedisCluster(masters=3, tls=certificates, user=(USER, PASSWORD)).start()
        yield Secure(cluster.url, True, cluster.nodes, certificates.ca)
        cluster.cleanup()


def secure_settings(secure: Secure, kafka_servers=None, **overrides) -> Settings:
    assert secure.url.startswith(f"rediss://{USER}:{PASSWORD}@")
    return isolated_settings(
        kafka_servers or {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},  # unused: Redis is checked first
        secure.url,
        "tls",
        **{"REDIS_CLUSTER": secure.cluster, "redis_ssl_ca_file": secure.ca, **overrides},
    )


def multiplexers(client) -> list[Multiplexer]:
    mux = client._multiplexer()
    return list(mux.nodes.values()) if isinstance(mux, ClusterRouter) else [mux]


@pytest.fixture(scope="module")
def password_hashes() -> dict[str, str]:
    return {c.username: bcrypt.hashpw(c.password.encode(), bcrypt.gensalt(rounds=4)).decode() for c in CLIENTS}


async def test_the_projector_writes_and_the_api_reads_over_tls_as_an_acl_user(
    secure, kafka_servers, password_hashes, json_logs
):
    settings = secure_settings(secure, kafka_servers)
    org, customer = new_org_id(), new_customer_id()
    customers_topic, points_topic = settings.topic_list
    await create_topics(settings)
    await produce(
        settings,
        [
            record(customers_topic, profile(org, customer, {"mobile": new_mobile()})),
            record(points_topic, earned(org, customer, A_DEFAULT, "12.5")),
        ],
    )
    stop = asyncio.Event()
    projector = asyncio.create_task(run_projector(settings, stop))
    try:
        async with running_app(settings, loyalty_config(org, new_org_id(), password_hashes)) as (app, client):

            async def read():
                response = await client.get(f"/v2/customers/{customer}/points/balance", headers=A_BCRYPT.headers)
                assert not projector.done(), projector.exception()
                return response if response.status_code == 200 else None

            assert_balance(
                await wait_until(read, message="the customer readable through the API"), balance(customer, "12.5")
            )
            links = multiplexers(app.state.read_model.store.redis)
    finally:
        stop.set()
        await asyncio.gather(projector, return_exceptions=True)
    assert links and all(m.tls is not None and m.username == USER for m in links)  # multiplexed, not redis-py's
    logged = json_logs()
    started = [line for line in logged if line["event"] == "projector consuming"]
    assert started and started[0]["redis"].startswith("rediss://") and "***@" in started[0]["redis"]
    assert not [line for line in logged if PASSWORD in str(line)]


async def test_reconnections_authenticate_again(secure):
    settings = secure_settings(secure)
    client = bootstrap.pipelined_redis_client(settings)
    key = unique("tls-reconnect")
    try:
        await client.set(key, "before")
        first = [m._link for m in multiplexers(client)]
        for node in secure.nodes:
            with node.client() as admin:
                admin.client_kill_filter(user=USER, skipme=True)

        async def written_again():
            try:
                return await client.set(key, "after")
            except RedisConnectionError:
                return False  # the first command may meet the killed connection

        await wait_until(written_again, message="a write after the server dropped the connections")
        assert await client.get(key) == b"after"
        assert not any(m._link in first for m in multiplexers(client) if m.connected)
    finally:
        await client.aclose()


async def test_pubsub_and_the_operations_client_use_the_same_tls_and_user(secure):
    settings = secure_settings(secure)
    client, operations = bootstrap.pipelined_redis_client(settings), bootstrap.redis_client(settings)
    channel, key = unique("tls-channel"), unique("tls-key")
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        await client.set(key, "seen")
        assert await operations.get(key) == b"seen"

        async def delivered():
            await client.publish(channel, "hello")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            return message and message["data"] == b"hello"

        await wait_until(delivered, message="a message published over TLS")
    finally:
        await pubsub.aclose()
        await client.aclose()
        await operations.aclose()


async def test_a_wrong_password_is_refused_at_once_and_never_shown(secure):
    settings = secure_settings(secure, redis_timeout_seconds=30)  # a hang would be a TimeoutError, not this
    wrong = settings.model_copy(update={"redis_url": secure.url.replace(PASSWORD, "not-the-password")})
    for client in (bootstrap.pipelined_redis_client(wrong), bootstrap.redis_client(wrong)):
        try:
            with pytest.raises((AuthenticationError, RedisClusterException)) as raised:
                await client.ping()
            assert "invalid username-password pair" in str(raised.value)
            assert "not-the-password" not in str(raised.value)
        finally:
            await client.aclose()


async def test_a_server_certificate_of_another_ca_is_refused(secure, stranger_ca):
    settings = secure_settings(secure, redis_timeout_seconds=30, redis_ssl_ca_file=stranger_ca)
    for client in (bootstrap.pipelined_redis_client(settings), bootstrap.redis_client(settings)):
        try:
            with pytest.raises((RedisError, RedisClusterException)) as raised:
                await client.ping()
            assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
        finally:
            await client.aclose()


async def test_the_projector_stops_at_start_on_refused_credentials_with_the_password_masked(secure):
    settings = secure_settings(secure, startup_timeout_seconds=30)
    wrong = settings.model_copy(update={"redis_url": secure.url.replace(PASSWORD, "not-the-password")})
    with pytest.raises(StartupError) as raised:
        await run_projector(wrong, asyncio.Event())
    message = str(raised.value)
    assert "refused the credentials" in message and f"rediss://{USER}:***@" in message
    assert "not-the-password" not in message
