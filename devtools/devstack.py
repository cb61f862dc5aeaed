"""`pointsview dev`: a whole local stack in one process tree, stopped together."""

import asyncio
import logging
import os
from contextlib import contextmanager

import uvicorn

from consumers.projector import run_projector
from consumers.topics import create_topics
from devtools.demo import CREDENTIALS, DEMO_CONFIG
from devtools.localstack import LocalBroker, LocalRedis
from devtools.produce import produce
from devtools.synthetic import Load, generate
from runtime.logs import json_lines
from runtime.settings import Settings
from service.app import create_app
from service.protocol import ApiConfig

log = logging.getLogger("pointsview.dev")
BANNER_EVENT = "dev stack ready"


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
        log_banner(banner(settings, load), json_lines(settings.log_format))
        await asyncio.gather(projector, api)
    finally:
        stop.set()
        if projector:
            await asyncio.gather(projector, api, return_exceptions=True)
        redis.cleanup()
        broker.stop()


def banner(settings: Settings, load: Load) -> dict[str, str | int]:
    """What the stack's user needs once the demo data is loaded: the addresses, the demo customers, a curl."""
    api = f"http://{settings.api_host}:{settings.api_port}"
    last = load.first_customer_id + load.customers - 1
    return {
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "redis_url": settings.redis_url,
        "api": api,
        "loyalty_config": settings.loyalty_config,
        "demo_customers": load.customers,
        "org_id": load.org_id,
        "user_ids": f"{load.first_customer_id}..{last}",
        "try": f"curl -u {CREDENTIALS} {api}/v2/customers/{load.first_customer_id}/points/balance",
    }


def banner_text(fields: dict) -> str:
    return "\n".join(
        [
            BANNER_EVENT,
            f"  broker  KAFKA_BOOTSTRAP_SERVERS={fields['kafka_bootstrap_servers']}",
            f"  redis   REDIS_URL={fields['redis_url']}",
            f"  api     {fields['api']} (config {fields['loyalty_config']})",
            f"  loaded  {fields['demo_customers']} demo customers "
            f"(org {fields['org_id']}, userIds {fields['user_ids']})",
            f"  try     {fields['try']}",
            "  Ctrl-C stops everything.",
        ]
    )


def log_banner(fields: dict, as_json: bool) -> None:
    """One log line: in JSON its fields apart, on the console lines for people."""
    if as_json:
        log.info(BANNER_EVENT, extra=fields)
    else:
        log.info(banner_text(fields))
