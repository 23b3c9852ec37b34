"""Tables: a layout filled with measured numbers, a row per method, ranked, best marked.

* **Rows** are the methods with a cell (complete or not) in the layout, by display name
  (``method_titles``; a method without one shows its name). They are ranked by the layout's
  ranking column, highest first; methods without a value there come after those with one;
  ties, and tables without a ranking column, go by display name.
* **Numbers**: a cell shows its mean over seeds and, when it has more than one seed, the
  population std; a derived value (an average over datasets, an H) shows no std.
* **Best**: in every column, the highest measured value as printed (one decimal) is the
  best; every cell that prints it is marked, in columns with at least two values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from benchmark.leaderboard.cells import Measurements
from benchmark.leaderboard.layout import Column, Key, Layout, keys_of

__all__ = [
    "BEYOND_MARK",
    "DELTA",
    "MEASURED",
    "PAPER",
    "Cell",
    "NotReproduced",
    "Stat",
    "Table",
    "TableRow",
    "best_cells",
    "fill",
    "measured_row",
    "ranked",
    "title",
]

MEASURED, PAPER, DELTA = "measured", "paper", "delta"
"""The kinds of table rows: a method's numbers, its published numbers, their difference."""

BEYOND_MARK = "!"
"""Printed after a difference from a published number that lies beyond the seed spread."""


class Stat(NamedTuple):
    """A table number: a mean and, where one is shown, its std; a difference from a
    published number knows whether it lies beyond the seed spread
    (:mod:`benchmark.leaderboard.comparison`)."""

    mean: float
    std: float | None = None
    beyond_spread: bool = False


class NotReproduced(NamedTuple):
    """A cell that no run of the suite gives (a paper's number it cannot reproduce); it
    prints as ``text``, and the table's notes say why."""

    text: str = "n/r"


Cell = Stat | NotReproduced | None
"""What a table cell holds (None: empty)."""


class TableRow(NamedTuple):
    """A row: its ``label`` (the method's display name, with `` · paper`` or `` · Δ``), the
    ``method``'s name, one cell per column and its ``kind``."""

    label: str
    method: str
    cells: tuple[Cell, ...]
    kind: str = MEASURED


@dataclass(frozen=True)
class Table:
    """Value ``columns`` (those of the layout) and ``rows``; the label column is
    ``label_header``."""

    columns: tuple[Column, ...]
    rows: tuple[TableRow, ...]
    label_header: str = "Method"

    @property
    def grouped(self) -> bool:
        """Whether any column belongs to a group (tables with groups have two header rows
        where a format allows it)."""
        return any(c.group for c in self.columns)


def title(method: str, method_titles: Mapping[str, str] | None) -> str:
    """A method's display name (its name where none is known)."""
    return (method_titles or {}).get(method, method)


def measured_row(layout: Layout, data: Measurements, method: str, label: str) -> TableRow:
    """A method's measured numbers in a layout."""
    cells = []
    for column in layout.columns:
        spec = column.spec
        mean = data.value(spec, method)
        std = data.std(method, spec) if isinstance(spec, Key) else None
        cells.append(None if mean is None else Stat(mean, std))
    return TableRow(label, method, tuple(cells))


def ranked(
    layout: Layout, data: Measurements, method_titles: Mapping[str, str] | None
) -> list[TableRow]:
    """The measured row of every method of the layout, ranked."""
    keys = {key for column in layout.columns for key in keys_of(column.spec)}
    rows = [measured_row(layout, data, m, title(m, method_titles)) for m in data.methods(keys)]

    def order(row: TableRow) -> tuple:
        value = None if layout.rank_by is None else row.cells[layout.rank_by]
        rank = 0.0 if value is None else -value.mean
        return (value is None, rank, row.label.casefold(), row.method)

    return sorted(rows, key=order)


def fill(
    layout: Layout, data: Measurements, method_titles: Mapping[str, str] | None = None
) -> Table:
    """The layout filled with measured numbers, a ranked row per method."""
    return Table(layout.columns, tuple(ranked(layout, data, method_titles)))


def best_cells(table: Table) -> set[tuple[int, int]]:
    """The (row, column) indices of the best measured cells (see the module doc)."""
    marked: set[tuple[int, int]] = set()
    for c in range(len(table.columns)):
        printed = {
            r: round(row.cells[c].mean, 1)
            for r, row in enumerate(table.rows)
            if row.kind == MEASURED and isinstance(row.cells[c], Stat)
        }
        if len(printed) >= 2:
            best = max(printed.values())
            marked.update((r, c) for r, value in printed.items() if value == best)
    return marked
