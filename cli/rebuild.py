"""`pointsview rebuild`, `generations`, `rollback` and `verify`: progress display, tables and exit codes."""

import asyncio
import time

from rich.console import Console
from rich.table import Table

from consumers.rebuild import Rebuild
from consumers.verify import differences, generation_customers, generation_index, log_customers
from projections.index import expected_index, index_differences
from runtime import bootstrap
from runtime.progress import Progress, shown
from runtime.settings import Settings

console = Console(stderr=True)


async def rebuild(
    settings: Settings, switch: bool, stop: asyncio.Event, generation: int | None = None, processes: int = 1
) -> int:
    redis = bootstrap.pipelined_redis_client(settings)
    started = time.monotonic()
    try:
        async with shown(Progress()) as progress:
            built = await Rebuild(settings, redis, stop, progress).run(switch, generation, processes)
    finally:
        await redis.aclose()
    if stop.is_set():
        console.print(f"rebuild of generation {built} interrupted; the live generation is untouched")
        return 1
    elapsed = time.monotonic() - started
    console.print(
        f"generation {built} {'is live' if switch else 'built (not switched)'}: "
        f"{progress.total:,} events in {elapsed:.1f}s"
    )
    return 0


async def list_generations(settings: Settings) -> None:
    redis = bootstrap.redis_client(settings)
    try:
        registry = bootstrap.generations(settings, redis)
        generations, live = await registry.all(), await registry.live()
    finally:
        await redis.aclose()
    table = Table("generation", "state", "created", "switched", title=f"read-model generations ({settings.key_prefix})")
    for number, entry in generations.items():
        table.add_row(
            f"{number}{' *' if number == live else ''}",
            entry.get("state", ""),
            entry.get("createdAt", ""),
            entry.get("switchedAt", ""),
        )
    Console().print(table)


async def drop_generation(settings: Settings, generation: int) -> int:
    redis = bootstrap.redis_client(settings)
    try:
        removed = await bootstrap.generations(settings, redis).drop(generation)
    except ValueError as exc:
        console.print(f"pointsview: {exc}")
        return 2
    finally:
        await redis.aclose()
    console.print(f"generation {generation} dropped ({removed:,} keys)")
    return 0


async def previous_generation(settings: Settings) -> int | None:
    redis = bootstrap.redis_client(settings)
    try:
        return await bootstrap.generations(settings, redis).previous()
    finally:
        await redis.aclose()


async def verify(settings: Settings, generation: int | None, against: int | None) -> int:
    redis = bootstrap.redis_client(settings)
    try:
        generation = generation or await bootstrap.generations(settings, redis).live() or 1
        keys = bootstrap.keys(settings, generation)
        left, index = await generation_customers(redis, keys), await generation_index(redis, keys)
        if against is None:
            async with shown(Progress("reading the log")) as progress:
                right, right_name = await log_customers(settings, progress), "log"
        else:
            right = await generation_customers(redis, bootstrap.keys(settings, against))
            right_name = f"generation {against}"
    finally:
        await redis.aclose()
    lines = differences(left, right, f"generation {generation}", right_name)
    lines += index_differences(expected_index(right.values(), keys), index)
    for line in lines:
        print(line)
    print(
        f"{len(left):,} customers in generation {generation}, {len(right):,} in the {right_name}; "
        f"{len(index.identifiers) + len(index.cards):,} index fields: {'no differences' if not lines else 'DIFFERENT'}"
    )
    return 1 if lines else 0
