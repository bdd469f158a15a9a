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
from collections.abc import Iterator, Sequence

# The historical default of SQLITE_MAX_VARIABLE_NUMBER, safe for every SQLite build.
MAX_VARIABLES = 999


@functools.lru_cache(maxsize=256)
def _statement(head: str, row: str, count: int) -> str:
    return head + ",".join([row] * count)


def multirow_inserts(
    head: str, row: str, rows: Sequence[Sequence[object]]
) -> Iterator[tuple[str, tuple[object, ...]]]:
    """``(sql, parameters)`` pairs that insert ``rows`` together.

    ``head`` is the statement up to and including ``VALUES``; ``row`` is one row's
    parenthesised template with a ``?`` per value (constants allowed, as in ``(?, 0, ?)``).
    Each statement binds at most :data:`MAX_VARIABLES` parameters.
    """
    width = row.count("?")
    if width == 0:
        raise ValueError("a row template needs at least one '?'")
    for values in rows:  # all checked before the first statement
        if len(values) != width:
            raise ValueError(f"a row has {len(values)} values; the template takes {width}")
    per_statement = max(1, MAX_VARIABLES // width)
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        yield (
            _statement(head, row, len(chunk)),
            tuple(value for values in chunk for value in values),
        )
