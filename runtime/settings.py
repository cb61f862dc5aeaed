"""Process settings from the environment (CONFIG.md; every variable is listed in the README)."""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POINTSVIEW_", extra="ignore")

    kafka_bootstrap_servers: str = Field("localhost:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL")
    redis_cluster: bool = Field(False, validation_alias="REDIS_CLUSTER")  # REDIS_URL names any node of a cluster
    loyalty_config: str = Field("config/loyalty.yaml", validation_alias="LOYALTY_CONFIG")

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
    cache_customers: int = Field(200_000, ge=0)  # customers the projector keeps (encoded) between batches
    # While catching up (full batches), records folded in memory before their customers are written: a
    # customer with several events in that span is written once. At the head of the log every batch is
    # written at once. 0: every batch.
    write_behind_records: int = Field(100_000, ge=0)
    session_timeout_ms: int = Field(10000, ge=1000)
    heartbeat_interval_ms: int = Field(3000, ge=100)
    startup_timeout_seconds: float = Field(30.0, gt=0)
    progress_interval_seconds: float = Field(1.0, gt=0)
    metrics_port: int = Field(0, ge=0, le=65535)  # projector's /metrics; 0 = off
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so Prometheus can scrape it
    log_level: str = Field("INFO", pattern="(?i)^(CRITICAL|ERROR|WARNING|INFO|DEBUG)$")
    log_format: str = Field("auto", pattern="^(auto|json|console)$")  # auto: console on a TTY, else JSON

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1)
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

    @field_validator("jwt_secret", "jwt_private_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        return None if value == "" else value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (RFC 7518 3.2: an HS256 key as long as its hash)")
        return value

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
