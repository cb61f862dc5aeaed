"""The soak's readers: an open loop over the API's read endpoints, in a process of its own
(`python -m devtools.soak_reads`, plan as JSON on stdin, figures as JSON on stdout).

Request k is due at origin + k / rate, on connection k mod C, and its latency counts from that due time
(no coordinated omission), as in devtools.loadgen; unlike the benchmark's generator this one lives
through faults: a refused connection, a reset or an answer later than `timeout` counts as an answer with
status 0 and the connection is opened again. It keeps every latency (microseconds, an array) for the
run's percentiles, per-second counts and p99, and each non-2xx answer's due and finish times, so the
caller can tell the ones inside its fault windows from the others.

`origin` is a time.monotonic() instant: CLOCK_MONOTONIC, shared by every process of the machine.
"""

import asyncio
import itertools
import json
import sys
import time
from array import array
from dataclasses import dataclass, field

import uvloop

from devtools.loadgen import in_subprocess, read_response, request_bytes

LOOKUP = "/v2/customers/lookup/points/balance?source=INSTORE&identifierName=mobile&identifierValue="
DETAILS = "/v2/customers/lookup/customerDetails?source=INSTORE&embed=mlp,points&identifierName=mobile&identifierValue="
ENDPOINTS = ("userId", "lookup", "details", "ledger")


def paths(first_customer_id: int, customers: int) -> list[str]:
    """Every customer by each endpoint, interleaved (consecutive requests hit different endpoints and
    customers spread over the whole range)."""
    step = 7919  # a prime: walks every customer when it does not divide their count
    order = [(first_customer_id + (n * step) % customers) for n in range(customers)]
    if len(set(order)) < customers:
        order = list(range(first_customer_id, first_customer_id + customers))
    return [
        path
        for cid in order
        for path in (
            f"/v2/customers/{cid}/points/balance",
            f"{LOOKUP}9{cid:09d}",
            f"{DETAILS}9{cid:09d}",
            f"/v2/customers/{cid}/points/ledger?limit=5",
        )
    ]


@dataclass(frozen=True)
class ReadPlan:
    port: int
    rate: float
    duration: float
    origin: float  # time.monotonic() of the first due request
    first_customer_id: int
    customers: int
    headers: dict[str, str]
    connections: int = 64
    timeout: float = 10.0  # an answer later than this counts as status 0


@dataclass
class _Record:
    latencies: array = field(default_factory=lambda: array("I"))  # microseconds, every answer
    per_second: dict[int, list] = field(default_factory=dict)  # second -> [answers, non-2xx, latencies]
    failures: list[tuple[float, float, int, str]] = field(default_factory=list)  # (due, finished, status, endpoint)

    def add(self, due: float, finished: float, status: int, endpoint: str, origin: float) -> None:
        micros = max(0, int((finished - due) * 1e6))
        self.latencies.append(micros)
        second = self.per_second.setdefault(int(due - origin), [0, 0, array("I")])
        second[0] += 1
        second[2].append(micros)
        if not 200 <= status < 300:
            second[1] += 1
            self.failures.append((round(due - origin, 4), round(finished - origin, 4), status, endpoint))


async def _open(port: int):
    return await asyncio.open_connection("127.0.0.1", port)


async def _reader(plan: ReadPlan, requests: list[bytes], connection: int, record: _Record) -> None:
    interval = 1 / plan.rate
    end = plan.origin + plan.duration
    stream = None
    try:
        for k in itertools.count(connection, plan.connections):
            due = plan.origin + k * interval
            if due >= end:
                break
            if (ahead := due - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            i = k % len(requests)
            status = 0
            try:
                stream = stream or await asyncio.wait_for(_open(plan.port), plan.timeout)
                stream[1].write(requests[i])
                status, _, close = await asyncio.wait_for(read_response(stream[0]), plan.timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                close = True
            record.add(due, time.monotonic(), status, ENDPOINTS[i % len(ENDPOINTS)], plan.origin)
            if close and stream:
                stream[1].close()
                stream = None
    finally:
        if stream:
            stream[1].close()


def _ms(ordered: list[int], q: float) -> float:
    return (
        round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))] / 1000, 3)
        if ordered
        else 0.0
    )


async def _run(plan: ReadPlan) -> dict:
    host = "127.0.0.1"
    requests = [
        request_bytes(host, plan.port, path, plan.headers) for path in paths(plan.first_customer_id, plan.customers)
    ]
    record = _Record()
    await asyncio.gather(*(_reader(plan, requests, c, record) for c in range(plan.connections)))
    ordered = sorted(record.latencies)
    seconds = []
    for second, (answers, failed, latencies) in sorted(record.per_second.items()):
        seconds.append({"t": second, "reads": answers, "non2xx": failed, "p99_ms": _ms(sorted(latencies), 0.99)})
    return {
        "total": len(ordered),
        "non2xx": len(record.failures),
        "p50_ms": _ms(ordered, 0.5),
        "p99_ms": _ms(ordered, 0.99),
        "p999_ms": _ms(ordered, 0.999),
        "per_second": seconds,
        "failures": record.failures,
    }


def run(plan: ReadPlan) -> dict:
    return uvloop.run(_run(plan))


async def run_in_subprocess(plan: ReadPlan) -> dict:
    """`run` in a process of its own (killed if the caller is cancelled)."""
    from dataclasses import asdict

    return await in_subprocess("devtools.soak_reads", asdict(plan), "the soak's readers")


if __name__ == "__main__":
    print(json.dumps(run(ReadPlan(**json.load(sys.stdin)))))
