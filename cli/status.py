"""`pointsview status`: where the projector stands, from Redis, Kafka, its metrics endpoint and the API."""

import urllib.error
import urllib.request

import msgspec
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from consumers.offsets import committed_offsets, end_offsets, partitions_of, reader
from projections.keys import FIRST_GENERATION, position_name
from projections.store import decode_value
from runtime import bootstrap
from runtime.settings import Settings

LEDGER_SAMPLE = 200  # customers whose ledgers `status` weighs
COUNTERS = {
    "events_applied": "pointsview_events_applied_total",
    "events_deadlettered": "pointsview_events_deadlettered_total",
}


def _local(host: str) -> str:
    """A wildcard bind address is reached on loopback."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _get(url: str) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return None, ""


def projector_counters(settings: Settings) -> dict[str, float | None]:
    """From the projector's /metrics; None when it is off or does not answer."""
    found = dict.fromkeys(COUNTERS)
    if not settings.metrics_port:
        return found
    status, text = _get(f"http://{_local(settings.metrics_host)}:{settings.metrics_port}/metrics")
    if status != 200:
        return found
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    return {name: samples.get(metric) for name, metric in COUNTERS.items()}


def api_health(settings: Settings) -> dict:
    url = f"http://{_local(settings.api_host)}:{settings.api_port}/health/ready"
    status, _ = _get(url)
    return {"url": url, "http_status": status, "ready": status == 200}


async def redis_positions(settings: Settings, names: list[str]) -> tuple[int, dict[str, int | None]]:
    """The live generation (the one the API serves) and its positions."""
    redis = bootstrap.redis_client(settings)
    try:
        live = await bootstrap.generations(settings, redis).live() or FIRST_GENERATION
        return live, await bootstrap.store(settings, redis, live).read_positions(names)
    finally:
        await redis.aclose()


async def partition_rows(settings: Settings) -> tuple[int, list[dict]]:
    async with reader(settings) as consumer:
        tps = partitions_of(consumer, settings.topic_list)
        ends = await end_offsets(consumer, tps, settings.kafka_end_offsets)
    committed = await committed_offsets(settings, tps)
    generation, positions = await redis_positions(settings, [position_name(tp.topic, tp.partition) for tp in tps])
    rows = []
    for tp in tps:
        position = positions[position_name(tp.topic, tp.partition)]
        rows.append(
            {
                "topic": tp.topic,
                "partition": tp.partition,
                "redis_position": position,
                "committed": committed[tp],
                "end": ends[tp],
                "lag": max(0, ends[tp] - (position or 0)),
            }
        )
    return generation, rows


async def ledger_cost(settings: Settings, generation: int) -> dict:
    """The ledger setting, and what a sample of the live generation's customers keep: entries each, and the
    bytes of an entry as stored (MessagePack, inside the customer's value)."""
    redis = bootstrap.redis_client(settings)
    entries = size = sampled = 0
    try:
        async for key in redis.scan_iter(match=bootstrap.keys(settings, generation).customer_pattern(), count=1000):
            customer = decode_value(await redis.get(key) or b"").customer
            if customer:
                entries, size = entries + len(customer.ledger), size + len(msgspec.msgpack.encode(customer.ledger))
                sampled += 1
            if sampled == LEDGER_SAMPLE:
                break
    finally:
        await redis.aclose()
    return {
        "entries_kept": settings.ledger_entries,
        "customers_sampled": sampled,
        "entries_per_customer": entries / sampled if sampled else 0.0,
        "bytes_per_entry": size / entries if entries else 0.0,
    }


async def collect(settings: Settings) -> dict:
    generation, rows = await partition_rows(settings)
    return {
        "key_prefix": settings.key_prefix,
        "generation": generation,
        "group_id": settings.group_id,
        "partitions": rows,
        "lag": sum(row["lag"] for row in rows),
        **projector_counters(settings),
        "api": api_health(settings),
        "ledger": await ledger_cost(settings, generation),
    }


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def render(status: dict, console: Console) -> None:
    table = Table(
        title=f"pointsview status: key prefix [bold]{status['key_prefix']}[/] (live generation "
        f"{status['generation']}), group [bold]{status['group_id']}[/]",
        title_justify="left",
    )
    for column in ("topic", "partition", "Redis position", "Kafka committed", "end", "lag"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    for row in status["partitions"]:
        table.add_row(
            row["topic"],
            str(row["partition"]),
            _text(row["redis_position"]),
            _text(row["committed"]),
            _text(row["end"]),
            f"[{'green' if row['lag'] == 0 else 'yellow'}]{_text(row['lag'])}[/]",
        )
    console.print(table)
    console.print(
        f"total lag {_text(status['lag'])}   events applied {_text(status['events_applied'])}   "
        f"dead-lettered {_text(status['events_deadlettered'])}"
    )
    api = status["api"]
    console.print(f"API {_health(api)} at {api['url']}", style="green" if api["ready"] else "red")
    ledger = status["ledger"]
    console.print(
        f"ledger: {ledger['entries_kept']} entries kept per customer (POINTSVIEW_LEDGER_ENTRIES; 0: off); "
        f"{ledger['customers_sampled']} customers sampled hold {ledger['entries_per_customer']:.1f} each, "
        f"{ledger['bytes_per_entry']:.0f} bytes an entry as stored"
    )


def _health(api: dict) -> str:
    if api["ready"]:
        return "ready"
    return f"not ready (HTTP {api['http_status']})" if api["http_status"] else "unreachable"
