"""The API's HTTP/1.1 server protocol: uvicorn's httptools protocol with API.md's input bounds.

- A request body over 64 KiB answers 413 (the API reads none but the token request's).
- A request target (path and query) over 8 KiB answers 414; header fields over 16 KiB in all (each
  counted as `name: value` and its line end) answer 431. The raw bytes of a request head are bounded
  too, so a long header is refused as it arrives rather than buffered whole by the parser.
- A request must arrive whole within `request_timeout` seconds of its first byte, and a new connection
  must send a whole request within that time of opening: a client that stops half-way, or sends a byte
  a second, is answered 408 and cut off (uvicorn's keep-alive timeout covers idle connections between
  requests, not a request being read).
- Every refusal, and uvicorn's 400 for a malformed request, carries the error body and closes the
  connection: at once for reading, a second later for good (closing with unread bytes would reset the
  connection, and the client could lose the answer).
"""

import asyncio
import logging

import httptools
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import error_body
from service.metrics import REFUSED

MAX_TARGET = 8 * 1024
MAX_FIELDS = 16 * 1024
MAX_HEAD = MAX_TARGET + MAX_FIELDS + 1024  # the request line's method, version and line ends besides
MAX_BODY = 64 * 1024  # the only body the API reads is the token request's: a key and a secret
REQUEST_TIMEOUT = 10.0
LINGER = 1.0  # after a refusal, unread bytes are read and dropped this long before the connection closes
MESSAGES = {
    400: "Invalid HTTP request",
    408: "The request was not received in time",
    413: f"The request body is longer than {MAX_BODY} bytes",
    414: f"The request target is longer than {MAX_TARGET} bytes",
    431: f"The request header fields are longer than {MAX_FIELDS} bytes in all",
}

logger = logging.getLogger(__name__)


class ApiConfig(Config):
    """uvicorn's Config serving with BoundedHttpToolsProtocol (picklable: uvicorn hands it to workers)."""

    def __init__(self, app, request_timeout: float = REQUEST_TIMEOUT, **options) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, **options)
        self.request_timeout = request_timeout

    def configure_logging(self) -> None:
        """uvicorn's, with the access log (when on) at INFO whatever `log_level` quiets uvicorn's others."""
        super().configure_logging()
        if self.access_log:
            logging.getLogger("uvicorn.access").setLevel(logging.INFO)


class _Refused(Exception):
    def __init__(self, status: int):
        self.status = status


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self.request_timeout = getattr(config, "request_timeout", REQUEST_TIMEOUT)
        # One timer per connection, not one per request (a timer armed and cancelled for every request cost
        # the read path a few percent): it checks when the request being read began, and sets itself again.
        self.deadline: asyncio.TimerHandle | None = None
        self.reading_since: float | None = None  # when the request being read (or a connection's first) began
        self.reading_head = True
        self.head_bytes = 0
        self.field_bytes = 0
        self.body_bytes = 0
        self.refused = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.reading_since = self.loop.time()  # a new connection must send a whole request in time too
        self._check_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the head's bytes counted and the bounds' refusals."""
        if self.refused:
            return
        self._unset_keepalive_if_required()
        if self.reading_since is None and (self.cycle is None or self.cycle.response_complete):
            self.reading_since = self.loop.time()  # bytes that begin no request (blank lines) count too
        if self.reading_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            refused = error.__context__
            self.refuse(refused.status if isinstance(refused, _Refused) else 400)
            return
        except httptools.HttpParserError:
            self.refuse(400)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.reading_head and self.head_bytes > MAX_HEAD:
            self.refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.field_bytes = self.body_bytes = 0
        if self.reading_since is None:
            self.reading_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET:
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.field_bytes += len(name) + len(value) + 4
        if self.field_bytes > MAX_FIELDS:
            raise _Refused(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_BODY:
            raise _Refused(413)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.reading_since = None
        self.reading_head, self.head_bytes = True, 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self.refuse(400)

    def refuse(self, status: int) -> None:
        """Answer `status` with the error body, unless a response has begun, and close the connection."""
        self._disarm()
        if self.refused or self.transport.is_closing():
            return
        self.refused = True
        REFUSED.labels(status).inc()  # 408, 413, 414, 431, 400: what abuse looks like, for the operators
        client = f"{self.client[0]}:{self.client[1]}" if self.client else ""
        logger.warning("refused a request", extra={"status": status, "client": client})
        cycle = self.cycle  # the request being read once its head is complete, else the one before it
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # its application sees a disconnect
            cycle.message_event.set()
        if cycle is not None and (not cycle.response_complete if self.reading_head else cycle.response_started):
            self.transport.close()  # an answer is under way: another would be taken for its rest
            return
        body = error_body(status, MESSAGES[status])
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    def _check_deadline(self) -> None:
        """408 for a request not read whole within `request_timeout` of its first byte; else set again for
        when the request being read would be late, or a timeout from now when none is."""
        now = self.loop.time()
        if self.reading_since is not None and now - self.reading_since >= self.request_timeout:
            self.deadline = None
            self.refuse(408)
            return
        due = (self.reading_since if self.reading_since is not None else now) + self.request_timeout
        self.deadline = self.loop.call_at(due, self._check_deadline)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
