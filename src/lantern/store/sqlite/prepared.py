"""One source per SQL statement: a SQLAlchemy Core statement, compiled once for SQLite's own
driver, run the same way on every database.

On a synchronous connection over SQLite's ``sqlite3`` driver, building, cache-keying and
compiling a SQLAlchemy statement costs several times what SQLite needs to run it, and a
group-commit batch runs a few statements per request. A :class:`Prepared` statement is compiled
once (``qmark`` parameters, expanding ``IN`` lists rendered) and executed on the raw ``sqlite3``
connection inside the same transaction; on any other driver the very same Core statement goes
through SQLAlchemy. The SQL text is generated, never written a second time by hand.

Both paths return the same values because a prepared statement may not depend on SQLAlchemy's
type processing (which the raw path skips): the constructor refuses a statement that has bind
or result processors on SQLite. Columns holding JSON or booleans are read and written through
``type_coerce(column, String / Integer)``, and the repository converts (``json.loads``,
``bool``), so SQLite and PostgreSQL give the repository identical rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Float, Integer, String
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from lantern.store.sqlite.connection import raw_connection

__all__ = ["Prepared"]

_DIALECT = sqlite.dialect(paramstyle="qmark")
# Types whose Python values are the same through SQLAlchemy and through the raw driver (String
# covers Text; Float's processor only makes sure of a float).
_PLAIN = (Float, Integer, String)


def _check_plain_types(compiled: Any) -> None:
    for name in compiled._bind_processors:
        bind_type = compiled.binds[name].type
        if not isinstance(bind_type, _PLAIN):
            raise ValueError(_refusal(f"parameter {name} is {bind_type!r}", compiled))
    for column in getattr(compiled, "_result_columns", ()):
        column_type = column[3]
        processor = column_type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
        if processor is not None and not isinstance(column_type, _PLAIN):
            raise ValueError(_refusal(f"column {column[0]} is {column_type!r}", compiled))


def _refusal(what: str, compiled: Any) -> str:
    return (
        f"a prepared statement may not rely on type processing ({what}; coerce JSON and boolean "
        f"columns to String / Integer): {compiled.string[:80]}"
    )


class Prepared:
    """A Core statement with its SQLite text compiled once (see the module docstring)."""

    __slots__ = ("_defaults", "_order", "sql", "statement")

    def __init__(self, statement: Executable) -> None:
        assert isinstance(statement, ClauseElement)
        # Constant IN lists are "expanding" parameters, rendered with one ? per value; the
        # caller's parameters are placeholders until execution. A caller-supplied list cannot be
        # prepared (its length varies).
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        placeholders: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            if bind.value is None and bind.callable is None:
                if bind.expanding:
                    raise ValueError(f"a prepared statement cannot take a list parameter: {name}")
                placeholders[name] = None
        expanded = compiled.construct_expanded_state(placeholders)
        _check_plain_types(compiled)
        self.statement = statement
        self.sql: str = expanded.statement
        self._order: tuple[str, ...] = tuple(expanded.positiontup or ())
        self._defaults: dict[str, Any] = {
            k: v for k, v in expanded.parameters.items() if k not in placeholders
        }

    def rows(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        """All result rows, as positional sequences."""
        raw = raw_connection(conn)
        if raw is not None:
            return raw.execute(self.sql, self._positional(params)).fetchall()
        return [tuple(row) for row in conn.execute(self.statement, dict(params or {}))]

    def first(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> Sequence[Any] | None:
        """The first result row, or None."""
        raw = raw_connection(conn)
        if raw is not None:
            row: Sequence[Any] | None = raw.execute(self.sql, self._positional(params)).fetchone()
            return row
        found = conn.execute(self.statement, dict(params or {})).first()
        return None if found is None else tuple(found)

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute a write; the number of rows it matched."""
        raw = raw_connection(conn)
        if raw is not None:
            return raw.execute(self.sql, self._positional(params)).rowcount
        return conn.execute(self.statement, dict(params or {})).rowcount

    def _positional(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        if not params:
            return tuple(self._defaults[name] for name in self._order)
        defaults = self._defaults
        return tuple(params[name] if name in params else defaults[name] for name in self._order)
