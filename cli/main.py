"""The `pointsview` console script."""

import asyncio
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from pydantic import ValidationError

from runtime.logs import configure
from runtime.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Loyalty points read-model.")
bench = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures next to same-run baselines.")
app.add_typer(bench, name="bench")
deadletters = typer.Typer(no_args_is_help=True, help="Inspect and re-drive the dead-letter topic.")
app.add_typer(deadletters, name="deadletters")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"pointsview: {settings_error(exc)}", err=True)
        raise typer.Exit(2)


def settings_error(exc: ValidationError) -> str:
    """The first error, naming the environment variable (never echoing the value: it may be a secret)."""
    err = exc.errors()[0]
    if not err["loc"]:  # a rule over several settings: its message names them
        return f"invalid settings: {err['msg'].removeprefix('Value error, ')}"
    name = str(err["loc"][0]).upper()
    unprefixed = {str(f.validation_alias) for f in Settings.model_fields.values() if f.validation_alias}
    if name not in unprefixed:
        name = f"POINTSVIEW_{name}"
    return f"invalid setting {name}: {err['msg'].removeprefix('Value error, ')}"


async def until_signalled(main, *args):
    """Runs `main(*args, stop)` and returns what it returns (an exit code, say); SIGTERM/SIGINT set `stop`
    so the current batch finishes first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await main(*args, stop)


@contextmanager
def one_line_errors():
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisClusterException, RedisError

    from consumers.projector import LogTruncated, StartupError
    from devtools.localstack import LocalServerError

    try:
        yield
    except (StartupError, LocalServerError, LogTruncated) as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(1)
    # the short-lived commands' dependencies (RedisClusterException: a cluster with a slot nobody serves)
    except (KafkaError, RedisError, RedisClusterException, TimeoutError) as exc:
        typer.echo(f"pointsview: {exc.__class__.__name__}: {exc}", err=True)
        raise typer.Exit(1)


@app.command()
def projector(
    processes: int = typer.Option(1, min=1, help="Consumer-group members, one process each (a core each)."),
) -> None:
    """Consume the event topics into the Redis read-model (KAFKA_BOOTSTRAP_SERVERS, REDIS_URL)."""
    from consumers.projector import run_until_signalled

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    if processes > 1:
        from consumers.members import run_members

        raise typer.Exit(run_members(settings, processes))
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    with one_line_errors():
        run_until_signalled(settings)


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (POINTSVIEW_API_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (POINTSVIEW_API_PORT, default 8000)."),
    workers: int = typer.Option(None, min=1, help="uvicorn worker processes (POINTSVIEW_API_WORKERS, default 1)."),
    reuse_port: bool = typer.Option(
        False, help="Bind with SO_REUSEPORT: several `pointsview api` processes share the port (Linux)."
    ),
) -> None:
    """Serve the v2 balance API over the Redis read-model (uvicorn, uvloop, httptools)."""
    import os
    import shutil
    import tempfile

    from runtime.logs import uvicorn_log_config
    from service.loyalty import ConfigError, load_loyalty_config
    from service.protocol import ApiConfig
    from service.tokens import token_keys

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    try:
        token_keys(settings, load_loyalty_config(settings.loyalty_config))  # refused once, before any worker
    except ConfigError as exc:
        typer.echo(f"pointsview: {exc}", err=True)
        raise typer.Exit(2)
    workers = workers or settings.api_workers
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pointsview-metrics-")
    config = ApiConfig(
        "service.app:app_from_environment",
        request_timeout=settings.api_request_timeout_seconds,
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        loop="uvloop",
        access_log=settings.api_access_log,
        log_level="warning",
        lifespan="on",
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
    )
    try:
        serve(config, reuse_port)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def serve(config, reuse_port: bool) -> None:
    """uvicorn.run's serving, on a socket bound here: workers share it, and with `reuse_port` so can other
    processes (the kernel spreads connections over every socket bound to the port)."""
    import socket

    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        typer.echo(f"pointsview: cannot bind {config.host}:{config.port}: {exc.strerror}", err=True)
        raise typer.Exit(1)
    sock.set_inheritable(True)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            config.load_app()
            Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass


@app.command()
def dev(customers: int = typer.Option(50, help="Demo customers to load.")) -> None:
    """Local stack: broker, Redis, projector, demo data. Ctrl-C stops everything."""
    from devtools.devstack import run_dev

    configure("INFO")
    with one_line_errors():
        asyncio.run(until_signalled(run_dev, customers))


generations = typer.Typer(invoke_without_command=True, help="Read-model generations (list, switch, drop).")
app.add_typer(generations, name="generations")


@app.command()
def rebuild(
    switch: bool = typer.Option(
        True, "--switch/--no-switch", help="Hand over and make the new generation live when built."
    ),
    processes: int = typer.Option(1, min=1, help="Processes replaying the partitions in parallel (a core each)."),
) -> None:
    """Replay every topic from offset 0 into a new generation beside the live one, then switch atomically."""
    from cli.rebuild import rebuild as run

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors():
        raise typer.Exit(
            asyncio.run(until_signalled(lambda s, stop: run(s, switch, stop, processes=processes), settings))
        )


@generations.callback()
def generations_list(ctx: typer.Context) -> None:
    """List generations; the live one is marked *."""
    if ctx.invoked_subcommand is None:
        from cli.rebuild import list_generations

        with one_line_errors():
            asyncio.run(list_generations(load_settings()))


@generations.command("drop")
def generations_drop(generation: int) -> None:
    """Delete every key of a generation that is not live."""
    from cli.rebuild import drop_generation

    with one_line_errors():
        raise typer.Exit(asyncio.run(drop_generation(load_settings(), generation)))


@generations.command("switch")
def generations_switch(generation: int) -> None:
    """Catch GENERATION up to the end of the log, then make it live (the same hand-over as rebuild)."""
    from cli.rebuild import rebuild as run

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors():
        raise typer.Exit(
            asyncio.run(until_signalled(lambda s, stop: run(s, True, stop, generation=generation), settings))
        )


@app.command()
def rollback() -> None:
    """Make the generation that was live before the current one live again (caught up first)."""
    from cli.rebuild import previous_generation

    settings = load_settings()
    with one_line_errors():
        previous = asyncio.run(previous_generation(settings))
    if previous is None:
        typer.echo("pointsview: the live generation has no previous one to roll back to", err=True)
        raise typer.Exit(2)
    generations_switch(previous)


@app.command()
def verify(
    generation: int = typer.Option(None, help="Generation to check (default: the live one)."),
    against: int = typer.Option(None, help="Compare with this generation instead of a fresh fold of the log."),
) -> None:
    """Compare a generation with a fresh fold of the log (or another generation); exit 1 when they differ."""
    from cli.rebuild import verify as run

    settings = load_settings()
    configure("WARNING", settings.log_format)
    with one_line_errors():
        raise typer.Exit(asyncio.run(run(settings, generation, against)))


def _positive(value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise typer.BadParameter("must be more than 0")
    return value


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
JSON_OPTION = typer.Option(False, "--json", help="Print the figures as JSON (progress goes to stderr).")
REPORT_OPTION = typer.Option(None, "--report", file_okay=False, help="Also write DIR/<benchmark>.md with PNG charts.")


def _bench(run, show, as_json: bool, report: Path | None) -> None:
    """Runs a benchmark coroutine, writes its report if asked, then prints its figures."""
    configure("WARNING")
    with one_line_errors():
        result = asyncio.run(run)
    if report:
        from devtools.bench.report import write_report

        typer.echo(f"report: {write_report(report, result)}", err=True)
    show(result, as_json)


@bench.command("projector")
def bench_projector(
    events: int = typer.Option(1_000_000, min=1, help="Events to pre-produce (for the first customer count)."),
    customers: str = CUSTOMERS_OPTION,
    processes: str = PROCESSES_OPTION,
    rate: float = typer.Option(2000, callback=_positive, help="Events/s produced while timing produce-to-visible."),
    duration: float = typer.Option(20.0, callback=_positive, help="Seconds of produce-to-visible timing."),
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


@bench.command("rebuild")
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


@bench.command("memory")
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


@bench.command("api")
def bench_api(
    workers: str = typer.Option(
        "1",
        callback=_counts,
        help="uvicorn worker processes, for the API and the bare app alike; a list (1,2) measures each.",
    ),
    connections: int = typer.Option(32, min=1, help="Concurrent keep-alive connections of the load generator."),
    duration: float = typer.Option(10.0, min=0.1, help="Seconds measured per row (after up to 1 s of warm-up)."),
    customers: int = typer.Option(
        100_000, min=1, help="Customers projected (20 events each, 2 programs); requests rotate over all."
    ),
    rate: float = typer.Option(
        None,
        callback=_positive,
        help="Open-loop requests/s for every endpoint (default: half of its closed-loop maximum).",
    ),
    config: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        resolve_path=True,
        help="LOYALTY_CONFIG of the API (default: the package's config/loyalty.yaml).",
    ),
    redis_cluster: bool = REDIS_CLUSTER_OPTION,
    rate_limit: float = typer.Option(
        100_000,
        callback=_positive,
        help="Requests/s (and burst) of the rate limit of the userId row that has one (set well above the "
        "throughput: what the limiter costs when not reached).",
    ),
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


def _fault_kinds(value: str) -> str:
    from devtools.soak import FAULT_KINDS

    kinds = [kind for kind in value.split(",") if kind] if value != "none" else []
    if unknown := sorted(set(kinds) - set(FAULT_KINDS)):
        raise typer.BadParameter(f"unknown {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)} (or none)")
    return value


@app.command()
def soak(
    duration: float = typer.Option(600.0, callback=_positive, help="Seconds of load (default 10 minutes)."),
    reads: float = typer.Option(
        2000.0, callback=_positive, help="Reads/s, open loop over 4 endpoints (5,000 does not fit 2 cores)."
    ),
    events: float = typer.Option(
        1000.0, callback=_positive, help="Events/s produced (2,000 does not fit 2 cores beside the reads)."
    ),
    faults: str = typer.Option(
        "projector,redis,broker,api,rebuild", callback=_fault_kinds, help="Fault kinds to inject, or none."
    ),
    customers: int = typer.Option(20_000, min=1, help="Customers registered first; events and reads spread over all."),
    projectors: int = typer.Option(2, min=1, help="`pointsview projector` processes (one consumer group)."),
    kafka: str = typer.Option(
        None, envvar="KAFKA_BOOTSTRAP_SERVERS", help="An existing broker (default: a local one; no broker fault)."
    ),
    redis: str = typer.Option(
        None, envvar="REDIS_URL", help="An existing Redis (default: a local one with AOF; no Redis fault)."
    ),
    as_json: bool = JSON_OPTION,
    report: Path = typer.Option(None, "--report", file_okay=False, help="Also write DIR/soak.md and its charts."),
) -> None:
    """The whole stack under load while faults are injected, then every customer compared with a fold of the
    log; exit 0 only with no drift, no lost event and no failed read outside the faults' outage windows."""
    import json

    from devtools.soak import SoakError, SoakOptions, run_soak

    options = SoakOptions(
        duration=duration,
        reads=reads,
        events=events,
        faults=tuple(kind for kind in faults.split(",") if kind and faults != "none"),
        customers=customers,
        projectors=projectors,
        kafka=kafka,
        redis=redis,
        logs=report / "logs" if report else None,
    )
    configure("WARNING")
    with one_line_errors():
        try:
            result = asyncio.run(run_soak(options))
        except SoakError as exc:
            typer.echo(f"pointsview: {exc}", err=True)
            raise typer.Exit(1)
    if report:
        from devtools.soak_report import write_report

        typer.echo(f"report: {write_report(report, result)}", err=True)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=2))
    else:
        _show_soak(result)
    raise typer.Exit(0 if result["passed"] else 1)


def _show_soak(result: dict) -> None:
    reads, fresh = result["reads"], result["freshness"]
    lines = [
        f"soak {'PASSED' if result['passed'] else 'FAILED'}: {result['duration_s']:g}s, "
        f"{result['events_produced']:,} events produced, {result['events_applied']:,} applied, "
        f"drift {result['drift']}, lost {result['lost_events']}",
        f"reads {reads['total']:,}: non-2xx {reads['non2xx']:,} ({reads['non2xx_outside_outages']} outside outages), "
        f"p50 {reads['p50_ms']:.2f} ms, p99 {reads['p99_ms']:.2f} ms, p99.9 {reads['p999_ms']:.2f} ms",
        f"produce-to-visible outside outages: p50 {fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f} ms "
        f"({fresh['outside_windows']} probes)",
        *(
            f"  {f['kind']:<9} at {f['at_s']:7.1f}s, recovered after "
            + ("-" if f["recovered_after_s"] is None else f"{f['recovered_after_s']:.1f}s")
            + (f" ({f['detail']})" if f["detail"] else "")
            for f in result["faults"]
        ),
        *(f"  skipped {text}" for text in result["skipped_faults"]),
    ]
    typer.echo("\n".join(lines))


@app.command()
def topics() -> None:
    """Create the event and dead-letter topics with POINTSVIEW_TOPIC_PARTITIONS (existing ones are kept)."""
    from consumers.topics import create_topics

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors():
        asyncio.run(create_topics(settings))
    typer.echo(f"topics ready: {', '.join([*settings.topic_list, settings.deadletter_topic])}")


@app.command()
def produce(
    file: Path = typer.Option(None, exists=True, dir_okay=False, help="JSON lines, one event envelope a line."),
    customers: int = typer.Option(50, min=1, help="Synthetic load: customers."),
    programs: str = typer.Option("973,983", help="Synthetic load: comma-separated programIds."),
    events_per_customer: int = typer.Option(20, min=1, help="Synthetic load: events per customer."),
    org_id: int = typer.Option(100737, min=1, help="Synthetic load: orgId."),
    seed: int = typer.Option(7, help="Synthetic load: random seed (the same seed, the same events)."),
    rate: float = typer.Option(0, min=0, help="Events per second at most (0: as fast as possible)."),
    customers_topic: str = typer.Option(
        None, help="Topic of customer.* events (default: the first of POINTSVIEW_TOPICS)."
    ),
    points_topic: str = typer.Option(None, help="Topic of other events (default: the second of POINTSVIEW_TOPICS)."),
) -> None:
    """Publish events from a JSON-lines file, or a synthetic load (by default the demo data of `make dev`)."""
    import time

    from consumers.topics import create_topics
    from devtools.produce import InvalidLine, stream_from_lines, summary
    from devtools.synthetic import Load, generate

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    topics = (customers_topic or settings.topic_list[0], points_topic or settings.topic_list[-1])
    if file:
        try:
            stream = stream_from_lines(file.read_bytes().splitlines(), *topics)
        except InvalidLine as exc:
            raise typer.BadParameter(str(exc), param_hint="--file")
    else:
        stream = generate(
            Load(
                org_id=org_id,
                customers=customers,
                programs=_program_ids(programs),
                events_per_customer=events_per_customer,
                seed=seed,
                customers_topic=topics[0],
                points_topic=topics[1],
            )
        )
    started = time.monotonic()
    with one_line_errors():
        asyncio.run(create_topics(settings))  # else the broker may auto-create other partition counts
        asyncio.run(_produce_shown(settings, stream, rate))
    typer.echo(summary(stream, time.monotonic() - started))


async def _produce_shown(settings: Settings, stream, rate: float) -> None:
    from devtools.produce import produce
    from runtime.progress import Progress, shown

    async with shown(Progress("producing")) as progress:
        await produce(settings, stream, rate, progress)


def _program_ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise typer.BadParameter("comma-separated integers expected", param_hint="--programs")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines.")) -> None:
    """Positions in Redis, Kafka offsets and lag per partition, projector counters, API health."""
    import json

    from rich.console import Console

    from cli.status import collect, render

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors():
        found = asyncio.run(collect(settings))
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    else:
        render(found, Console())


@deadletters.command("list")
def deadletters_list(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines.")) -> None:
    """Every dead letter: id (partition:offset), reason, origin, key and a payload preview."""
    import json

    from rich.console import Console

    from cli.deadletters import as_dict, render_list
    from consumers.deadletter_admin import read_deadletters

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors():
        letters = asyncio.run(read_deadletters(settings))
    if as_json:
        typer.echo(json.dumps([as_dict(letter) for letter in letters], indent=2))
    else:
        render_list(letters, settings.deadletter_topic, Console())


@deadletters.command("show")
def deadletters_show(
    ref: str = typer.Argument(..., metavar="OFFSET", help="PARTITION:OFFSET, or OFFSET alone when unambiguous."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for machines."),
) -> None:
    """One dead letter in full: key, headers and the whole payload."""
    import json

    from rich.console import Console

    from cli.deadletters import as_dict, render_show
    from consumers.deadletter_admin import read_deadletters, select

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors(), dead_letter_errors():
        letter = select(asyncio.run(read_deadletters(settings)), [ref])[0]
    if as_json:
        typer.echo(json.dumps(as_dict(letter), indent=2))
    else:
        render_show(letter, Console())


@deadletters.command("redrive")
def deadletters_redrive(
    refs: list[str] = typer.Argument(..., metavar="OFFSET...", help="PARTITION:OFFSET (or OFFSET) of each record."),
) -> None:
    """Re-publish dead letters to their original topic and partition, key and bytes unchanged (after a fix)."""
    from consumers.deadletter_admin import read_deadletters, redrive, select

    settings = load_settings()
    configure(settings.log_level, settings.log_format)
    with one_line_errors(), dead_letter_errors():
        chosen = select(asyncio.run(read_deadletters(settings)), refs)
        redriven = asyncio.run(redrive(settings, chosen))
    for letter, topic, partition, offset in redriven:
        typer.echo(f"redriven {letter.ref} -> {topic}[{partition}]@{offset}")


@contextmanager
def dead_letter_errors():
    from consumers.deadletter_admin import DeadLetterError

    try:
        yield
    except DeadLetterError as exc:
        typer.echo(f"pointsview: {exc.args[0]}", err=True)
        raise typer.Exit(1)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: local servers and subprocesses are stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(app())
