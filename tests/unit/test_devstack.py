"""`pointsview dev`'s banner: lines for people on the console, one JSON object with its fields apart otherwise."""

import json
import logging
import re

import pytest

from devtools.devstack import banner, log_banner
from devtools.synthetic import Load
from runtime.logs import configure, json_lines
from runtime.settings import Settings

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SETTINGS = Settings(
    KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:40417",
    REDIS_URL="redis://127.0.0.1:36279/0",
    LOYALTY_CONFIG="devtools/demo_loyalty.yaml",
)
CURL = "curl -u till.docdemo:demo-password http://127.0.0.1:8000/v2/customers/1000/points/balance"


@pytest.fixture
def logged(capsys):
    """Logs the banner of 50 demo customers in a log format; what stderr shows."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def log(log_format: str) -> str:
        configure("INFO", log_format)
        capsys.readouterr()
        log_banner(banner(SETTINGS, Load(customers=50)), json_lines(log_format))
        return capsys.readouterr().err

    yield log
    root.handlers[:], root.level = handlers, level


def test_on_the_console_the_banner_is_lines_for_people(logged):
    lines = ANSI.sub("", logged("console")).splitlines()
    assert re.fullmatch(r"\S+Z \[info\s*\] dev stack ready", lines[0]), lines[0]
    assert lines[1:6] == [
        "  broker  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:40417",
        "  redis   REDIS_URL=redis://127.0.0.1:36279/0",
        "  api     http://127.0.0.1:8000 (config devtools/demo_loyalty.yaml)",
        "  loaded  50 demo customers (org 100737, userIds 1000..1049)",
        f"  try     {CURL}",
    ]
    assert lines[6].startswith("  Ctrl-C stops everything.") and len(lines) == 7


def test_in_json_the_banner_is_one_object_with_its_fields_apart(logged):
    [line] = logged("json").splitlines()
    record = json.loads(line)
    assert record["event"] == "dev stack ready" and record["logger"] == "pointsview.dev"
    assert {k: v for k, v in record.items() if k not in ("event", "logger", "level", "timestamp")} == {
        "kafka_bootstrap_servers": "127.0.0.1:40417",
        "redis_url": "redis://127.0.0.1:36279/0",
        "api": "http://127.0.0.1:8000",
        "loyalty_config": "devtools/demo_loyalty.yaml",
        "demo_customers": 50,
        "org_id": 100737,
        "user_ids": "1000..1049",
        "try": CURL,
    }


@pytest.mark.parametrize(
    "log_format, terminal, as_json",
    [("json", True, True), ("console", False, False), ("auto", True, False), ("auto", False, True)],
)
def test_the_log_format_decides_and_auto_follows_the_terminal(monkeypatch, log_format, terminal, as_json):
    monkeypatch.setattr("sys.stderr.isatty", lambda: terminal)
    assert json_lines(log_format) is as_json
