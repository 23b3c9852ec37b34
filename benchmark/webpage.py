"""The leaderboard as one self-contained HTML page: every table of a
:class:`benchmark.leaderboard.board.Board` (ranked, the best cell of each column in bold,
sortable by clicking a column header, by a small inline script), each figure of
:mod:`benchmark.plots` embedded as base64 PNG right after the tables it belongs with. No
external file, font or script is referenced, so the page can be mailed or archived as it is.

A difference from a published number that lies beyond the seed spread is bold on red
(class ``beyond``); a cell no run of the suite can give shows ``n/r`` (class ``nr``).

Tables with grouped columns (base-to-new's Base, New and H per dataset) get a second header
row naming the groups, as in the papers. Sorting keeps a method's ``· paper`` and ``· Δ`` rows
under it: each method's rows form one ``<tbody>`` and the groups are ordered by the clicked
column of their first row. Numbers sort numerically (by the ``data-value`` attribute), empty
cells last; a second click on the same header reverses the order.
"""

from __future__ import annotations

import base64
import html
import itertools
import re
from collections.abc import Iterable, Sequence

from benchmark.leaderboard.board import Board, Section
from benchmark.leaderboard.table import (
    DELTA,
    MEASURED,
    PAPER,
    Cell,
    NotReproduced,
    Stat,
    Table,
    best_cells,
)
from benchmark.leaderboard.text import format_cell
from benchmark.plots import Plot

__all__ = ["page"]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 1.5em 2.5em;
       max-width: 110em; color: #222; }
h2 { font-size: 1.15em; margin: 1.8em 0 0.4em; }
table { border-collapse: collapse; margin: 0.3em 0 0.5em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right;
         white-space: nowrap; }
div.scroll { overflow-x: auto; }
thead tr.columns th { cursor: pointer; background: #f4f4f4; user-select: none; }
thead tr.groups th { background: #fafafa; text-align: center; border-bottom: 1px solid #bbb; }
th.start, td.start { border-left: 1px solid #ccc; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.label, th.label { text-align: left; }
td.best { font-weight: bold; }
tr.paper td { color: #555; font-style: italic; }
tr.delta td { color: #555; }
td.neg { color: #b00; } td.pos { color: #070; }
td.beyond { font-weight: bold; background: #fde8e8; }
td.nr { color: #888; font-style: italic; }
p.note { color: #444; font-size: 0.9em; max-width: 60em; }
figure { margin: 0.8em 0 1.5em; } figure img { max-width: 100%; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead tr.columns th");
  heads.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var groups = Array.prototype.slice.call(table.tBodies);
      function key(group) {
        var cell = group.rows[0].cells[column];
        var value = cell.getAttribute("data-value");
        if (value !== null) { return value === "" ? null : parseFloat(value); }
        return cell.textContent.trim() === "" ? null : cell.textContent.trim();
      }
      groups.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
        var order = typeof x === "number" && typeof y === "number"
          ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      groups.forEach(function (group) { table.appendChild(group); });
    });
  });
});
"""


def _cell(cell: Cell, kind: str, css: list[str]) -> str:
    """A value cell; ``css`` its classes (a group's first column, the best value). A
    difference is ``neg`` or ``pos``, and ``beyond`` where it lies beyond the seed spread; a
    cell no run can give is ``nr``. Only numbers have a sort value."""
    if isinstance(cell, Stat) and kind == DELTA:
        css = [*css, "neg" if cell.mean < 0 else "pos", *(["beyond"] if cell.beyond_spread else [])]
    if isinstance(cell, NotReproduced):
        css = [*css, "nr"]
    attribute = f' class="{" ".join(css)}"' if css else ""
    value = repr(cell.mean) if isinstance(cell, Stat) else ""
    text = html.escape(format_cell(cell, kind))
    return f'<td data-value="{value}"{attribute}>{text}</td>'


def _group_starts(table: Table) -> set[int]:
    """The columns that start a group (they get a rule on their left)."""
    columns = table.columns
    return {
        i
        for i, column in enumerate(columns)
        if column.group and (i == 0 or columns[i - 1].group != column.group)
    }


def _head(table: Table) -> str:
    rows = []
    if table.grouped:
        groups = ["<th></th>"]
        for group, members in itertools.groupby(table.columns, key=lambda c: c.group):
            span = len(list(members))
            if group:
                groups.append(f'<th colspan="{span}" class="start">{html.escape(group)}</th>')
            else:
                groups += ["<th></th>"] * span
        rows.append(f'<tr class="groups">{"".join(groups)}</tr>')
    starts = _group_starts(table)
    heads = [f'<th class="label">{html.escape(table.label_header)}</th>']
    for i, column in enumerate(table.columns):
        name = html.escape(column.header if table.grouped else column.name)
        heads.append(f'<th class="start">{name}</th>' if i in starts else f"<th>{name}</th>")
    rows.append(f'<tr class="columns">{"".join(heads)}</tr>')
    return f"<thead>{''.join(rows)}</thead>"


def _table(table: Table) -> str:
    best, starts = best_cells(table), _group_starts(table)
    groups: list[list[str]] = []
    for r, row in enumerate(table.rows):
        cells = "".join(
            _cell(
                cell,
                row.kind,
                [n for n, on in (("start", i in starts), ("best", (r, i) in best)) if on],
            )
            for i, cell in enumerate(row.cells)
        )
        css = {PAPER: ' class="paper"', DELTA: ' class="delta"'}.get(row.kind, "")
        line = f'<tr{css}><td class="label">{html.escape(row.label)}</td>{cells}</tr>'
        if row.kind == MEASURED or not groups:
            groups.append([line])
        else:
            groups[-1].append(line)  # a method's paper and Δ rows stay in its group
    bodies = "".join(f"<tbody>{''.join(g)}</tbody>" for g in groups)
    return f'<div class="scroll"><table class="sortable">{_head(table)}{bodies}</table></div>'


def _note(text: str) -> str:
    """A note paragraph; `backquoted` text (a command) as code."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return f'<p class="note">{text}</p>'


def _belongs(plot: Plot, section: Section) -> bool:
    return (plot.protocol, plot.backbone, plot.pretrained) == (
        section.protocol,
        section.backbone,
        section.pretrained,
    ) and plot.shots in (None, section.shots)


def _figure(plot: Plot) -> str:
    """The figure as an embedded PNG (its title is in the image and in ``alt``)."""
    data = base64.b64encode(plot.png()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(plot.title)}" src="data:image/png;base64,{data}"></figure>'
    )


def page(
    board: Board,
    plots: Iterable[Plot] = (),
    *,
    title: str = "vlprompt-bench leaderboard",
    notes: Sequence[str] = (),
) -> str:
    """The HTML text: ``notes`` and the board's notes, then a heading per section, its
    table and notes; each plot after the last section it belongs with (the same protocol,
    backbone and weights, and shot count where the plot has one)."""
    plots = list(plots)
    sections = list(board.sections)
    last = {
        id(plot): max((i for i, s in enumerate(sections) if _belongs(plot, s)), default=None)
        for plot in plots
    }
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(_note(n) for n in (*notes, *board.notes)),
    ]
    for i, section in enumerate(sections):
        parts.append(f"<section><h2>{html.escape(section.heading)}</h2>")
        parts.append(_table(section.table))
        parts.extend(_note(n) for n in section.notes)
        parts.extend(_figure(plot) for plot in plots if last[id(plot)] == i)
        parts.append("</section>")
    parts.extend(_figure(plot) for plot in plots if last[id(plot)] is None)
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
