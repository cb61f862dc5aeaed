"""`pointsview projector --processes N`: N members of the projector's consumer group under one command.

Each member is a process of its own (Python applies events on one core per process), with its own Kafka
consumer and Redis connection; the group spreads the partitions over them, and the per-customer
compare-and-set keeps a customer written by two members (its topics' partitions on different members)
exact. SIGTERM or SIGINT to the command stops every member after its batch in flight; the command exits
with the first non-zero exit code of its members.
"""

import multiprocessing
import signal

from runtime.logs import configure
from runtime.settings import Settings


def run_members(settings: Settings, processes: int) -> int:
    context = multiprocessing.get_context("spawn")  # no inherited event loop, sockets or locks
    members = [
        context.Process(target=_member, args=(settings.model_dump(by_alias=False), index), name=f"projector-{index}")
        for index in range(processes)
    ]
    for member in members:
        member.start()

    def stop(_signum, _frame) -> None:
        for member in members:
            if member.is_alive() and member.pid:
                member.terminate()  # SIGTERM: the member finishes its batch, commits and exits 0

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for member in members:
            member.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return next((m.exitcode for m in members if m.exitcode), 0)


def stop_before_the_loop() -> None:
    """A SIGTERM or SIGINT that comes while a process is still starting stops it at once, cleanly (exit 0):
    it has nothing to finish yet. Its event loop's handlers take over once it runs."""

    def stop(_signum, _frame):
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)


def _member(fields: dict, index: int) -> None:
    stop_before_the_loop()
    from consumers.projector import run_until_signalled

    settings = Settings.model_validate(fields)
    configure(settings.log_level, settings.log_format)
    if settings.metrics_port:  # one port per member: POINTSVIEW_METRICS_PORT + index
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port + index, addr=settings.metrics_host)
    run_until_signalled(settings)
