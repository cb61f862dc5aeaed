"""Transport security settings: refused at start when inconsistent (naming the setting, never echoing a
secret), and passed to every Kafka client the project builds."""

import ast
import ssl
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from cli.common import settings_error
from runtime.settings import Settings
from runtime.transport import kafka_options, masked_url, redis_options

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pa55-do-not-print"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def _refusal(**environment) -> str:
    with pytest.raises(ValidationError) as raised:
        Settings(**environment)
    message = settings_error(raised.value)
    assert SECRET not in message
    return message


@pytest.mark.parametrize(
    "environment, named",
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "invalid setting KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "setting KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": SECRET}, "KAFKA_SASL_USERNAME is required"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD is required"),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": SECRET}, "need KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/no/such/ca.pem"}, "setting KAFKA_SSL_CAFILE"),
        ({"REDIS_URL": f"http://user:{SECRET}@host:6379"}, "invalid setting REDIS_URL"),
        ({"REDIS_URL": f"redis://user:{SECRET}@host", "redis_ssl_ca_file": "/no/ca.pem"}, "REDIS_SSL_CA_FILE"),
    ],
)
def test_inconsistent_transport_settings_are_refused_naming_the_setting(environment, named):
    assert named in _refusal(**environment)


def test_a_redis_ca_file_without_tls_is_refused(ca_file):
    message = _refusal(REDIS_URL=f"redis://app:{SECRET}@host:6379/0", redis_ssl_ca_file=ca_file)
    assert "POINTSVIEW_REDIS_SSL_CA_FILE needs a rediss:// REDIS_URL" in message


def test_a_file_that_holds_no_certificate_is_refused(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    assert "invalid setting KAFKA_SSL_CAFILE: " in _refusal(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(junk))


def test_secrets_never_print():
    settings = Settings(
        REDIS_URL=f"rediss://app:{SECRET}@redis.example:6380/0",
        KAFKA_SECURITY_PROTOCOL="sasl_ssl",
        KAFKA_SASL_MECHANISM="scram-sha-512",
        KAFKA_SASL_USERNAME="pointsview",
        KAFKA_SASL_PASSWORD=SECRET,
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert masked_url(settings.redis_url) == "rediss://app:***@redis.example:6380/0"


@pytest.mark.parametrize(
    "url, masked",
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
        ("rediss://user:p%40ss@host/2", "rediss://user:***@host/2"),
        ("redis://user@host", "redis://user@host"),
    ],
)
def test_masked_urls_keep_all_but_the_password(url, masked):
    assert masked_url(url) == masked


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
async def test_every_kind_of_kafka_client_accepts_the_options_of_each_protocol(protocol, ca_file):
    sasl = {"KAFKA_SASL_USERNAME": "pointsview", "KAFKA_SASL_PASSWORD": SECRET} if "SASL" in protocol else {}
    tls = {"KAFKA_SSL_CAFILE": ca_file} if protocol.endswith("SSL") else {}
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS="broker:9093",
        KAFKA_SECURITY_PROTOCOL=protocol,
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        **sasl,
        **tls,
    )
    options = kafka_options(settings)
    assert options["bootstrap_servers"] == "broker:9093" and options["security_protocol"] == protocol
    assert isinstance(options.get("ssl_context"), ssl.SSLContext) == protocol.endswith("SSL")
    if sasl:
        assert options["sasl_mechanism"] == "SCRAM-SHA-256"
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("pointsview", SECRET)
    else:
        assert "sasl_mechanism" not in options
    consumer, producer, admin = AIOKafkaConsumer(**options), AIOKafkaProducer(**options), AIOKafkaAdminClient(**options)
    try:
        for connections in (consumer._client, producer.client, admin._client):  # what each connects with
            assert connections._security_protocol == protocol
            assert connections._ssl_context is options.get("ssl_context")
            assert connections._sasl_plain_password == options.get("sasl_plain_password")
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()


def test_the_system_cas_verify_tls_without_a_ca_file():
    options = kafka_options(Settings(KAFKA_SECURITY_PROTOCOL="SSL"))
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    assert redis_options(Settings(REDIS_URL="rediss://host:6380")) == {}


def _kafka_clients_built(path: Path) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None))
        in ("AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient")
    ]


def _given_kafka_options(call: ast.Call) -> bool:
    return any(
        keyword.arg is None
        and isinstance(keyword.value, ast.Call)
        and getattr(keyword.value.func, "id", None) == "kafka_options"
        for keyword in call.keywords
    )


def test_every_kafka_client_the_project_builds_gets_the_transport_options():
    sources = [
        p for package in ("runtime", "consumers", "service", "devtools", "cli") for p in (ROOT / package).rglob("*.py")
    ]
    built = [(path, call) for path in sources for call in _kafka_clients_built(path)]
    assert len(built) >= 9  # projector (3), rebuild, offsets' reader, topics (2), dead letters, produce, benches
    missing = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, call in built if not _given_kafka_options(call)]
    assert not missing, f"Kafka clients built without **kafka_options(settings): {missing}"
