"""Structured logs: one JSON object per line on stderr, for both services.

The scrubbing rule is structural, not a search for bad values: a line holds only the fields
named in ``FIELDS``, each a number or a short token-like string (``_SAFE``); the message is the
logging call's template with every non-numeric argument replaced by ``<redacted>``; an exception
is its class name and the frames it passed through, never its message (a database error can
quote bound parameters), except a placelink error's message and fix (``detail``), which by
the house rule never carry a value. Request bodies, headers and query strings are never passed to a
logger at all (see :mod:`policies.telemetry`). So no identifier, encoding or token reaches a log
line unless code writes one into a template, which review forbids.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import traceback
from typing import Any, TextIO

from keys.errors import PlacelinkError

REDACTED = "<redacted>"
# The extra fields a log line may carry (``logger.info("...", extra={...})``).
FIELDS = ("service", "request_id", "method", "route", "status", "latency_ms", "caller",
          "outcome", "records", "revision")  # fmt: skip
_SAFE = re.compile(r"[A-Za-z0-9_.:/<>\-]{0,200}")


def _safe(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _SAFE.fullmatch(value):
        return value
    return REDACTED


def _message(record: logging.LogRecord) -> str:
    if not isinstance(record.msg, str):
        return f"<{type(record.msg).__name__}>"
    if not record.args:
        return record.msg
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    shown = tuple(a if isinstance(a, bool | int | float) else REDACTED for a in args)
    try:
        return record.msg % shown
    except (TypeError, ValueError):
        return record.msg


class JsonLineFormatter(logging.Formatter):
    """A log record as one JSON line holding only whitelisted, value-free fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": _message(record),
        }
        for name in FIELDS:
            if name in record.__dict__:
                line[name] = _safe(record.__dict__[name])
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, trace = record.exc_info
            line["error"] = kind.__name__
            if isinstance(error, PlacelinkError):  # their messages never carry a value
                line["detail"] = error.diagnostics()
            line["frames"] = [
                f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}:{frame.name}"
                for frame in traceback.extract_tb(trace)
            ]
        return json.dumps(line, separators=(",", ":"))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (a test's capture, gunicorn's redirect)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """Send the root logger's records to stderr as JSON lines (once; later calls keep what
    gunicorn's ``logconfig_dict`` or an earlier call set up)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLineFormatter) for h in root.handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(JsonLineFormatter())
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.getLevelName(level.upper()):
        root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)


def logconfig_dict(level: str = "INFO") -> dict[str, Any]:
    """Gunicorn's ``logconfig_dict``: its own loggers and the app's, all as JSON lines."""
    handler = {"()": StderrHandler, "formatter": "json"}
    quiet = {"level": level.upper(), "handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLineFormatter}},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": quiet,
            # gunicorn's access lines (enabled by any logconfig_dict) would hold raw paths:
            # dropped; the app logs each request itself.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "alembic": {"level": "WARNING"},  # placelink.migrate says what it migrated
        },
    }
