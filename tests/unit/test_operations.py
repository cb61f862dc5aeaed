"""The operations helpers without servers: JSON logs, JSON-lines input, choosing dead letters."""

import asyncio
import json
import logging
import os
import signal

import pytest
import structlog

from cli.common import until_signalled
from consumers.deadletter_admin import DeadLetter, DeadLetterError, select
from devtools.produce import InvalidLine, stream_from_lines
from tests.support import event


def test_stdlib_and_structlog_calls_are_json_lines_without_credentials(json_logs):
    logging.getLogger("pointsview.projector").info(
        "consuming into %s", "redis://user:s3cret@redis:6379/0", extra={"orgId": 100737}
    )
    structlog.get_logger("pointsview.deadletters").warning("replayed", orgId=100737, customerId=5)
    logging.getLogger("pointsview.projector").debug("below the level")
    first, second = json_logs()
    assert first["event"] == "consuming into redis://***@redis:6379/0"
    assert (first["level"], first["logger"], first["orgId"]) == ("info", "pointsview.projector", 100737)
    assert "timestamp" in first and "s3cret" not in json.dumps(first)
    assert (second["event"], second["level"], second["customerId"]) == ("replayed", "warning", 5)


SECRETS = ["s3cr3t-pw", "dGlsbDp0aWxsLXB3", "eyJhbGciOiJIUzI1NiJ9.eyJvcmdfaWQiOjF9.c2lnbmF0dXJl", "k3y-s3cret"]


def test_secrets_are_masked_in_messages_fields_and_tracebacks(json_logs):
    password, basic, jwt, secret = SECRETS
    log = logging.getLogger("uvicorn.access")
    log.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/v2/x?password={password}&secret={secret}", "1.1", 401)
    log.warning("headers %s", [(b"authorization", f"Basic {basic}".encode()), (b"x-cap-api-oauth-token", jwt.encode())])
    log.warning("body", extra={"body": {"key": "k", "secret": secret}, "authorization": f"Bearer {jwt}"})
    structlog.get_logger("pointsview.api").warning("token", header=f"X-CAP-API-OAUTH-TOKEN: {jwt}", password=password)
    try:
        raise ValueError(f"bad body {{'key': 'k', 'secret': '{secret}'}} for Authorization: Basic {basic}")
    except ValueError:
        log.exception("Exception in ASGI application")
    lines = json_logs()
    assert len(lines) == 5 and lines[0]["event"].endswith('"GET /v2/x?password=***&secret=*** HTTP/1.1" 401')
    assert lines[2]["body"] == {"key": "k", "secret": "***"} and "ValueError: bad body" in lines[4]["exception"]
    assert not [s for s in SECRETS if s in json.dumps(lines)], lines


def test_json_lines_are_keyed_by_customer_and_routed_by_event_type():
    registered = event("customer.registered", {"source": "INSTORE"}, customer_id=3)
    earned = event("points.earned", {"programId": 973, "points": 5, "category": "MAIN"}, customer_id=4)
    issued = event("card.issued", {"cardNumber": "C1", "seriesId": 1, "statusLabel": "ACTIVE"}, customer_id=5)
    lines = [json.dumps(registered).encode(), b"  ", json.dumps(earned).encode() + b"\r", json.dumps(issued).encode()]
    stream = stream_from_lines(lines, "customers", "points")
    assert [(topic, key) for topic, key, _ in stream] == [
        ("customers", b"100737:3"),
        ("points", b"100737:4"),
        ("customers", b"100737:5"),
    ]
    assert stream[0][2] == lines[0]  # the bytes as they are


def test_a_line_that_is_not_an_envelope_is_named():
    with pytest.raises(InvalidLine, match="line 2"):
        stream_from_lines([json.dumps(event("points.earned", {})).encode(), b"{not json"], "c", "p")


def _letter(partition: int, offset: int) -> DeadLetter:
    return DeadLetter(partition, offset, 0, b"1:2", b"{}", {"dlq.topic": "points"})


def test_dead_letters_are_chosen_by_partition_and_offset_or_an_unambiguous_offset():
    letters = [_letter(0, 0), _letter(1, 0), _letter(1, 1)]
    assert select(letters, ["1:0", "1"]) == [letters[1], letters[2]]
    with pytest.raises(DeadLetterError, match="several partitions; say which: 0:0, 1:0"):
        select(letters, ["0"])
    with pytest.raises(DeadLetterError, match="no dead letter at 2:0"):
        select(letters, ["2:0"])


def test_a_signalled_command_exits_with_what_it_returned():
    """`rebuild`, `generations switch` and `rollback` return 1 when interrupted; the wrapper keeps it."""

    async def interrupted(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        return 1

    assert asyncio.run(until_signalled(interrupted)) == 1
