"""A paper's table from the runs of its recipe (:mod:`benchmark.recipes`): what
``python -m benchmark leaderboard --recipe NAME`` prints.

* **Rows** are the paper's, in the recipe's order, never ranked: the table's main methods,
  then each ablation's methods labelled by their published variant (``ProGrad
  (lambda=0.2)``), then the rows the paper prints that no cell gives (the recipe's
  ``not_reproduced`` methods, such as LwF). Under each row that has published numbers, its
  ``· paper`` row (the table's numbers of that method and variant) and its ``· Δ`` row
  (measured − published, marked where beyond the seed spread:
  :mod:`benchmark.leaderboard.comparison`).
* **Runs** (:func:`select_runs`): a row's cells are the results whose recorded key
  (:data:`benchmark.recipes.RECORDED_KEY`: method, protocol, dataset, shots, seed, backbone,
  weights and the resolved config) is that of one of the row's planned cells. An ablation's
  cells differ from the main ones by their config, so its rows never take the main rows'
  runs or give them theirs; a cell of two parts (SCoOp† where its searched rho is SCoOp's
  own) serves both. Selecting by these keys rather than by run id needs no data: a run id
  also holds the fingerprints of the data, which only the data root gives. Where several
  runs share a key (the data or the code changed between them), the newest counts, as in
  every leaderboard.
* **Columns** are the paper's, over every dataset of the recipe whether it has results or
  not. With one shot count: the protocol's layout (few-shot: each dataset and their Average;
  base-to-new: Average Base, New and H, then each dataset's; transfer: the source, its
  targets and their Average), the average H in the papers' convention, the mean of the
  per-dataset H. With several (ProGrad's tables 1, 5 and 7): the layout's ranking column
  (the Average, or a single dataset's own column) at each shot count, as the paper prints
  it, then, for several datasets, a second table of each dataset at each shot count.
* **Numbers**: mean ± population std over the recipe's seeds (a cell without every seed is
  empty); an average or an H shows the std over seeds of each seed's own average or H, the
  spread its Δ is judged by. A cell the recipe lists as not reproduced shows ``n/r``, and
  the reason is under the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.leaderboard.board import Board, Section, layouts
from benchmark.leaderboard.cells import Measurements, aggregate, measurements
from benchmark.leaderboard.comparison import (
    BEYOND_NOTE,
    compare_cell,
    delta_stat,
    published_at,
)
from benchmark.leaderboard.layout import (
    MEAN_OF_H,
    Column,
    Key,
    Layout,
    Mean,
    Scope,
    Spec,
    keys_of,
)
from benchmark.leaderboard.table import (
    DELTA,
    PAPER,
    Cell,
    NotReproduced,
    Stat,
    Table,
    TableRow,
    title,
)
from benchmark.recipes import RECORDED_KEY, Recipe, RecipeCell
from benchmark.recipes import NotReproduced as NotReproducedEntry

__all__ = [
    "AVERAGE_H_NOTE",
    "PAPERS_AVERAGE_H",
    "PaperRow",
    "paper_rows",
    "recipe_board",
    "row_titles",
    "select_runs",
]

PAPERS_AVERAGE_H = MEAN_OF_H
"""The average H of both papers' base-to-new tables: the mean of the per-dataset H
(``tests/test_reference.py`` checks it against their printed averages)."""

AVERAGE_H_NOTE = (
    "Average H (mean of H) is the mean of the per-dataset H, as the ProGrad and GCSCoOp "
    "papers print it."
)

_TRANSFER = ("cross_dataset", "domain_generalization")


@dataclass(frozen=True)
class PaperRow:
    """A row of a paper's table: a method in one variant (empty: the table's main rows)."""

    method: str
    variant: str = ""

    @property
    def key(self) -> str:
        """The row's name in the ``method`` column of :func:`select_runs`: the method, with
        an ablation's variant in brackets (``prograd [lambda=0.2]``)."""
        return f"{self.method} [{self.variant}]" if self.variant else self.method

    def label(self, method_titles: Mapping[str, str] | None) -> str:
        """The row's display name (``ProGrad (lambda=0.2)``)."""
        name = title(self.method, method_titles)
        return f"{name} ({self.variant})" if self.variant else name


def _table_rows(recipe: Recipe, reference: pd.DataFrame) -> pd.DataFrame:
    """The published accuracies of the recipe's table."""
    rows = reference[
        (reference["paper"] == recipe.paper)
        & (reference["table"] == recipe.table)
        & (reference["metric"] == "accuracy")
    ]
    return rows.reset_index(drop=True)


def paper_rows(recipe: Recipe, reference: pd.DataFrame) -> list[PaperRow]:
    """The rows of the recipe's table (module doc): each part's methods, then the published
    (method, variant) pairs that one of the recipe's ``not_reproduced`` entries covers."""
    rows = list(dict.fromkeys(PaperRow(m, p.variant) for p in recipe.parts for m in p.methods))
    printed = _table_rows(recipe, reference)
    for method, variant, eval_dataset in zip(
        printed["method"], printed["variant"], printed["eval_dataset"], strict=True
    ):
        row = PaperRow(method, variant)
        covered = any(n.covers(method, variant, eval_dataset) for n in recipe.not_reproduced)
        if covered and row not in rows:
            rows.append(row)
    return rows


def row_titles(rows: Iterable[PaperRow], method_titles: Mapping[str, str] | None) -> dict:
    """The display name of each row's key, as the plots and tables label it."""
    return {row.key: row.label(method_titles) for row in rows}


def select_runs(df: pd.DataFrame, cells: Iterable[RecipeCell]) -> pd.DataFrame:
    """The result rows of a recipe's planned cells (module doc), their ``method`` replaced by
    the :attr:`PaperRow.key` of the row each belongs to; a result of a cell that two rows
    share appears once per row."""
    planned = pd.DataFrame(
        [(*c.key, PaperRow(c.cell.method, c.variant).key) for c in cells],
        columns=[*RECORDED_KEY, "row"],
    ).drop_duplicates()
    keys = list(RECORDED_KEY)
    found = df[df["method"].isin(set(planned["method"]))]
    found = found.astype({k: object for k in keys if k not in ("shots", "seed")})
    found = found.astype({"shots": "int64", "seed": "int64"})
    planned = planned.astype({k: object for k in keys if k not in ("shots", "seed")})
    planned = planned.astype({"shots": "int64", "seed": "int64"})
    selected = found.merge(planned, on=keys, how="inner")
    return selected.assign(method=selected["row"]).drop(columns="row")


def _expected_keys(recipe: Recipe, trained: Sequence[str]) -> frozenset[Key]:
    """The cells the recipe's table shows, whether they have results or not: each trained
    dataset on itself (base-to-new: its base and new classes), a transfer source also on
    every other dataset of the recipe."""
    if recipe.protocol == "base_to_new":
        return frozenset(Key(d, d, split) for d in trained for split in ("base", "new"))
    if recipe.protocol in _TRANSFER:
        return frozenset(
            Key(source, target, "all")
            for source in trained
            for target in dict.fromkeys((source, *recipe.datasets))
        )
    return frozenset(Key(d, d, "all") for d in trained)


def _shots_header(shots: int) -> str:
    return f"{shots} shot{'' if shots == 1 else 's'}"


@dataclass(frozen=True)
class _Placed:
    """A column of a recipe table and the shot count its cells are at."""

    column: Column
    shots: int


def _paper_column(layout: Layout) -> Column | None:
    """The column a table over shot counts shows: the ranking column, or where it averages
    a single dataset, that dataset's own column (its published numbers are per dataset)."""
    if layout.rank_by is None:
        return None
    rank = layout.columns[layout.rank_by]
    if isinstance(rank.spec, Mean) and len(rank.spec.parts) == 1:
        own = [c for c in layout.columns if c.spec == rank.spec.parts[0]]
        return own[0] if own else Column(rank.header, rank.spec.parts[0], rank.group)
    return rank


def _tables(layout: Layout, shots: Sequence[int], datasets: int) -> list[tuple[str, list]]:
    """The (caption, placed columns) of each table of one layout (module doc)."""
    if len(shots) == 1:
        return [(layout.caption, [_Placed(c, shots[0]) for c in layout.columns])]
    tables = []
    paper = _paper_column(layout)
    if paper is not None:
        placed = [_Placed(Column(_shots_header(s), paper.spec, paper.name), s) for s in shots]
        tables.append((layout.caption, placed))
    if datasets > 1 or paper is None:
        others = [c for c in layout.columns if paper is None or c.spec != paper.spec]
        placed = [
            _Placed(Column(_shots_header(s), c.spec, c.name), s) for c in others for s in shots
        ]
        caption = "each dataset" if not layout.caption else f"{layout.caption}, each dataset"
        tables.append((caption, placed))
    return tables


class _Filled:
    """Fills the tables of one recipe: the measurements and published numbers per shot
    count, and the not-reproduced entries each table uses."""

    def __init__(
        self,
        recipe: Recipe,
        rows: Sequence[PaperRow],
        by_shots: Mapping[int, Measurements],
        printed: pd.DataFrame,
        scope: Scope,
        method_titles: Mapping[str, str] | None,
    ) -> None:
        self.recipe, self.rows, self.titles = recipe, rows, method_titles
        self.by_shots, self.scope = by_shots, scope
        keys = {(row.method, row.variant): row.key for row in rows}
        self.published = {
            s: published_at(printed, s, lambda method, variant: keys.get((method, variant)))
            for s in recipe.shots
        }

    def _data(self, shots: int) -> Measurements:
        empty = Measurements(
            self.recipe.protocol,
            self.recipe.backbone,
            self.recipe.pretrained,
            shots,
            {},
            len(self.recipe.seeds),
        )
        return self.by_shots.get(shots, empty)

    def _unreproduced(self, row: PaperRow, spec: Spec) -> NotReproducedEntry | None:
        for entry in self.recipe.not_reproduced:
            if any(entry.covers(row.method, row.variant, k.eval_dataset) for k in keys_of(spec)):
                return entry
        return None

    def table(self, placed: Sequence[_Placed]) -> tuple[Table, list[NotReproducedEntry], bool]:
        """The table of these columns, the not-reproduced entries it shows and whether it
        shows any published number."""
        lines: list[TableRow] = []
        used: list[NotReproducedEntry] = []
        compared = False
        for row in self.rows:
            measured: list[Cell] = []
            paper: list[Cell] = []
            delta: list[Cell] = []
            entries: list[NotReproducedEntry] = []
            for p in placed:
                found = compare_cell(
                    self._data(p.shots), self.published[p.shots], row.key, p.column
                )
                entry = self._unreproduced(row, p.column.spec)
                if entry is not None:
                    entries.append(entry)
                    measured.append(NotReproduced())
                elif found.mean is None:
                    measured.append(None)
                else:
                    measured.append(Stat(found.mean, found.std))
                paper.append(None if found.published is None else Stat(found.published))
                delta.append(None if entry is not None else delta_stat(found))
            printed = any(cell is not None for cell in paper)
            if not printed and all(isinstance(cell, NotReproduced) for cell in measured):
                continue  # a row no run gives, with nothing printed in this table
            used += [entry for entry in dict.fromkeys(entries) if entry not in used]
            label = row.label(self.titles)
            lines.append(TableRow(label, row.key, tuple(measured)))
            if printed:
                compared = True
                lines.append(TableRow(f"{label} · paper", row.key, tuple(paper), PAPER))
            if any(cell is not None for cell in delta):
                lines.append(TableRow(f"{label} · Δ", row.key, tuple(delta), DELTA))
        table = Table(tuple(p.column for p in placed), tuple(lines))
        return table, used, compared

    def reason(self, entry: NotReproducedEntry) -> str:
        """The note of a not-reproduced entry."""
        name = PaperRow(entry.method, entry.variant or "").label(self.titles)
        datasets = [self.scope.title(d) for d in entry.eval_datasets or ()]
        where = f" on {', '.join(datasets)}" if datasets else ""
        return f"n/r: {name}{where}: {entry.reason}."


def _average_notes(recipe: Recipe, trained: Sequence[str], printed: pd.DataFrame) -> list[str]:
    """A note where the paper prints averages over other datasets than this table's (a
    recipe narrowed by ``--datasets``): its averages are shown, not compared."""
    from benchmark.reference import AVERAGE, AVERAGED_OVER

    paper = AVERAGED_OVER.get(recipe.protocol)
    if paper is None or not (printed["eval_dataset"] == AVERAGE).any():
        return []
    transfer = recipe.protocol in _TRANSFER
    ours = set(recipe.datasets) - set(trained) if transfer else set(trained)
    if ours == paper:
        return []
    here = len(ours & paper)
    return [
        f"The paper averages over {len(paper)} datasets; {here} of them "
        f"{'is' if here == 1 else 'are'} here, so no average is compared with the paper's."
    ]


def _heading(recipe: Recipe, caption: str) -> str:
    shots = ", ".join(map(str, recipe.shots))
    shots += " shot" if recipe.shots == (1,) else " shots"
    seeds = f"{len(recipe.seeds)} seed{'' if len(recipe.seeds) == 1 else 's'}"
    text = (
        f"{recipe.name} · {recipe.protocol} ({recipe.backbone}, {recipe.pretrained}) · "
        f"{shots} · {seeds}"
    )
    return f"{text} · {caption}" if caption else text


def recipe_board(
    selected: pd.DataFrame,
    recipe: Recipe,
    cells: Iterable[RecipeCell],
    reference: pd.DataFrame,
    *,
    protocols: Mapping[str, Any],
    titles: Mapping[str, str] | None = None,
    method_titles: Mapping[str, str] | None = None,
) -> Board:
    """The paper's table of ``recipe`` (module doc) from ``selected``, the
    :func:`select_runs` of its planned ``cells``, with the published numbers of
    ``reference`` (:func:`benchmark.reference.load`). ``protocols`` maps protocol names to
    protocol objects; ``titles`` and ``method_titles`` give display names."""
    rows = paper_rows(recipe, reference)
    cells = list(cells)
    trained = list(dict.fromkeys(c.cell.dataset for c in cells))
    found = aggregate(selected, seeds=recipe.seeds, metric="accuracy")
    by_shots = {data.shots: data for data in measurements(found)}
    ordered = {d: (titles or {}).get(d, d) for d in recipe.datasets}
    scope = Scope(
        recipe.protocol,
        _expected_keys(recipe, trained),
        {**ordered, **(titles or {})},
        PAPERS_AVERAGE_H,
    )
    printed = _table_rows(recipe, reference)
    filled = _Filled(recipe, rows, by_shots, printed, scope, method_titles)
    notes = [f"{recipe.name}: {recipe.title}. The matrix: {recipe.source}."]
    notes += list(recipe.notes)
    notes.append(
        f"Each number is the mean ± population std over the seeds "
        f"{', '.join(map(str, recipe.seeds))}; an average's or an H's std is that of each "
        "seed's own average or H. Rows in the paper's order, not ranked."
    )
    notes += _average_notes(recipe, trained, printed)
    sections, compared_any = [], False
    for layout in layouts(protocols.get(recipe.protocol), scope):
        if any(c.note for c in layout.columns) and AVERAGE_H_NOTE not in notes:
            notes.append(AVERAGE_H_NOTE)  # in place of the note naming --average-h
        for caption, placed in _tables(layout, recipe.shots, len(trained)):
            table, used, compared = filled.table(placed)
            compared_any |= compared
            section_notes = [filled.reason(entry) for entry in used]
            if compared:
                section_notes.append(f"Published: {recipe.paper} table {recipe.table}.")
            shots = placed[0].shots if len({p.shots for p in placed}) == 1 else None
            sections.append(
                Section(
                    _heading(recipe, caption),
                    table,
                    tuple(section_notes),
                    recipe.protocol,
                    recipe.backbone,
                    recipe.pretrained,
                    shots,
                )
            )
    if compared_any:
        notes.insert(1 + len(recipe.notes), BEYOND_NOTE)
    return Board(tuple(notes), tuple(sections))
