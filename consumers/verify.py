"""`pointsview verify`: a generation against a fresh fold of the log, or against another generation: its
customers, and its identifier and card indexes against those the other side's customers imply."""

from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from consumers.offsets import partitions_of, read_all, reader
from projections.fold import fold_log
from projections.index import Entries, Field, Index, decode_entries
from projections.keys import Keys
from projections.state import Customer, customer_to_dict
from projections.store import CorruptValue, decode_value
from runtime.progress import Progress
from runtime.settings import Settings


@dataclass(frozen=True)
class Unreadable:
    """A stored value that cannot be decoded (CorruptValue): a difference whatever the other side holds."""

    reason: str


async def generation_customers(redis: Redis, keys: Keys) -> dict[tuple[int, int], Customer | Unreadable]:
    found: dict[tuple[int, int], Customer | Unreadable] = {}
    async for key in redis.scan_iter(match=keys.customer_pattern(), count=1000):
        value = await redis.get(key)
        try:
            customer = value and decode_value(value).customer
        except CorruptValue as exc:
            found[keys.customer_id_of(key)] = Unreadable(str(exc))
            continue
        if customer:
            found[(customer.orgId, customer.customerId)] = customer
    return found


async def generation_index(redis: Redis, keys: Keys) -> Index:
    """Every identifier and card index field of the generation (on a cluster, scanned on every master)."""
    return Index(await _index_fields(redis, keys.identifier_pattern()), await _index_fields(redis, keys.card_pattern()))


async def _index_fields(redis: Redis, pattern: str) -> dict[Field, Entries]:
    found = {}
    async for key in redis.scan_iter(match=pattern, count=1000):
        for name, value in (await redis.hgetall(key)).items():
            found[(key.decode(), name.decode())] = decode_entries(value)
    return found


async def log_customers(settings: Settings, progress: Progress | None = None) -> dict[tuple[int, int], Customer]:
    async with reader(settings) as consumer:
        tps = partitions_of(consumer, settings.topic_list)
        records = await read_all(consumer, tps, settings.kafka_end_offsets, timeout=3600, progress=progress)
    by_partition = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    return fold_log((r.value for r in by_partition), settings.ledger_entries)


def differences(left: dict, right: dict, left_name: str, right_name: str, limit: int = 50) -> list[str]:
    """One line per differing customer and part (profiles, balances, tiers)."""
    lines = []
    for key in sorted(left.keys() | right.keys()):
        lines += _customer_differences(key, left.get(key), right.get(key), left_name, right_name)
        if len(lines) >= limit:
            return lines[:limit] + ["... (more differences not shown)"]
    return lines


def differing_customers(left: dict, right: dict) -> list[tuple[int, int]]:
    """Every customer that differs in any part `differences` compares (or is missing on one side)."""
    return [
        key for key in sorted(left.keys() | right.keys()) if _customer_differences(key, left.get(key), right.get(key))
    ]


PARTS = (
    ("p", "profiles"),
    ("b", "balances"),
    ("t", "tiers"),
    ("s", "status"),
    ("m", "merged into"),
    ("k", "cards"),
    ("n", "profile events"),
    ("l", "ledger"),
    ("q", "ledger entries made"),
)


def _customer_differences(key, a, b, left_name: str = "left", right_name: str = "right") -> list[str]:
    unreadable = [(name, side) for name, side in ((left_name, a), (right_name, b)) if type(side) is Unreadable]
    if unreadable:
        return [
            f"org {key[0]} customer {key[1]}: stored value unreadable in {name} ({side.reason}); run pointsview rebuild"
            for name, side in unreadable
        ]
    if a is None or b is None:
        return [f"org {key[0]} customer {key[1]}: only in {left_name if b is None else right_name}"]
    lines = []
    da, db = customer_to_dict(a), customer_to_dict(b)
    for part, name in PARTS:
        for item in sorted(set(_items(da[part])) | set(_items(db[part]))):
            va, vb = _items(da[part]).get(item), _items(db[part]).get(item)
            if va != vb:
                lines.append(
                    f"org {key[0]} customer {key[1]} {name} {item}: {left_name}={_short(va)} {right_name}={_short(vb)}"
                )
    return lines


def _items(part) -> dict:
    return part if isinstance(part, dict) else {"": part}


def _short(value) -> str:
    text = orjson.dumps(value).decode() if value is not None else "-"
    return text if len(text) <= 160 else text[:157] + "..."
