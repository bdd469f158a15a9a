"""Tables of the list commands: they fit the terminal and never cut an identifier.

An identifier column is never wrapped, cut or ellipsized: users copy ids into the next command.
When a table is wider than the terminal, the columns that matter least go first (each
:class:`Col` says in which order); if the identifiers alone still do not fit, every row is
printed as a small record instead (identifiers on the first line, one field a line under it).
``--json`` always has every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lantern.cli.common import console

Cell = str | Text


@dataclass(frozen=True)
class Col:
    """A table column. ``id``: an identifier (never wrapped nor cut). ``drop``: 0 for a column
    always shown; among the others, the highest number is left out first when space runs out."""

    header: str
    id: bool = False
    drop: int = 0
    justify: Literal["left", "right"] = "left"


def _table(columns: Sequence[Col], rows: Sequence[Sequence[Cell]]) -> Table:
    table = Table()
    for col in columns:
        if col.id:
            table.add_column(col.header, no_wrap=True, overflow="ignore", justify=col.justify)
        else:
            table.add_column(col.header, overflow="fold", justify=col.justify)
    for row in rows:
        table.add_row(*row)
    return table


def _measure(table: Table) -> Measurement:
    # Measured unconstrained: Measurement.get clamps to the width it is given.
    return Measurement.get(console, console.options.update_width(100_000), table)


def print_table(columns: Sequence[Col], rows: Iterable[Sequence[Cell]]) -> None:
    """Print ``rows`` (one cell per column) as a table that fits ``console.width``."""
    rows = [list(row) for row in rows]
    width = console.width
    shown = list(range(len(columns)))
    droppable = sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop)

    def build() -> Table:
        return _table([columns[i] for i in shown], [[row[i] for i in shown] for row in rows])

    table = build()
    while _measure(table).maximum > width and droppable:
        shown.remove(droppable.pop(0))
        table = build()
    if _measure(table).minimum > width:
        _print_records(columns, rows)
        return
    console.print(table)
    hidden = [columns[i].header for i in range(len(columns)) if i not in shown]
    if hidden:
        console.print(
            f"[dim]Not shown at this width: {', '.join(hidden)} (wider terminal, or --json).[/]",
            soft_wrap=False,  # wrapped to the width like the table
        )


def _print_records(columns: Sequence[Col], rows: Sequence[Sequence[Cell]]) -> None:
    """The narrow form: each row's first identifier on a line, then its other fields, one a
    line (never wrapped: an identifier among them stays whole; a droppable field too long for
    the line is left out)."""
    first = next((i for i, c in enumerate(columns) if c.id), 0)
    label = max(len(c.header) for c in columns)
    for n, row in enumerate(rows):
        if n:
            console.print()
        console.print(_text(row[first]), style="bold", soft_wrap=True)
        for i, col in enumerate(columns):
            if i == first or not str(row[i]):
                continue
            line = Text(f"  {col.header:<{label}}  ")
            line.append_text(_text(row[i]))
            if col.drop and not col.id and line.cell_len > console.width:
                continue  # a long hash or description: --json has it
            console.print(line, soft_wrap=True)


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text.from_markup(cell)
