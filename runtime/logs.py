"""Logs on stderr: one JSON object per line (a readable console on a TTY), from structlog and stdlib loggers.

Stdlib records (`logging.getLogger(...)`, aiokafka, uvicorn) go through structlog's
ProcessorFormatter, so every line has the same keys: `timestamp`, `level`,
`logger`, `event`, plus whatever the call passed (`extra=` or structlog keywords).
"""

import logging
import re
import sys

import structlog

_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _redact_credentials(_logger, _method, event_dict: dict) -> dict:
    """Never log credentials: `redis://user:secret@host` becomes `redis://***@host`."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = _URL_CREDENTIALS.sub(r"\1***@", value)
    return event_dict


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


def _json_lines(log_format: str) -> bool:
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
    if _json_lines(log_format):
        renderer = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer()]
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redact_credentials, *renderer],
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
