"""The soak's faults (devtools.soak): their schedule, how each is injected, when it has recovered, and the
outage window it excuses failed reads in."""

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools.demo import AUTH_HEADERS
from devtools.loadgen import fetch
from devtools.soak_stack import Process, SoakError, SoakStack, log
from runtime import bootstrap

# The order faults come in; spread over the first SCHEDULED_SHARE of the run.
SCHEDULE = ("projector", "redis", "projector", "broker", "api", "rebuild", "projector")
SCHEDULED_SHARE = 0.8
LAST_START_BEFORE_END_SECONDS = 10.0  # a fault not started by then is skipped (listed as such)
BROKER_PAUSE_SECONDS = 10.0
REDIS_DOWN_SECONDS = 1.0
GRACE_SECONDS = 2.0
RECOVERY_TIMEOUT_SECONDS = 180.0


@dataclass
class Fault:
    kind: str
    at_s: float
    recovered_after_s: float | None = None
    detail: str = ""

    def window(self, run_end: float) -> tuple[float, float]:
        recovered = run_end if self.recovered_after_s is None else self.at_s + self.recovered_after_s
        return self.at_s, recovered + GRACE_SECONDS


def schedule(kinds: tuple[str, ...], duration: float) -> list[tuple[float, str]]:
    order = [kind for kind in SCHEDULE if kind in kinds]
    step = SCHEDULED_SHARE * duration / (len(order) + 1)
    return [(step * (n + 1), kind) for n, kind in enumerate(order)]


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes under its supervisor (multiprocessing's resource tracker is a child too)."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(int(child))
    return workers


@dataclass
class Faults:
    """Injects the scheduled faults one at a time, each after the previous one's recovery."""

    stack: SoakStack
    origin: float
    injected: list[Fault] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    projector_kills: int = 0

    async def run(self, until: float) -> None:
        for at, kind in schedule(self.stack.options.faults, self.stack.options.duration):
            if (ahead := self.origin + at - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            if reason := self._why_skipped(kind, until):
                self.skipped.append(f"{kind}: {reason}")
                continue
            if not await self._inject(kind):
                return

    def _why_skipped(self, kind: str, until: float) -> str:
        if time.monotonic() > until - LAST_START_BEFORE_END_SECONDS:
            return "no time left before the end of production"
        if (kind == "redis" and not self.stack.redis_server) or (kind == "broker" and not self.stack.broker):
            return "an existing server, not the soak's own"
        return ""

    async def _inject(self, kind: str) -> bool:
        """The fault injected and recovered from (False: not recovered in time)."""
        injected = time.monotonic()
        fault = Fault(kind, round(injected - self.origin, 2))
        self.injected.append(fault)
        log(f"{fault.at_s:.0f}s: fault {kind}")
        fault.detail = await self._injectors()[kind]()
        if not await self._recovered(kind in ("redis", "api")):
            log(f"  NOT recovered within {RECOVERY_TIMEOUT_SECONDS:.0f}s")
            return False
        fault.recovered_after_s = round(time.monotonic() - injected, 2)
        log(f"  recovered after {fault.recovered_after_s:.1f}s")
        return True

    def _injectors(self) -> dict[str, Callable[[], Awaitable[str]]]:
        return {
            "projector": self._kill_projector,
            "redis": self._restart_redis,
            "broker": self._pause_broker,
            "api": self._kill_api_worker,
            "rebuild": self._rebuild,
        }

    async def _kill_projector(self) -> str:
        n, self.projector_kills = self.projector_kills, self.projector_kills + 1
        projectors = self.stack.projectors
        member = projectors[n % len(projectors)]
        pid = member.popen.pid
        member.kill()
        member.start()
        return f"member {n % len(projectors)} (pid {pid}) SIGKILLed, started again"

    async def _restart_redis(self) -> str:
        self.stack.redis_server.kill()
        await asyncio.sleep(REDIS_DOWN_SECONDS)
        await asyncio.to_thread(self.stack.redis_server.start)
        return f"SIGKILLed, started again {REDIS_DOWN_SECONDS:g} s later on its port and AOF"

    async def _pause_broker(self) -> str:
        self.stack.broker.pause()
        try:
            await asyncio.sleep(BROKER_PAUSE_SECONDS)
        finally:
            self.stack.broker.resume()
        return f"SIGSTOP, SIGCONT {BROKER_PAUSE_SECONDS:g} s later"

    async def _kill_api_worker(self) -> str:
        supervisor = self.stack.api.popen.pid
        before = worker_pids(supervisor)
        if not before:
            raise SoakError("the API has no worker processes to kill (is it running with --workers 2?)")
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        while not set(worker_pids(supervisor)) - set(before):
            if time.monotonic() > deadline:
                raise SoakError(f"the API's supervisor started no new worker within {RECOVERY_TIMEOUT_SECONDS:.0f}s")
            await asyncio.sleep(0.05)
        return f"worker pid {before[0]} SIGKILLed; the supervisor started another"

    async def _rebuild(self) -> str:
        logs = self.stack.logs
        process = Process(["rebuild"], self.stack.env, logs / "rebuild.log").start()
        code = await asyncio.to_thread(process.popen.wait)
        if code != 0:
            raise SoakError(f"`pointsview rebuild` exited with code {code} (see {logs / 'rebuild.log'})")
        live = await bootstrap.generations(self.stack.settings, self.stack.redis).live()
        return f"generation {live} live"

    async def _recovered(self, reads_too: bool) -> bool:
        """Every event handed over is applied and, for a fault on the read path, a balance read answers 200."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        producer = self.stack.producer
        if not await self.stack.until_applied(await producer.settled(producer.handed), RECOVERY_TIMEOUT_SECONDS):
            return False
        path = f"/v2/customers/{self.stack.load.first_customer_id}/points/balance"
        while reads_too and time.monotonic() < deadline:
            try:
                if (await fetch(self.stack.api_port, path, AUTH_HEADERS))[0] == 200:
                    return True
            except (OSError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.05)
        return not reads_too
