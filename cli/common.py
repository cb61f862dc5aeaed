"""What every `pointsview` command shares: settings read once with a one-line error, signals that stop a
run after its batch, the short errors of its dependencies, and the options several commands take."""

import asyncio
import signal
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from runtime.logs import configure
from runtime.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"pointsview: {settings_error(exc)}", err=True)
        raise typer.Exit(2)


def settings_error(exc: ValidationError) -> str:
    """The first error, naming the environment variable (never echoing the value: it may be a secret)."""
    err = exc.errors()[0]
    if not err["loc"]:  # a rule over several settings: its message names them
        return f"invalid settings: {err['msg'].removeprefix('Value error, ')}"
    name = str(err["loc"][0]).upper()
    unprefixed = {str(f.validation_alias) for f in Settings.model_fields.values() if f.validation_alias}
    if name not in unprefixed:
        name = f"POINTSVIEW_{name}"
    return f"invalid setting {name}: {err['msg'].removeprefix('Value error, ')}"


def configured_settings() -> Settings:
    """The settings, with logging configured by them (POINTSVIEW_LOG_LEVEL, POINTSVIEW_LOG_FORMAT)."""
    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    return settings


async def until_signalled(main, *args):
    """Runs `main(*args, stop)` and returns what it returns (an exit code, say); SIGTERM/SIGINT set `stop`
    so the current batch finishes first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await main(*args, stop)


@contextmanager
def one_line_errors():
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisClusterException, RedisError

    from consumers.projector import LogTruncated, StartupError
    from devtools.localstack import LocalServerError

    try:
        yield
    except (StartupError, LocalServerError, LogTruncated) as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(1)
    # the short-lived commands' dependencies (RedisClusterException: a cluster with a slot nobody serves)
    except (KafkaError, RedisError, RedisClusterException, TimeoutError) as exc:
        typer.echo(f"pointsview: {exc.__class__.__name__}: {exc}", err=True)
        raise typer.Exit(1)


def positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter("must be more than 0")
    return value


JSON_OPTION = typer.Option(False, "--json", help="Print the figures as JSON (progress goes to stderr).")
