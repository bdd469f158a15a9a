"""Multi-row INSERT statements: every row lands once, in order, within SQLite's variable limit."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table

from lantern.store.sqlite.rows import MAX_VARIABLES, insert_template, multirow_inserts

HEAD = "INSERT INTO t (a, b, c, state) VALUES "
ROW = "(?, ?, ?, 'new')"


def _insert(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, a, b, c, state TEXT)")
    statements = list(multirow_inserts(HEAD, ROW, rows))
    for sql, params in statements:
        assert len(params) <= MAX_VARIABLES
        conn.execute(sql, params)
    stored = conn.execute("SELECT a, b, c, state FROM t ORDER BY n").fetchall()
    conn.close()
    return stored


@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.none() | st.floats(allow_nan=False),
        ),
        max_size=1200,
    )
)
def test_every_row_is_inserted_once_in_order(rows: list[tuple[object, ...]]) -> None:
    assert _insert(rows) == [(*row, "new") for row in rows]


def test_a_large_batch_takes_few_statements_of_power_of_two_sizes() -> None:
    rows = [(i, "x", 1.0) for i in range(2000)]
    sizes = [len(params) // 3 for _, params in multirow_inserts(HEAD, ROW, rows)]
    # 999 variables take 333 rows: statements of 256, then 208 = 128 + 64 + 16.
    assert sizes == [256] * 7 + [128, 64, 16]
    assert _insert(rows)[-1] == (1999, "x", 1.0, "new")


def test_any_batch_size_reuses_a_dozen_statements() -> None:
    texts = {
        sql
        for n in range(1, 600)
        for sql, _ in multirow_inserts(HEAD, ROW, [(1, "x", 1.0)] * n, max_variables=32766)
    }
    assert len(texts) == 10  # 1, 2, 4, ... 512 rows


def test_nothing_to_insert_makes_no_statement() -> None:
    assert list(multirow_inserts(HEAD, ROW, [])) == []


def test_a_row_of_the_wrong_width_is_refused_before_any_statement() -> None:
    rows: list[tuple[object, ...]] = [(i, "a", 2.0) for i in range(1000)] + [(1, "a")]
    statements = multirow_inserts(HEAD, ROW, rows)
    with pytest.raises(ValueError, match="2 values; the template takes 3"):
        next(statements)
    with pytest.raises(ValueError, match="at least one"):
        list(multirow_inserts(HEAD, "(1)", [()]))


def test_a_template_compiled_from_a_core_table_inserts_its_columns() -> None:
    table = Table("t2", MetaData(), Column("n", Integer, primary_key=True), Column("s", String))
    head, row = insert_template(table, ("n", "s"))
    assert (head, row) == ("INSERT INTO t2 (n, s) VALUES ", "(?, ?)")
    for wrong in (("s", "n"), ("n", "nope")):  # values would land in the wrong columns
        with pytest.raises(ValueError, match="in its order"):
            insert_template(table, wrong)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t2 (n INTEGER PRIMARY KEY, s TEXT)")
    for sql, params in multirow_inserts(head, row, [(i, str(i)) for i in range(300)]):
        conn.execute(sql, params)
    assert conn.execute("SELECT count(*), sum(n) FROM t2").fetchone() == (300, sum(range(300)))
