"""The whole leaderboard: every table of a result table, with the notes of the page.

One table per protocol, backbone, weights and shot count (transfer protocols: per source
dataset too), in each protocol's layout. A protocol gives its layouts with the optional
attributes of :class:`benchmark.protocol.Protocol` (``leaderboard_layouts``,
``leaderboard_order``); one without them, or not installed, gets
:func:`~benchmark.leaderboard.layout.generic_layout`. A layout function that fails is
reported (a warning) and replaced by the generic layout.

Notes are said once per page: the convention of a column (the average H), the datasets the
papers publish nothing for; a table's own note names the paper tables it compares with.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.leaderboard.cells import Measurements, aggregate, measurements_by_protocol
from benchmark.leaderboard.comparison import (
    BEYOND_NOTE,
    compare,
    published_for,
    unpublished_datasets,
    used_sources,
)
from benchmark.leaderboard.layout import AVERAGE_H, MEAN_OF_H, Layout, Scope, generic_layout
from benchmark.leaderboard.table import PAPER, Table, fill
from benchmark.leaderboard.text import FORMATS, render_board

__all__ = [
    "Board",
    "Section",
    "build_board",
    "layouts",
    "leaderboard",
    "protocol_order",
    "registered_protocols",
]


@dataclass(frozen=True)
class Section:
    """One table of the leaderboard: its heading, the table, its notes, and what it shows
    (``shots`` None: a table over several shot counts)."""

    heading: str
    table: Table
    notes: tuple[str, ...]
    protocol: str
    backbone: str
    pretrained: str
    shots: int | None


@dataclass(frozen=True)
class Board:
    """A leaderboard page: its notes (said once) and its sections, in page order."""

    notes: tuple[str, ...]
    sections: tuple[Section, ...]


def registered_protocols() -> dict[str, Any]:
    """The protocols of the default registry (third-party ones unless autoload is off)."""
    from benchmark.registry import build_registry

    return build_registry().protocol_objects()


def protocol_order(names: Iterable[str], protocols: Mapping[str, Any]) -> list[str]:
    """Protocol names in page order: by their ``leaderboard_order``, then the others sorted."""

    def order(name: str) -> tuple:
        rank = getattr(protocols.get(name), "leaderboard_order", None)
        return (rank is None, rank if rank is not None else 0, name)

    return sorted(set(names), key=order)


def layouts(protocol: Any, scope: Scope) -> list[Layout]:
    """The protocol's layouts of one table's cells; the generic layout for a protocol that
    has none, whose layout function fails, or gives something else than layouts."""
    build = getattr(protocol, "leaderboard_layouts", None)
    if build is None:
        return [generic_layout(scope)]
    try:
        found = list(build(scope))
        if not found or not all(isinstance(layout, Layout) for layout in found):
            raise TypeError("it returned no list of Layout")
    except Exception as exc:  # a broken third-party layout must not hide the results
        warnings.warn(
            f"protocol {scope.protocol!r}: its leaderboard layout failed "
            f"({type(exc).__name__}: {exc}); its results are shown in the generic table",
            stacklevel=2,
        )
        return [generic_layout(scope)]
    return found


def _heading(data: Measurements, caption: str) -> str:
    shots = f"{data.shots} shot{'' if data.shots == 1 else 's'}"
    seeds = f"{data.n_seeds} seed{'' if data.n_seeds == 1 else 's'}"
    text = f"{data.protocol} ({data.backbone}, {data.pretrained}) · {shots} · {seeds}"
    return f"{text} · {caption}" if caption else text


def build_board(
    df: pd.DataFrame,
    protocol: str | None = None,
    titles: Mapping[str, str] | None = None,
    *,
    method_titles: Mapping[str, str] | None = None,
    protocols: Mapping[str, Any] | None = None,
    seeds: Collection[int] | None = None,
    metric: str = "accuracy",
    reference: pd.DataFrame | None = None,
    average_h: str = MEAN_OF_H,
) -> Board:
    """Every table of the result table ``df`` (or of ``protocol`` only), unrendered.

    ``titles`` and ``method_titles`` map dataset and method names to display names
    (:meth:`benchmark.registry.Registry.method_titles`); ``protocols`` maps protocol names to
    protocol objects (default: the registered ones). ``seeds`` fixes the expected seed set.
    With ``reference`` (:func:`benchmark.reference.load`) each table shows the published
    numbers and the differences (:func:`benchmark.leaderboard.comparison.compare`).
    ``average_h`` is the convention of an average H
    (:data:`~benchmark.leaderboard.layout.AVERAGE_H`).
    """
    if average_h not in AVERAGE_H:
        raise ValueError(f"unknown average H {average_h!r}; choose one of {', '.join(AVERAGE_H)}")
    rows = df if protocol is None else df[df["protocol"] == protocol]
    cells = aggregate(rows, seeds=seeds, metric=metric)
    if cells.empty:
        return Board((), ())
    protocols = registered_protocols() if protocols is None else protocols
    titles = dict(titles or {})
    by_protocol = measurements_by_protocol(cells)
    sections: list[Section] = []
    notes: list[str] = []
    unpublished = set() if reference is None else set(unpublished_datasets(rows, reference))
    uncompared = False  # a table of datasets the papers publish for, without a paper row
    for name in protocol_order(by_protocol, protocols):
        for data in by_protocol[name]:
            for layout in layouts(protocols.get(name), data.scope(titles, average_h)):
                notes += [c.note for c in layout.columns if c.note and c.note not in notes]
                section = _section(data, layout, method_titles, reference)
                sections.append(section)
                if reference is not None and all(r.kind != PAPER for r in section.table.rows):
                    uncompared |= not {d for k in data.cell_keys() for d in k[:2]} <= unpublished
    if reference is not None:
        compared = any(r.kind == PAPER for s in sections for r in s.table.rows)
        notes = _reference_notes(sorted(unpublished), uncompared, compared) + notes
    return Board(tuple(notes), tuple(sections))


def _section(
    data: Measurements,
    layout: Layout,
    method_titles: Mapping[str, str] | None,
    reference: pd.DataFrame | None,
) -> Section:
    """One table; with ``reference``, compared, with a note naming the paper tables used."""
    notes: tuple[str, ...] = ()
    if reference is None:
        table = fill(layout, data, method_titles)
    else:
        published = published_for(
            reference, data.protocol, data.backbone, data.pretrained, data.shots
        )
        table = compare(layout, data, published, method_titles)
        sources = used_sources(layout, data, published)
        if sources:
            notes = ("Published: " + "; ".join(f"{p} table {t}" for p, t in sources) + ".",)
    heading = _heading(data, layout.caption)
    return Section(heading, table, notes, data.protocol, data.backbone, data.pretrained, data.shots)


def _reference_notes(unpublished: list[str], uncompared: bool, compared: bool) -> list[str]:
    notes = [BEYOND_NOTE] if compared else []
    if unpublished:
        notes.append(
            f"The papers publish no numbers for the datasets {', '.join(unpublished)}: "
            "their results are shown without published numbers."
        )
    if uncompared:
        notes.append(
            "Tables without `· paper` rows have no published number for their methods, "
            "datasets, backbone and shot count."
        )
    return notes


def leaderboard(
    df: pd.DataFrame,
    protocol: str | None = None,
    fmt: str = "github",
    titles: Mapping[str, str] | None = None,
    **options: Any,
) -> str:
    """The leaderboard as text: :func:`build_board` (``options`` are its keyword options)
    rendered in ``fmt`` (github, latex, csv); each table after a heading line such as
    ``## few_shot (ViT-B-16, openai) · 16 shots · 3 seeds``. Empty string when nothing
    matches."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return render_board(build_board(df, protocol, titles, **options), fmt)
