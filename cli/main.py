"""The `pointsview` console script: the typer app assembled from the command modules, in --help's order."""

import signal
import sys

import typer

from cli import bench, generations, operations, processes, soak

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Loyalty points read-model.")
app.add_typer(bench.app, name="bench")
app.add_typer(operations.deadletters, name="deadletters")
for command in (
    processes.projector,
    processes.api,
    processes.dev,
    generations.rebuild,
    generations.rollback,
    generations.verify,
    soak.soak,
    operations.topics,
    operations.produce,
    operations.status,
):
    app.command()(command)
app.add_typer(generations.app, name="generations")


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: local servers and subprocesses are stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(app())
