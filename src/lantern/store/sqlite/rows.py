"""Many rows into SQLite with few statements: multi-row ``INSERT … VALUES (…), (…), …``.

Why not ``executemany``: the ``sqlite3`` driver releases the GIL around every statement step and
must take it back before binding the next row. On a writer thread beside a busy event loop each
of those hand-overs can wait for the loop to give the GIL up (up to the 5 ms switch interval), so
a batch of rows took as many hand-overs as rows. Measured beside a busy main thread: 2,000 rows
took 10 s through ``executemany`` and 77 ms as multi-row statements (11-15 ms either way when
the main thread is idle).
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator, Sequence

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import sqlite

# The historical default of SQLITE_MAX_VARIABLE_NUMBER, safe for every SQLite build.
MAX_VARIABLES = 999
_DIALECT = sqlite.dialect(paramstyle="qmark")


def variable_limit(conn: sqlite3.Connection) -> int:
    """How many parameters one statement on ``conn`` may bind (32,766 on SQLite >= 3.32)."""
    try:
        return int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    except (AttributeError, sqlite3.Error):  # pragma: no cover - very old sqlite3 module
        return MAX_VARIABLES


@functools.lru_cache(maxsize=256)
def _statement(head: str, row: str, count: int) -> str:
    return head + ",".join([row] * count)


def multirow_inserts(
    head: str, row: str, rows: Sequence[Sequence[object]], *, max_variables: int = MAX_VARIABLES
) -> Iterator[tuple[str, tuple[object, ...]]]:
    """``(sql, parameters)`` pairs that insert ``rows`` together.

    ``head`` is the statement up to and including ``VALUES``; ``row`` is one row's
    parenthesised template with a ``?`` per value (constants allowed, as in ``(?, 0, ?)``).
    Each statement binds at most ``max_variables`` parameters (see :func:`variable_limit`):
    the fewer statements, the fewer GIL hand-overs. Statements take a power-of-two number of
    rows (a batch of 37 is 32 + 4 + 1), so a connection only ever prepares a dozen distinct
    statements per table and its statement cache keeps them: with one statement per batch size,
    varying batch sizes filled the cache with large prepared statements (~50 MB measured).
    """
    width = row.count("?")
    if width == 0:
        raise ValueError("a row template needs at least one '?'")
    for values in rows:  # all checked before the first statement
        if len(values) != width:
            raise ValueError(f"a row has {len(values)} values; the template takes {width}")
    per_statement = max(1, max_variables // width)
    largest = 1 << (per_statement.bit_length() - 1)
    start = 0
    while start < len(rows):
        left = len(rows) - start
        size = min(largest, 1 << (left.bit_length() - 1))
        chunk = rows[start : start + size]
        yield (
            _statement(head, row, size),
            tuple(itertools.chain.from_iterable(chunk)),
        )
        start += size


def insert_template(table: Table, columns: Sequence[str]) -> tuple[str, str]:
    """``(head, row)`` for :func:`multirow_inserts`, compiled once from the Core statement
    ``insert(table)`` of ``columns`` (the SQL text is never written by hand). ``columns`` must
    be in the table's order (the order of each row's values); anything else is refused."""
    in_table_order = [c.name for c in table.columns if c.name in set(columns)]
    if in_table_order != list(columns):
        raise ValueError(f"columns of {table.name} must be its own, in its order: {in_table_order}")
    statement = insert(table).values({name: bindparam(name) for name in columns})
    sql = str(statement.compile(dialect=_DIALECT))
    head, separator, row = sql.partition(" VALUES ")
    if not separator or row.count("?") != len(columns):
        raise ValueError(f"unexpected INSERT for {table.name}: {sql}")
    return head + separator, row
