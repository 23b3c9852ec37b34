"""The leaderboard as one self-contained HTML page: every table of
:func:`benchmark.leaderboard.sections` (sortable by clicking a column header, by a small
inline script) and the plots of :mod:`benchmark.plots` embedded as base64 PNG. No external
file, font or script is referenced, so the page can be mailed or archived as it is.

Sorting keeps a method's ``· paper`` and ``· Δ`` rows under it: each method's rows form one
``<tbody>`` and the groups are ordered by the clicked column of their first row. Numbers
sort numerically (by the ``data-value`` attribute), empty cells last; a second click on the
same header reverses the order.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence

from benchmark.leaderboard import Section, Stat, Table, format_cell, label_columns

__all__ = ["page"]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 100em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.5em; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: right;
         white-space: nowrap; }
div.scroll { overflow-x: auto; }
th { cursor: pointer; background: #f4f4f4; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.label, th.label { text-align: left; }
tr.paper td { color: #555; font-style: italic; }
tr.delta td { color: #555; }
td.neg { color: #b00; } td.pos { color: #070; }
p.note { color: #444; font-size: 0.9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
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


def _cell(cell: object, label: bool) -> str:
    if label:
        return f'<td class="label">{html.escape(str(cell))}</td>'
    if isinstance(cell, Stat):
        css = ""
        if cell.style == "delta":
            css = ' class="neg"' if cell.mean < 0 else ' class="pos"'
        text = html.escape(format_cell(cell))
        return f'<td data-value="{cell.mean!r}"{css}>{text}</td>'
    return '<td data-value=""></td>'


def _row_class(row: Sequence[object], labels: Sequence[bool]) -> str:
    method = [c for c, is_label in zip(row, labels, strict=True) if is_label][-1:]
    text = str(method[0]) if method else ""
    if text.endswith(" · paper"):
        return ' class="paper"'
    if text.endswith(" · Δ"):
        return ' class="delta"'
    return ""


def _table(table: Table) -> str:
    header, body = table[0], table[1:]
    labels = label_columns(table)
    heads = "".join(
        f"<th{' class=label' if is_label else ''}>{html.escape(str(h))}</th>"
        for h, is_label in zip(header, labels, strict=True)
    )
    groups: list[list[str]] = []
    for row in body:
        cells = "".join(_cell(c, is_label) for c, is_label in zip(row, labels, strict=True))
        line = f"<tr{_row_class(row, labels)}>{cells}</tr>"
        if _row_class(row, labels) and groups:
            groups[-1].append(line)  # a method's paper and Δ rows stay in its group
        else:
            groups.append([line])
    bodies = "".join(f"<tbody>{''.join(g)}</tbody>" for g in groups)
    table_html = f'<table class="sortable"><thead><tr>{heads}</tr></thead>{bodies}</table>'
    return f'<div class="scroll">{table_html}</div>'


def page(
    sections: Iterable[Section],
    plots: Iterable[tuple[str, bytes]] = (),
    *,
    title: str = "vlprompt-bench leaderboard",
    notes: Iterable[str] = (),
) -> str:
    """The HTML text: a heading per section, its table and notes; then each plot (a title
    and its PNG bytes) as an embedded image."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts.append(_table(section.table))
        parts.extend(f'<p class="note">{html.escape(n)}</p>' for n in section.notes)
    for caption, png in plots:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
