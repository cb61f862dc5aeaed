"""An HTTP/1.1 load generator on C keep-alive connections, closed or open loop.

Closed loop (no `rate`): each connection sends its next request as soon as it has read the previous
response in full, so the figures are the server's maximum. Open loop (`rate` requests/s): request k is
due at start + k / rate, on connection k mod C; its latency counts from that due time, not from when it
could be sent, so a server falling behind shows in the percentiles (no coordinated omission).

Raw asyncio streams on uvloop: an HTTP client library (httpx) spends more CPU per request than the
servers under test, so it could not saturate them. Only what the benchmarks need: GET, responses with
a Content-Length (no chunked bodies); with `protocol="redis"`, GET of keys in RESP (the raw Redis
baseline where `redis-benchmark` is missing).

`measure(plan)` runs in the calling process; `measure_in_subprocess(plan)` runs it in
`python -m devtools.loadgen` (plan as JSON on stdin, summary as JSON on stdout), so the generator shares
its event loop and GIL with nothing else.
"""

import asyncio
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from time import perf_counter_ns

import uvloop


class ProtocolError(Exception):
    pass


@dataclass(frozen=True)
class Plan:
    port: int
    paths: list[str]  # rotated over, each connection starting at a different one
    headers: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    connections: int = 32
    duration: float = 10.0  # seconds measured
    warmup: float = 1.0  # seconds of load before measuring (connections, caches, the first auth)
    rate: float | None = None  # open loop: requests per second, on schedule; None: closed loop
    protocol: str = "http"  # or "redis": `paths` are keys, each request a GET


@dataclass(frozen=True)
class Summary:
    requests: int  # responses completed inside the measured window
    errors: int  # of those, not 200 (or the connection broke)
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    cpu: float | None  # the generator's CPU time / wall time: near 1.0, it may be the bottleneck, not the server


def request_bytes(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One whole response: (status, body, whether the server closes the connection after it)."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()  # one lower() beats per-header parsing
    status = int(head[9:12])
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        raise ProtocolError(f"response without Content-Length: {head[:200]!r}")
    length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
    body = await reader.readexactly(length)
    return status, body, b"\r\nconnection: close" in head


def redis_get_bytes(key: str) -> bytes:
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key.encode()), key.encode())


async def read_redis_reply(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One bulk-string reply, as read_response's triple: 200 for a value, 404 for nil, 500 for an error."""
    line = await reader.readline()
    if line[:1] != b"$":
        return 500, line, False
    length = int(line[1:])
    return (404, b"", False) if length < 0 else (200, (await reader.readexactly(length + 2))[:-2], False)


async def fetch(
    port: int, path: str, headers: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """One GET on a connection of its own: readiness polls and pre-flight checks."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes(host, port, path, {**(headers or {}), "Connection": "close"}))
        status, body, _ = await read_response(reader)
        return status, body
    finally:
        writer.close()


@dataclass
class _Window:
    """The measured interval (perf_counter_ns) and what completed inside it."""

    origin: int  # the load's start: open-loop requests are due from here
    start: int
    end: int
    latencies: list[int] = field(default_factory=list)
    errors: int = 0


def _due_times(plan: Plan, connection: int, window: _Window) -> Iterator[int | None]:
    """When each request of this connection is due (perf_counter_ns): every C-th slot of the open loop's
    schedule; closed loop: None, as soon as the previous response is read."""
    if plan.rate is None:
        return itertools.repeat(None)
    interval = 1e9 / plan.rate
    return (window.origin + int(k * interval) for k in itertools.count(connection, plan.connections))


async def _connection(plan: Plan, requests: list[bytes], connection: int, window: _Window) -> None:
    read = read_redis_reply if plan.protocol == "redis" else read_response
    i = int(connection * len(requests) / plan.connections)  # each connection starts at a different path
    give_up = window.end + int(max(plan.duration, 1.0) * 1e9)  # an open loop still behind schedule stops then
    reader, writer = await asyncio.open_connection(plan.host, plan.port)
    try:
        for due in _due_times(plan, connection, window):
            now = perf_counter_ns()
            if (now if due is None else due) >= window.end:
                break
            if now > give_up:  # what this connection had left to send in the window counts as errors
                window.errors += due >= window.start
                continue
            if due is not None and due > now:
                await asyncio.sleep((due - now) / 1e9)
            sent = perf_counter_ns()
            # open loop: from when it was due (a server behind shows), or from the send when the timer woke
            # a little early (the event loop's timers round to the millisecond)
            started = sent if due is None else min(due, sent)
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                status, _, close = await read(reader)
            except (OSError, asyncio.IncompleteReadError):  # reset or closed mid-response: an error
                status, close = 0, True
            finished = perf_counter_ns()
            if window.start <= (finished if due is None else due) < window.end:
                window.latencies.append(finished - started)
                window.errors += status != 200
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(plan.host, plan.port)
    finally:
        writer.close()


def percentile_ms(ordered: list[int], q: float) -> float:
    """Nearest rank."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6 if ordered else 0.0


async def _measure(plan: Plan) -> Summary:
    requests = (
        [redis_get_bytes(key) for key in plan.paths]
        if plan.protocol == "redis"
        else [request_bytes(plan.host, plan.port, path, plan.headers) for path in plan.paths]
    )
    now = perf_counter_ns()
    window = _Window(origin=now, start=now + int(plan.warmup * 1e9), end=now + int((plan.warmup + plan.duration) * 1e9))
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    # Connections open one at a time, inside the warm-up: a burst would be taken whole by one uvicorn worker
    # (its accept loop drains the backlog), leaving the others idle for the whole keep-alive run.
    stagger = min(0.01, plan.warmup / 2 / plan.connections)
    running = []
    for c in range(plan.connections):
        running.append(asyncio.create_task(_connection(plan, requests, c, window)))
        await asyncio.sleep(stagger)
    await asyncio.gather(*running)
    cpu = (time.process_time() - cpu_started) / (time.perf_counter() - wall_started)
    ordered = sorted(window.latencies)
    return Summary(
        requests=len(ordered),
        errors=window.errors,
        rps=len(ordered) / plan.duration,
        p50_ms=percentile_ms(ordered, 0.50),
        p90_ms=percentile_ms(ordered, 0.90),
        p99_ms=percentile_ms(ordered, 0.99),
        p999_ms=percentile_ms(ordered, 0.999),
        cpu=round(cpu, 3),
    )


def measure(plan: Plan) -> Summary:
    return uvloop.run(_measure(plan))


async def measure_in_subprocess(plan: Plan) -> Summary:
    """`measure` in a process of its own; killed if the caller is cancelled (Ctrl-C) or fails."""
    return Summary(**await in_subprocess("devtools.loadgen", asdict(plan), "the load generator"))


async def in_subprocess(module: str, request: dict, what: str) -> dict:
    """`python -m module` fed `request` as JSON on stdin, answering JSON on stdout; killed if the caller is
    cancelled (a terminal's Ctrl-C reaches only us: it runs in a session of its own) or fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = await process.communicate(json.dumps(request).encode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"{what} exited with code {process.returncode}")
    return json.loads(out)


if __name__ == "__main__":
    print(json.dumps(asdict(measure(Plan(**json.load(sys.stdin))))))
