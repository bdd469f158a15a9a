"""Logging of ``lantern serve``: Lantern's loggers at ``log_level``, libraries that print values
capped at WARNING whatever ``log_level`` is.

At DEBUG, aiosqlite prints every call with its arguments (SQL parameters: tokens, titles,
messages, patient ids, key hashes), SQLAlchemy prints parameters and result rows, httpx/httpcore/
h2/hpack print request headers (provider JWTs, OAuth tokens) and URLs holding device tokens,
botocore prints signed requests and bodies (SES mail, SNS texts), aiosmtplib the SMTP
conversation. None of them may reach a log. ``log_sql_statements = true`` is the one opening:
SQLAlchemy's engine logger at INFO, which prints each statement and, because every engine is
created with ``hide_parameters=True`` (:meth:`lantern.store.Database.open`), never its values.
"""

from __future__ import annotations

import logging

__all__ = ["CAPPED_LOGGERS", "configure_logging"]

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


def configure_logging(level: str, *, sql_statements: bool = False) -> None:
    """Log to stderr at ``level`` (debug, info, warning, error); cap :data:`CAPPED_LOGGERS` at
    WARNING; with ``sql_statements`` log SQL statements (never parameters, never rows)."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    for name in CAPPED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # INFO, not DEBUG: at DEBUG SQLAlchemy's engine logger also prints result rows.
    engine_level = logging.INFO if sql_statements else logging.WARNING
    logging.getLogger("sqlalchemy.engine").setLevel(engine_level)
