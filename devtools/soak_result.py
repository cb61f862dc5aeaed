"""The soak's result (devtools.soak): the live generation compared with a fold of the whole log, events
lost, reads failed outside the faults' outage windows, produce-to-visible times, and the verdict."""

import asyncio
from dataclasses import asdict, dataclass

from aiokafka import TopicPartition

from consumers.offsets import log_ends
from consumers.verify import differing_customers, generation_customers, log_customers
from devtools.loadgen import percentile_ms
from devtools.soak_faults import Fault
from devtools.soak_stack import SoakError, SoakOptions, SoakStack, log
from runtime import bootstrap
from runtime.settings import Settings

LOG_READ_TIMEOUT_SECONDS = 600.0


@dataclass
class Measured:
    """What the run saw: the readers' figures, the faults, the probes' (sent, visible) and the lag over time
    (seconds since the origin), and the acknowledged ends once production stopped."""

    reads: dict
    produced_for: float
    ends: dict[str, int]
    caught_up: bool
    faults: list[Fault]
    skipped: list[str]
    probes: list[tuple[float, float | None]]
    lag: list[tuple[float, int | None]]


async def soak_result(stack: SoakStack, run: Measured) -> dict:
    log("verifying: the live generation against a fold of the whole log ...")
    live = await stack.live_generation()
    stored, folded = await _customers(stack, live)
    drift = differing_customers(stored, folded)
    positions = await stack.positions()
    in_log = await _events_in_log(stack.settings, run.ends)
    unapplied = sum(max(0, end - positions.get(name, 0)) for name, end in run.ends.items())
    windows = [fault.window(run.produced_for) for fault in run.faults]
    result = {
        **_what_ran(stack.options, run.produced_for),
        "events_produced": stack.producer.acked,
        "send_failures": stack.producer.failed,
        "events_in_log": in_log,
        "events_applied": sum(positions.values()),
        "caught_up": run.caught_up,
        "generation": live,
        "faults": [asdict(fault) for fault in run.faults],
        "skipped_faults": run.skipped,
        "customers_compared": len(folded.keys() | stored.keys()),
        "drift": len(drift),
        "drifted_customers": [list(key) for key in drift[:20]],
        "lost_events": max(0, stack.producer.acked - in_log) + unapplied,
        "reads": _reads(run.reads, windows),
        "freshness": _freshness(run.probes, windows),
        "timeline": {"reads": run.reads["per_second"], "lag": run.lag},
        "logs": str(stack.logs),
    }
    result["passed"] = passed(result)
    return result


async def _customers(stack: SoakStack, live: int) -> tuple[dict, dict]:
    """The live generation's customers and those of a fold of the whole log."""
    stored = await generation_customers(stack.redis, bootstrap.keys(stack.settings, live))
    try:
        folded = await asyncio.wait_for(log_customers(stack.settings), LOG_READ_TIMEOUT_SECONDS)
    except TimeoutError:
        raise SoakError(f"could not read the whole log back within {LOG_READ_TIMEOUT_SECONDS:.0f}s to verify")
    return stored, folded


async def _events_in_log(settings: Settings, ends: dict[str, int]) -> int:
    return sum((await log_ends(settings, list(_partitions(ends)))).values())


def _what_ran(options: SoakOptions, produced_for: float) -> dict:
    return {
        "soak": "pointsview",
        "duration_s": round(produced_for, 1),
        "rates": {"reads_per_s": options.reads, "events_per_s": options.events},
        "customers": options.customers,
        "projectors": options.projectors,
        "api_workers": options.api_workers,
    }


def _reads(reads: dict, windows: list[tuple[float, float]]) -> dict:
    outside = [f for f in reads["failures"] if not _overlaps(f[0], f[1], windows)]
    return {
        "total": reads["total"],
        "non2xx": reads["non2xx"],
        "non2xx_outside_outages": len(outside),
        "p50_ms": reads["p50_ms"],
        "p99_ms": reads["p99_ms"],
        "p999_ms": reads["p999_ms"],
        "failures_outside_outages": outside[:20],
    }


def _freshness(probes: list[tuple[float, float | None]], windows: list[tuple[float, float]]) -> dict:
    fresh = sorted(
        int((visible - sent) * 1e9)
        for sent, visible in probes
        if visible is not None and not _overlaps(sent, visible, windows)
    )
    return {
        "what": "produce to visible through the API (afterEventId), probes outside the outage windows",
        "probes": len(probes),
        "outside_windows": len(fresh),
        "not_visible": sum(visible is None for _, visible in probes),
        "p50_ms": round(percentile_ms(fresh, 0.5), 1),
        "p99_ms": round(percentile_ms(fresh, 0.99), 1),
    }


def passed(result: dict) -> bool:
    return (
        result["drift"] == 0
        and result["lost_events"] == 0
        and result["reads"]["non2xx_outside_outages"] == 0
        and all(fault["recovered_after_s"] is not None for fault in result["faults"])
    )


def _partitions(ends: dict[str, int]):
    for name in ends:
        topic, partition = name.rsplit(":", 1)
        yield TopicPartition(topic, int(partition))


def _overlaps(start: float, end: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= w_end and end >= w_start for w_start, w_end in windows)
