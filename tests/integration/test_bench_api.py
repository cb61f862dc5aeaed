"""`pointsview bench api` end to end at toy sizes (its own broker, Redis, API and bare app), and the load
generator's open loop and Redis protocol on their own."""

from urllib.parse import urlparse

import pytest

from devtools.demo import DEMO_CONFIG
from devtools.loadgen import Plan, measure_in_subprocess
from tests.integration.test_bench import assert_mentions, assert_png, bench_json

ENDPOINTS = ["bare", "redis", "userId", "ledger", "userId-limited", "userId-waiting", "lookup", "dual", "details"]
SERVED = ["userId", "lookup", "dual", "details"]  # the API's endpoints (also on a cluster)
pytestmark = pytest.mark.single_redis  # servers of its own (tests/integration/test_bench.py)


def test_bench_api_every_endpoint_closed_and_open_loop_per_worker_count(tmp_path):
    result = bench_json(
        "api",
        "--customers",
        "200",
        "--duration",
        "0.3",
        "--connections",
        "4",
        "--workers",
        "1,2",
        "--report",
        str(tmp_path),
    )
    assert result["workers"] == [1, 2] and result["programs"] == 2 and result["events_per_customer"] == 20
    assert result["redis_value_bytes"] > 200  # the size of a stored customer state
    report = (tmp_path / "api.md").read_text()
    for workers in (1, 2):
        rows = [row for row in result["results"] if row["workers"] == workers]
        assert [row["endpoint"] for row in rows if row["mode"] == "closed"] == ENDPOINTS
        closed = {row["endpoint"]: row for row in rows if row["mode"] == "closed"}
        opened = {row["endpoint"]: row for row in rows if row["mode"] == "open"}
        assert list(opened) == ENDPOINTS[2:]  # the baselines run closed loop only
        for name, row in opened.items():
            plain = name.removesuffix("-waiting").removesuffix("-limited")  # at the same rate as the plain row
            assert row["rate"] == max(1.0, closed[plain]["rps"] / 2) and row["vs_bare"] is None
        for row in rows:
            assert row["rps"] > 0 and row["errors"] == 0, row
            assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["p999_ms"], row
            assert_mentions(
                report,
                row["label"],
                f"{row['rps']:,.0f}",
                *(f"{row[p]:.2f}" for p in ("p50_ms", "p90_ms", "p99_ms", "p999_ms")),
            )
        assert closed["bare"]["vs_bare"] == 1.0
    assert_mentions(report, "api-latency.png", "api-throughput.png")
    assert_png(tmp_path / "api-latency.png")
    assert_png(tmp_path / "api-throughput.png")


def test_bench_api_rate_config_and_rate_limit_options_and_the_cluster_beside_one_redis():
    result = bench_json(
        *("api", "--customers", "20", "--duration", "0.3", "--connections", "2", "--rate", "40"),
        *("--config", str(DEMO_CONFIG), "--rate-limit", "5000", "--redis-cluster"),
    )
    closed = [row for row in result["results"] if row["mode"] == "closed"]
    assert [row["endpoint"] for row in closed] == [*ENDPOINTS, *(f"{e}-cluster" for e in SERVED)]
    assert all(row["rps"] > 0 and row["errors"] == 0 for row in result["results"])
    assert closed[-1]["label"] == "customerDetails, mlp,points on a Redis Cluster (3 masters)"
    opened = [row for row in result["results"] if row["mode"] == "open"]
    assert [row["endpoint"] for row in opened][: len(ENDPOINTS) - 2] == ENDPOINTS[2:]
    assert all(row["rate"] == 40 for row in opened)
    limited = [row for row in result["results"] if row["endpoint"] == "userId-limited"]
    assert result["rate_limit"] == 5000 and [row["mode"] for row in limited] == ["closed", "open"]
    assert all(row["label"] == "userId balance, rate limit 5,000/s configured, not reached" for row in limited)


async def test_open_loop_holds_its_rate_over_redis_gets(redis, redis_url, keys):
    """The raw Redis baseline where redis-benchmark is missing: the load generator speaking RESP."""
    key = f"{keys.prefix}:loadgen"
    await redis.set(key, b"x" * 800)
    url = urlparse(redis_url)
    summary = await measure_in_subprocess(
        Plan(
            host=url.hostname,
            port=url.port,
            paths=[key],
            connections=4,
            duration=1.0,
            warmup=0.2,
            rate=200,
            protocol="redis",
        )
    )
    assert summary.errors == 0 and 180 <= summary.requests <= 220
    assert 0 < summary.p50_ms <= summary.p90_ms <= summary.p99_ms <= summary.p999_ms
