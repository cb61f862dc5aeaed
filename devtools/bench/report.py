"""`--report DIR` of the bench commands: a benchmark's figures (its JSON) as DIR/<benchmark>.md, a
Markdown report, with PNG charts beside it (matplotlib, Agg backend: no display needed).

One file per benchmark, so the commands can share a directory.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from devtools.bench.api import API_COLUMNS, api_rows, api_title
from devtools.bench.memory import MEMORY_COLUMNS, memory_rows, memory_title
from devtools.bench.projector import (
    CPU_COLUMNS,
    RATE_COLUMNS,
    SCALE_COLUMNS,
    VISIBLE_COLUMNS,
    cpu_rows,
    rate_rows,
    scale_rows,
    visible_rows,
    visible_title,
)

PERCENTILES = {"p50_ms": "p50", "p90_ms": "p90", "p99_ms": "p99", "p999_ms": "p99.9"}


def write_report(directory: Path, result: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = result["benchmark"]
    lines = {"api": _api, "projector": _rates, "rebuild": _rates, "memory": _memory}[name](directory, result)
    path = directory / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _save(figure, directory: Path, name: str, title: str) -> str:
    figure.tight_layout()
    figure.savefig(directory / name, dpi=100)
    plt.close(figure)
    return f"![{title}]({name})\n"


def _bars(axes, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / len(series)
    for n, (name, values) in enumerate(series.items()):
        axes.bar([g + n * width for g in range(len(groups))], values, width, label=name)
    axes.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], groups, rotation=20, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=8)


def _api(directory: Path, result: dict) -> list[str]:
    rows, workers = result["results"], result["workers"]
    lines = [
        "# bench api",
        "",
        f"Open loop: requests on a fixed schedule, latency counted from the scheduled send. Raw Redis GETs "
        f"read a {result['redis_value_bytes']:,}-byte value (the size of a stored customer state).",
        "",
    ]
    figure, grid = plt.subplots(len(workers), 2, figsize=(12, 4.5 * len(workers)), squeeze=False)
    for w, count in enumerate(workers):
        lines += [f"## {api_title(result, count)}", "", *_table(API_COLUMNS, api_rows(result, count))]
        for m, mode in enumerate(["closed", "open"]):
            shown = [row for row in rows if row["workers"] == count and row["mode"] == mode]
            _bars(
                grid[w][m],
                [row["label"] for row in shown],
                {label: [row[p] for row in shown] for p, label in PERCENTILES.items()},
                "ms",
            )
            grid[w][m].set_title(f"{count} worker(s), {'closed loop (max)' if mode == 'closed' else 'open loop'}")
    lines.append(_save(figure, directory, "api-latency.png", "latency percentiles per endpoint"))
    closed = [row for row in rows if row["mode"] == "closed"]
    labels = list(dict.fromkeys(row["label"] for row in closed))
    rps = {(row["workers"], row["label"]): row["rps"] for row in closed}
    figure, axes = plt.subplots(figsize=(10, 4.5))
    _bars(
        axes,
        labels,
        {f"{count} worker(s)": [rps[count, label] for label in labels] for count in workers},
        "req/s (closed loop, log scale)",
    )
    axes.set_yscale("log")
    axes.set_title("throughput per worker count")
    lines.append(_save(figure, directory, "api-throughput.png", "throughput per worker count"))
    return lines


def _rates(directory: Path, result: dict) -> list[str]:
    lines = [
        f"# bench {result['benchmark']}: {result['events']:,} events, {result['customers']:,} customers",
        "",
        *_table(RATE_COLUMNS, rate_rows(result)),
        "## CPU per event",
        "",
        *_table(CPU_COLUMNS, cpu_rows(result)),
    ]
    timeline = result["timeline"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot([t for t, _ in timeline], [applied for _, applied in timeline])
    top.set_ylabel("events applied")
    top.set_title("projector rate over time (Redis positions, sampled)")
    bottom.plot(
        [t1 for (_, _), (t1, _) in zip(timeline, timeline[1:])],
        [(a1 - a0) / (t1 - t0) for (t0, a0), (t1, a1) in zip(timeline, timeline[1:])],
    )
    bottom.set_ylabel("events/s")
    bottom.set_xlabel("seconds since the projector started")
    lines.append(_save(figure, directory, f"{result['benchmark']}-rate.png", "projector rate over time"))
    if result.get("scale"):
        lines += ["## scale check: the same events per customer", "", *_table(SCALE_COLUMNS, scale_rows(result))]
    if visible := result.get("visible"):
        lines += [f"## {visible_title(visible)}", "", *_table(VISIBLE_COLUMNS, visible_rows(visible))]
    return lines


def _memory(directory: Path, result: dict) -> list[str]:
    sizes = result["bytes_per_customer"]
    lines = ["# bench memory", "", f"{memory_title(result)}.", "", *_table(MEMORY_COLUMNS, memory_rows(result))]
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.barh(list(sizes), list(sizes.values()))
    axes.invert_yaxis()
    axes.set_xlabel("bytes per customer")
    lines.append(_save(figure, directory, "memory-bytes.png", "Redis bytes per customer"))
    return lines
