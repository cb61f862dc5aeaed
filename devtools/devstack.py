"""`pointsview dev`: a whole local stack in one process tree, stopped together."""

import asyncio
import logging
import os
from contextlib import contextmanager

import uvicorn

from consumers.projector import run_projector
from consumers.topics import create_topics
from devtools.demo import DEMO_CONFIG
from devtools.localstack import LocalBroker, LocalRedis
from devtools.produce import produce
from devtools.synthetic import Load, generate
from runtime.settings import Settings
from service.app import create_app
from service.protocol import ApiConfig

log = logging.getLogger("pointsview.dev")


class _EmbeddedServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self):
        yield  # the dev stack's own handlers stop everything in order


async def serve_api(settings: Settings, stop: asyncio.Event) -> None:
    server = _EmbeddedServer(
        ApiConfig(
            create_app(settings),
            request_timeout=settings.api_request_timeout_seconds,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    await asyncio.wait([serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving


def _demo_config() -> dict[str, str]:
    """The demo org's configuration, unless LOYALTY_CONFIG names another (an installed copy has no config/)."""
    return {} if os.environ.get("LOYALTY_CONFIG") else {"LOYALTY_CONFIG": str(DEMO_CONFIG)}


async def run_dev(customers: int, stop: asyncio.Event) -> None:
    broker = LocalBroker().start()
    redis = LocalRedis(appendonly=True).start()
    projector = api = None
    try:
        settings = Settings(
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            REDIS_URL=redis.url,
            **LocalBroker.SETTINGS,
            **_demo_config(),
        )
        await create_topics(settings)  # before producing: the broker would auto-create other counts
        projector = asyncio.create_task(run_projector(settings, stop))
        api = asyncio.create_task(serve_api(settings, stop))
        load = Load(customers=customers)
        await produce(settings, generate(load))
        log.info(
            "\n  broker  KAFKA_BOOTSTRAP_SERVERS=%s\n  redis   REDIS_URL=%s\n"
            "  api     http://%s:%d (config %s)\n"
            "  loaded  %d demo customers (org %d, userIds %d..%d)\n"
            "  try     curl -u till.docdemo:demo-password http://%s:%d/v2/customers/%d/points/balance\n"
            "  Ctrl-C stops everything.",
            broker.bootstrap_servers,
            redis.url,
            settings.api_host,
            settings.api_port,
            settings.loyalty_config,
            customers,
            load.org_id,
            load.first_customer_id,
            load.first_customer_id + customers - 1,
            settings.api_host,
            settings.api_port,
            load.first_customer_id,
        )
        await asyncio.gather(projector, api)
    finally:
        stop.set()
        if projector:
            await asyncio.gather(projector, api, return_exceptions=True)
        redis.cleanup()
        broker.stop()
