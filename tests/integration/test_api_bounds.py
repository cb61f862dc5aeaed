"""API.md "Input bounds" and abuse (issue 15) against a running `pointsview api` over real sockets: request
line and header limits, slow clients cut off while others are served, no secret in any log line."""

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.demo import AUTH_HEADERS, DEMO_CONFIG
from devtools.localstack import LocalRedis, free_port
from service.protocol import MAX_BODY, MAX_FIELDS, MAX_TARGET

pytestmark = [pytest.mark.timeout(120), pytest.mark.single_redis]  # the HTTP protocol: no store code
REQUEST_TIMEOUT = 2  # the server's, for these tests (its default is 10 s)
LOOKUP = "/v2/customers/lookup/points/balance?source=INSTORE&identifierName=mobile&identifierValue=1"
AUTHORIZATION = AUTH_HEADERS["Authorization"]


class Server:
    def __init__(self, port: int, log: Path):
        self.port = port
        self.log = log

    async def exchange(self, head: bytes) -> tuple[int, dict, bytes]:
        """(status, error body or {}, the raw answer) of one request on a connection of its own."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(head)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 30)  # the server closes (Connection: close)
        finally:
            writer.close()
        status = int(answer.split(b" ", 2)[1])
        body = answer.partition(b"\r\n\r\n")[2]
        return status, json.loads(body) if body.startswith(b"{") else {}, answer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    redis = LocalRedis().start()
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "stderr.log"
    env = {
        **os.environ,
        "REDIS_URL": redis.url,
        "LOYALTY_CONFIG": str(DEMO_CONFIG),
        "POINTSVIEW_KEY_PREFIX": f"bounds{uuid.uuid4().hex[:8]}",
        "POINTSVIEW_API_PORT": str(port),
        "POINTSVIEW_LOG_FORMAT": "json",
        "POINTSVIEW_LOG_LEVEL": "DEBUG",
        "POINTSVIEW_API_ACCESS_LOG": "true",
        "POINTSVIEW_API_REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "cli", "api", "--workers", "2"], env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Server(port, log)
    finally:
        process.terminate()
        process.wait(timeout=30)
        redis.cleanup()


def request(target: str, fields: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields), "", ""]
    return "\r\n".join(lines).encode()


def padded_target(length: int) -> str:
    target = LOOKUP + "&pad="
    return target + "a" * (length - len(target))


def padded_fields(total: int) -> list[tuple[str, str]]:
    """Header fields of `total` bytes in all, each counted as `name: value` and its line end."""
    fields = [("Host", "127.0.0.1"), ("Authorization", AUTHORIZATION), ("Connection", "close")]
    used = sum(len(name) + len(value) + 4 for name, value in fields) + len("X-Pad") + 4
    return [*fields, ("X-Pad", "p" * (total - used))]


async def test_request_targets_up_to_8_kib_are_served_and_longer_ones_are_414(server):
    status, body, _ = await server.exchange(request(padded_target(MAX_TARGET), padded_fields(MAX_FIELDS)))
    assert (status, body["errors"][0]["code"]) == (404, 8015)  # both limits at once: answered by the API
    status, body, _ = await server.exchange(request(padded_target(MAX_TARGET + 1), padded_fields(100)))
    assert (status, body["errors"][0]["code"], body["warnings"]) == (414, 414, [])


def refused(server, status: int) -> float:
    """The API's count of requests refused with `status` at the protocol (every worker's: /metrics)."""
    metrics = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    line = f'pointsview_http_refused_total{{status="{status}"}} '
    return sum(float(row.removeprefix(line)) for row in metrics.splitlines() if row.startswith(line))


async def test_header_fields_up_to_16_kib_are_served_and_more_are_431(server):
    before = refused(server, 431)
    status, body, _ = await server.exchange(request(LOOKUP, padded_fields(MAX_FIELDS)))
    assert (status, body["errors"][0]["code"]) == (404, 8015)
    status, body, _ = await server.exchange(request(LOOKUP, padded_fields(MAX_FIELDS + 1)))
    assert (status, body["errors"][0]["code"]) == (431, 431)
    status, body, _ = await server.exchange(request(LOOKUP, padded_fields(200_000)))  # one 200 KB field
    assert (status, body["errors"][0]["code"]) == (431, 431)
    many = [("Host", "x"), *((f"X-{n}", "v") for n in range(3000))]  # many small fields
    status, body, _ = await server.exchange(request("/health/live", many))
    assert (status, body["errors"][0]["code"]) == (431, 431)
    assert refused(server, 431) == before + 3  # counted for the operators


async def test_numbers_of_thousands_of_digits_are_parameter_errors_not_500(server):
    for target, status, code in [
        (f"/v2/customers/{'9' * 5000}/points/balance", 400, 1632),
        (f"{LOOKUP}&programId={'9' * 5000}", 400, 400),
        (f"/v2/customers/1/points/balance?programId={2**31}", 400, 400),
        (f"{LOOKUP}&afterEventId=e&waitMs={'1' * 5000}", 400, 400),
    ]:
        answer, body, _ = await server.exchange(
            request(target, [("Authorization", AUTHORIZATION), ("Connection", "close")])
        )
        assert (answer, body["errors"][0]["code"], body["warnings"]) == (status, code, [])


async def test_slow_and_half_sent_requests_are_cut_off_while_others_are_served(server):
    half = request(LOOKUP, [("Host", "x"), ("Authorization", AUTHORIZATION)])[:-2]  # never the final line end
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
    for _reader, writer in connections:
        writer.write(half)
    trickle = request(LOOKUP, [("Host", "x"), ("X-Slow", "s" * 200)])  # a byte a second: over 200 s

    async def trickler(data: bytes, first: bytes = b"") -> tuple[int, bytes]:
        """Bytes sent before the server cut the connection off, and what it answered to them (after `first`'s
        answer, on the same connection)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if first:
            writer.write(first)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 405 "))
            await reader.readexactly(int(head.lower().partition(b"content-length: ")[2].split(b"\r")[0]))
        closed = asyncio.create_task(reader.read())
        try:
            for sent, byte in enumerate(data):
                writer.write(bytes([byte]))
                done, _ = await asyncio.wait([closed], timeout=1)
                if done:
                    return sent + 1, closed.result()
            raise AssertionError("the trickled request was served whole")
        finally:
            writer.close()

    tricklers = asyncio.gather(
        trickler(trickle),
        # blank lines after a keep-alive request: they begin no request, yet must not hold the connection either
        trickler(b"\r\n" * 100, request("/health/live", [("Host", "x")])),
        # a body after its request was answered (405): closed without a second answer
        trickler(b"b" * 100, b"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"),
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=AUTH_HEADERS) as client:
        served = 0
        while not tricklers.done():  # normal requests keep being answered meanwhile
            assert (await client.get("/v2/customers/1/points/balance")).status_code == 404
            served += 1
            await asyncio.sleep(0.05)
    assert served > 10
    (head, head_answer), (blank, blank_answer), (body, body_answer) = await tricklers
    assert head < len(trickle) // 2 and blank < 100 and body < 100  # cut off after about REQUEST_TIMEOUT s
    assert b" 408 " in head_answer and b" 408 " in blank_answer and body_answer == b""
    answers = await asyncio.wait_for(asyncio.gather(*(reader.read() for reader, _ in connections)), 30)
    for (_reader, writer), answer in zip(connections, answers):
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":408' in answer  # then closed: read() ended


async def test_no_request_makes_the_api_log_a_secret(server):
    marker = uuid.uuid4().hex
    password, secret = f"pw-{marker}", f"sec-{marker}"
    basic = base64.b64encode(f"demo:{password}".encode()).decode()
    jwt = f"eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ7{marker}In0.c2ln{marker}"
    secrets = [password, secret, basic, jwt, marker]
    headers = [("Host", "x"), ("Authorization", f"Basic {basic}"), ("X-CAP-API-OAUTH-TOKEN", jwt)]
    target = f"{LOOKUP}&password={password}&secret={secret}&client_secret={secret}&token={jwt}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get(target, headers={"Authorization": f"Basic {basic}"})).status_code == 401
        assert (await client.get(target, headers={"Authorization": f"Bearer {jwt}"})).status_code == 401
        assert (await client.get(target, headers={"X-CAP-API-OAUTH-TOKEN": jwt})).status_code == 401
        generate = await client.post("/v3/oauth/token/generate", json={"key": "demo", "secret": secret})
        assert generate.status_code in (401, 404)
        await client.post(f"/v3/oauth/token/generate?secret={secret}", content=b'{"key": "demo", "secret": ')
    for head in [
        request(target, [*headers, ("Connection", "close")]),
        request(target, [*headers, ("X-Pad", "p" * MAX_FIELDS)]),  # 431
        request(target + "&pad=" + "a" * MAX_TARGET, headers),  # 414
        f"GET {target} HTTP/1.1\r\nAuthorization: Basic {basic}\r\nBad Header\r\n\r\n".encode(),  # 400
    ]:
        status, _body, _ = await server.exchange(head)
        assert status in (400, 401, 414, 431)

    def logged() -> str:
        return server.log.read_text()

    deadline = time.monotonic() + 30
    while "password=***" not in logged():  # the access log's line for the first request
        assert time.monotonic() < deadline, logged()
        await asyncio.sleep(0.1)
    lines = [json.loads(line) for line in logged().splitlines() if line.startswith("{")]
    assert [line for line in lines if line.get("status") in (400, 414, 431)]  # the refusals are logged
    assert not [line for line in lines if any(s in json.dumps(line) for s in secrets)]


async def test_pipelined_requests_and_request_bodies_are_still_served(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        body = b'{"key": "k"}' * 1000  # a body well past the header limits
        post = f"POST /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        writer.write(request("/health/live", [("Host", "x")]) * 3 + post + request("/health/live", [("Host", "x")]))
        statuses = []
        for _ in range(5):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            statuses.append(int(head.split(b" ", 2)[1]))
            await reader.readexactly(int(head.lower().partition(b"content-length: ")[2].split(b"\r")[0]))
        assert statuses == [200, 200, 200, 405, 200]
    finally:
        writer.close()


async def test_a_request_body_over_64_kib_is_413(server):
    token = "/v3/oauth/token/generate"
    for size, status in ((MAX_BODY, 400), (MAX_BODY + 1, 413)):  # a body the limit allows: a bad token request
        body = b" " * size
        head = f"POST {token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {size}\r\n\r\n"
        answered, answer, _ = await server.exchange(head.encode() + body)
        assert (answered, answer["errors"][0]["code"]) == (status, status)
