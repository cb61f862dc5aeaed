"""The benchmark commands at toy sizes, so that they cannot rot (figures come from full-size runs)."""

import os
import re
import subprocess
import sys

import pytest


def _bench(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}
    env["COLUMNS"] = "200"
    result = subprocess.run([sys.executable, "-m", "service", "bench", *args], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rate(output: str, row: str) -> float:
    match = re.search(rf"{re.escape(row)}\s*│\s*([\d,]+)", output)
    assert match, output
    return float(match.group(1).replace(",", ""))


@pytest.mark.parametrize("command, rows", [
    (("projector", "--events", "2000", "--customers", "100"), ["bare aiokafka consumer (baseline)",
                                                               "pointsview projector"]),
    (("rebuild", "--events", "2000", "--customers", "100"), ["pointsview projector", "pointsview rebuild"]),
    (("memory", "--customers", "100", "--events", "5"), ["state JSON, raw (baseline)",
                                                         "read-model (state + index)"]),
])
def test_bench_commands_print_positive_figures(command, rows):
    output = _bench(*command)
    for row in rows:
        assert _rate(output, row) > 0
