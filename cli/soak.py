"""`pointsview soak`: the whole stack under load and faults, then every customer compared with the log."""

import asyncio
from pathlib import Path

import typer

from cli.common import JSON_OPTION, one_line_errors, positive
from runtime.logs import configure


def _fault_kinds(value: str) -> str:
    from devtools.soak import FAULT_KINDS

    kinds = [kind for kind in value.split(",") if kind] if value != "none" else []
    if unknown := sorted(set(kinds) - set(FAULT_KINDS)):
        raise typer.BadParameter(f"unknown {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)} (or none)")
    return value


READS_OPTION = typer.Option(
    2000.0, callback=positive, help="Reads/s, open loop over 4 endpoints (5,000 does not fit 2 cores)."
)
EVENTS_OPTION = typer.Option(
    1000.0, callback=positive, help="Events/s produced (2,000 does not fit 2 cores beside the reads)."
)
FAULTS_OPTION = typer.Option(
    "projector,redis,broker,api,rebuild", callback=_fault_kinds, help="Fault kinds to inject, or none."
)
KAFKA_OPTION = typer.Option(
    None, envvar="KAFKA_BOOTSTRAP_SERVERS", help="An existing broker (default: a local one; no broker fault)."
)
REDIS_OPTION = typer.Option(
    None, envvar="REDIS_URL", help="An existing Redis (default: a local one with AOF; no Redis fault)."
)
REPORT_OPTION = typer.Option(None, "--report", file_okay=False, help="Also write DIR/soak.md and its charts.")


def soak(
    duration: float = typer.Option(600.0, callback=positive, help="Seconds of load (default 10 minutes)."),
    reads: float = READS_OPTION,
    events: float = EVENTS_OPTION,
    faults: str = FAULTS_OPTION,
    customers: int = typer.Option(20_000, min=1, help="Customers registered first; events and reads spread over all."),
    projectors: int = typer.Option(2, min=1, help="`pointsview projector` processes (one consumer group)."),
    kafka: str = KAFKA_OPTION,
    redis: str = REDIS_OPTION,
    as_json: bool = JSON_OPTION,
    report: Path = REPORT_OPTION,
) -> None:
    """The whole stack under load while faults are injected, then every customer compared with a fold of the
    log; exit 0 only with no drift, no lost event and no failed read outside the faults' outage windows."""
    from devtools.soak import SoakOptions

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
    result = _run(options)
    if report:
        from devtools.soak_report import write_report

        typer.echo(f"report: {write_report(report, result)}", err=True)
    _print(result, as_json)
    raise typer.Exit(0 if result["passed"] else 1)


def _run(options) -> dict:
    from devtools.soak import SoakError, run_soak

    configure("WARNING")
    with one_line_errors():
        try:
            return asyncio.run(run_soak(options))
        except SoakError as exc:
            typer.echo(f"pointsview: {exc}", err=True)
            raise typer.Exit(1)


def _print(result: dict, as_json: bool) -> None:
    import json

    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=2))
    else:
        typer.echo("\n".join(_summary(result)))


def _summary(result: dict) -> list[str]:
    reads, fresh = result["reads"], result["freshness"]
    return [
        f"soak {'PASSED' if result['passed'] else 'FAILED'}: {result['duration_s']:g}s, "
        f"{result['events_produced']:,} events produced, {result['events_applied']:,} applied, "
        f"drift {result['drift']}, lost {result['lost_events']}",
        f"reads {reads['total']:,}: non-2xx {reads['non2xx']:,} ({reads['non2xx_outside_outages']} outside outages), "
        f"p50 {reads['p50_ms']:.2f} ms, p99 {reads['p99_ms']:.2f} ms, p99.9 {reads['p999_ms']:.2f} ms",
        f"produce-to-visible outside outages: p50 {fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f} ms "
        f"({fresh['outside_windows']} probes)",
        *(_fault_line(fault) for fault in result["faults"]),
        *(f"  skipped {text}" for text in result["skipped_faults"]),
    ]


def _fault_line(fault: dict) -> str:
    recovered = "-" if fault["recovered_after_s"] is None else f"{fault['recovered_after_s']:.1f}s"
    detail = f" ({fault['detail']})" if fault["detail"] else ""
    return f"  {fault['kind']:<9} at {fault['at_s']:7.1f}s, recovered after {recovered}{detail}"
