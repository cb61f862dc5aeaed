"""`pointsview soak --report DIR`: DIR/soak.md and DIR/soak-timeline.png (reads/s, read p99 and projector
lag over time, each fault's outage window shaded). matplotlib with the Agg backend: no display needed."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devtools.soak_faults import GRACE_SECONDS, Fault

COLOURS = {"projector": "tab:red", "redis": "tab:purple", "broker": "tab:orange", "api": "tab:brown"}


def write_report(directory: Path, result: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _chart(directory / "soak-timeline.png", result)
    path = directory / "soak.md"
    path.write_text("\n".join(_markdown(result)) + "\n")
    return path


def _windows(result: dict) -> list[tuple[dict, float, float]]:
    return [
        (fault, *Fault(fault["kind"], fault["at_s"], fault["recovered_after_s"]).window(result["duration_s"]))
        for fault in result["faults"]
    ]


def _chart(path: Path, result: dict) -> None:
    reads, lag = result["timeline"]["reads"], result["timeline"]["lag"]
    figure, (rate, p99, behind) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    rate.plot([s["t"] for s in reads], [s["reads"] for s in reads], label="answers")
    rate.plot([s["t"] for s in reads], [s["non2xx"] for s in reads], label="non-2xx", color="tab:red")
    rate.set_ylabel("reads/s")
    rate.legend(fontsize=8, loc="lower left")
    p99.plot([s["t"] for s in reads], [s["p99_ms"] for s in reads])
    p99.set_ylabel("read p99 ms (per second)")
    p99.set_yscale("log")
    shown = [(t, n) for t, n in lag if n is not None]
    behind.plot([t for t, _ in shown], [n for _, n in shown])
    behind.set_ylabel("projector lag (events)")
    behind.set_xlabel("seconds since the start of the load")
    for fault, start, end in _windows(result):
        for axes in (rate, p99, behind):
            axes.axvspan(start, end, alpha=0.2, color=COLOURS.get(fault["kind"], "tab:green"))
        rate.annotate(fault["kind"], (start, 1), xycoords=("data", "axes fraction"), fontsize=8, va="top")
    rate.set_title("soak: reads, latency and lag; shaded: each fault's outage window")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _markdown(result: dict) -> list[str]:
    reads, fresh = result["reads"], result["freshness"]
    lines = [
        f"# soak: {'PASSED' if result['passed'] else 'FAILED'}",
        "",
        f"{result['duration_s']:g} s at {result['rates']['events_per_s']:,.0f} events/s and "
        f"{result['rates']['reads_per_s']:,.0f} reads/s (open loop, userId balance, lookup balance, "
        f"customerDetails), {result['customers']:,} customers, {result['projectors']} projector processes, "
        f"{result['api_workers']} API workers.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| events produced (acknowledged) | {result['events_produced']:,} |",
        f"| events in the log | {result['events_in_log']:,} |",
        f"| events applied (positions of generation {result['generation']}) | {result['events_applied']:,} |",
        f"| customers compared with the fold / drifted | {result['customers_compared']:,} / {result['drift']} |",
        f"| lost events | {result['lost_events']} |",
        f"| reads / non-2xx / non-2xx outside outages | {reads['total']:,} / {reads['non2xx']:,} / "
        f"{reads['non2xx_outside_outages']} |",
        f"| read p50 / p99 / p99.9 ms | {reads['p50_ms']:.2f} / {reads['p99_ms']:.2f} / {reads['p999_ms']:.2f} |",
        f"| produce-to-visible p50 / p99 ms ({fresh['outside_windows']} of {fresh['probes']} probes) | "
        f"{fresh['p50_ms']:.1f} / {fresh['p99_ms']:.1f} |",
        "",
        "## Faults",
        "",
        f"Outage window: from the injection until recovery, plus {GRACE_SECONDS:g} s.",
        "",
        "| fault | at s | recovered after s | window | detail |",
        "|---|---|---|---|---|",
    ]
    for fault, start, end in _windows(result):
        recovered = "not recovered" if fault["recovered_after_s"] is None else f"{fault['recovered_after_s']:.1f}"
        lines.append(
            f"| {fault['kind']} | {fault['at_s']:.1f} | {recovered} | {start:.1f}-{end:.1f} | {fault['detail']} |"
        )
    lines += [*(f"- skipped: {text}" for text in result["skipped_faults"]), "", "![timeline](soak-timeline.png)", ""]
    return lines
