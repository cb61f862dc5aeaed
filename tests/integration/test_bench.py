"""The benchmark commands at toy sizes, so that they cannot rot (figures come from full-size runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

# Each command starts servers of its own (a single Redis, and a cluster with --redis-cluster): nothing
# for the cluster pass of the suite to add.
pytestmark = pytest.mark.single_redis


def bench(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    """`pointsview bench ...` against servers of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "bench", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == expect, result.stderr
    assert "Traceback" not in result.stderr
    return result


def bench_json(*args: str) -> dict:
    return json.loads(bench(*args, "--json").stdout)


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 200
        image.verify()


def assert_mentions(report: str, *figures: str) -> None:
    missing = [figure for figure in figures if figure not in report]
    assert not missing, f"the report lacks {missing}"


def test_projector_benchmark_rates_timeline_visibility_report_and_the_cluster_beside_one_redis(tmp_path):
    result = bench_json(
        "projector",
        "--events",
        "2000",
        "--customers",
        "100",
        "--rate",
        "500",
        "--duration",
        "1",
        "--report",
        str(tmp_path),
        "--redis-cluster",
    )
    rates = result["events_per_second"]
    assert result["events"] == 2000
    assert list(rates) == [
        "bare aiokafka consumer (baseline)",
        "pointsview projector",
        "pointsview projector, ledger off (POINTSVIEW_LEDGER_ENTRIES=0)",
        "pointsview projector on a Redis Cluster (3 masters)",
    ]
    assert all(rate > 0 for rate in rates.values())
    cpu = result["cpu_us_per_event"]  # the pure fold over the same values beside the projector's whole runs
    assert list(cpu) == [
        "pure fold (fold_log) over the same values (baseline)",
        "pointsview projector, one process (its whole run)",
        "pointsview projector, one process (its whole run), ledger off (POINTSVIEW_LEDGER_ENTRIES=0)",
    ]
    fold = cpu["pure fold (fold_log) over the same values (baseline)"]
    assert 0 < fold < min(list(cpu.values())[1:])
    applied = [done for _, done in result["timeline"]]
    assert applied == sorted(applied) and applied[-1] == 2000
    visible = result["visible"]
    assert visible["events"] == 500 and visible["probes"] == 20 and visible["not_visible"] == 0
    assert 400 < visible["produced_per_second"] < 600
    assert 0 < visible["p50_ms"] <= visible["p90_ms"] <= visible["p99_ms"] <= visible["max_ms"]
    baseline = visible["baseline"]
    assert baseline["probes"] == 20  # the bare consumer received every probe
    assert 0 < baseline["p50_ms"] <= baseline["p99_ms"] <= baseline["max_ms"]
    assert baseline["p50_ms"] <= visible["p50_ms"]  # applied and served after it was received
    report = (tmp_path / "projector.md").read_text()
    assert_mentions(
        report,
        "projector-rate.png",
        *rates,
        *(f"{rate:,.0f}" for rate in rates.values()),
        *cpu,
        *(f"{figures[p]:.1f}" for figures in (visible, baseline) for p in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
    )
    assert_png(tmp_path / "projector-rate.png")


def test_rebuild_benchmark_times_the_command_in_each_process_count_and_reports_every_rate(tmp_path):
    args = ("--events", "2000", "--customers", "100", "--processes", "1,2", "--report", str(tmp_path))
    result = bench_json("rebuild", *args)
    rates = result["events_per_second"]
    assert list(rates) == [
        "bare aiokafka consumer (baseline)",
        "pointsview projector",
        "pointsview projector, 2 processes",
        "pointsview rebuild",
        "pointsview rebuild, 2 processes",
    ]
    assert all(rate > 0 for rate in rates.values()) and "visible" not in result
    assert_mentions(
        (tmp_path / "rebuild.md").read_text(), "rebuild-rate.png", *rates, *(f"{rate:,.0f}" for rate in rates.values())
    )
    assert_png(tmp_path / "rebuild-rate.png")


def test_memory_benchmark_reports_bytes_per_customer_and_per_identifier(tmp_path):
    result = bench_json("memory", "--customers", "100", "--events", "5", "--programs", "2", "--report", str(tmp_path))
    sizes = result["bytes_per_customer"]
    assert result["programs"] == 2 and result["identifiers"] == 3 * 100  # mobile, email, externalId each
    assert 0.2 < sizes["customer state"] / sizes["state JSON, raw (baseline)"] < 5  # whatever the encoding
    assert sizes["read-model (state + index)"] == sizes["customer state"] + sizes["identifier index"]
    assert result["bytes_per_identifier"] * 3 == pytest.approx(sizes["identifier index"])
    assert 0 < sizes["of which the eventId dedup window"] < sizes["customer state"]
    assert 0 < sizes["of which the points ledger"] < sizes["customer state"]  # the same load, ledger off beside
    ledger = result["ledger"]
    assert ledger["entries_kept"] == 20 and 0 < ledger["entries_per_customer"] <= 4
    assert 20 < ledger["customer_value_per_entry"] < 200
    report = (tmp_path / "memory.md").read_text()
    assert_mentions(
        report,
        "memory-bytes.png",
        *sizes,
        *(f"{size:,.0f}" for size in sizes.values()),
        f"{result['bytes_per_identifier']:,.0f}",
    )
    assert_png(tmp_path / "memory-bytes.png")


@pytest.mark.parametrize(
    "args, option",
    [
        (["api", "--rate", "0"], "--rate"),
        (["api", "--workers", "abc"], "--workers"),
        (["api", "--workers", "1,0"], "--workers"),
        (["projector", "--duration", "0"], "--duration"),
        (["projector", "--rate", "-5"], "--rate"),
        (["memory", "--programs", "3"], "--programs"),
    ],
)
def test_bad_options_are_one_clear_error(args, option):
    assert option in bench(*args, expect=2).stderr


def test_projector_benchmark_scales_over_processes_and_customers():
    result = bench_json(
        "projector",
        "--events",
        "1000",
        "--customers",
        "50,100",
        "--processes",
        "2",
        "--rate",
        "200",
        "--duration",
        "0.5",
    )
    assert list(result["events_per_second"]) == [
        "bare aiokafka consumer (baseline)",
        "pointsview projector",
        "pointsview projector, ledger off (POINTSVIEW_LEDGER_ENTRIES=0)",
        "pointsview projector, 2 processes",
    ]
    assert [(run["customers"], run["events"]) for run in result["scale"]] == [(50, 1000), (100, 2000)]
    assert all(rate > 0 for run in result["scale"] for rate in run["events_per_second"].values())
