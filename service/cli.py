"""The `pointsview` console script."""

import asyncio
import signal
import sys
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from service.logs import configure
from service.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Loyalty points read-model.")
bench = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures next to same-run baselines.")
app.add_typer(bench, name="bench")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        if name not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "LOYALTY_CONFIG"):
            name = f"POINTSVIEW_{name}"
        typer.echo(f"pointsview: invalid setting {name}: {err['msg']}", err=True)
        raise typer.Exit(2)


async def until_signalled(main, *args) -> None:
    """Runs `main(*args, stop)`; SIGTERM/SIGINT set `stop` so the current batch finishes first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(*args, stop)


@contextmanager
def one_line_errors():
    from consumers.runner import StartupError
    from service.localstack import LocalServerError

    try:
        yield
    except (StartupError, LocalServerError) as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(1)


@app.command()
def projector() -> None:
    """Consume the event topics into the Redis read-model (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL)."""
    from consumers.runner import run_projector

    settings = load_settings()
    configure(settings.log_level)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr="127.0.0.1")
    with one_line_errors():
        asyncio.run(until_signalled(run_projector, settings))


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (POINTSVIEW_API_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (POINTSVIEW_API_PORT, default 8000)."),
    workers: int = typer.Option(None, min=1, help="uvicorn worker processes (POINTSVIEW_API_WORKERS, default 1)."),
) -> None:
    """Serve the v2 balance API over the Redis read-model (uvicorn, uvloop, httptools)."""
    import os
    import tempfile

    import uvicorn

    from service.config import ConfigError, load_config

    settings = load_settings()
    configure(settings.log_level)
    try:
        load_config(settings.loyalty_config)  # refuse a bad file once, before any worker starts
    except ConfigError as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(2)
    workers = workers or settings.api_workers
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsview-metrics-")
    uvicorn.run("service.app:app_from_environment", factory=True, host=host or settings.api_host,
                port=port or settings.api_port, workers=workers, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="on")


@app.command()
def dev(customers: int = typer.Option(50, help="Demo customers to load.")) -> None:
    """Local stack: broker, Redis, projector, demo data. Ctrl-C stops everything."""
    from service.devstack import run_dev

    configure("INFO")
    with one_line_errors():
        asyncio.run(until_signalled(run_dev, customers))


@bench.command("projector")
def bench_projector(
    events: int = typer.Option(200_000, help="Events to pre-produce."),
    customers: int = typer.Option(10_000, help="Distinct customers in the stream."),
) -> None:
    """Projector apply rate (events/s, one process) next to a bare aiokafka consumer on the same topic."""
    from service.bench import run_projector_bench

    configure("WARNING")
    with one_line_errors():
        asyncio.run(run_projector_bench(events, customers))


def main() -> None:
    sys.exit(app())
