"""Transport security from settings: what every Kafka client and every Redis client is built with, and
URLs with their password masked for logs and messages."""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiokafka.helpers import create_ssl_context

from runtime.settings import Settings


def kafka_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient gets:
    the brokers, TLS (KAFKA_SSL_CAFILE, else the system's CAs) and SASL credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers, "security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL_") and settings.kafka_sasl_password is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def redis_options(settings: Settings) -> dict[str, Any]:
    """What redis-py's from_url needs beyond REDIS_URL (its user and password travel in the URL): the CA
    of a rediss:// server, when it is not one of the system's."""
    if settings.redis_tls and settings.redis_ssl_ca_file:
        return {"ssl_ca_certs": settings.redis_ssl_ca_file}
    return {}


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***" if parts.username else ":***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
