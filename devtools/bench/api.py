"""`pointsview bench api`: the API's endpoints' throughput and latency next to a bare FastAPI endpoint and
raw Redis GETs, same run, same worker count.

Projects a synthetic load into Redis (the helpers of `bench projector`), then, for each worker count,
serves it with `pointsview api` and serves `bare_app` below with the same uvicorn settings, both as
subprocesses, and drives each endpoint in turn with devtools.loadgen in a process of its own: closed loop
(the maximum), then open loop at a fixed rate. Everything started here is stopped on leaving, errors and
Ctrl-C included. The userId balance is also measured on a second API whose clients have a rate limit
(configured, not reached): what the limiter costs; and the same customers' points ledger by userId.
"""

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import yaml
from fastapi import FastAPI
from fastapi.responses import Response

from devtools.bench.common import (
    ON_CLUSTER,
    BenchError,
    bench_settings,
    local_servers,
    on_cluster,
    print_table,
    produce_load,
    progress,
    projector_rate,
    start_api,
    start_process,
    synthetic_load,
    wait_ready,
)
from devtools.bench.redis_get import raw_gets, stored_value
from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.loadgen import Plan, Summary, fetch, measure_in_subprocess, read_response, request_bytes
from devtools.localstack import free_port
from devtools.synthetic import Load
from runtime.settings import Settings

EVENTS_PER_CUSTOMER = 20

# The shape and about the size of a balance response (service.balance.balance_body).
BARE_BODY = {
    "entityId": 1000,
    "entityType": "CUSTOMER",
    "totalPoints": 1520.25,
    "mainPoints": 1290.5,
    "promisedPoints": 229.75,
    "promisedPointsBreakup": {"delayedAccrualPoints": 180.0, "externalTriggerBasedPoints": 49.75},
    "warnings": [],
}

bare_app = FastAPI()  # served by `uvicorn devtools.bench.api:bare_app`: the floor under any endpoint


@bare_app.get("/bare")
async def bare() -> Response:
    return Response(orjson.dumps(BARE_BODY), media_type="application/json")  # rendered per request, as the API does


@dataclass(frozen=True)
class Target:
    endpoint: str  # short name, the JSON's
    label: str  # the table's
    port: int
    paths: list[str]  # rotated over
    baseline: bool = False  # measured closed loop only


@dataclass(frozen=True)
class Row:
    workers: int
    endpoint: str
    label: str
    mode: str  # "closed" (the maximum) or "open" (at `rate`)
    rate: float | None
    summary: Summary


def _uvicorn_env(workers: int, stack: ExitStack) -> dict[str, str]:
    env = dict(os.environ)
    if workers > 1:  # the API's multi-worker metrics need one; `pointsview api` would leave its own behind
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsview-bench-metrics-")
        stack.callback(shutil.rmtree, env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    return env


async def _start_bare(workers: int, env: dict, stack: ExitStack) -> int:
    port = free_port()
    process = start_process(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devtools.bench.api:bare_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        stack,
    )
    await wait_ready(process, port, "/bare", "the bare app")
    return port


async def _preflight(port: int, path: str) -> None:
    """A benchmark of 404s or 401s would measure nothing useful: refuse at once."""
    status, body = await fetch(port, path, AUTH_HEADERS)
    if status != 200:
        raise BenchError(f"GET {path} answered {status}: {body[:200].decode(errors='replace')}")


def _targets(bare_port: int, api_port: int, load: Load) -> list[Target]:
    """The bare baseline, then every customer of the load by userId, by mobile, by mobile and email (dual
    eligibility: the demo org's primary identifier, mobile, decides), and its details."""
    ids = range(load.first_customer_id, load.first_customer_id + load.customers)
    lookup = "/v2/customers/lookup/points/balance?source=INSTORE&identifierName="
    details = "/v2/customers/lookup/customerDetails?source=INSTORE&embed=mlp,points&identifierName=mobile"
    return [
        Target("bare", "bare FastAPI (baseline)", bare_port, ["/bare"], baseline=True),
        Target("userId", "userId balance", api_port, [f"/v2/customers/{n}/points/balance" for n in ids]),
        Target("lookup", "lookup balance, mobile", api_port, [f"{lookup}mobile&identifierValue=9{n:09d}" for n in ids]),
        Target(
            "dual",
            "lookup balance, mobile+email",
            api_port,
            [f"{lookup}mobile,email&identifierValue=9{n:09d},user{n}%40example.com" for n in ids],
        ),
        Target(
            "details", "customerDetails, mlp,points", api_port, [f"{details}&identifierValue=9{n:09d}" for n in ids]
        ),
    ]


def _ledger(target: Target) -> Target:
    """The same customers' points ledger by userId (a page of the default 20 entries)."""
    paths = [path.replace("/points/balance", "/points/ledger") for path in target.paths]
    return dataclasses.replace(target, endpoint="ledger", label="userId ledger, 20 entries a page", paths=paths)


async def _measure(target: Target, workers: int, connections: int, duration: float, rate: float | None) -> list[Row]:
    """The closed-loop maximum; for the API's endpoints also the open loop at `rate` (default: half that)."""
    await _preflight(target.port, target.paths[0])
    plan = Plan(
        port=target.port,
        paths=target.paths,
        headers=AUTH_HEADERS,
        connections=connections,
        duration=duration,
        warmup=min(1.0, duration),
    )
    closed = await measure_in_subprocess(plan)
    rows = [Row(workers, target.endpoint, target.label, "closed", None, closed)]
    if not target.baseline:
        open_rate = rate or max(1.0, closed.rps / 2)
        rows.append(
            Row(
                workers,
                target.endpoint,
                target.label,
                "open",
                open_rate,
                await measure_in_subprocess(dataclasses.replace(plan, rate=open_rate)),
            )
        )
    return rows


WAITERS = 200  # requests held waiting on afterEventId during the "waiting" rows
WAIT_MS = 5000  # each of them for the longest waitMs


async def _beside_waiters(target: Target, open_rate: float, workers: int, connections: int, duration: float):
    """`target` again, closed loop and open loop at `open_rate` (the row without waiters'), while WAITERS
    requests wait on events that are never applied (afterEventId, waitMs=WAIT_MS), each sent again on its
    keep-alive connection when it ends: what waiting requests cost the others. The waiters start spread
    over WAIT_MS, as tills' requests come: WAITERS are always waiting and WAITERS / WAIT_MS end each
    second (all starting together would end together, a burst every WAIT_MS)."""
    waiting = [
        asyncio.create_task(_wait_forever(target.port, target.paths[i % len(target.paths)], i * WAIT_MS / WAITERS))
        for i in range(WAITERS)
    ]
    try:
        await asyncio.sleep(WAIT_MS / 1000 + 0.5)  # every waiter in flight
        beside = dataclasses.replace(
            target, endpoint=f"{target.endpoint}-waiting", label=f"{target.label}, {WAITERS} requests waiting"
        )
        rows = await _measure(beside, workers, connections, duration, open_rate)
        if failed := [t.exception() for t in waiting if t.done() and not t.cancelled() and t.exception()]:
            raise BenchError(f"{len(failed)} waiting requests failed: {failed[0]}")
        return rows
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)


async def _wait_forever(port: int, path: str, delay_ms: float) -> None:
    await asyncio.sleep(delay_ms / 1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            never = uuid.uuid4().hex
            writer.write(
                request_bytes("127.0.0.1", port, f"{path}?afterEventId={never}&waitMs={WAIT_MS}", AUTH_HEADERS)
            )
            status, body, _ = await read_response(reader)
            if status != 200:
                raise BenchError(f"a waiting request answered {status}: {body[:200]!r}")
    finally:
        writer.close()


RATE_LIMIT_DEFAULT = 100_000.0  # requests/s (and burst) of the "limit configured, not reached" row


def _rate_limited_config(config: Path, requests_per_second: float, stack: ExitStack) -> Path:
    """`config` with every org's default rateLimit set (each client then has a bucket of its own)."""
    document = yaml.safe_load(config.read_text())
    for org in document["orgs"]:
        org["rateLimit"] = {"requestsPerSecond": requests_per_second, "burst": max(1, round(requests_per_second))}
    directory = Path(tempfile.mkdtemp(prefix="pointsview-bench-config-"))
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "loyalty-rate-limited.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass(frozen=True)
class _Sweep:
    """Every target at one worker count after another, over one projected load."""

    settings: Settings
    clustered: Settings | None  # the same load on a local Redis Cluster
    load: Load
    key: str  # what the raw GETs read
    config: Path
    connections: int
    duration: float
    rate: float | None
    rate_limit: float

    async def rows(self, workers: int) -> list[Row]:
        progress.print(
            f"{workers} worker(s): starting the API and the bare app; each endpoint "
            f"{self.duration:g}s closed loop, then {self.duration:g}s open loop, {self.connections} connections ..."
        )
        rows = []
        with ExitStack() as stack:
            env = _uvicorn_env(workers, stack)
            api_port = await start_api(self.settings, workers, self.config, env, stack)
            limited_config = _rate_limited_config(self.config, self.rate_limit, stack)
            limited_port = await start_api(self.settings, workers, limited_config, env, stack)
            bare_port = await _start_bare(workers, env, stack)
            for target in _targets(bare_port, api_port, self.load):
                rows += await self._measure(target, workers, self.rate)
                if target.baseline:
                    label, summary = await raw_gets(self.settings, self.key, self.connections, self.duration)
                    rows.append(Row(workers, "redis", label, "closed", None, summary))
                if target.endpoint == "userId":
                    rows += await self._beside_user_id(target, workers, limited_port, open_rate=rows[-1].rate)
            if self.clustered:
                rows += await self._on_cluster(self.clustered, workers, bare_port, env, stack)
        return rows

    async def _measure(self, target: Target, workers: int, rate: float | None) -> list[Row]:
        return await _measure(target, workers, self.connections, self.duration, rate)

    async def _beside_user_id(self, target: Target, workers: int, limited_port: int, open_rate: float) -> list[Row]:
        """The userId balance's ledger; the balance with a rate limit; the balance beside requests waiting."""
        rows = await self._measure(_ledger(target), workers, self.rate)
        limited = dataclasses.replace(
            target,
            endpoint="userId-limited",
            label=f"{target.label}, rate limit {self.rate_limit:,.0f}/s configured, not reached",
            port=limited_port,
        )
        rows += await self._measure(limited, workers, open_rate)
        rows += await _beside_waiters(target, open_rate, workers, self.connections, self.duration)
        return rows

    async def _on_cluster(
        self, clustered: Settings, workers: int, bare_port: int, env: dict, stack: ExitStack
    ) -> list[Row]:
        cluster_port = await start_api(clustered, workers, self.config, env, stack)
        rows = []
        for target in _targets(bare_port, cluster_port, self.load)[1:]:
            on = dataclasses.replace(target, endpoint=f"{target.endpoint}-cluster", label=target.label + ON_CLUSTER)
            rows += await self._measure(on, workers, self.rate)
        return rows


async def _projected(settings: Settings, load: Load, clustered: Settings | None) -> None:
    """The load produced, then projected into Redis (and into the cluster too)."""
    progress.print(
        f"producing {load.customers * EVENTS_PER_CUSTOMER:,} events ({load.customers:,} customers, "
        f"{len(load.programs)} programs) and projecting them ..."
    )
    stream = await produce_load(settings, load)
    await projector_rate(settings, len(stream))  # runs the projector until all is applied; rate unused
    if clustered:
        await projector_rate(clustered, len(stream))


async def run_api_bench(
    workers: list[int],
    connections: int,
    duration: float,
    customers: int,
    rate: float | None = None,
    config: Path = DEMO_CONFIG,
    redis_cluster: bool = False,
    rate_limit: float = RATE_LIMIT_DEFAULT,
) -> dict:
    """Every target at every worker count; the raw Redis GETs once per worker count, beside them; the userId
    balance again on an API whose clients have a rate limit of `rate_limit` requests/s (configured, not
    reached: what the limiter costs). With `redis_cluster`, the API's endpoints again on a local Redis
    Cluster holding the same load."""
    rows = []
    with local_servers(redis_cluster) as servers:
        settings = bench_settings(servers)
        load = synthetic_load(settings, customers, EVENTS_PER_CUSTOMER)
        clustered = on_cluster(settings, servers) if redis_cluster else None
        await _projected(settings, load, clustered)
        key, size = await stored_value(settings, load)
        sweep = _Sweep(settings, clustered, load, key, config, connections, duration, rate, rate_limit)
        for count in workers:
            rows += await sweep.rows(count)
    return {
        "benchmark": "api",
        "workers": workers,
        "connections": connections,
        "duration": duration,
        "customers": customers,
        "rate_limit": rate_limit,
        "programs": len(load.programs),
        "events_per_customer": EVENTS_PER_CUSTOMER,
        "redis_value_bytes": size,
        "results": _as_json(rows),
    }


def _as_json(rows: list[Row]) -> list[dict]:
    bare = {row.workers: row.summary.rps for row in rows if row.endpoint == "bare"}
    return [
        {
            "workers": row.workers,
            "endpoint": row.endpoint,
            "label": row.label,
            "mode": row.mode,
            "rate": row.rate,
            **asdict(row.summary),
            "vs_bare": round(row.summary.rps / bare[row.workers], 3)
            if row.mode == "closed" and bare[row.workers]
            else None,
        }
        for row in rows
    ]


API_COLUMNS = ["endpoint", "load", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors", "vs bare"]


def api_title(result: dict, workers: int) -> str:
    return (
        f"API, {workers} worker(s), {result['connections']} connections, {result['duration']:g}s per row, "
        f"{result['customers']:,} customers x {result['events_per_customer']} events, "
        f"{result['programs']} programs"
    )


def api_rows(result: dict, workers: int) -> list[list[str]]:
    return [
        [
            row["label"],
            "max" if row["mode"] == "closed" else f"at {row['rate']:,.0f}/s",
            f"{row['rps']:,.0f}",
            *(f"{row[p]:.2f}" for p in ("p50_ms", "p90_ms", "p99_ms", "p999_ms")),
            f"{row['errors']:,}",
            f"{row['vs_bare']:.2f}x" if row["vs_bare"] is not None else "",
        ]
        for row in result["results"]
        if row["workers"] == workers
    ]


def show_api(result: dict, as_json: bool) -> None:
    if as_json:
        return print(json.dumps(result, indent=2))
    for workers in result["workers"]:
        print_table(
            api_title(result, workers),
            API_COLUMNS,
            api_rows(result, workers),
            caption="max: closed loop; at R/s: open loop, latency from the scheduled send",
        )
