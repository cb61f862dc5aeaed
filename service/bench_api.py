"""`pointsview bench api`: the balance endpoints' throughput and latency next to a bare FastAPI endpoint,
same run, same worker count, same load generator.

Projects a synthetic load into Redis (the helpers of `bench projector`), then serves it with
`pointsview api` and serves `bare_app` below with the same uvicorn settings, both as subprocesses, and
drives each endpoint in turn with service.loadgen in a process of its own. Everything started here is
stopped on leaving, errors and Ctrl-C included.
"""

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from rich.console import Console
from rich.table import Table

from service.bench import bench_settings, local_servers, produce_load, projector_rate, synthetic_load
from service.loadgen import Plan, Summary, fetch, measure_in_subprocess
from service.localstack import LocalServerError, free_port
from service.settings import Settings
from service.synthetic import Load

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "loyalty.yaml"
CREDENTIALS = "till.docdemo:demo-password"  # the demo client of config/loyalty.yaml
EVENTS_PER_CUSTOMER = 10
READY_TIMEOUT_SECONDS = 30

# The shape and about the size of a balance response (service.balance.balance_body).
BARE_BODY = {"entityId": 1000, "entityType": "CUSTOMER", "totalPoints": 1520.25, "mainPoints": 1290.5,
             "promisedPoints": 229.75, "promisedPointsBreakup": {"delayedAccrualPoints": 180.0,
                                                                 "externalTriggerBasedPoints": 49.75},
             "warnings": []}

bare_app = FastAPI()  # served by `uvicorn service.bench_api:bare_app`: the floor under any endpoint


@bare_app.get("/bare")
async def bare() -> Response:
    return Response(orjson.dumps(BARE_BODY), media_type="application/json")  # rendered per request, as the API does


class BenchError(LocalServerError):
    """A server of the benchmark would not start or answered wrongly (one line, no traceback)."""


@dataclass(frozen=True)
class Row:
    endpoint: str  # short name, the JSON's key
    label: str  # the table's
    summary: Summary


def _uvicorn_env(workers: int, stack: ExitStack) -> dict[str, str]:
    env = dict(os.environ)
    if workers > 1:  # the API's multi-worker metrics need one; `pointsview api` would leave its own behind
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsview-bench-metrics-")
        stack.callback(shutil.rmtree, env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    return env


def _start(command: list[str], env: dict[str, str], stack: ExitStack) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, cwd=PACKAGE_ROOT, stdout=subprocess.DEVNULL,
                               start_new_session=True)  # a terminal's Ctrl-C reaches only us; we stop it
    stack.callback(_stop, process)
    return process


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets uvicorn's supervisor stop its workers; then SIGKILL to whatever is left in its group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group is the server's own (start_new_session)
    except ProcessLookupError:
        pass
    process.wait()


async def _wait_ready(process: subprocess.Popen, port: int, path: str, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    while loop.time() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} at start")
        try:
            if (await fetch(port, path))[0] == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"{what} not ready on 127.0.0.1:{port}{path} within {READY_TIMEOUT_SECONDS}s")


async def _start_api(settings: Settings, workers: int, config: Path, env: dict, stack: ExitStack) -> int:
    port = free_port()
    env = {**env, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers, "REDIS_URL": settings.redis_url,
           "POINTSVIEW_KEY_PREFIX": settings.key_prefix, "LOYALTY_CONFIG": str(config)}
    process = _start([sys.executable, "-m", "service", "api", "--port", str(port), "--workers", str(workers)],
                     env, stack)
    await _wait_ready(process, port, "/health/ready", "the API")
    return port


async def _start_bare(workers: int, env: dict, stack: ExitStack) -> int:
    port = free_port()
    process = _start([sys.executable, "-m", "uvicorn", "service.bench_api:bare_app", "--host", "127.0.0.1",
                      "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
                      "--no-access-log", "--log-level", "warning"], env, stack)
    await _wait_ready(process, port, "/bare", "the bare app")
    return port


async def _preflight(port: int, path: str, headers: dict[str, str]) -> None:
    """A benchmark of 404s or 401s would measure nothing useful: refuse at once."""
    status, body = await fetch(port, path, headers)
    if status != 200:
        raise BenchError(f"GET {path} answered {status}: {body[:200].decode(errors='replace')}")


def _targets(bare_port: int, api_port: int, load: Load) -> list[tuple[str, str, int, list[str]]]:
    """(name, label, port, paths): every customer of the load, by userId, by mobile, and its details."""
    ids = range(load.first_customer_id, load.first_customer_id + load.customers)
    lookup = "/v2/customers/lookup/points/balance?source=INSTORE&identifierName=mobile&identifierValue="
    details = ("/v2/customers/lookup/customerDetails?source=INSTORE&embed=mlp,points,expirySchedules"
               "&identifierName=mobile&identifierValue=")
    return [
        ("bare", "bare (baseline)", bare_port, ["/bare"]),
        ("userId", "userId balance", api_port, [f"/v2/customers/{n}/points/balance" for n in ids]),
        ("lookup", "mobile lookup balance", api_port, [f"{lookup}9{n:09d}" for n in ids]),
        ("details", "details mlp,points,expiry", api_port,
         [f"{details}9{n:09d}" for n in ids]),
    ]


async def _measure_all(targets, connections: int, duration: float) -> list[Row]:
    headers = {"Authorization": "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()}
    rows = []
    for name, label, port, paths in targets:
        await _preflight(port, paths[0], headers)
        plan = Plan(port=port, paths=paths, headers=headers, connections=connections, duration=duration)
        rows.append(Row(name, label, await measure_in_subprocess(plan)))
    return rows


async def run_api_bench(workers: int, connections: int, duration: float, customers: int,
                        config: Path = DEFAULT_CONFIG, as_json: bool = False) -> None:
    progress = Console(stderr=True)
    with local_servers() as (servers, redis_url), ExitStack() as stack:
        settings = bench_settings(servers, redis_url)
        load = synthetic_load(settings, customers, EVENTS_PER_CUSTOMER)
        progress.print(f"producing {customers * EVENTS_PER_CUSTOMER:,} events ({customers:,} customers) ...")
        stream = await produce_load(settings, load)
        await projector_rate(settings, len(stream))  # runs the projector until all is applied; rate unused
        progress.print(f"projected into Redis; starting the API and the bare app, {workers} worker(s) each ...")
        env = _uvicorn_env(workers, stack)
        api_port = await _start_api(settings, workers, config, env, stack)
        bare_port = await _start_bare(workers, env, stack)
        progress.print(f"measuring each endpoint for {duration:g}s after 1s of warm-up, "
                       f"{connections} connections ...")
        rows = await _measure_all(_targets(bare_port, api_port, load), connections, duration)
    run = {"workers": workers, "connections": connections, "duration": duration, "customers": customers}
    if as_json:
        print(json.dumps(_as_json(run, rows), indent=2))
    else:
        Console().print(_table(run, rows))


def _as_json(run: dict, rows: list[Row]) -> dict:
    bare_rps = rows[0].summary.rps
    return {**run, "results": [{"endpoint": row.endpoint, **asdict(row.summary),
                                "vs_bare": round(row.summary.rps / bare_rps, 3) if bare_rps else None}
                               for row in rows]}


def _table(run: dict, rows: list[Row]) -> Table:
    table = Table(title=f"API, {run['workers']} worker(s), {run['connections']} connections, "
                        f"{run['duration']:g}s per endpoint, {run['customers']:,} customers",
                  caption="load generator CPU (1.00 = one core busy): "
                          + ", ".join(f"{row.summary.cpu:.2f}" for row in rows))
    table.add_column("endpoint", no_wrap=True)
    for column in ("req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "vs bare"):
        table.add_column(column, justify="right")
    bare_rps = rows[0].summary.rps
    for row in rows:
        s = row.summary
        ratio = f"{s.rps / bare_rps:.2f}x" if bare_rps else "-"
        table.add_row(row.label, f"{s.rps:,.0f}", f"{s.p50_ms:.2f}", f"{s.p90_ms:.2f}", f"{s.p99_ms:.2f}",
                      f"{s.errors:,}", ratio)
    return table
