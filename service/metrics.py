"""API metrics: requests and latency per route and status (Prometheus).

With several uvicorn workers, `pointsview api` sets PROMETHEUS_MULTIPROC_DIR
so that /metrics aggregates every worker.
"""

import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.responses import Response

REQUESTS = Counter("pointsview_http_requests_total", "HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "pointsview_http_request_duration_seconds",
    "HTTP request latency",
    ["route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
)

REFUSED = Counter(
    "pointsview_http_refused_total",
    "Requests refused by the HTTP protocol's input bounds before any route (service.protocol)",
    ["status"],
)


_children: dict[tuple[str, int], tuple] = {}  # (route, status) -> its counter and histogram


def record(route: str, status: int, seconds: float) -> None:
    """One request of `route` (the path template, e.g. /v2/customers/{userId}/points/balance)."""
    children = _children.get((route, status))
    if children is None:
        children = _children[(route, status)] = (REQUESTS.labels(route, status), LATENCY.labels(route, status))
    children[0].inc()
    children[1].observe(seconds)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): a few microseconds per request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            record(getattr(scope.get("route"), "path", "unmatched"), status, time.perf_counter() - started)


def metrics_response() -> Response:
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
