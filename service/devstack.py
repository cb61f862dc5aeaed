"""`pointsview dev`: a whole local stack in one process tree, stopped together."""

import asyncio
import logging

from consumers.runner import run_projector
from consumers.topics import create_topics
from service.localstack import LocalBroker, LocalRedis
from service.produce import produce
from service.settings import Settings
from service.synthetic import Load, generate

log = logging.getLogger("pointsview.dev")


async def run_dev(customers: int, stop: asyncio.Event) -> None:
    broker = LocalBroker().start()
    redis = LocalRedis(appendonly=True).start()
    projector = None
    try:
        settings = Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers, REDIS_URL=redis.url)
        await create_topics(settings)  # before producing: the broker would auto-create other counts
        projector = asyncio.create_task(run_projector(settings, stop))
        load = Load(customers=customers)
        await produce(broker.bootstrap_servers, generate(load))
        first = f"pv:c:{{{load.org_id}:{load.first_customer_id}}}"
        log.info("\n  broker  KAFKA_BOOTSTRAP_SERVERS=%s\n  redis   REDIS_URL=%s\n"
                 "  loaded  %d demo customers (org %d, userIds %d..%d)\n"
                 "  try     redis-cli -p %d HGET '%s' d\n  Ctrl-C stops everything.",
                 broker.bootstrap_servers, redis.url, customers, load.org_id, load.first_customer_id,
                 load.first_customer_id + customers - 1, redis.port, first)
        await projector
    finally:
        stop.set()
        if projector:
            await asyncio.gather(projector, return_exceptions=True)
        redis.cleanup()
        broker.stop()
