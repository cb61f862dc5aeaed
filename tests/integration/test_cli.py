"""The console script refuses bad settings and unreachable dependencies with one line, no traceback."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devtools.localstack import free_port

pytestmark = pytest.mark.single_redis  # the commands' arguments, settings and exit codes: no store code

ROOT = Path(__file__).resolve().parents[2]


def _projector(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", "projector"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_an_invalid_setting_is_named():
    result = _projector(POINTSVIEW_BATCH_MAX_RECORDS="0")
    assert result.returncode == 2
    assert "POINTSVIEW_BATCH_MAX_RECORDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_redis_at_start_is_one_line():
    result = _projector(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", POINTSVIEW_STARTUP_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert "Redis at redis://127.0.0.1" in result.stderr and "unreachable for 1s" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_api_refuses_a_bad_config_file_naming_file_and_field(tmp_path):
    bad = tmp_path / "loyalty.yaml"
    bad.write_text("orgs:\n  - orgId: 1\n    defaultProgramId: 9\n    programs: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "api"],
        capture_output=True,
        text=True,
        env={**os.environ, "LOYALTY_CONFIG": str(bad)},
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{bad}: field orgs.0.programs" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_api_refuses_oauth_clients_without_a_signing_key(tmp_path):
    config = tmp_path / "loyalty.yaml"
    config.write_text(
        "orgs:\n  - orgId: 1\n    defaultProgramId: 9\n    programs: [{programId: 9}]\n"
        '    oauthClients: [{key: k, secretHash: "$2b$04$abcdefghijklmnopqrstuuFq1zX6r4X0sWq2Zn1hVZ7m5uS8uQ7W."}]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTSVIEW_JWT_")}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "api"],
        capture_output=True,
        text=True,
        env={**env, "LOYALTY_CONFIG": str(config)},
        timeout=60,
    )
    assert result.returncode == 2
    assert "oauthClients" in result.stderr and "POINTSVIEW_JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def _pointsview(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_an_invalid_log_level_is_one_line_naming_the_variable():
    result = _pointsview("generations", POINTSVIEW_LOG_LEVEL="foo")
    assert result.returncode == 2
    assert result.stderr.startswith("pointsview: invalid setting POINTSVIEW_LOG_LEVEL")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "hunter2"}, "KAFKA_SASL_USERNAME is required"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "invalid setting KAFKA_SECURITY_PROTOCOL: Input should be"),
        (
            {"REDIS_URL": "redis://app:hunter2@127.0.0.1:6379/0", "POINTSVIEW_REDIS_SSL_CA_FILE": "/no/ca.pem"},
            "REDIS_SSL",
        ),
    ],
)
def test_inconsistent_transport_settings_stop_the_projector_in_one_line_without_the_secret(env, message):
    result = _pointsview("projector", **env)
    assert result.returncode == 2
    assert result.stderr.startswith("pointsview: ") and message in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["generations"], ["generations", "drop", "5"], ["rollback"]])
def test_generation_commands_say_in_one_line_that_redis_is_down(command):
    result = _pointsview(*command, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", POINTSVIEW_REDIS_TIMEOUT_SECONDS="1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("pointsview: ConnectionError")
    assert "Traceback" not in result.stderr


def test_the_installed_package_has_the_demo_config_and_no_chart_library(tmp_path):
    """What `pip install .` gets: the wheel holds the demo config (`bench api --config`'s and `dev`'s default)
    and requires no chart library unless the bench extra is asked for."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    wheel = zipfile.ZipFile(next(tmp_path.glob("pointsview-*.whl")))
    assert "orgs:" in wheel.read("devtools/demo_loyalty.yaml").decode()
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any(line.startswith("Requires-Dist: matplotlib") and 'extra == "bench"' in line for line in requires)
    assert not [line for line in requires if "matplotlib" in line and "extra ==" not in line]
