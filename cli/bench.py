"""`pointsview bench ...`: benchmarks that print figures next to same-run baselines."""

import asyncio
from pathlib import Path

import typer

from cli.common import JSON_OPTION, one_line_errors, positive
from runtime.logs import configure

app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures next to same-run baselines.")


def _counts(value: str) -> list[int]:
    """`--workers 1,2`: the option's value becomes the list."""
    try:
        counts = [int(part) for part in value.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise typer.BadParameter(f"{value!r}: counts are positive integers separated by commas, e.g. 1,2")
    return counts


def _with_one(value: str) -> list[int]:
    """`--processes 2`: one process is measured first, the baseline of the scaling."""
    return sorted({1, *_counts(value)})


PROCESSES_OPTION = typer.Option(
    "1", callback=_with_one, help="Projector (and rebuild) processes; a list (1,2) measures each: the scaling."
)
CUSTOMERS_OPTION = typer.Option(
    "50000",
    callback=_counts,
    help="Distinct customers; a list (10000,50000,200000) measures each with the first's events per customer.",
)
REDIS_CLUSTER_OPTION = typer.Option(
    False, "--redis-cluster", help="Also on a local three-master Redis Cluster, reported beside one Redis."
)
REPORT_OPTION = typer.Option(None, "--report", file_okay=False, help="Also write DIR/<benchmark>.md with PNG charts.")
WORKERS_OPTION = typer.Option(
    "1",
    callback=_counts,
    help="uvicorn worker processes, for the API and the bare app alike; a list (1,2) measures each.",
)
RATE_OPTION = typer.Option(
    None,
    callback=positive,
    help="Open-loop requests/s for every endpoint (default: half of its closed-loop maximum).",
)
CONFIG_OPTION = typer.Option(
    None,
    exists=True,
    dir_okay=False,
    resolve_path=True,
    help="LOYALTY_CONFIG of the API (default: the package's config/loyalty.yaml).",
)
RATE_LIMIT_OPTION = typer.Option(
    100_000,
    callback=positive,
    help="Requests/s (and burst) of the rate limit of the userId row that has one (set well above the "
    "throughput: what the limiter costs when not reached).",
)


def _bench(run, show, as_json: bool, report: Path | None) -> None:
    """Runs a benchmark coroutine, writes its report if asked, then prints its figures."""
    configure("WARNING")
    with one_line_errors():
        result = asyncio.run(run)
    if report:
        from devtools.bench.report import write_report

        typer.echo(f"report: {write_report(report, result)}", err=True)
    show(result, as_json)


@app.command("projector")
def bench_projector(
    events: int = typer.Option(1_000_000, min=1, help="Events to pre-produce (for the first customer count)."),
    customers: str = CUSTOMERS_OPTION,
    processes: str = PROCESSES_OPTION,
    rate: float = typer.Option(2000, callback=positive, help="Events/s produced while timing produce-to-visible."),
    duration: float = typer.Option(20.0, callback=positive, help="Seconds of produce-to-visible timing."),
    redis_cluster: bool = REDIS_CLUSTER_OPTION,
    as_json: bool = JSON_OPTION,
    report: Path = REPORT_OPTION,
) -> None:
    """Projector apply rate (events/s) next to a bare aiokafka consumer on the same topics, per process count
    and customer count, then the produce-to-visible latency through the API at a fixed rate."""
    from devtools.bench.projector import run_projector_bench, show_rates

    run = run_projector_bench(
        events, customers, processes, visible_rate=rate, visible_seconds=duration, redis_cluster=redis_cluster
    )
    _bench(run, show_rates, as_json, report)


@app.command("rebuild")
def bench_rebuild(
    events: int = typer.Option(1_000_000, min=1, help="Events to pre-produce."),
    customers: int = typer.Option(50_000, min=1, help="Distinct customers in the stream."),
    processes: str = PROCESSES_OPTION,
    as_json: bool = JSON_OPTION,
    report: Path = REPORT_OPTION,
) -> None:
    """`pointsview rebuild` (wall clock, switch included) next to the live projector and a bare consumer,
    same log, same run."""
    from devtools.bench.projector import run_projector_bench, show_rates

    _bench(run_projector_bench(events, [customers], processes, rebuild=True), show_rates, as_json, report)


@app.command("memory")
def bench_memory(
    customers: int = typer.Option(100_000, min=1, help="Customers to project."),
    events: int = typer.Option(20, min=1, help="Events per customer."),
    programs: int = typer.Option(1, min=1, max=2, help="Programs the events spread over (2: the api bench's load)."),
    ledger_entries: int = typer.Option(
        20, min=1, max=1000, help="Points ledger entries kept per customer (the same load is also run with none)."
    ),
    as_json: bool = JSON_OPTION,
    report: Path = REPORT_OPTION,
) -> None:
    """Redis bytes per customer (state, identifier index), per identifier and per points ledger entry (against
    the same load with the ledger off); the eventId dedup window and the ledger apart."""
    from devtools.bench.memory import run_memory_bench, show_memory

    _bench(run_memory_bench(customers, events, programs, ledger_entries), show_memory, as_json, report)


@app.command("api")
def bench_api(
    workers: str = WORKERS_OPTION,
    connections: int = typer.Option(32, min=1, help="Concurrent keep-alive connections of the load generator."),
    duration: float = typer.Option(10.0, min=0.1, help="Seconds measured per row (after up to 1 s of warm-up)."),
    customers: int = typer.Option(
        100_000, min=1, help="Customers projected (20 events each, 2 programs); requests rotate over all."
    ),
    rate: float = RATE_OPTION,
    config: Path = CONFIG_OPTION,
    redis_cluster: bool = REDIS_CLUSTER_OPTION,
    rate_limit: float = RATE_LIMIT_OPTION,
    as_json: bool = JSON_OPTION,
    report: Path = REPORT_OPTION,
) -> None:
    """The API's endpoints' req/s and latency, closed and open loop, next to a bare FastAPI endpoint and raw
    Redis GETs, same workers, same run; the userId balance again with a rate limit configured, not reached."""
    from devtools.bench.api import run_api_bench, show_api
    from devtools.demo import DEMO_CONFIG

    run = run_api_bench(
        workers, connections, duration, customers, rate, config or DEMO_CONFIG, redis_cluster, rate_limit
    )
    _bench(run, show_api, as_json, report)
