"""`pointsview bench memory`: Redis bytes per customer, per identifier and per points ledger entry.

Projects one synthetic load twice from the same topics, each in a key prefix and group of its own: with
the ledger off (POINTSVIEW_LEDGER_ENTRIES=0), then with `ledger_entries` kept; `used_memory` growth of
each, so the ledger's cost is the difference, per entry it keeps.
"""

import json
from dataclasses import replace

import msgspec
import orjson
from redis.asyncio import Redis

from devtools.bench.common import (
    bench_settings,
    local_servers,
    print_table,
    produce_load,
    progress,
    projector_rate,
    synthetic_load,
)
from devtools.demo import DEMO_PROGRAMS
from devtools.synthetic import Load
from projections.keys import Keys
from projections.ledger import LEDGER_ENTRIES
from projections.state import customer_to_dict
from projections.store import decode_value
from runtime import bootstrap
from runtime.settings import Settings

SAMPLE = 2_000  # keys (and customers) sampled per kind


async def _memory_by_kind(redis: Redis, keys: Keys) -> dict[str, tuple[int, float]]:
    """Per key kind: (number of keys, mean MEMORY USAGE of a sample of them)."""
    prefixes = keys.kinds()
    found: dict[str, list[bytes]] = {kind: [] for kind in prefixes}
    counts = dict.fromkeys(prefixes, 0)
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=5_000):
        for kind, prefix in prefixes.items():
            if key.decode().startswith(prefix):
                counts[kind] += 1
                if len(found[kind]) < SAMPLE:
                    found[kind].append(key)
                break
    figures = {}
    for kind, sampled in found.items():
        pipe = redis.pipeline(transaction=False)
        for key in sampled:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
        figures[kind] = (counts[kind], sum(sizes) / len(sizes) if sizes else 0.0)
    return figures


async def _identifiers(redis: Redis, keys: Keys) -> int:
    """Identifiers in the index: the fields of its hashes."""
    prefix = keys.kinds()["identifier index"]
    pipe = redis.pipeline(transaction=False)
    async for key in redis.scan_iter(match=f"{prefix}*", count=5_000):
        pipe.hlen(key)
    return sum(await pipe.execute())


async def _sampled_values(redis: Redis, keys: Keys, load: Load) -> list[bytes]:
    """The stored values of the load's first customers."""
    ids = range(load.first_customer_id, load.first_customer_id + min(SAMPLE, load.customers))
    return [value for cid in ids if (value := await redis.get(keys.customer(load.org_id, cid)))]


def _parts(values: list[bytes]) -> dict[str, float]:
    """Per customer, of the sampled values: the state's compact JSON (the baseline), the dedup window's
    bytes, the ledger's (MessagePack, as stored) and its entries."""
    stored = [decode_value(value) for value in values]
    ledgers = [s.customer.ledger if s.customer else [] for s in stored]
    return {
        "state JSON, raw (baseline)": _mean(
            len(orjson.dumps(customer_to_dict(s.customer))) for s in stored if s.customer
        ),
        "of which the eventId dedup window": _mean(len(s.seen.encode()) + 4 for s in stored),
        "of which the points ledger": _mean(len(msgspec.msgpack.encode(ledger)) for ledger in ledgers),
        "ledger entries": _mean(len(ledger) for ledger in ledgers),
    }


def _mean(values) -> float:
    found = list(values)
    return sum(found) / len(found) if found else 0.0


async def _projected(redis: Redis, settings: Settings, load: Load, total: int) -> dict:
    """Projects the produced load in the settings' key prefix: used_memory growth and what its keys hold."""
    before = (await redis.info("memory"))["used_memory"]
    await projector_rate(settings, total)
    after = (await redis.info("memory"))["used_memory"]
    keys = bootstrap.keys(settings)
    return {
        "growth": after - before,
        "kinds": await _memory_by_kind(redis, keys),
        "identifiers": await _identifiers(redis, keys),
        "parts": _parts(await _sampled_values(redis, keys, load)),
    }


async def run_memory_bench(
    customers: int, events_per_customer: int, programs: int = 1, ledger_entries: int = LEDGER_ENTRIES
) -> dict:
    """Redis bytes per customer and per identifier after projecting a synthetic load (the customer state holds
    its eventId dedup window and its ledger), and the same load with the ledger off beside it."""
    with local_servers() as servers:
        settings = bench_settings(servers).model_copy(update={"ledger_entries": ledger_entries})
        off = settings.model_copy(
            update={
                "ledger_entries": 0,
                "key_prefix": f"{settings.key_prefix}-off",
                "group_id": f"{settings.group_id}-off",
            }
        )
        load = replace(synthetic_load(settings, customers, events_per_customer), programs=DEMO_PROGRAMS[:programs])
        redis = bootstrap.redis_client(settings)
        try:
            progress.print(f"producing {customers:,} customers x {events_per_customer} events ...")
            stream = await produce_load(settings, load)
            progress.print("projecting them with the ledger off, then with it on ...")
            without = await _projected(redis, off, load, len(stream))
            projected = await _projected(redis, settings, load, len(stream))
        finally:
            await redis.aclose()
    return _result(customers, events_per_customer, programs, ledger_entries, projected, without)


def _result(customers: int, events: int, programs: int, ledger_entries: int, on: dict, off: dict) -> dict:
    per_customer = {kind: count * mean / customers for kind, (count, mean) in on["kinds"].items()}
    index_keys, index_bytes = on["kinds"]["identifier index"]
    parts, entries = on["parts"], on["parts"]["ledger entries"]
    state_off = off["kinds"]["customer state"][1]
    return {
        "benchmark": "memory",
        "customers": customers,
        "events_per_customer": events,
        "programs": programs,
        "identifiers": on["identifiers"],
        "bytes_per_customer": {
            "state JSON, raw (baseline)": parts["state JSON, raw (baseline)"],
            **per_customer,
            "of which the eventId dedup window": parts["of which the eventId dedup window"],
            "of which the points ledger": parts["of which the points ledger"],
            "read-model (state + index)": per_customer["customer state"] + per_customer["identifier index"],
            "used_memory growth (everything)": on["growth"] / customers,
            "used_memory growth, ledger off": off["growth"] / customers,
        },
        "bytes_per_identifier": index_keys * index_bytes / on["identifiers"] if on["identifiers"] else 0.0,
        "ledger": {
            "entries_kept": ledger_entries,
            "entries_per_customer": entries,
            "used_memory_per_entry": (on["growth"] - off["growth"]) / customers / entries if entries else 0.0,
            "customer_value_per_entry": (per_customer["customer state"] - state_off) / entries if entries else 0.0,
        },
    }


MEMORY_COLUMNS = ["what", "bytes"]


def memory_title(result: dict) -> str:
    return (
        f"Redis memory, {result['customers']:,} customers x {result['events_per_customer']} events, "
        f"{result['programs']} program(s), {result['identifiers']:,} identifiers, "
        f"ledger {result['ledger']['entries_kept']} entries kept"
    )


def memory_rows(result: dict) -> list[list[str]]:
    ledger = result["ledger"]
    return [
        *([f"{what}, per customer", f"{size:,.0f}"] for what, size in result["bytes_per_customer"].items()),
        ["one identifier's index entry", f"{result['bytes_per_identifier']:,.0f}"],
        ["ledger entries per customer (mean)", f"{ledger['entries_per_customer']:.1f}"],
        ["one ledger entry: used_memory growth against the ledger off", f"{ledger['used_memory_per_entry']:,.1f}"],
        ["one ledger entry: customer value (MEMORY USAGE) against off", f"{ledger['customer_value_per_entry']:,.1f}"],
    ]


def show_memory(result: dict, as_json: bool) -> None:
    if as_json:
        return print(json.dumps(result))
    print_table(memory_title(result), MEMORY_COLUMNS, memory_rows(result))
