"""Process settings from the environment (CONFIG.md). Each field's description is its entry in the docs' settings
reference (docs/reference/settings.md, generated from this class)."""

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

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS", description="Comma-separated Kafka brokers."
    )
    redis_url: str = Field(  # kept out of repr: it may hold a password
        "redis://localhost:6379/0",
        validation_alias="REDIS_URL",
        repr=False,
        description="The read-model store: `redis://[user:password@]host:port/db`; `rediss://` for TLS; with "
        "`REDIS_CLUSTER=1`, any node of a Redis Cluster. `user:password@` logs in as that ACL user "
        "(percent-encode `@ : /` in a password).",
    )
    redis_ssl_ca_file: str | None = Field(
        None,
        description="PEM file of the CA that signed the Redis certificates (with `rediss://`); unset: the "
        "system's CAs.",
    )
    redis_cluster: bool = Field(
        False,
        validation_alias="REDIS_CLUSTER",
        description="`1`: `REDIS_URL` names a node of a Redis Cluster, and every process runs on the cluster.",
    )
    loyalty_config: str = Field(
        "config/loyalty.yaml",
        validation_alias="LOYALTY_CONFIG",
        description="The loyalty configuration file: orgs, programs, tiers, API clients (CONFIG.md; read by the "
        "API at start).",
    )
    kafka_security_protocol: KafkaProtocol = Field(
        "PLAINTEXT",
        validation_alias="KAFKA_SECURITY_PROTOCOL",
        description="How every Kafka client connects: `SSL` and `SASL_SSL` verify the brokers' certificates "
        "(hostname included); `SASL_*` log in with `KAFKA_SASL_MECHANISM`.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", validation_alias="KAFKA_SASL_MECHANISM", description="The SASL mechanism (with `SASL_*`)."
    )
    kafka_sasl_username: str | None = Field(
        None,
        validation_alias="KAFKA_SASL_USERNAME",
        description="The SASL user: required with `SASL_*`, refused without.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        validation_alias="KAFKA_SASL_PASSWORD",
        description="The SASL user's password: required with `SASL_*`, refused without; never logged.",
    )
    kafka_ssl_cafile: str | None = Field(
        None,
        validation_alias="KAFKA_SSL_CAFILE",
        description="PEM file of the CA that signed the brokers' certificates (with `SSL`, `SASL_SSL`); unset: "
        "the system's CAs.",
    )

    topics: str = Field(
        "loyalty.customers.v1,loyalty.points.v1",
        description="The topics to consume, comma-separated: any names, any partition counts. `pointsview "
        "produce` sends `customer.*` and `card.*` events to the first, the others to the last.",
    )
    deadletter_topic: str = Field("loyalty.deadletter.v1", description="Where records that cannot be applied go.")
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of the topics the projector (or `pointsview topics`) creates when missing."
    )
    topic_replication_factor: int = Field(1, ge=1, description="Replication factor of the topics it creates.")
    group_id: str = Field("pointsview-projector", description="The projector's Kafka consumer group.")
    key_prefix: str = Field("pv", pattern=r"^[A-Za-z0-9_.-]+$", description="The prefix of every Redis key.")

    batch_max_records: int = Field(5000, ge=1, description="Records per `getmany` batch.")
    batch_timeout_ms: int = Field(200, ge=1, description="How long a batch waits for records.")
    fetch_max_wait_ms: int = Field(
        500,
        ge=0,
        description="How long the broker may hold a fetch while it has no new records. Kafka answers as soon as "
        "records arrive; a broker that waits out the full time (the local Tansu broker) adds up to this much to "
        "every event's delay: the freshness benchmark sets 10.",
    )
    dedup_window_seconds: int = Field(
        7 * 24 * 3600, ge=1, description="How long an eventId is remembered per customer (7 days)."
    )
    cache_customers: int = Field(
        100_000,
        ge=0,
        description="Customers the projector holds decoded between batches: a customer seen again is folded onto "
        "without a Redis read or decoding (every write is still a compare-and-set in Redis). About 6 KB of the "
        "projector's memory each, so about 600 MB at the default.",
    )
    write_behind_records: int = Field(
        100_000,
        ge=0,
        description="While catching up (full batches), records folded in memory before their customers are "
        "written, so that a customer with several events in that span is written once; at the head of the log "
        "every batch is written at once. `0`: every batch. A rebuild folds up to 2,000,000 (and half the "
        "cache's customers).",
    )
    session_timeout_ms: int = Field(10000, ge=1000, description="The consumer group's session timeout.")
    heartbeat_interval_ms: int = Field(3000, ge=100, description="The consumer's heartbeat interval.")
    startup_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Give up (one line, exit 1) when Kafka or Redis stays unreachable this long at start.",
    )
    progress_interval_seconds: float = Field(
        1.0, gt=0, description="Interval of the projector's `progress` log line (quiet while idle)."
    )
    stall_seconds: float = Field(
        60.0,
        gt=0,
        description="A projector whose lag stays above 0 while it reads, applies and saves nothing for this long "
        "logs `projector stalled` with what each of its tasks waits on, and counts it in "
        "`pointsview_projector_stalled_total`.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="The projector's Prometheus `/metrics` port (`0`: off); with `--processes N`, member k "
        "serves on this port + k.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="The address the projector's metrics server binds (`0.0.0.0` in a container, so that "
        "Prometheus can scrape it).",
    )
    log_level: str = Field(
        "INFO", pattern="(?i)^(CRITICAL|ERROR|WARNING|INFO|DEBUG)$", description="Log level (stderr)."
    )
    log_format: str = Field(
        "auto",
        pattern="^(auto|json|console)$",
        description="`json` (one object per line), `console`, or `auto`: console on a terminal, else JSON.",
    )

    api_host: str = Field(
        "127.0.0.1",
        description="The API's bind address (and where `pointsview status` looks for it).",
    )
    api_port: int = Field(8000, ge=1, le=65535, description="The API's port.")
    api_workers: int = Field(1, ge=1, description="API worker processes (they share one listening socket).")
    api_request_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request must arrive whole within this time of its first byte (a new connection: of "
        "opening); else `408` and the connection is closed.",
    )
    api_access_log: bool = Field(
        False,
        description="A log line per request (method, path and query, status); secrets in it are masked like "
        "everywhere.",
    )
    redis_max_connections: int = Field(64, ge=1, description="Redis connection pool size per API worker.")
    redis_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Every Redis client: connecting, and waiting for a reply (then the API answers 503, the "
        "projector retries).",
    )
    redis_wait_replicas: int = Field(
        0,
        ge=0,
        description="Replicas that must hold the projector's and the rebuild's writes (Redis `WAIT` on every "
        "master written) before their positions move past them: `1` with a replica per master, so that a "
        "failover loses no applied event.",
    )
    redis_wait_timeout_ms: int = Field(
        1000,
        ge=1,
        description="How long that wait may take; fewer replicas acknowledging: the write is tried again, as "
        "when Redis is down (the projector waits for a replica rather than risk losing applied events).",
    )
    kafka_end_offsets: str = Field(
        "list-offsets",
        pattern="^(list-offsets|fetch)$",
        description="How a partition's end offset is read; either way the end is the high watermark a fetch "
        "reports. `list-offsets` fetches where the client's ListOffsets answer puts the end (an answer that lags "
        "the log, as the local Tansu broker's does, costs nothing); `fetch` fetches from the log's start without "
        "asking ListOffsets (`pointsview dev`, the benchmarks and the tests set it for the local broker).",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="Signs and verifies OAuth access tokens with HS256 (32 bytes or more); empty counts as unset.",
    )
    jwt_private_key_file: str | None = Field(
        None,
        description="An RSA private key (PEM, unencrypted, 2048 bits or more): tokens are signed with RS256 and "
        "verified with its public key; wins over `POINTSVIEW_JWT_SECRET`. With neither set, the API refuses to "
        "start (one line, exit 2) when an org lists `oauthClients`.",
    )
    ledger_entries: int = Field(
        LEDGER_ENTRIES,
        ge=0,
        le=1000,
        description='Points ledger entries kept per customer, newest first, across programs (API.md "Points '
        'ledger"); `0`: the ledger is off and its endpoints answer 404. A change applies to events applied from '
        "then on; `pointsview rebuild` applies it to the whole history.",
    )
    ledger_cursor_secret: SecretStr | None = Field(
        None,
        description="Signs the ledger's page cursors (`nextCursor`), the same for every API process and replica; "
        "unset: a key derived from `POINTSVIEW_JWT_SECRET` or the JWT key file, else from the key prefix (cursors "
        "are still checked, but anyone who knows the prefix could make one: set it). Empty counts as unset.",
    )

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
