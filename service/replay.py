"""The CLI side of rebuild, generations, rollback and verify: progress display and exit codes."""

import asyncio
import sys
import time

from redis.asyncio import Redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TaskProgressColumn, TextColumn
from rich.progress import TimeRemainingColumn
from rich.table import Table

from consumers.rebuild import Generations, Progress, Rebuild
from consumers.verify import differences, generation_customers, log_customers
from projections.keys import Keys
from service.settings import Settings

console = Console(stderr=True)


async def _show(progress: Progress, done: asyncio.Event) -> None:
    """A progress bar on a terminal; a plain line every few seconds otherwise."""
    if console.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[rate]:,.0f} events/s"), TimeRemainingColumn())
        with Bar(*columns, console=console) as bar:
            task = bar.add_task(progress.phase, total=None, rate=0)
            while not done.is_set():
                bar.update(task, description=progress.phase, total=progress.total or None,
                           completed=progress.done, rate=_rate(bar, task))
                await asyncio.sleep(0.2)
        return
    started, last = time.monotonic(), 0.0
    while not done.is_set():
        await asyncio.sleep(0.2)
        if time.monotonic() - last >= 5:
            last = time.monotonic()
            elapsed = last - started
            print(f"{progress.phase}: {progress.done:,}/{progress.total:,} events, "
                  f"{progress.done / elapsed:,.0f} events/s", file=sys.stderr, flush=True)


def _rate(bar, task_id) -> float:
    task = bar.tasks[task_id]
    return task.speed or 0.0


async def rebuild(settings: Settings, switch: bool, stop: asyncio.Event, generation: int | None = None) -> int:
    redis = Redis.from_url(settings.redis_url)
    progress, done = Progress(), asyncio.Event()
    display = asyncio.create_task(_show(progress, done))
    started = time.monotonic()
    try:
        built = await Rebuild(settings, redis, stop, progress).run(switch=switch, generation=generation)
    finally:
        done.set()
        await display
        await redis.aclose()
    if stop.is_set():
        console.print(f"rebuild of generation {built} interrupted; the live generation is untouched")
        return 1
    elapsed = time.monotonic() - started
    console.print(f"generation {built} {'is live' if switch else 'built (not switched)'}: "
                  f"{progress.total:,} events in {elapsed:.1f}s")
    return 0


async def list_generations(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        generations = await Generations(redis, settings.key_prefix).all()
        live = await Generations(redis, settings.key_prefix).live()
    finally:
        await redis.aclose()
    table = Table("generation", "state", "created", "switched", title=f"read-model generations ({settings.key_prefix})")
    for number, entry in generations.items():
        table.add_row(f"{number}{' *' if number == live else ''}", entry.get("state", ""),
                      entry.get("createdAt", ""), entry.get("switchedAt", ""))
    Console().print(table)


async def drop_generation(settings: Settings, generation: int) -> int:
    redis = Redis.from_url(settings.redis_url)
    try:
        removed = await Generations(redis, settings.key_prefix).drop(generation)
    except ValueError as exc:
        console.print(f"pointsview: {exc}")
        return 2
    finally:
        await redis.aclose()
    console.print(f"generation {generation} dropped ({removed:,} keys)")
    return 0


async def previous_generation(settings: Settings) -> int | None:
    redis = Redis.from_url(settings.redis_url)
    try:
        generations = Generations(redis, settings.key_prefix)
        live = await generations.live()
        return (await generations.all()).get(live, {}).get("previous")
    finally:
        await redis.aclose()


async def verify(settings: Settings, generation: int | None, against: int | None) -> int:
    redis = Redis.from_url(settings.redis_url)
    try:
        generation = generation or await Generations(redis, settings.key_prefix).live() or 1
        left = await generation_customers(redis, Keys(settings.key_prefix, generation))
        if against is None:
            right, right_name = await log_customers(settings), "log"
        else:
            right = await generation_customers(redis, Keys(settings.key_prefix, against))
            right_name = f"generation {against}"
    finally:
        await redis.aclose()
    lines = differences(left, right, f"generation {generation}", right_name)
    for line in lines:
        print(line)
    print(f"{len(left):,} customers in generation {generation}, {len(right):,} in the {right_name}: "
          f"{'no differences' if not lines else 'DIFFERENT'}")
    return 1 if lines else 0
