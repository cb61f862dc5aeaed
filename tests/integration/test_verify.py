"""`pointsview verify` compares the identifier and card indexes too: drift made by hand in Redis is named,
and a rebuild heals it."""

import asyncio

import pytest

from cli import rebuild as rebuild_cli
from consumers.rebuild import Rebuild
from devtools.produce import produce
from projections.identity import IndexKey
from projections.keys import Keys
from projections.plan import epoch_ms
from runtime.progress import Progress
from tests.support import event, read_model, record, reference_fold, wait_until

pytestmark = pytest.mark.slow
ORG = 100737
EARLY, LATE = "2026-01-08T10:00:00Z", "2026-01-09T10:00:00Z"
OWNER, OTHER, TIED_LOW, TIED_HIGH, LEFT = 11, 51, 21, 22, 31  # customers claiming identifiers
HOLDER, DELETED_HOLDER, CARD_TIE_LOW, CARD_TIE_HIGH = 42, 41, 43, 44  # card holders


def _profile(customer_id: int, identifiers: dict[str, str], event_type: str = "customer.registered") -> dict:
    data = {"source": "INSTORE", "identifiers": [{"type": t, "value": v} for t, v in identifiers.items()]}
    return event(event_type, data, customer_id=customer_id)


def _card(customer_id: int, number: str, label: str, event_type: str = "card.issued", at: str = EARLY) -> dict:
    data = {"cardNumber": number, "seriesId": 195, "statusLabel": label}
    return event(event_type, data, customer_id=customer_id, occurred_at=at)


def _events() -> list[dict]:
    return [
        _profile(OWNER, {"mobile": "900001", "email": "Owner@Example.com"}),
        _profile(OTHER, {"mobile": "900009"}),
        _profile(TIED_LOW, {"mobile": "900002"}),  # one identifier, two claims at the same time
        _profile(TIED_HIGH, {"mobile": "900002"}),
        _profile(LEFT, {"mobile": "900003"}),
        _profile(LEFT, {}, "customer.updated"),  # removed: no entry
        _card(HOLDER, "CARD-1", "ACTIVE"),
        _card(DELETED_HOLDER, "CARD-1", "ACTIVE", at=LATE),
        _card(DELETED_HOLDER, "CARD-1", "DELETED", "card.updated", at=LATE),
        _card(CARD_TIE_LOW, "CARD-2", "ACTIVE"),
        _card(CARD_TIE_HIGH, "CARD-2", "SUSPENDED"),
    ]


def _identifier(keys: Keys, type_: str, value: str) -> tuple[str, str]:
    return keys.identifier(IndexKey(ORG, "INSTORE", "", type_, value))


async def _drift(redis, keys: Keys) -> list[str]:
    """Each kind of drift, made by hand; the lines verify must print for them."""
    wrong, stale = _identifier(keys, "mobile", "900001"), _identifier(keys, "mobile", "900003")
    missing = _identifier(keys, "email", "owner@example.com")
    card = keys.card(ORG, "CARD-1")
    await redis.hset(wrong[0], wrong[1], f"{OTHER}:{epoch_ms(EARLY)}")  # points to another customer
    await redis.hdel(missing[0], missing[1])  # missing
    await redis.hset(stale[0], stale[1], f"{LEFT}:{epoch_ms(EARLY)}")  # outlived its claim
    holders = (await redis.hget(*card)).decode()
    assert f"{DELETED_HOLDER}:D" in holders
    await redis.hset(card[0], card[1], holders.replace(f"{DELETED_HOLDER}:D", f"{DELETED_HOLDER}:{epoch_ms(LATE)}"))
    return [
        f"index {wrong[0]} 900001: expected customer {OWNER}, found {OTHER}",
        f"index {missing[0]} owner@example.com: missing entry for customer {OWNER}",
        f"index {stale[0]} 900003: stale entry for customer {LEFT}",
        f"index {card[0]} CARD-1: expected customer {HOLDER}, found {DELETED_HOLDER}",
        f"index {card[0]} CARD-1: expected entry {DELETED_HOLDER}:D, found {DELETED_HOLDER}:{epoch_ms(LATE)}",
    ]


async def _verify(settings, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = await rebuild_cli.verify(settings, None, None)
    printed = capsys.readouterr().out.splitlines()  # the projector's log lines among them
    return code, [line for line in printed if line.startswith(("index ", "org "))]


async def test_verify_names_each_kind_of_index_drift_and_a_rebuild_heals_it(
    settings, topics, redis, start_projector, projector_redis, capsys
):
    customers_topic, _ = topics
    stream = [record(customers_topic, doc) for doc in _events()]
    await produce(settings, stream)
    await start_projector()
    keys = Keys(settings.key_prefix)

    async def caught_up():
        return await read_model(redis, keys) == reference_fold(stream)

    await wait_until(caught_up, timeout=60, message="the live generation to equal the fold")
    assert await _verify(settings, capsys) == (0, [])  # ties, a removal and a DELETED card: as expected

    expected = await _drift(redis, keys)
    code, lines = await _verify(settings, capsys)
    assert code == 1 and sorted(lines) == sorted(expected)

    assert await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run(switch=True) == 2
    assert await _verify(settings, capsys) == (0, [])
