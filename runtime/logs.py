"""Logs on stderr: one JSON object per line (a readable console on a TTY), from structlog and stdlib loggers.

Stdlib records (`logging.getLogger(...)`, aiokafka, uvicorn) go through structlog's
ProcessorFormatter, so every line has the same keys: `timestamp`, `level`,
`logger`, `event`, plus whatever the call passed (`extra=` or structlog keywords).
"""

import logging
import re
import sys

import structlog

_SECRET = r"[\w-]*?(?:password|passwd|secret|token|authorization|api[_-]?key|credential|cookie)[\w-]*"
_SECRET_KEY = re.compile(_SECRET, re.IGNORECASE)
_MASKS = [  # (pattern, replacement) over every string a line carries
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE), r"\1***@"),  # redis://user:secret@host
    (re.compile(r"\b(basic|bearer)(\s+)[\w.~+/=-]+", re.IGNORECASE), r"\1\2***"),  # Authorization values
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), "***"),  # a JWT anywhere
    (  # name=value, "name": "value", name: value, (b'name', b'value') for a secret-looking name
        re.compile(rf"\b({_SECRET})([\"']?\s*(?:[:=]\s*b?[\"']?|,\s*b?[\"']))[^\"'&\s,;}}\])]+", re.IGNORECASE),
        r"\1\2***",
    ),
]


def _masked(value):
    if isinstance(value, str):
        for pattern, replacement in _MASKS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {key: "***" if _secret_key(key) else _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def _secret_key(key) -> bool:
    return isinstance(key, str) and _SECRET_KEY.fullmatch(key) is not None


def _redact_credentials(_logger, _method, event_dict: dict) -> dict:
    """Never log a secret: values of secret-looking keys, credentials in URLs, Basic/Bearer credentials,
    JWTs and `password=...`-like pairs in any string (messages, tracebacks, extra fields) become `***`."""
    return {key: "***" if _secret_key(key) else _masked(value) for key, value in event_dict.items()}


_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record arrives (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def json_lines(log_format: str) -> bool:
    """Whether lines are JSON objects (else the console's): `json`, or `auto` with stderr not a terminal."""
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def _configure_structlog() -> None:
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def stderr_handler(log_format: str = "auto") -> logging.Handler:
    """The one handler of every process; also uvicorn's, in each of its worker processes."""
    _configure_structlog()
    # tracebacks are rendered to text before the redaction, which masks them too (and never shows locals)
    if json_lines(log_format):
        renderer = [structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_credentials,
                *renderer,
            ],
        )
    )
    return handler


def configure(level: str, log_format: str = "auto") -> None:
    root = logging.getLogger()
    root.handlers[:] = [stderr_handler(log_format)]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def uvicorn_log_config(level: str, log_format: str) -> dict:
    """A dictConfig that uvicorn applies in every worker process, so the API logs like the projector."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": "runtime.logs.stderr_handler", "log_format": log_format}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"aiokafka": {"level": "WARNING"}},
    }


def await_chain(task) -> list[str]:
    """Where an asyncio task stands: each coroutine of its chain of awaits ("file:line function"), outermost
    first (a task's own stack shows one frame)."""
    chain = []
    awaited = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return chain
