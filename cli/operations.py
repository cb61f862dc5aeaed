"""Operating a deployment: topics, events published by hand, status, dead letters."""

import asyncio
from contextlib import contextmanager
from pathlib import Path

import typer

from cli.common import configured_settings, one_line_errors
from runtime.settings import Settings

deadletters = typer.Typer(no_args_is_help=True, help="Inspect and re-drive the dead-letter topic.")

MACHINE_JSON_OPTION = typer.Option(False, "--json", help="Print JSON for machines.")


def topics() -> None:
    """Create the event and dead-letter topics with POINTSVIEW_TOPIC_PARTITIONS (existing ones are kept)."""
    from consumers.topics import create_topics

    settings = configured_settings()
    with one_line_errors():
        asyncio.run(create_topics(settings))
    typer.echo(f"topics ready: {', '.join([*settings.topic_list, settings.deadletter_topic])}")


def produce(
    file: Path = typer.Option(None, exists=True, dir_okay=False, help="JSON lines, one event envelope a line."),
    customers: int = typer.Option(50, min=1, help="Synthetic load: customers."),
    programs: str = typer.Option("973,983", help="Synthetic load: comma-separated programIds."),
    events_per_customer: int = typer.Option(20, min=1, help="Synthetic load: events per customer."),
    org_id: int = typer.Option(100737, min=1, help="Synthetic load: orgId."),
    seed: int = typer.Option(7, help="Synthetic load: random seed (the same seed, the same events)."),
    rate: float = typer.Option(0, min=0, help="Events per second at most (0: as fast as possible)."),
    customers_topic: str = typer.Option(
        None, help="Topic of customer.* events (default: the first of POINTSVIEW_TOPICS)."
    ),
    points_topic: str = typer.Option(None, help="Topic of other events (default: the second of POINTSVIEW_TOPICS)."),
) -> None:
    """Publish events from a JSON-lines file, or a synthetic load (by default the demo data of `make dev`)."""
    from devtools.synthetic import Load

    settings = configured_settings()
    topics = (customers_topic or settings.topic_list[0], points_topic or settings.topic_list[-1])
    if file:
        stream = _file_stream(file, topics)
    else:
        load = Load(
            org_id=org_id,
            customers=customers,
            programs=_program_ids(programs),
            events_per_customer=events_per_customer,
            seed=seed,
            customers_topic=topics[0],
            points_topic=topics[1],
        )
        stream = _synthetic_stream(load)
    _publish(settings, stream, rate)


def _file_stream(file: Path, topics: tuple[str, str]):
    from devtools.produce import InvalidLine, stream_from_lines

    try:
        return stream_from_lines(file.read_bytes().splitlines(), *topics)
    except InvalidLine as exc:
        raise typer.BadParameter(str(exc), param_hint="--file")


def _synthetic_stream(load):
    from devtools.synthetic import generate

    return generate(load)


def _program_ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise typer.BadParameter("comma-separated integers expected", param_hint="--programs")


def _publish(settings: Settings, stream, rate: float) -> None:
    import time

    from consumers.topics import create_topics
    from devtools.produce import summary

    started = time.monotonic()
    with one_line_errors():
        asyncio.run(create_topics(settings))  # else the broker may auto-create other partition counts
        asyncio.run(_produce_shown(settings, stream, rate))
    typer.echo(summary(stream, time.monotonic() - started))


async def _produce_shown(settings: Settings, stream, rate: float) -> None:
    from devtools.produce import produce
    from runtime.progress import Progress, shown

    async with shown(Progress("producing")) as progress:
        await produce(settings, stream, rate, progress)


def status(as_json: bool = MACHINE_JSON_OPTION) -> None:
    """Positions in Redis, Kafka offsets and lag per partition, projector counters, API health."""
    import json

    from rich.console import Console

    from cli.status import collect, render

    settings = configured_settings()
    with one_line_errors():
        found = asyncio.run(collect(settings))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        render(found, Console())


@deadletters.command("list")
def deadletters_list(as_json: bool = MACHINE_JSON_OPTION) -> None:
    """Every dead letter: id (partition:offset), reason, origin, key and a payload preview."""
    import json

    from rich.console import Console

    from cli.deadletters import as_dict, render_list
    from consumers.deadletter_admin import read_deadletters

    settings = configured_settings()
    with one_line_errors():
        letters = asyncio.run(read_deadletters(settings))
    if as_json:
        typer.echo(json.dumps([as_dict(letter) for letter in letters], indent=2))
    else:
        render_list(letters, settings.deadletter_topic, Console())


@deadletters.command("show")
def deadletters_show(
    ref: str = typer.Argument(..., metavar="OFFSET", help="PARTITION:OFFSET, or OFFSET alone when unambiguous."),
    as_json: bool = MACHINE_JSON_OPTION,
) -> None:
    """One dead letter in full: key, headers and the whole payload."""
    import json

    from rich.console import Console

    from cli.deadletters import as_dict, render_show
    from consumers.deadletter_admin import read_deadletters, select

    settings = configured_settings()
    with one_line_errors(), dead_letter_errors():
        letter = select(asyncio.run(read_deadletters(settings)), [ref])[0]
    if as_json:
        typer.echo(json.dumps(as_dict(letter), indent=2))
    else:
        render_show(letter, Console())


@deadletters.command("redrive")
def deadletters_redrive(
    refs: list[str] = typer.Argument(..., metavar="OFFSET...", help="PARTITION:OFFSET (or OFFSET) of each record."),
) -> None:
    """Re-publish dead letters to their original topic and partition, key and bytes unchanged (after a fix)."""
    from consumers.deadletter_admin import read_deadletters, redrive, select

    settings = configured_settings()
    with one_line_errors(), dead_letter_errors():
        chosen = select(asyncio.run(read_deadletters(settings)), refs)
        redriven = asyncio.run(redrive(settings, chosen))
    for letter, topic, partition, offset in redriven:
        typer.echo(f"redriven {letter.ref} -> {topic}[{partition}]@{offset}")


@contextmanager
def dead_letter_errors():
    from consumers.deadletter_admin import DeadLetterError

    try:
        yield
    except DeadLetterError as exc:
        typer.echo(f"pointsview: {exc.args[0]}", err=True)
        raise typer.Exit(1)
