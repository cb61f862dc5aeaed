"""`pointsview soak`, 60 seconds at modest rates with every kind of fault: nothing lost, no customer
different from the fold, no failed read outside the faults' outage windows, and the report."""

import json
import os
import subprocess
import sys

import pytest

from devtools.soak import FAULT_KINDS
from tests.integration.test_bench import assert_mentions, assert_png

# Servers of its own (it restarts its Redis and pauses its broker): the single-Redis pass only.
pytestmark = [pytest.mark.single_redis, pytest.mark.slow]
SECONDS, READS, EVENTS = 60, 200, 100


@pytest.mark.timeout(600)
def test_a_minute_under_every_fault_loses_nothing_and_fails_no_read_outside_the_outages(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    command = [
        *(sys.executable, "-m", "cli", "soak", "--duration", str(SECONDS), "--reads", str(READS)),
        *("--events", str(EVENTS), "--customers", "2000", "--json", "--report", str(tmp_path)),
    ]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=540)
    assert "Traceback" not in run.stderr, run.stderr
    result = json.loads(run.stdout)
    assert run.returncode == 0, (result, run.stderr)
    assert result["passed"] and result["caught_up"]
    assert result["drift"] == 0 and result["lost_events"] == 0 and result["customers_compared"] == 2000
    assert result["events_produced"] == result["events_in_log"] == result["events_applied"]
    assert result["events_produced"] >= 2000 + EVENTS * SECONDS  # the registrations, then the load
    reads = result["reads"]
    assert reads["total"] == READS * SECONDS and reads["non2xx_outside_outages"] == 0
    assert 0 < reads["p50_ms"] <= reads["p99_ms"] <= reads["p999_ms"]
    assert reads["non2xx"] > 0  # Redis down for a second: the readers see the API's 503s (inside its window)
    injected = [fault["kind"] for fault in result["faults"]]
    assert injected[:2] == ["projector", "redis"], result["faults"]  # the first two always fit in the minute
    assert all(fault["recovered_after_s"] > 0 for fault in result["faults"])
    skipped = [text.split(":")[0] for text in result["skipped_faults"]]
    assert set(injected) | set(skipped) == set(FAULT_KINDS)
    if "rebuild" in injected:
        assert result["generation"] == 2
    fresh = result["freshness"]
    assert fresh["not_visible"] == 0 and fresh["probes"] >= 5 * SECONDS * 0.9
    assert fresh["outside_windows"] == 0 or 0 < fresh["p50_ms"] <= fresh["p99_ms"]
    report = (tmp_path / "soak.md").read_text()
    assert_mentions(report, "PASSED", "soak-timeline.png", *injected, f"{result['events_produced']:,}")
    assert_png(tmp_path / "soak-timeline.png")


def test_an_unknown_fault_kind_or_a_rate_of_zero_is_one_usage_error_before_anything_starts():
    for args, says in ((["--faults", "projector,meteor"], "unknown meteor"), (["--reads", "0"], "must be more than 0")):
        run = subprocess.run([sys.executable, "-m", "cli", "soak", *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr
