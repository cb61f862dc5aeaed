"""A customer's stored value that cannot be decoded (issue 22): that customer's reads answer 503 and the
others' 200, verify names it, and a running projector dead-letters its events and goes on with the others'."""

import base64

import bcrypt
import httpx
from aiokafka import AIOKafkaConsumer

from cli import rebuild as rebuild_cli
from devtools.produce import produce
from projections.apply import apply
from projections.dedup import DedupWindow
from projections.plan import Stored
from projections.store import customer_of, stored_value
from service.app import create_app
from service.loyalty import LoyaltyConfig
from tests.e2e.helpers import assert_error
from tests.support import event, record, reference_fold, wait_until
from tests.unit.builders import earned

ORG, BROKEN, OTHER = 100737, 41, 42
AUTH = {"Authorization": "Basic " + base64.b64encode(b"till:pw").decode()}
REASON = f"stored state of customer {ORG}:{BROKEN} unreadable; run pointsview rebuild"


def _config() -> LoyaltyConfig:
    client = {"username": "till", "passwordHash": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}
    return LoyaltyConfig.model_validate(
        {"orgs": [{"orgId": ORG, "defaultProgramId": 973, "programs": [{"programId": 973}], "clients": [client]}]}
    )


def _stored(customer_id: int, points: int, marks: dict[str, int]) -> bytes:
    customer = apply(None, earned(points, programId=973))
    customer.customerId = customer_id
    return stored_value(Stored(customer, marks, DedupWindow()))


def _cut_short(value: bytes) -> bytes:
    """A stored value whose state lost its last bytes (a truncated write, a bad restore)."""
    return value[:-3]


def _earned(customer_id: int, points: int) -> dict:
    return event("points.earned", {"programId": 973, "points": points, "category": "MAIN"}, customer_id=customer_id)


async def test_reads_of_a_corrupt_value_answer_503_and_the_other_customers_200(settings, redis, keys):
    await redis.set(keys.customer(ORG, BROKEN), _cut_short(_stored(BROKEN, 5, {"p:0": 0})))
    await redis.set(keys.customer(ORG, OTHER), _stored(OTHER, 30, {"p:0": 1}))
    app = create_app(settings, _config())
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(2):  # and again: nothing cached, nothing broken by the first
            assert_error(await client.get(f"/v2/customers/{BROKEN}/points/balance", headers=AUTH), 503, 503)
            other = await client.get(f"/v2/customers/{OTHER}/points/balance", headers=AUTH)
            assert other.status_code == 200 and other.json()["mainPoints"] == 30.0, other.text


async def test_verify_names_a_corrupt_value(settings, topics, redis, keys, capsys):
    _, points_topic = topics
    stream = [record(points_topic, _earned(BROKEN, 5)), record(points_topic, _earned(OTHER, 30))]
    await produce(settings, stream)
    folded = reference_fold(stream)
    await redis.set(keys.customer(ORG, BROKEN), _cut_short(_stored(BROKEN, 5, {"p:0": 0})))
    await redis.set(keys.customer(ORG, OTHER), stored_value(Stored(folded[(ORG, OTHER)], {"p:0": 0}, DedupWindow())))
    assert await rebuild_cli.verify(settings, None, None) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(f"org {ORG} customer {BROKEN}: stored value unreadable in generation 1" in line for line in lines)
    assert any("run pointsview rebuild" in line for line in lines)
    assert not any(f"customer {OTHER}" in line for line in lines)


async def test_a_running_projector_dead_letters_a_corrupt_customers_events_and_applies_the_others(
    settings, topics, redis, keys, start_projector
):
    _, points_topic = topics
    corrupt = _cut_short(_stored(BROKEN, 5, {f"{points_topic}:0": 0}))
    await redis.set(keys.customer(ORG, BROKEN), corrupt)
    broken = [record(points_topic, _earned(BROKEN, 1)), record(points_topic, _earned(BROKEN, 2))]
    others = [record(points_topic, _earned(OTHER, 10)), record(points_topic, _earned(OTHER, 20))]
    _, projector = await start_projector()
    await produce(settings, [broken[0], others[0], broken[1], others[1]])

    async def others_applied():
        customer = customer_of(await redis.get(keys.customer(ORG, OTHER)))
        return customer is not None and customer.balances["973|POINTS"].lifetime == 30_000

    await wait_until(others_applied, message="the other customer's events, around the broken one's")
    letters = await _dead_letters(settings, len(broken))
    assert sorted(letter.value for letter in letters) == sorted(value for _, _, value in broken)
    assert all(REASON in dict(letter.headers)["dlq.reason"].decode() for letter in letters)
    assert not projector.done() and await redis.get(keys.customer(ORG, BROKEN)) == corrupt  # left as it is


async def _dead_letters(settings, count: int) -> list:
    reader = AIOKafkaConsumer(
        settings.deadletter_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        letters: list = []
        for _ in range(30):
            for records in (await reader.getmany(timeout_ms=1000)).values():
                letters += records
            if len(letters) >= count:
                break
        return letters
    finally:
        await reader.stop()
