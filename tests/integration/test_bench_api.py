"""`pointsview bench api` end to end at toy sizes: its own broker, Redis, API and bare app, JSON figures."""

import json
import os
import subprocess
import sys


def test_bench_api_measures_every_endpoint_without_errors():
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "service", "bench", "api", "--customers", "20", "--duration", "1",
         "--connections", "4", "--json"],
        capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    rows = {row["endpoint"]: row for row in figures["results"]}
    assert set(rows) == {"bare", "userId", "lookup", "details"}
    for row in rows.values():
        assert row["rps"] > 0 and row["errors"] == 0, row
    assert rows["bare"]["vs_bare"] == 1.0
