"""The long-running processes: the projector, the API and the local development stack."""

import asyncio
from contextlib import contextmanager

import typer

from cli.common import configured_settings, load_settings, one_line_errors, until_signalled
from runtime.logs import configure
from runtime.settings import Settings


def projector(
    processes: int = typer.Option(1, min=1, help="Consumer-group members, one process each (a core each)."),
) -> None:
    """Consume the event topics into the Redis read-model (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL)."""
    from consumers.projector import run_until_signalled

    settings = configured_settings()
    if processes > 1:
        from consumers.members import run_members

        raise typer.Exit(run_members(settings, processes))
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    with one_line_errors():
        run_until_signalled(settings)


def api(
    host: str = typer.Option(None, help="Bind address (POINTSVIEW_API_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (POINTSVIEW_API_PORT, default 8000)."),
    workers: int = typer.Option(None, min=1, help="uvicorn worker processes (POINTSVIEW_API_WORKERS, default 1)."),
    reuse_port: bool = typer.Option(
        False, help="Bind with SO_REUSEPORT: several `pointsview api` processes share the port (Linux)."
    ),
) -> None:
    """Serve the v2 balance API over the Redis read-model (uvicorn, uvloop, httptools)."""
    settings = configured_settings()
    _refuse_bad_token_keys(settings)
    workers = workers or settings.api_workers
    with _metrics_dir_for(workers):
        serve(_api_config(settings, host or settings.api_host, port or settings.api_port, workers), reuse_port)


def _refuse_bad_token_keys(settings: Settings) -> None:
    """The token keys are checked once, before any worker starts."""
    from service.loyalty import ConfigError, load_loyalty_config
    from service.tokens import token_keys

    try:
        token_keys(settings, load_loyalty_config(settings.loyalty_config))
    except ConfigError as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(2)


@contextmanager
def _metrics_dir_for(workers: int):
    """Several workers share their metrics through PROMETHEUS_MULTIPROC_DIR: a temporary one unless set."""
    import os
    import shutil
    import tempfile

    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsview-metrics-")
    try:
        yield
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _api_config(settings: Settings, host: str, port: int, workers: int):
    from runtime.logs import uvicorn_log_config
    from service.protocol import ApiConfig

    return ApiConfig(
        "service.app:app_from_environment",
        request_timeout=settings.api_request_timeout_seconds,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        access_log=settings.api_access_log,
        log_level="warning",
        lifespan="on",
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
    )


def serve(config, reuse_port: bool) -> None:
    """uvicorn.run's serving, on a socket bound here: workers share it, and with `reuse_port` so can other
    processes (the kernel spreads connections over every socket bound to the port)."""
    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sock = _bound_socket(config.host, config.port, reuse_port)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            config.load_app()
            Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass


def _bound_socket(host: str, port: int, reuse_port: bool):
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        typer.echo(f"pointsview: cannot bind {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(1)
    sock.set_inheritable(True)
    return sock


def dev(customers: int = typer.Option(50, help="Demo customers to load.")) -> None:
    """Local stack: broker, Redis, projector, demo data. Ctrl-C stops everything."""
    from devtools.devstack import run_dev

    configure("INFO", load_settings().log_format)
    with one_line_errors():
        asyncio.run(until_signalled(run_dev, customers))
