"""Progress of a long command (rebuild, verify, produce, a benchmark's load): a bar on a terminal, a plain
line every few seconds otherwise, on stderr. The work updates a `Progress`; `shown` displays it."""

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bar


@dataclass
class Progress:
    """Done of total since the start (total 0: not known yet), and what is being done."""

    phase: str = "replaying"
    total: int = 0
    done: int = 0


@asynccontextmanager
async def shown(progress: Progress, unit: str = "events") -> AsyncIterator[Progress]:
    finished = asyncio.Event()
    display = asyncio.create_task(_show(progress, finished, unit))
    try:
        yield progress
    finally:
        finished.set()
        await display


async def _show(progress: Progress, finished: asyncio.Event, unit: str) -> None:
    console = Console(stderr=True)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn(f"{{task.fields[rate]:,.0f}} {unit}/s"),
            TimeRemainingColumn(),
        )
        with Bar(*columns, console=console) as bar:
            task = bar.add_task(progress.phase, total=None, rate=0)
            while not finished.is_set():
                bar.update(
                    task,
                    description=progress.phase,
                    total=progress.total or None,
                    completed=progress.done,
                    rate=bar.tasks[task].speed or 0.0,
                )
                await asyncio.sleep(0.2)
        return
    started, last = time.monotonic(), time.monotonic()
    while not finished.is_set():
        await asyncio.sleep(0.2)
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            print(
                f"{progress.phase}: {progress.done:,}/{progress.total:,} {unit}, "
                f"{progress.done / (last - started):,.0f} {unit}/s",
                file=sys.stderr,
                flush=True,
            )
