"""The benchmark commands at toy sizes, so that they cannot rot (figures come from full-size runs)."""

import json
import os
import subprocess
import sys

import pytest


def _bench(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    result = subprocess.run([sys.executable, "-m", "service", "bench", *args, "--json"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("command, rows", [
    ("projector", ["bare aiokafka consumer (baseline)", "pointsview projector"]),
    ("rebuild", ["bare aiokafka consumer (baseline)", "pointsview projector", "pointsview rebuild"]),
])
def test_rate_benchmarks_report_every_rate(command, rows):
    result = _bench(command, "--events", "2000", "--customers", "100")
    assert result["events"] == 2000
    assert list(result["events_per_second"]) == rows
    assert all(rate > 0 for rate in result["events_per_second"].values())


def test_memory_benchmark_reports_bytes_per_customer():
    sizes = _bench("memory", "--customers", "100", "--events", "5")["bytes_per_customer"]
    assert 0 < sizes["state JSON, raw (baseline)"] < sizes["customer state (hash)"]
    assert sizes["read-model (state + index)"] == sizes["customer state (hash)"] + sizes["identifier index (zsets)"]
    assert sizes["eventId dedup window (zsets)"] > 0
