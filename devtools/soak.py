"""`pointsview soak`: the whole stack under load while faults are injected on a schedule, then the
read-model compared with a fresh fold of the log.

Started by devtools.soak_stack (each stopped on leaving, errors and Ctrl-C included): the local broker and
a Redis with AOF on (unless existing ones are given), N `pointsview projector` processes of one consumer
group, and `pointsview api --workers 2`. Events of the synthetic mix (devtools.synthetic) are produced on a fixed
schedule over many registered customers; about PROBES_PER_SECOND of them are probes (a points.earned of
1 point) whose produce-to-visible time is read through the API itself (`afterEventId`, which answers as
soon as the event is applied). Reads run open loop over four read endpoints in a process of their
own (devtools.soak_reads). Faults (devtools.soak_faults), one at a time, each waiting for the previous
one's recovery:

- projector: SIGKILL one member, start it again;
- redis: SIGKILL Redis, start it again on the same port and data directory (AOF, appendfsync everysec);
- broker: SIGSTOP the broker for BROKER_PAUSE_SECONDS, then SIGCONT (the local broker is memory-only:
  a restart would lose the log);
- api: SIGKILL one uvicorn worker; the supervisor starts another;
- rebuild: `pointsview rebuild` (a new generation replayed beside the live one, then the switch).

Recovery of a fault: the corrective step is done (member or Redis started again, broker resumed, a new
API worker running, the rebuild's switch), every event handed to the producer until then is acknowledged
by the broker and covered by the live generation's positions in Redis (applied), and, for the faults that
touch the read path (redis, api), a balance read answers 200. A fault's outage window runs from its
injection to its recovery plus GRACE_SECONDS; non-2xx answers inside it are expected, outside it they fail
the run. Lag: the broker's acknowledged ends (the producer's own records: the local broker's ListOffsets
is wrong) minus the live generation's positions.

At the end production stops, the projectors catch up, and every customer of the live generation is
compared with a fold of the whole log (devtools.soak_result, with consumers.verify). The run passes when
no customer differs, no event is lost and no read outside an outage window failed.
"""

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import orjson
from redis.exceptions import RedisError

from devtools.demo import AUTH_HEADERS
from devtools.loadgen import fetch
from devtools.soak_faults import Faults, schedule
from devtools.soak_reads import ReadPlan, run_in_subprocess
from devtools.soak_result import Measured, soak_result
from devtools.soak_stack import CATCH_UP_TIMEOUT_SECONDS, FAULT_KINDS, SoakError, SoakOptions, SoakStack, log
from devtools.synthetic import ongoing

PROBES_PER_SECOND = 5
PROBE_GIVE_UP_SECONDS = 60.0
START_DELAY_SECONDS = 2.0  # from the stack's start to the origin of the run's clock


@dataclass
class Soak:
    stack: SoakStack
    origin: float = 0.0
    lag: list[tuple[float, int | None]] = field(default_factory=list)
    probes: list[tuple[float, float | None]] = field(default_factory=list)  # (sent, visible) since origin

    async def run(self) -> dict:
        options = self.stack.options
        self.origin = time.monotonic() + START_DELAY_SECONDS
        until = self.origin + options.duration
        faults = Faults(self.stack, self.origin)
        reading = asyncio.create_task(run_in_subprocess(self._read_plan()))
        watching = asyncio.create_task(self._watch_lag())
        faulting = asyncio.create_task(faults.run(until))
        try:
            await self._produce(until)
            log("production done; waiting for the faults' recovery and the readers ...")
            await faulting
            reads = await reading
            produced_for = time.monotonic() - self.origin
            ends, caught_up = await self._caught_up()
        finally:
            for task in (reading, watching, faulting):
                task.cancel()
            await asyncio.gather(reading, watching, faulting, return_exceptions=True)
        measured = Measured(
            reads, produced_for, ends, caught_up, faults.injected, faults.skipped, self.probes, self.lag
        )
        return await soak_result(self.stack, measured)

    def _read_plan(self) -> ReadPlan:
        return ReadPlan(
            port=self.stack.api_port,
            rate=self.stack.options.reads,
            duration=self.stack.options.duration,
            origin=self.origin,
            first_customer_id=self.stack.load.first_customer_id,
            customers=self.stack.options.customers,
            headers=AUTH_HEADERS,
        )

    async def _caught_up(self) -> tuple[dict[str, int], bool]:
        """The acknowledged ends once production stopped, and whether the projectors applied up to them."""
        producer = self.stack.producer
        await producer.flush()
        ends = await producer.settled(producer.handed)
        log("catching up ...")
        return ends, await self.stack.until_applied(ends, CATCH_UP_TIMEOUT_SECONDS)

    async def _watch_lag(self) -> None:
        while True:
            try:
                behind: int | None = await self.stack.behind(dict(self.stack.producer.ends))
            except (RedisError, OSError):
                behind = None
            self.lag.append((round(time.monotonic() - self.origin, 2), behind))
            await asyncio.sleep(1.0)

    async def _produce(self, until: float) -> None:
        """The synthetic mix at the events rate; every so often a probe instead."""
        load, rate = self.stack.load, self.stack.options.events
        every = max(1, round(rate / PROBES_PER_SECOND))
        events = ongoing(load)
        probing: list[asyncio.Task] = []
        for n in range(int(rate * (until - self.origin))):
            if (ahead := self.origin + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            if n % every:
                await self.stack.producer.send(*next(events))
            else:
                customer = load.first_customer_id + (n // every * 7919) % load.customers
                probing.append(asyncio.create_task(self._probe(customer)))
        await asyncio.gather(*probing)

    async def _probe(self, customer: int) -> None:
        """A points.earned of 1 point, then its balance read with afterEventId until it is visible."""
        event_id = uuid.uuid4().hex
        load = self.stack.load
        key = f"{load.org_id}:{customer}".encode()
        sent = time.monotonic()
        await self.stack.producer.send(
            load.points_topic, key, orjson.dumps(self._probe_event(customer, event_id)), prompt=True
        )
        path = f"/v2/customers/{customer}/points/balance?afterEventId={event_id}&waitMs=5000"
        visible = None
        while time.monotonic() - sent < PROBE_GIVE_UP_SECONDS:
            try:
                status, body = await fetch(self.stack.api_port, path, AUTH_HEADERS)
            except (OSError, asyncio.IncompleteReadError):
                status, body = 0, b""
            if status == 200 and b"90001" not in body:
                visible = time.monotonic() - self.origin
                break
            if status != 200:
                await asyncio.sleep(0.2)
        self.probes.append((sent - self.origin, visible))

    def _probe_event(self, customer: int, event_id: str) -> dict:
        load = self.stack.load
        return {
            "specVersion": 1,
            "eventId": event_id,
            "eventType": "points.earned",
            "orgId": load.org_id,
            "customerId": customer,
            "occurredAt": "2026-06-01T00:00:00Z",
            "data": {"programId": load.programs[0], "points": "1", "category": "MAIN"},
        }


async def run_soak(options: SoakOptions) -> dict:
    unknown = set(options.faults) - set(FAULT_KINDS)
    if unknown:
        raise SoakError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
    async with AsyncExitStack() as exits:
        stack = SoakStack(options, exits)
        await stack.start()
        log(
            f"{options.duration:g}s at {options.events:,.0f} events/s and {options.reads:,.0f} reads/s, "
            f"faults {', '.join(kind for _, kind in schedule(options.faults, options.duration)) or 'none'}; "
            f"process logs in {stack.logs}"
        )
        return await Soak(stack).run()
