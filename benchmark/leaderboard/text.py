"""Rendering tables and whole leaderboards as text: ``github`` (Markdown), ``latex``, ``csv``.

* A measured number prints as ``"71.2 ± 0.4"`` (one decimal), or ``"71.2"`` when it has no
  std (one seed; averages and H); a published number with the papers' two decimals
  (``"71.23"``); a difference signed (``"+0.3"``), followed by ``!``
  (:data:`~benchmark.leaderboard.table.BEYOND_MARK`) where it lies beyond the seed spread
  (``"-2.0!"``); a cell no run of the suite can give as ``n/r``. Empty cells are blank.
* ``github``: tabulate's ``github`` format; the best cell of each column (see
  :mod:`benchmark.leaderboard.table`) in ``**bold**``. Grouped columns print as one header,
  ``"ImageNet Base"``, and a table of many groups as several tables of
  :data:`GROUPS_PER_BLOCK` groups, one under the other, the rows in the same order.
* ``latex``: a booktabs ``tabular``, ``$\\pm$``, the best cells in ``\\textbf``, grouped
  columns under a ``\\multicolumn`` header row; text is escaped.
* ``csv``: machine-readable and unmarked (no bold, no ``!``, ``n/r`` left empty): the label
  column, ``method`` (the suite's name) and ``row`` (``measured``, ``paper`` or ``delta``),
  then per value column ``<name>`` (mean) and ``<name> std``, numbers with two decimals,
  empty cells empty.

A whole leaderboard (:func:`render_board`) is the page notes, then each table after a
heading line (``## ...``, ``% ...`` or ``# ...``) with its own notes under it.
"""

from __future__ import annotations

import csv
import io
import itertools
from typing import TYPE_CHECKING

from tabulate import tabulate

from benchmark.leaderboard.table import (
    BEYOND_MARK,
    DELTA,
    PAPER,
    Cell,
    NotReproduced,
    Stat,
    Table,
    best_cells,
)

if TYPE_CHECKING:
    from benchmark.leaderboard.board import Board

__all__ = ["FORMATS", "format_cell", "render", "render_board"]

FORMATS = ("github", "latex", "csv")
PM = "±"
GROUPS_PER_BLOCK = 3
"""Column groups per Markdown table: a wider table is printed as several, one under the
other, each with the method column (three datasets' Base, New and H fit a page, as in the
papers)."""


def format_cell(cell: Cell, kind: str, pm: str = PM) -> str:
    """A cell as the tables print it in a row of ``kind`` (``pm`` joins mean and std)."""
    if cell is None:
        return ""
    if isinstance(cell, NotReproduced):
        return cell.text
    if kind == PAPER:
        return f"{cell.mean:.2f}"
    if kind == DELTA:
        return f"{cell.mean:+.1f}{BEYOND_MARK if cell.beyond_spread else ''}"
    if cell.std is None:
        return f"{cell.mean:.1f}"
    return f"{cell.mean:.1f} {pm} {cell.std:.1f}"


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def render(table: Table, fmt: str = "github") -> str:
    """The table as text in ``fmt`` (see the module doc)."""
    _check(fmt)
    if fmt == "csv":
        return _csv(table)
    if fmt == "latex":
        return _latex(table)
    return _github(table)


def _github(table: Table) -> str:
    best = best_cells(table)
    cells = [
        [
            f"**{text}**" if (r, c) in best and text else text
            for c, text in enumerate(format_cell(cell, row.kind) for cell in row.cells)
        ]
        for r, row in enumerate(table.rows)
    ]
    blocks = []
    for columns in _blocks(table):
        blocks.append(
            tabulate(
                [
                    [row.label, *(line[c] for c in columns)]
                    for row, line in zip(table.rows, cells, strict=True)
                ],
                headers=[table.label_header, *(table.columns[c].name for c in columns)],
                tablefmt="github",
                disable_numparse=True,
                colalign=["left", *(["right"] * len(columns))],
            )
        )
    return "\n\n".join(blocks)


def _blocks(table: Table) -> list[list[int]]:
    """The column indices of each Markdown table: all columns, or for a table of grouped
    columns, :data:`GROUPS_PER_BLOCK` groups at a time (as the papers print wide tables)."""
    if not table.grouped:
        return [list(range(len(table.columns)))]
    groups: list[list[int]] = []
    for c, column in enumerate(table.columns):
        if groups and column.group and table.columns[groups[-1][0]].group == column.group:
            groups[-1].append(c)
        else:
            groups.append([c])
    return [
        [c for group in groups[i : i + GROUPS_PER_BLOCK] for c in group]
        for i in range(0, len(groups), GROUPS_PER_BLOCK)
    ]


def _csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = [table.label_header, "method", "row"]
    for column in table.columns:
        header += [column.name, f"{column.name} std"]
    writer.writerow(header)
    for row in table.rows:
        out = [row.label, row.method, row.kind]
        for cell in row.cells:
            if not isinstance(cell, Stat):
                out += ["", ""]
            else:
                out += [f"{cell.mean:.2f}", "" if cell.std is None else f"{cell.std:.2f}"]
        writer.writerow(out)
    return buffer.getvalue().rstrip("\n")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "Δ": r"$\Delta$",
}


def _latex_escape(text: str) -> str:
    """Text as LaTeX prints it literally."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(table: Table) -> str:
    best = best_cells(table)
    body = []
    for r, row in enumerate(table.rows):
        cells = [_latex_escape(row.label)]
        for c, cell in enumerate(row.cells):
            text = format_cell(cell, row.kind, r"$\pm$")
            cells.append(rf"\textbf{{{text}}}" if (r, c) in best and text else text)
        body.append(cells)
    header = [_latex_escape(table.label_header)]
    header += [_latex_escape(c.header if table.grouped else c.name) for c in table.columns]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)
        ]
        return " & ".join(padded) + r" \\"

    lines = [rf"\begin{{tabular}}{{l{'r' * len(table.columns)}}}", r"\toprule"]
    if table.grouped:
        groups, rules, first = [""], [], 2
        for group, members in itertools.groupby(table.columns, key=lambda c: c.group):
            span = len(list(members))
            if group:
                groups.append(rf"\multicolumn{{{span}}}{{c}}{{{_latex_escape(group)}}}")
                rules.append(rf"\cmidrule(lr){{{first}-{first + span - 1}}}")
            else:
                groups += [""] * span
            first += span
        lines += [" & ".join(groups) + r" \\", " ".join(rules)]
    lines += [line(header), r"\midrule", *(line(cells) for cells in body), r"\bottomrule"]
    lines.append(r"\end{tabular}")
    return "\n".join(lines)


def _heading(fmt: str, text: str) -> str:
    return {"github": f"## {text}", "latex": f"% {text}", "csv": f"# {text}"}[fmt]


def _note(fmt: str, text: str) -> str:
    return text if fmt == "github" else f"{'%' if fmt == 'latex' else '#'} {text}"


def render_board(board: Board, fmt: str = "github") -> str:
    """A whole leaderboard as text (see the module doc); empty when it has no table."""
    _check(fmt)
    if not board.sections:
        return ""
    blocks = [_note(fmt, note) for note in board.notes]
    for section in board.sections:
        text = f"{_heading(fmt, section.heading)}\n\n{render(section.table, fmt)}"
        if section.notes:
            text += "\n\n" + "\n\n".join(_note(fmt, n) for n in section.notes)
        blocks.append(text)
    return "\n\n".join(blocks) + "\n"
