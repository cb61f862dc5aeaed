"""Test helpers: unique names, polling with a deadline, the reference fold, reading the read-model."""

import asyncio
import json
import os
import sys
import time
import uuid

from redis.asyncio import Redis, RedisCluster

from consumers.verify import generation_customers
from projections.fold import fold_log
from projections.keys import Keys
from projections.ledger import LEDGER_ENTRIES
from projections.state import Customer
from runtime.logs import await_chain
from runtime.settings import Settings

# POINTSVIEW_TEST_REDIS=cluster: the integration and end-to-end suites run on a local three-master Redis
# Cluster (tests/conftest.py starts it) instead of a Redis server per test.
ON_CLUSTER = os.environ.get("POINTSVIEW_TEST_REDIS") == "cluster"


def redis_client(url: str, **options) -> Redis:
    """redis-py's client for the suite's Redis: RedisCluster on a cluster (SCAN then covers every master)."""
    return (RedisCluster if ON_CLUSTER else Redis).from_url(url, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def isolated_settings(kafka_servers: dict[str, str], redis_url: str, name: str = "t", **overrides) -> Settings:
    """Topics, group and key prefix of their own (tests never see each other's data), test timeouts."""
    return Settings(
        **kafka_servers,
        REDIS_URL=redis_url,
        topics=f"{unique(f'{name}-customers')},{unique(f'{name}-points')}",
        deadletter_topic=unique(f"{name}-deadletter"),
        group_id=unique(f"{name}-group"),
        key_prefix=unique(name),
        **{
            "REDIS_CLUSTER": ON_CLUSTER,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "batch_timeout_ms": 50,
            "startup_timeout_seconds": 10,
            **overrides,
        },
    )


_WATCHED: dict[asyncio.Task, asyncio.Event] = {}  # in-process projectors, with their stop events


def watch(task: asyncio.Task, stop: asyncio.Event) -> None:
    """A task that must not end before its stop is set: wait_until raises its exception when it dies."""
    _WATCHED[task] = stop


def unwatch(task: asyncio.Task) -> bool:
    """False when the task was not watched (any more: a wait_until raised its end)."""
    return _WATCHED.pop(task, None) is not None


def _raise_if_one_died() -> None:
    for task, stop in list(_WATCHED.items()):
        if task.done() and not stop.is_set():
            unwatch(task)
            if task.cancelled():
                raise AssertionError(f"task {task.get_name()} was cancelled under the test")
            raise task.exception() or AssertionError(f"task {task.get_name()} ended under the test")


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Polls `predicate` until it holds; a watched task that died meanwhile fails it at once, with its error."""
    deadline = time.monotonic() + timeout
    while True:
        _raise_if_one_died()
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            _print_tasks()
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


def _print_tasks() -> None:
    """Where every other task of the loop stands (an in-process projector that stalled, say): shown with
    the failed test's captured output, each task's whole chain of awaits (print_stack shows one frame)."""
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        print(f"--- task {task.get_name()} ({'done' if task.done() else 'pending'})", file=sys.stderr)
        for step in await_chain(task):
            print(f"    {step}", file=sys.stderr)


def reference_fold(
    stream: list[tuple[str, bytes, bytes]], ledger_entries: int = LEDGER_ENTRIES
) -> dict[tuple[int, int], Customer]:
    """What the read-model must equal: every valid event applied once, in log order (its ledgers too)."""
    return fold_log((value for _topic, _key, value in stream), ledger_entries)


async def read_model(redis: Redis, keys: Keys) -> dict[tuple[int, int], Customer]:
    return await generation_customers(redis, keys)


def event(
    event_type: str,
    data: dict,
    customer_id: int = 1,
    org_id: int = 100737,
    event_id: str | None = None,
    occurred_at: str = "2026-01-08T10:03:21Z",
) -> dict:
    return {
        "specVersion": 1,
        "eventId": event_id or uuid.uuid4().hex,
        "eventType": event_type,
        "orgId": org_id,
        "customerId": customer_id,
        "occurredAt": occurred_at,
        "data": data,
    }


def record(topic: str, doc: dict) -> tuple[str, bytes, bytes]:
    return topic, f"{doc['orgId']}:{doc['customerId']}".encode(), json.dumps(doc).encode()
