"""`pointsview bench api`'s floor under every endpoint: raw Redis GETs of a value as large as a customer's,
by `redis-benchmark` when on PATH, else by devtools.loadgen speaking RESP."""

import asyncio
import re
import shutil
from urllib.parse import urlparse

from devtools.bench.common import BenchError
from devtools.loadgen import Plan, Summary, measure_in_subprocess
from devtools.synthetic import Load
from runtime import bootstrap
from runtime.settings import Settings

REDIS_GETS_PER_SECOND = 50_000  # redis-benchmark counts requests, not seconds: about `duration` here


async def stored_value(settings: Settings, load: Load) -> tuple[str, int]:
    """A plain string key holding as many bytes as Redis holds for the first customer: what a raw GET reads."""
    redis = bootstrap.redis_client(settings)
    keys = bootstrap.keys(settings)
    try:
        stored = keys.customer(load.org_id, load.first_customer_id)
        if await redis.type(stored) == b"string":
            size = await redis.strlen(stored)
        else:  # a hash: its values
            size = sum(len(value) for value in (await redis.hgetall(stored)).values())
        key = keys.scratch("raw-get")
        await redis.set(key, b"x" * size)
        return key, size
    finally:
        await redis.aclose()


def _percentiles(text: str) -> list[tuple[float, float]]:
    """redis-benchmark's "Latency by percentile distribution": (percent, ms) pairs, ascending."""
    section = text.split("Latency by percentile distribution:", 1)[-1].split("Cumulative distribution", 1)[0]
    return [(float(p), float(ms)) for p, ms in re.findall(r"([\d.]+)% <= ([\d.]+) milliseconds", section)]


def _redis_benchmark_summary(output: str, requests: int) -> Summary:
    throughput = re.search(r"throughput summary: ([\d.]+) requests per second", output)
    distribution = _percentiles(output)
    if not throughput or not distribution:
        raise BenchError(f"redis-benchmark printed no figures: {output[-300:]!r}")

    def at(q: float) -> float:  # the first listed percentile at or above q (HdrHistogram's steps)
        return next(ms for percent, ms in distribution if percent >= q * 100)

    return Summary(
        requests=requests,
        errors=0,
        rps=float(throughput[1]),
        p50_ms=at(0.5),
        p90_ms=at(0.9),
        p99_ms=at(0.99),
        p999_ms=at(0.999),
        cpu=None,
    )


async def raw_gets(settings: Settings, key: str, connections: int, duration: float) -> tuple[str, Summary]:
    """GETs of `key` by `redis-benchmark` when on PATH, else by the load generator in RESP (closed loop): the
    row's label and its figures."""
    url = urlparse(settings.redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    binary = shutil.which("redis-benchmark")
    if not binary:
        plan = Plan(
            port=port,
            host=host,
            paths=[key],
            connections=connections,
            duration=duration,
            warmup=min(1.0, duration),
            protocol="redis",
        )
        return "raw Redis GET (loadgen)", await measure_in_subprocess(plan)
    return "raw Redis GET (redis-benchmark)", await _redis_benchmark(binary, host, port, key, connections, duration)


async def _redis_benchmark(binary: str, host: str, port: int, key: str, connections: int, duration: float) -> Summary:
    requests = max(1_000, round(REDIS_GETS_PER_SECOND * duration))
    arguments = ["-h", host, "-p", str(port), "-c", str(connections), "-n", str(requests), "GET", key]
    process = await asyncio.create_subprocess_exec(
        binary, *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return _redis_benchmark_summary(out.decode(errors="replace").replace("\r", "\n"), requests)
