"""Process settings from the environment (CONFIG.md; every variable is listed in the README)."""

import ssl
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections.ledger import LEDGER_ENTRIES

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POINTSVIEW_", extra="ignore")

    kafka_bootstrap_servers: str = Field("localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # redis://[user:password@]host:port/db, or rediss:// (TLS); kept out of repr: it may hold a password
    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL", repr=False)
    redis_ssl_ca_file: str | None = None  # the CA that signed the Redis server's certificate (rediss://)
    redis_cluster: bool = Field(False, validation_alias="REDIS_CLUSTER")  # REDIS_URL names any node of a cluster
    loyalty_config: str = Field("config/loyalty.yaml", validation_alias="LOYALTY_CONFIG")
    kafka_security_protocol: KafkaProtocol = Field("PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: SaslMechanism = Field("PLAIN", validation_alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")

    topics: str = "loyalty.customers.v1,loyalty.points.v1"
    deadletter_topic: str = "loyalty.deadletter.v1"
    topic_partitions: int = Field(6, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    group_id: str = "pointsview-projector"
    key_prefix: str = Field("pv", pattern=r"^[A-Za-z0-9_.-]+$")

    batch_max_records: int = Field(5000, ge=1)
    batch_timeout_ms: int = Field(200, ge=1)
    fetch_max_wait_ms: int = Field(500, ge=0)  # how long the broker may hold a fetch while it has no records
    dedup_window_seconds: int = Field(7 * 24 * 3600, ge=1)
    cache_customers: int = Field(100_000, ge=0)  # customers the projector holds decoded (about 6 KB each)
    # While catching up (full batches), records folded in memory before their customers are written: a
    # customer with several events in that span is written once. At the head of the log every batch is
    # written at once. 0: every batch.
    write_behind_records: int = Field(100_000, ge=0)
    session_timeout_ms: int = Field(10000, ge=1000)
    heartbeat_interval_ms: int = Field(3000, ge=100)
    startup_timeout_seconds: float = Field(30.0, gt=0)
    progress_interval_seconds: float = Field(1.0, gt=0)
    # A projector whose lag stays above 0 while it reads, applies and saves nothing for this long logs a
    # warning saying what each of its tasks waits on (pointsview_projector_stalled_total counts them).
    stall_seconds: float = Field(60.0, gt=0)
    metrics_port: int = Field(0, ge=0, le=65535)  # projector's /metrics; 0 = off
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so Prometheus can scrape it
    log_level: str = Field("INFO", pattern="(?i)^(CRITICAL|ERROR|WARNING|INFO|DEBUG)$")
    log_format: str = Field("auto", pattern="^(auto|json|console)$")  # auto: console on a TTY, else JSON

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1)
    # A request must arrive whole within this many seconds of its first byte (or of its connection): else 408.
    api_request_timeout_seconds: float = Field(10.0, gt=0)
    api_access_log: bool = False  # a line per request (secrets in its query masked, as in every log line)
    redis_max_connections: int = Field(64, ge=1)  # per API worker
    redis_timeout_seconds: float = Field(5.0, gt=0)  # connecting, and waiting for a reply: every Redis client
    # Replicas that must hold a projector's or rebuild's writes before its positions move past them (Redis
    # WAIT on every master written): with a replica per master, a failover then loses no applied event.
    # Fewer replicas acknowledging within the timeout: the write is tried again, as when Redis is down.
    redis_wait_replicas: int = Field(0, ge=0)
    redis_wait_timeout_ms: int = Field(1000, ge=1)
    # How a partition's end offset is read: the client's ListOffsets request (Kafka), or the high watermark
    # of a throwaway fetch, for brokers whose ListOffsets answer is wrong (the local Tansu broker).
    kafka_end_offsets: str = Field("list-offsets", pattern="^(list-offsets|fetch)$")
    # OAuth tokens (service.tokens): HS256 with the secret, or RS256 with the PEM private key in the file
    # (which wins when both are set). Neither: the API refuses to start if any org lists oauthClients.
    jwt_secret: SecretStr | None = None
    jwt_private_key_file: str | None = None
    # Points ledger entries kept per customer (API.md "Points ledger"); 0 turns the ledger off (its endpoints
    # answer 404). A change applies to events applied from then on; a rebuild applies it to the whole history.
    ledger_entries: int = Field(LEDGER_ENTRIES, ge=0, le=1000)
    # Signs the ledger's page cursors (the same in every API process); unset: derived from the JWT secret
    # or key, else from the key prefix (see service.cursors)
    ledger_cursor_secret: SecretStr | None = None

    @field_validator("jwt_secret", "jwt_private_key_file", "ledger_cursor_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if value == "" else value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (RFC 7518 3.2: an HS256 key as long as its hash)")
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_ssl_cafile", "redis_ssl_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value:
            try:
                ssl.create_default_context(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load CA certificates from {value}: {exc.strerror or exc}") from None
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("expected redis://[user:password@]host[:port][/db] or rediss://... (TLS)")
        return value

    @model_validator(mode="after")
    def _transport_security(self) -> "Settings":
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_"):
            for name, value in (
                ("KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
            ):
                if not value:
                    raise ValueError(f"{name} is required with KAFKA_SECURITY_PROTOCOL={protocol}")
        elif self.kafka_sasl_username or self.kafka_sasl_password:
            raise ValueError(
                "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD need KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT, "
                f"not {protocol}"
            )
        if self.kafka_ssl_cafile and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(f"KAFKA_SSL_CAFILE needs KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}")
        if self.redis_ssl_ca_file and not self.redis_tls:
            raise ValueError("POINTSVIEW_REDIS_SSL_CA_FILE needs a rediss:// REDIS_URL (TLS)")
        return self

    @property
    def redis_tls(self) -> bool:
        return urlsplit(self.redis_url).scheme == "rediss"

    @field_validator("topics")
    @classmethod
    def _topic_list(cls, value: str) -> str:
        names = [t.strip() for t in value.split(",") if t.strip()]
        if not names:
            raise ValueError("at least one topic name is required")
        return ",".join(names)

    @property
    def topic_list(self) -> list[str]:
        return self.topics.split(",")
