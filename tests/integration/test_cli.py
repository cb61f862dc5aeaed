"""The console script refuses bad settings and unreachable dependencies with one line, no traceback."""

import os
import subprocess
import sys

from service.localstack import free_port


def _projector(**env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "projector"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


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
    result = subprocess.run([sys.executable, "-m", "service", "api"], capture_output=True, text=True,
                            env={**os.environ, "LOYALTY_CONFIG": str(bad)}, timeout=60)
    assert result.returncode == 2
    assert f"{bad}: field orgs.0.programs" in result.stderr
    assert "Traceback" not in result.stderr
