"""Logging of ``lantern serve``: Lantern's loggers at ``log_level``, libraries that print values
capped at WARNING whatever ``log_level`` is.

At DEBUG, aiosqlite prints every call with its arguments (SQL parameters: tokens, titles,
messages, patient ids, key hashes), SQLAlchemy prints parameters and result rows, httpx/httpcore/
h2/hpack print request headers (provider JWTs, OAuth tokens) and URLs holding device tokens,
botocore prints signed requests and bodies (SES mail, SNS texts), aiosmtplib the SMTP
conversation. None of them may reach a log. ``log_sql_statements = true`` is the one opening:
SQLAlchemy's engine logger at INFO, which prints each statement and, because every engine is
created with ``hide_parameters=True`` (:meth:`lantern.store.Database.open`), never its values.

``log_format = "json"`` prints one JSON object per line instead of text (docs/logging.md):
``ts`` (ISO-8601, UTC, milliseconds), ``level``, ``logger``, ``msg`` (the formatted message),
then the extra fields a line was given (``peer``, ``listener``, ``reason``, ...) and ``exc``
(the traceback) when there is one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

__all__ = ["CAPPED_LOGGERS", "JsonFormatter", "configure_logging"]

#: Third-party loggers that print values (parameters, headers, bodies) below WARNING.
CAPPED_LOGGERS = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "httpx",
    "httpcore",
    "h2",
    "hpack",
    "h11",
    "websockets",
    "botocore",
    "aiobotocore",
    "s3transfer",
    "urllib3",
    "aiosmtplib",
    "google",
    "nats",
    "charset_normalizer",
    "multipart",
    "python_multipart",
)

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has: anything else on a record is an extra field of the line.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, extra fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str, *, sql_statements: bool = False, fmt: str = "text") -> None:
    """Log to stderr at ``level`` (debug, info, warning, error), as text or (``fmt="json"``)
    one JSON object per line; cap :data:`CAPPED_LOGGERS` at WARNING; with ``sql_statements``
    log SQL statements (never parameters, never rows)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: use text or json")
    logging.basicConfig(level=level.upper(), format=FORMAT)
    if fmt == "json":
        formatter = JsonFormatter()
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # INFO, not DEBUG: at DEBUG SQLAlchemy's engine logger also prints result rows.
    engine_level = logging.INFO if sql_statements else logging.WARNING
    logging.getLogger("sqlalchemy.engine").setLevel(engine_level)
