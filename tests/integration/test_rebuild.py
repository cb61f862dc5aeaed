"""Rebuild beside the live generation, switch atomically, serve reads the whole time; verify, rollback."""

import asyncio
import base64

import bcrypt
import httpx
import pytest

from cli import rebuild as rebuild_cli
from consumers.rebuild import Rebuild
from devtools.produce import produce
from devtools.synthetic import Load, generate
from projections.generations import Generations
from projections.ledger import encoded, entry
from projections.store import decode_value, stored_value
from runtime.progress import Progress
from service.app import create_app
from service.loyalty import LoyaltyConfig
from tests.support import event, read_model, record, reference_fold, wait_until

pytestmark = pytest.mark.slow
ORG = 100737


def _config() -> LoyaltyConfig:
    return LoyaltyConfig.model_validate(
        {
            "orgs": [
                {
                    "orgId": ORG,
                    "defaultProgramId": 973,
                    "programs": [{"programId": 973}, {"programId": 983}],
                    "clients": [{"username": "till", "passwordHash": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}],
                }
            ]
        }
    )


async def _caught_up(redis, keys, expected):
    async def equal():
        return await read_model(redis, keys) == expected

    await wait_until(equal, timeout=120, interval=0.5, message="the live generation to equal the fold")


async def test_rebuild_switches_while_reads_and_writes_go_on(settings, topics, redis, start_projector, projector_redis):
    customers_topic, points_topic = topics
    stream = generate(
        Load(
            customers=1_000, events_per_customer=21, customers_topic=customers_topic, points_topic=points_topic, seed=5
        )
    )
    await produce(settings, stream)
    await start_projector()
    generations = Generations(redis, settings.key_prefix)
    await _caught_up(redis, generation_keys(settings, 1), reference_fold(stream))
    assert await generations.live() == 1

    app = create_app(settings, _config())
    auth = {"Authorization": "Basic " + base64.b64encode(b"till:pw").decode()}
    sample = [1000 + i * 37 for i in range(25)]
    seen: dict[int, list[float]] = {cid: [] for cid in sample}
    failures = []
    more = []
    done = asyncio.Event()

    async def read_continuously(client):
        while not done.is_set():
            for cid in sample:
                response = await client.get(f"/v2/customers/{cid}/points/balance", headers=auth)
                if response.status_code != 200:
                    failures.append((cid, response.status_code, response.text))
                else:
                    seen[cid].append(response.json()["mainPoints"])

    async def write_continuously():
        while not done.is_set():  # earns only: every customer's balance can only grow
            batch = [
                record(
                    points_topic,
                    event("points.earned", {"programId": 973, "points": "1.5", "category": "MAIN"}, customer_id=cid),
                )
                for cid in sample
            ]
            more.extend(batch)
            await produce(settings, batch)
            await asyncio.sleep(0.2)

    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        tasks = [asyncio.create_task(read_continuously(client)), asyncio.create_task(write_continuously())]
        built = await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run(switch=True)
        await asyncio.sleep(1)
        done.set()
        await asyncio.gather(*tasks)
        assert built == 2 and await generations.live() == 2
        await _caught_up(redis, generation_keys(settings, 2), reference_fold(stream + more))
        after = await client.get(f"/v2/customers/{sample[0]}/points/balance", headers=auth)
        expected = reference_fold(stream + more)[(ORG, sample[0])].balances["973|POINTS"]
        assert after.json()["mainPoints"] == expected.main / 1000

    assert not failures
    assert all(values for values in seen.values())
    for cid, values in seen.items():
        assert values == sorted(values), f"customer {cid}'s balance went backwards: {values}"
    assert await rebuild_cli.verify(settings, None, None) == 0
    assert await rebuild_cli.verify(settings, 2, 1) == 1  # the old generation stopped at the hand-over

    # rollback: generation 1 is caught up from where it paused, then live again
    previous = await rebuild_cli.previous_generation(settings)
    assert previous == 1
    await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run(generation=previous)
    assert await generations.live() == 1
    await _caught_up(redis, generation_keys(settings, 1), reference_fold(stream + more))
    assert await rebuild_cli.verify(settings, 1, 2) == 0


async def test_a_rebuild_killed_half_way_leaves_the_live_generation_alone(
    settings, topics, redis, start_projector, projector_redis
):
    customers_topic, points_topic = topics
    stream = generate(
        Load(
            customers=1_000, events_per_customer=20, customers_topic=customers_topic, points_topic=points_topic, seed=9
        )
    )
    await produce(settings, stream)
    await start_projector(settings.model_copy(update={"batch_max_records": 500}))
    generations = Generations(redis, settings.key_prefix)
    await _caught_up(redis, generation_keys(settings, 1), reference_fold(stream))

    stop, progress = asyncio.Event(), Progress()
    slow = settings.model_copy(update={"batch_max_records": 200})
    rebuild = asyncio.create_task(Rebuild(slow, projector_redis, stop, progress).run(switch=True))
    await wait_until(
        lambda: _true(progress.total and progress.done > progress.total // 3),
        timeout=60,
        interval=0.01,
        message="a third of the rebuild",
    )
    stop.set()
    assert await rebuild == 2
    assert await generations.live() == 1
    assert (await generations.all())[2]["state"] == "building"

    late = [
        record(
            points_topic, event("points.earned", {"programId": 973, "points": 7, "category": "MAIN"}, customer_id=1000)
        )
    ]
    await produce(settings, late)
    await _caught_up(redis, generation_keys(settings, 1), reference_fold(stream + late))  # still applying

    assert await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run() == 3
    assert await generations.live() == 3
    await _caught_up(redis, generation_keys(settings, 3), reference_fold(stream + late))
    assert await rebuild_cli.drop_generation(settings, 2) == 0
    assert 2 not in await generations.all()
    assert not [k async for k in redis.scan_iter(match=f"{settings.key_prefix}:2:*")]


async def _true(value):
    return bool(value)


def generation_keys(settings, generation):
    from projections.keys import Keys

    return Keys(settings.key_prefix, generation)


async def test_without_a_projector_running_the_rebuild_hands_over_at_once(
    settings, topics, redis, json_logs, projector_redis
):
    customers_topic, points_topic = topics
    stream = generate(
        Load(customers=50, events_per_customer=4, customers_topic=customers_topic, points_topic=points_topic)
    )
    await produce(settings, stream)
    assert await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run(switch=True) == 2
    assert await Generations(redis, settings.key_prefix).live() == 2
    await _caught_up(redis, generation_keys(settings, 2), reference_fold(stream))
    assert not [line for line in json_logs() if "acknowledged the hand-over" in line["event"]]


async def test_a_rebuild_in_two_processes_equals_the_fold(settings, topics, redis, projector_redis):
    customers_topic, points_topic = topics
    stream = generate(
        Load(customers=300, events_per_customer=10, customers_topic=customers_topic, points_topic=points_topic, seed=5)
    )
    await produce(settings, stream)
    progress = Progress()
    assert await Rebuild(settings, projector_redis, asyncio.Event(), progress).run(switch=True, processes=2) == 2
    await _caught_up(redis, generation_keys(settings, 2), reference_fold(stream))
    assert progress.done == progress.total == len(stream)


async def test_a_rebuild_that_meets_customers_it_did_not_write_reads_them_and_equals_the_fold(
    settings, topics, redis, projector_redis
):
    # A rebuild writes its new generation without reading customers (nobody wrote them yet). Should someone
    # have written some after all (here: a generation whose positions alone were deleted), their
    # compare-and-set refuses the blind writes, and the rebuild reads them from then on.
    customers_topic, points_topic = topics
    stream = generate(
        Load(customers=50, events_per_customer=4, customers_topic=customers_topic, points_topic=points_topic)
    )
    await produce(settings, stream)
    generation = await Generations(redis, settings.key_prefix).create()
    rebuild = Rebuild(settings, projector_redis, asyncio.Event(), Progress())
    assert await rebuild.run(switch=False, generation=generation) == generation
    await redis.delete(generation_keys(settings, generation).positions())
    again = Rebuild(settings, projector_redis, asyncio.Event(), Progress())
    assert await asyncio.wait_for(again.run(switch=False, generation=generation), 60) == generation
    await _caught_up(redis, generation_keys(settings, generation), reference_fold(stream))


async def test_verify_names_a_customer_whose_ledger_differs_and_a_rebuild_heals_it(
    settings, topics, redis, projector_redis, capsys
):
    customers_topic, points_topic = topics
    stream = generate(
        Load(customers=30, events_per_customer=8, customers_topic=customers_topic, points_topic=points_topic)
    )
    await produce(settings, stream)
    short = settings.model_copy(update={"ledger_entries": 2})
    assert await Rebuild(short, projector_redis, asyncio.Event(), Progress()).run(switch=True) == 2
    key = generation_keys(settings, 2).customer(ORG, 1007)
    stored = decode_value(await redis.get(key))
    damaged = entry(stored.customer.ledger[-1])
    damaged.points += 1
    stored.customer.ledger[-1] = encoded(damaged)  # the newest entry damaged
    await redis.set(key, stored_value(stored))
    capsys.readouterr()
    assert await rebuild_cli.verify(short, None, None) == 1
    printed = capsys.readouterr().out.splitlines()  # (with any other test's projector's log lines)
    assert [line.split(":")[0] for line in printed if line.startswith("org ")] == [
        f"org {ORG} customer 1007 ledger {stored.customer.ledgerSeq}"
    ]
    assert await rebuild_cli.verify(settings, None, None) == 1  # the fold keeps 20: every ledger differs
    assert await Rebuild(settings, projector_redis, asyncio.Event(), Progress()).run(switch=True) == 3
    assert await rebuild_cli.verify(settings, None, None) == 0
