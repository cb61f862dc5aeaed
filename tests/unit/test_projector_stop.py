"""A stop ends in bounded time, whatever the group or the broker do."""

import asyncio
import gc
import signal
import subprocess
import sys
import textwrap
import time

from consumers.projector import RARER_COLLECTIONS, Projector
from runtime.settings import Settings


class _Rebalancing:
    """A consumer whose group never settles: aiokafka's getmany waits for the new assignment meanwhile."""

    def __init__(self):
        self.fetches = 0

    async def getmany(self, timeout_ms, max_records):
        self.fetches += 1
        await asyncio.Event().wait()


async def test_a_stop_does_not_wait_for_the_group_to_settle():
    stop = asyncio.Event()
    consumer = _Rebalancing()
    projector = Projector(Settings(), consumer, None, None, stop)  # nothing to flush, commit or report
    thresholds = gc.get_threshold()
    running = asyncio.create_task(projector.run())
    await asyncio.sleep(0.1)
    assert consumer.fetches == 1 and not running.done()
    assert gc.get_threshold() == RARER_COLLECTIONS  # while it runs ...
    stop.set()
    await asyncio.wait_for(running, 2)
    assert gc.get_threshold() == thresholds  # ... and the host process's own after it


def test_a_process_whose_stop_hangs_exits_after_the_grace_period_saying_what_waited():
    # Redis holds what was applied and the positions past it, so exiting then loses nothing (as after a crash).
    child = textwrap.dedent(
        """
        import asyncio, consumers.projector as projector
        from runtime.logs import configure
        from runtime.settings import Settings

        async def stuck(settings, stop):
            await stop.wait()
            print("stopping", flush=True)
            await asyncio.Event().wait()  # a stop step that never ends

        configure("INFO")
        projector.STOP_GRACE_SECONDS = 1.0
        projector.run_projector = stuck
        print("ready", flush=True)
        projector.run_until_signalled(Settings())
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        time.sleep(0.3)  # the event loop's handlers are in place
        process.send_signal(signal.SIGTERM)
        assert process.stdout.readline() == "stopping\n"
        assert process.wait(timeout=10) == 0
        stderr = process.stderr.read()
        assert "the stop took too long: exiting" in stderr and "<string>:9 stuck" in stderr  # where it hung
    finally:
        process.kill()
        process.communicate()


async def test_projectors_overlapping_in_one_process_leave_its_thresholds_as_they_were():
    thresholds = gc.get_threshold()
    stops = [asyncio.Event(), asyncio.Event()]
    first, second = (
        asyncio.create_task(Projector(Settings(), _Rebalancing(), None, None, stop).run()) for stop in stops
    )
    await asyncio.sleep(0.1)
    stops[0].set()  # the first to start ends first: the second still runs with rarer collections
    await asyncio.wait_for(first, 2)
    assert gc.get_threshold() == RARER_COLLECTIONS
    stops[1].set()
    await asyncio.wait_for(second, 2)
    assert gc.get_threshold() == thresholds
