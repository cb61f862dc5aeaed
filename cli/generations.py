"""Read-model generations: rebuild one beside the live one, list, switch, drop, roll back, verify."""

import asyncio

import typer

from cli.common import configured_settings, load_settings, one_line_errors, until_signalled
from runtime.logs import configure

app = typer.Typer(invoke_without_command=True, help="Read-model generations (list, switch, drop).")


def rebuild(
    switch: bool = typer.Option(
        True, "--switch/--no-switch", help="Hand over and make the new generation live when built."
    ),
    processes: int = typer.Option(1, min=1, help="Processes replaying the partitions in parallel (a core each)."),
) -> None:
    """Replay every topic from offset 0 into a new generation beside the live one, then switch atomically."""
    from cli.rebuild import rebuild as run

    settings = configured_settings()
    with one_line_errors():
        raise typer.Exit(
            asyncio.run(until_signalled(lambda s, stop: run(s, switch, stop, processes=processes), settings))
        )


@app.callback()
def generations_list(ctx: typer.Context) -> None:
    """List generations; the live one is marked *."""
    if ctx.invoked_subcommand is None:
        from cli.rebuild import list_generations

        with one_line_errors():
            asyncio.run(list_generations(load_settings()))


@app.command("drop")
def generations_drop(generation: int) -> None:
    """Delete every key of a generation that is not live."""
    from cli.rebuild import drop_generation

    with one_line_errors():
        raise typer.Exit(asyncio.run(drop_generation(load_settings(), generation)))


@app.command("switch")
def generations_switch(generation: int) -> None:
    """Catch GENERATION up to the end of the log, then make it live (the same hand-over as rebuild)."""
    from cli.rebuild import rebuild as run

    settings = configured_settings()
    with one_line_errors():
        raise typer.Exit(
            asyncio.run(until_signalled(lambda s, stop: run(s, True, stop, generation=generation), settings))
        )


def rollback() -> None:
    """Make the generation that was live before the current one live again (caught up first)."""
    from cli.rebuild import previous_generation

    settings = load_settings()
    with one_line_errors():
        previous = asyncio.run(previous_generation(settings))
    if previous is None:
        typer.echo("pointsview: the live generation has no previous one to roll back to", err=True)
        raise typer.Exit(2)
    generations_switch(previous)


def verify(
    generation: int = typer.Option(None, help="Generation to check (default: the live one)."),
    against: int = typer.Option(None, help="Compare with this generation instead of a fresh fold of the log."),
) -> None:
    """Compare a generation with a fresh fold of the log (or another generation); exit 1 when they differ."""
    from cli.rebuild import verify as run

    settings = load_settings()
    configure("WARNING", settings.log_format)
    with one_line_errors():
        raise typer.Exit(asyncio.run(run(settings, generation, against)))
