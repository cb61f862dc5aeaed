"""The composition root: every process builds its Redis clients, key layout and stores here, from settings.

One timeout policy for every Redis client (POINTSVIEW_REDIS_TIMEOUT_SECONDS, connecting and waiting for
a reply) and one transport security policy for every Redis and Kafka client (runtime.transport: rediss://
with POINTSVIEW_REDIS_SSL_CA_FILE, ACL users in REDIS_URL, KAFKA_SECURITY_PROTOCOL and its SASL/SSL settings);
the API, the projector and the rebuild use the multiplexed Redis client (runtime.redis_mux), the operations
commands redis-py's own.
"""

from redis.asyncio import Redis, RedisCluster

from projections.generations import Generations
from projections.keys import FIRST_GENERATION, Keys
from projections.read_model import ReadModel
from projections.store import Store
from runtime.redis_cluster import MultiplexedCluster
from runtime.redis_mux import MultiplexedRedis
from runtime.settings import Settings
from runtime.transport import redis_options


def redis_client(settings: Settings) -> Redis:
    """redis-py's own client (the operations commands'); on a cluster its RedisCluster, which also scans
    every master."""
    client = RedisCluster if settings.redis_cluster else Redis
    return client.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        **redis_options(settings),
    )


def pipelined_redis_client(settings: Settings) -> MultiplexedRedis:
    """Single commands and plain pipelines on one pipelined connection, packed by hiredis; Redis down fails
    at once. The API's and the projector's: redis-py's own packing costs microseconds per argument."""
    client = MultiplexedCluster if settings.redis_cluster else MultiplexedRedis
    return client.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_seconds,
        socket_timeout=settings.redis_timeout_seconds,
        max_connections=settings.redis_max_connections,
        **redis_options(settings),
    )


def keys(settings: Settings, generation: int = FIRST_GENERATION) -> Keys:
    return Keys(settings.key_prefix, generation)


def store(settings: Settings, redis: Redis, generation: int = FIRST_GENERATION) -> Store:
    return Store(
        redis,
        keys(settings, generation),
        settings.dedup_window_seconds * 1000,
        cluster=settings.redis_cluster,
        wait=(settings.redis_wait_replicas, settings.redis_wait_timeout_ms),
    )


def generations(settings: Settings, redis: Redis) -> Generations:
    return Generations(redis, settings.key_prefix)


def read_model(settings: Settings) -> ReadModel:
    """The API's read-model (its client connects on first use, inside the worker's event loop)."""
    return ReadModel(store(settings, pipelined_redis_client(settings)))
