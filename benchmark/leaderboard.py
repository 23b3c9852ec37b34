"""Leaderboards: pure functions of the result table, in the papers' layouts.

The input is the tidy result table of :mod:`benchmark.results` as a pandas DataFrame (one
row per run, evaluated dataset, split and metric). Only rows with ``status == "ok"`` and a
non-missing value count; accuracies are percentages (0-100).

Pipeline::

    cells = aggregate(df)                      # mean ± population std over seeds
    table = few_shot_table(cells_subset, ...)  # one builder per protocol
    text = render(table, "github")             # github | latex | csv
    leaderboard(df)                            # all of the above, every protocol and backbone
    leaderboard(df, reference=load())          # with the papers' numbers and the differences

Rules
-----
* **Seeds.** A cell (method, protocol, dataset, eval_dataset, split, shots, backbone,
  pretrained, metric) is *complete* only if it holds a value for every expected seed. The
  expected seeds are passed explicitly (``seeds=``) or else are the union of the seeds seen
  for that (protocol, backbone, pretrained) in the whole table, failed runs included (a seed
  that failed everywhere is still a missing seed). An incomplete cell has no mean and renders
  empty, never as a partial mean. Should one seed of a cell hold several ok rows (the same
  cell run twice under different run ids), the newest by ``timestamp`` counts.
* **Std** is the population standard deviation over seeds (``ddof=0``), as in the papers.
* **Base-to-new.** Per dataset, H = 2BN/(B+N) of the seed-averaged base and new accuracies
  (the per-run ``hm`` rows are not used). The Average block averages base and new over the
  datasets and takes H of those averages, not the average of the per-dataset H.
* **Averages** over datasets are empty when any dataset's cell of that method is empty or
  absent; they carry no std.
* **Order.** Methods: as given (``methods=``), else sorted. Datasets: as given
  (``datasets=``), else in the order of the ``titles`` mapping, then sorted.

Published numbers
-----------------
With ``reference`` (:func:`benchmark.reference.load`), under each method's row come a
``<method> · paper`` row with the published numbers of the same protocol, backbone (OpenAI
weights), shot count, method, dataset and split, and a ``<method> · Δ`` row with measured −
published. A published average is shown only where the table averages over the same
datasets as the paper; both papers' average H is the mean of the per-dataset H, so the
comparison's Average H is computed that way too. Methods without any published number get
no extra rows; a table without any gets a note saying so.

Tables
------
A table is a list of rows; the first row is the header (strings); body cells are strings
(labels), :class:`Stat` (a mean with an optional std) or ``None`` (empty).

Formats (:func:`render`)
------------------------
* ``github``: tabulate's ``github`` format; a number is ``"71.2 ± 0.4"`` (one decimal) or
  ``"71.2"`` when it has no std (H, averages); empty cells are blank.
* ``latex``: tabulate's ``latex_booktabs``; as github but with ``$\\pm$``. Text is escaped.
* ``csv``: machine-readable: each value column becomes two columns, ``<name>`` (mean) and
  ``<name> std``, numbers with two decimals, empty cells empty. :func:`leaderboard` writes each
  table after a ``# heading`` comment line, tables separated by a blank line.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import pandas as pd
from tabulate import tabulate

__all__ = [
    "CELL_KEYS",
    "FORMATS",
    "PROTOCOL_ORDER",
    "Layout",
    "Published",
    "Section",
    "Stat",
    "Table",
    "aggregate",
    "base_to_new_table",
    "compare",
    "cross_dataset_table",
    "domain_generalization_table",
    "few_shot_table",
    "format_cell",
    "generic_table",
    "harmonic_mean",
    "label_columns",
    "leaderboard",
    "published_for",
    "reference_note",
    "render",
    "sections",
    "unpublished_datasets",
]

CELL_KEYS = (
    "method",
    "protocol",
    "dataset",
    "eval_dataset",
    "split",
    "shots",
    "backbone",
    "pretrained",
    "metric",
)
"""The columns identifying one leaderboard cell (everything but the seed)."""

SEED_SCOPE = ("protocol", "backbone", "pretrained")
"""The columns within which the expected seed set is inferred."""

FORMATS = ("github", "latex", "csv")
PROTOCOL_ORDER = ("few_shot", "base_to_new", "cross_dataset", "domain_generalization")
PM = "±"
_LATEX_PM = r"$\pm$"
_LATEX_PLACEHOLDER = "§PM§§"  # as wide as "$\pm$", untouched by tabulate's escaping


class Stat(NamedTuple):
    """A table number: a mean over seeds (or datasets) and, where one exists, its std.

    ``style`` is ``"paper"`` for a published number (shown with the papers' two decimals)
    and ``"delta"`` for a difference measured − published (shown signed)."""

    mean: float
    std: float | None = None
    style: str = ""


Cell = str | Stat | None
Table = list[list[Cell]]


def harmonic_mean(base: float, new: float) -> float:
    """H = 2BN/(B+N); 0 when both are 0."""
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)


# -- aggregation ---------------------------------------------------------------------------


def aggregate(
    df: pd.DataFrame, seeds: Collection[int] | None = None, metric: str | None = None
) -> pd.DataFrame:
    """Mean and population std over seeds of every cell of the result table.

    Returns one row per cell with the columns :data:`CELL_KEYS` plus ``mean``, ``std``
    (ddof 0), ``n_seeds`` (seeds with a value), ``n_expected`` and ``complete``. ``mean`` and
    ``std`` are NaN for an incomplete cell. ``seeds`` fixes the expected seed set (values of
    other seeds are ignored); by default it is the union of the seeds of each (protocol,
    backbone, pretrained), failed runs included. ``metric`` keeps only that metric.
    """
    columns = [*CELL_KEYS, "seed", "value", "status"]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"result table lacks columns {missing}")
    out_columns = [*CELL_KEYS, "mean", "std", "n_seeds", "n_expected", "complete"]
    rows = df if metric is None else df[df["metric"] == metric]
    if seeds is not None:
        expected_set = {int(s) for s in seeds}
        rows = rows[rows["seed"].isin(expected_set)]
    ok = rows[(rows["status"] == "ok") & rows["value"].notna()]
    if "timestamp" in ok.columns and ok["timestamp"].notna().any():
        ok = ok.sort_values("timestamp", kind="stable")
    ok = ok.drop_duplicates([*CELL_KEYS, "seed"], keep="last")
    if ok.empty:
        return pd.DataFrame(columns=out_columns)
    groups = ok.groupby(list(CELL_KEYS), dropna=False, sort=True, observed=True)["value"]
    cells = pd.DataFrame(
        {"mean": groups.mean(), "std": groups.std(ddof=0), "n_seeds": groups.size()}
    ).reset_index()
    if seeds is not None:
        cells["n_expected"] = len(expected_set)
    else:
        scope = list(SEED_SCOPE)
        expected = (
            df.groupby(scope, dropna=False, observed=True)["seed"]
            .nunique()
            .rename("n_expected")
            .reset_index()
        )
        cells = cells.merge(expected, on=scope, how="left")
    cells["complete"] = cells["n_seeds"] >= cells["n_expected"]
    cells.loc[~cells["complete"], ["mean", "std"]] = math.nan
    return cells[out_columns]


# -- table builders ------------------------------------------------------------------------
#
# Every table is a Layout: a header and rows, each row a method's labels and one Spec per
# value column saying which cells it shows (a cell, a mean over datasets, a harmonic mean).
# One function fills a layout from the measured cells, another from the published numbers,
# so every protocol's table and its comparison with the papers come from the same layout.


class Key(NamedTuple):
    """One cell of a method: trained on ``dataset``, evaluated on ``eval_dataset``."""

    dataset: str
    eval_dataset: str
    split: str


class Mean(NamedTuple):
    """The mean over datasets of these cells (no std); empty if any is empty."""

    keys: tuple[Key, ...]


class HarmonicOf(NamedTuple):
    """H = 2BN/(B+N) of two values (cells or means)."""

    base: Key | Mean
    new: Key | Mean


class MeanHarmonic(NamedTuple):
    """The mean over datasets of each dataset's H: the papers' average H."""

    pairs: tuple[tuple[Key, Key], ...]


Spec = Key | Mean | HarmonicOf | MeanHarmonic


class Row(NamedTuple):
    labels: tuple[str, ...]  # the method's label last
    method: str
    specs: tuple[Spec, ...]


class Layout(NamedTuple):
    protocol: str
    header: list[str]
    rows: list[Row]


def _stat(mean: float, std: float | None) -> Stat | None:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return None
    if std is not None and isinstance(std, float) and math.isnan(std):
        std = None
    return Stat(float(mean), None if std is None else float(std))


def _select(cells: pd.DataFrame, protocol: str | None, metric: str) -> pd.DataFrame:
    subset = cells[cells["metric"] == metric]
    if protocol is not None:
        subset = subset[subset["protocol"] == protocol]
    for column in ("backbone", "pretrained"):
        if subset[column].nunique(dropna=False) > 1:
            raise ValueError(f"cells of several {column}s: build one table per {column}")
    return subset


def _only(cells: pd.DataFrame, column: str, value: object, what: str) -> pd.DataFrame:
    """Restrict to ``column == value``; with ``value`` None the column must be single-valued."""
    if value is not None:
        return cells[cells[column] == value]
    values = cells[column].dropna().unique()
    if len(values) > 1:
        raise ValueError(f"cells of several {what} ({sorted(values)}): pass {column}=")
    return cells


def _lookup(cells: pd.DataFrame) -> dict[tuple, Stat | None]:
    """(method, dataset, eval_dataset, split) -> Stat (None for an incomplete cell)."""
    keys = zip(
        cells["method"], cells["dataset"], cells["eval_dataset"], cells["split"], strict=True
    )
    return {key: _stat(m, s) for key, m, s in zip(keys, cells["mean"], cells["std"], strict=True)}


def _methods(cells: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    return list(methods) if methods is not None else sorted(cells["method"].dropna().unique())


def _order(
    present: Iterable[str], given: Sequence[str] | None, titles: Mapping[str, str] | None
) -> list[str]:
    if given is not None:
        return list(given)
    present = set(present)
    first = [name for name in (titles or {}) if name in present]
    return first + sorted(present - set(first))


def _title(name: str, titles: Mapping[str, str] | None) -> str:
    return (titles or {}).get(name, name)


def _mean_of(stats: Sequence[Stat | None]) -> Stat | None:
    """The mean over datasets (no std); empty if any is empty or there are none."""
    if not stats or any(s is None for s in stats):
        return None
    return Stat(sum(s.mean for s in stats) / len(stats))


def _h(base: Stat | None, new: Stat | None) -> Stat | None:
    return None if base is None or new is None else Stat(harmonic_mean(base.mean, new.mean))


def _measured(lookup: Mapping[tuple, Stat | None], method: str, spec: Spec) -> Stat | None:
    """The value of a spec from measured cells."""
    if isinstance(spec, Key):
        return lookup.get((method, *spec))
    if isinstance(spec, Mean):
        return _mean_of([lookup.get((method, *k)) for k in spec.keys])
    if isinstance(spec, HarmonicOf):
        return _h(_measured(lookup, method, spec.base), _measured(lookup, method, spec.new))
    return _mean_of([_h(lookup.get((method, *b)), lookup.get((method, *n))) for b, n in spec.pairs])


def _fill(layout: Layout, lookup: Mapping[tuple, Stat | None]) -> Table:
    table: Table = [list(layout.header)]
    for row in layout.rows:
        table.append([*row.labels, *(_measured(lookup, row.method, s) for s in row.specs)])
    return table


def _few_shot_layout(
    subset: pd.DataFrame,
    titles: Mapping[str, str] | None,
    methods: Sequence[str] | None,
    datasets: Sequence[str] | None,
) -> Layout:
    subset = subset[(subset["eval_dataset"] == subset["dataset"]) & (subset["split"] == "all")]
    names = _order(subset["dataset"], datasets, titles)
    keys = tuple(Key(d, d, "all") for d in names)
    header = ["Method", *(_title(d, titles) for d in names), "Average"]
    rows = [Row((m,), m, (*keys, Mean(keys))) for m in _methods(subset, methods)]
    return Layout("few_shot", header, rows)


def _base_to_new_layout(
    subset: pd.DataFrame,
    titles: Mapping[str, str] | None,
    methods: Sequence[str] | None,
    datasets: Sequence[str] | None,
    paper_average_h: bool = False,
) -> Layout:
    subset = subset[subset["eval_dataset"] == subset["dataset"]]
    names = _order(subset["dataset"], datasets, titles)
    order = _methods(subset, methods)
    bases = tuple(Key(d, d, "base") for d in names)
    news = tuple(Key(d, d, "new") for d in names)
    average_h = (
        MeanHarmonic(tuple(zip(bases, news, strict=True)))
        if paper_average_h
        else HarmonicOf(Mean(bases), Mean(news))
    )
    rows = [Row(("Average", m), m, (Mean(bases), Mean(news), average_h)) for m in order]
    for base, new in zip(bases, news, strict=True):
        title = _title(base.dataset, titles)
        rows += [Row((title, m), m, (base, new, HarmonicOf(base, new))) for m in order]
    return Layout("base_to_new", ["Dataset", "Method", "Base", "New", "H"], rows)


def _transfer_layout(
    subset: pd.DataFrame,
    protocol: str,
    source: str | None,
    titles: Mapping[str, str] | None,
    methods: Sequence[str] | None,
    targets: Sequence[str] | None,
) -> Layout:
    subset = _only(subset, "dataset", source, "source datasets")
    subset = subset[subset["split"] == "all"]
    if source is None:
        present = subset["dataset"].dropna().unique()
        source = str(present[0]) if len(present) else ""
    shifted = subset[subset["eval_dataset"] != source]["eval_dataset"]
    names = _order(shifted, targets, titles)
    keys = tuple(Key(source, t, "all") for t in names)
    header = [
        "Method",
        f"{_title(source, titles)} (source)",
        *(_title(t, titles) for t in names),
        "Average",
    ]
    own = Key(source, source, "all")
    rows = [Row((m,), m, (own, *keys, Mean(keys))) for m in _methods(subset, methods)]
    return Layout(protocol, header, rows)


def _generic_layout(
    subset: pd.DataFrame,
    protocol: str,
    titles: Mapping[str, str] | None,
    methods: Sequence[str] | None,
) -> Layout:
    keys = sorted({Key(*k[1:]) for k in _lookup(subset)}, key=lambda k: tuple(map(str, k)))

    def label(key: Key) -> str:
        text = _title(key.dataset, titles)
        if key.eval_dataset != key.dataset:
            text += f" → {_title(key.eval_dataset, titles)}"
        return text if key.split in ("all", "", None) else f"{text} ({key.split})"

    header = ["Method", *(label(k) for k in keys)]
    return Layout(protocol, header, [Row((m,), m, tuple(keys)) for m in _methods(subset, methods)])


def few_shot_table(
    cells: pd.DataFrame,
    shots: int | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> Table:
    """Few-shot: a row per method, a column per dataset (its own test split), then Average.

    ``cells`` is :func:`aggregate` output of one backbone; ``shots`` picks the shot count
    (needed when several are present).
    """
    subset = _only(_select(cells, "few_shot", metric), "shots", shots, "shot counts")
    return _fill(_few_shot_layout(subset, titles, methods, datasets), _lookup(subset))


def base_to_new_table(
    cells: pd.DataFrame,
    shots: int | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> Table:
    """Base-to-new: blocks of rows (Average first, then each dataset), a row per method in a
    block, columns Dataset, Method, Base, New, H.

    H = 2BN/(B+N) of the seed-averaged base and new; in the Average block base and new are
    averaged over the datasets and H is the harmonic mean of those averages.
    """
    subset = _only(_select(cells, "base_to_new", metric), "shots", shots, "shot counts")
    return _fill(_base_to_new_layout(subset, titles, methods, datasets), _lookup(subset))


def _transfer_table(
    cells: pd.DataFrame,
    protocol: str,
    source: str | None,
    shots: int | None,
    titles: Mapping[str, str] | None,
    methods: Sequence[str] | None,
    targets: Sequence[str] | None,
    metric: str,
) -> Table:
    subset = _only(_select(cells, protocol, metric), "shots", shots, "shot counts")
    layout = _transfer_layout(subset, protocol, source, titles, methods, targets)
    return _fill(layout, _lookup(subset))


def cross_dataset_table(
    cells: pd.DataFrame,
    source: str | None = None,
    shots: int | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    methods: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> Table:
    """Cross-dataset: a row per method; columns the source (its own test split), each
    target dataset, then Average over the targets (the source excluded)."""
    return _transfer_table(cells, "cross_dataset", source, shots, titles, methods, targets, metric)


def domain_generalization_table(
    cells: pd.DataFrame,
    source: str | None = None,
    shots: int | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    methods: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> Table:
    """Domain generalisation: a row per method; columns the source, each shifted dataset,
    then Average over the shifted datasets (the source excluded)."""
    return _transfer_table(
        cells, "domain_generalization", source, shots, titles, methods, targets, metric
    )


def generic_table(
    cells: pd.DataFrame,
    protocol: str,
    shots: int | None = None,
    *,
    titles: Mapping[str, str] | None = None,
    methods: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> Table:
    """Any other protocol: a row per method, a column per (dataset, eval_dataset, split)."""
    subset = _only(_select(cells, protocol, metric), "shots", shots, "shot counts")
    return _fill(_generic_layout(subset, protocol, titles, methods), _lookup(subset))


# -- the papers' numbers side by side --------------------------------------------------------


class Published(NamedTuple):
    """The published numbers matching one table: values by (method, dataset, eval_dataset,
    split) and the (paper, table) each came from."""

    values: dict[tuple, float]
    sources: dict[tuple, tuple[str, str]]


def published_for(
    reference: pd.DataFrame, protocol: str, backbone: str, pretrained: str, shots: int
) -> Published:
    """The comparable published accuracies of one table's protocol, backbone, weights and
    shot count (zero-shot numbers, published with 0 shots, match every shot count). Where
    two tables print the same number, the first in the file counts."""
    from benchmark.reference import PUBLISHED_PRETRAINED, comparable

    rows = comparable(reference)
    if pretrained != PUBLISHED_PRETRAINED:
        rows = rows.iloc[0:0]
    rows = rows[
        (rows["protocol"] == protocol)
        & (rows["backbone"] == backbone)
        & ((rows["shots"] == shots) | (rows["shots"] == 0))
    ]
    values: dict[tuple, float] = {}
    sources: dict[tuple, tuple[str, str]] = {}
    columns = ["method", "dataset", "eval_dataset", "split", "value", "paper", "table"]
    for method, dataset, eval_dataset, split, value, paper, name in rows[columns].itertuples(
        index=False
    ):
        key = (method, dataset, eval_dataset, split)
        if key not in values:
            values[key] = float(value)
            sources[key] = (paper, name)
    return Published(values, sources)


def _published(published: Published, protocol: str, method: str, spec: Spec) -> tuple | None:
    """The published key a spec compares with (None where the papers print nothing
    comparable: an average over other datasets than theirs, H of averages)."""
    from benchmark.reference import AVERAGE, AVERAGED_OVER

    if isinstance(spec, Key):
        return (method, *spec)
    if isinstance(spec, HarmonicOf):
        if isinstance(spec.base, Key):
            return (method, spec.base.dataset, spec.base.eval_dataset, "hm")
        return None  # the papers' average H is a mean of H (MeanHarmonic), not H of means
    keys = spec.keys if isinstance(spec, Mean) else tuple(b for b, _ in spec.pairs)
    if not keys:
        return None
    split = keys[0].split if isinstance(spec, Mean) else "hm"
    sources = {k.dataset for k in keys}
    if len(sources) == 1 and any(k.eval_dataset != k.dataset for k in keys):
        covered, key = {k.eval_dataset for k in keys}, (method, *sources, AVERAGE, split)
    else:
        covered, key = sources, (method, AVERAGE, AVERAGE, split)
    return key if covered == AVERAGED_OVER.get(protocol) else None


def compare(layout: Layout, lookup: Mapping[tuple, Stat | None], published: Published) -> Table:
    """The layout filled with measured numbers; under each method's row that has published
    numbers, a ``<method> · paper`` row (as printed, two decimals) and a ``<method> · Δ``
    row (measured − published, where both exist)."""
    table: Table = [list(layout.header)]
    for row in layout.rows:
        measured = [_measured(lookup, row.method, s) for s in row.specs]
        keys = [_published(published, layout.protocol, row.method, s) for s in row.specs]
        paper = [
            None
            if k is None or k not in published.values
            else Stat(published.values[k], style="paper")
            for k in keys
        ]
        table.append([*row.labels, *measured])
        if any(p is not None for p in paper):
            delta = [
                None if m is None or p is None else Stat(m.mean - p.mean, style="delta")
                for m, p in zip(measured, paper, strict=True)
            ]
            table.append([*row.labels[:-1], f"{row.method} · paper", *paper])
            table.append([*row.labels[:-1], f"{row.method} · Δ", *delta])
    return table


def used_sources(layout: Layout, published: Published) -> list[tuple[str, str]]:
    """The (paper, table) pairs whose numbers :func:`compare` shows for this layout."""
    found = set()
    for row in layout.rows:
        for spec in row.specs:
            key = _published(published, layout.protocol, row.method, spec)
            if key in published.sources:
                found.add(published.sources[key])
    return sorted(found)


# -- rendering -----------------------------------------------------------------------------


def format_cell(cell: Cell, pm: str = PM) -> str:
    """A cell as the tables print it (``pm`` joins mean and std)."""
    if cell is None:
        return ""
    if isinstance(cell, Stat):
        if cell.style == "paper":
            return f"{cell.mean:.2f}"
        if cell.style == "delta":
            return f"{cell.mean:+.1f}"
        if cell.std is None:
            return f"{cell.mean:.1f}"
        return f"{cell.mean:.1f} {pm} {cell.std:.1f}"
    return str(cell)


def label_columns(table: Table) -> list[bool]:
    """Which columns are labels: every body cell a string (columns of numbers align right)."""
    width = len(table[0])
    body = table[1:]
    return [bool(body) and all(isinstance(row[i], str) for row in body) for i in range(width)]


def render(table: Table, fmt: str = "github") -> str:
    """The table as text: ``github`` or ``latex`` (tabulate) or ``csv`` (see module doc)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    header, body = [str(h) for h in table[0]], table[1:]
    labels = label_columns(table)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        out_header: list[str] = []
        for name, is_label in zip(header, labels, strict=True):
            out_header += [name] if is_label else [name, f"{name} std"]
        writer.writerow(out_header)
        for row in body:
            out: list[str] = []
            for cell, is_label in zip(row, labels, strict=True):
                if is_label:
                    out.append(str(cell))
                elif isinstance(cell, Stat):
                    out += [f"{cell.mean:.2f}", "" if cell.std is None else f"{cell.std:.2f}"]
                else:
                    out += ["" if cell is None else str(cell), ""]
            writer.writerow(out)
        return buffer.getvalue().rstrip("\n")
    pm = _LATEX_PLACEHOLDER if fmt == "latex" else PM
    rows = [[format_cell(cell, pm) for cell in row] for row in body]
    text = tabulate(
        rows,
        headers=header,
        tablefmt="latex_booktabs" if fmt == "latex" else "github",
        disable_numparse=True,
        colalign=["left" if is_label else "right" for is_label in labels],
    )
    return text.replace(_LATEX_PLACEHOLDER, _LATEX_PM) if fmt == "latex" else text


# -- the whole leaderboard -----------------------------------------------------------------


class Section(NamedTuple):
    """One table of the leaderboard: its heading, the table and notes to print under it."""

    heading: str
    table: Table
    notes: list[str]


def _heading(fmt: str, text: str) -> str:
    return {"github": f"## {text}", "latex": f"% {text}", "csv": f"# {text}"}[fmt]


def _note(fmt: str, text: str) -> str:
    return text if fmt == "github" else f"{'%' if fmt == 'latex' else '#'} {text}"


def _datasets(cells: pd.DataFrame) -> set[str]:
    return {d for d in (*cells["dataset"], *cells["eval_dataset"]) if isinstance(d, str) and d}


def unpublished_datasets(df: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """The datasets of a result table for which the papers publish no numbers."""
    return sorted(_datasets(df) - _datasets(reference))


def reference_note(df: pd.DataFrame, reference: pd.DataFrame) -> str | None:
    """The statement that the papers publish nothing for some datasets of a result table
    (all of them, on the mini world); None when they publish numbers for every one."""
    missing = unpublished_datasets(df, reference)
    if not missing:
        return None
    return (
        f"The papers publish no numbers for the datasets {', '.join(missing)}: "
        "their results are shown without published numbers."
    )


def _reference_notes(
    layout: Layout, published: Published, cells: pd.DataFrame, reference: pd.DataFrame
) -> list[str]:
    sources = used_sources(layout, published)
    if not sources:
        missing = unpublished_datasets(cells, reference)
        if missing:
            return [f"The papers publish no numbers for {', '.join(missing)}."]
        return ["No published number matches this table's methods, datasets, backbone and shots."]
    notes = ["Published: " + "; ".join(f"{paper} table {name}" for paper, name in sources) + "."]
    compared_average_h = any(
        isinstance(spec, MeanHarmonic)
        and _published(published, layout.protocol, row.method, spec) in published.values
        for row in layout.rows
        for spec in row.specs
    )
    if compared_average_h:
        notes.append(
            "Average H here is the mean of the per-dataset H, as both papers compute it "
            "(the plain leaderboard shows H of the averaged base and new)."
        )
    return notes


def sections(
    df: pd.DataFrame,
    protocol: str | None = None,
    titles: Mapping[str, str] | None = None,
    *,
    seeds: Collection[int] | None = None,
    methods: Sequence[str] | None = None,
    metric: str = "accuracy",
    reference: pd.DataFrame | None = None,
) -> list[Section]:
    """The tables of :func:`leaderboard`, unrendered. With ``reference`` (the published
    numbers of :func:`benchmark.reference.load`) each table is a :func:`compare` table."""
    rows = df if protocol is None else df[df["protocol"] == protocol]
    cells = aggregate(rows, seeds=seeds, metric=metric)
    if cells.empty:
        return []
    # many small selections follow: plain Python objects beat Arrow-backed strings there
    cells = cells.astype({c: object for c in CELL_KEYS if c != "shots"})
    present = list(cells["protocol"].dropna().unique())
    protocols = [p for p in PROTOCOL_ORDER if p in present] + sorted(
        p for p in present if p not in PROTOCOL_ORDER
    )
    out: list[Section] = []
    for name in protocols:
        of_protocol = cells[cells["protocol"] == name]
        groups = of_protocol.groupby(["backbone", "pretrained", "shots"], dropna=False, sort=True)
        for (backbone, pretrained, shots), group in groups:
            text = f"{name} ({backbone}, {pretrained}) · {shots} shots"
            layouts: list[tuple[str, Layout, pd.DataFrame]] = []
            if name in ("cross_dataset", "domain_generalization"):
                by_source = dict(list(group.groupby("dataset", sort=False)))
                for source in _order(by_source, None, titles):
                    part = by_source[source]
                    layout = _transfer_layout(part, name, source, titles, methods, None)
                    layouts.append((f"{text} · source {_title(source, titles)}", layout, part))
            elif name == "few_shot":
                layouts.append((text, _few_shot_layout(group, titles, methods, None), group))
            elif name == "base_to_new":
                layout = _base_to_new_layout(group, titles, methods, None, reference is not None)
                layouts.append((text, layout, group))
            else:
                layouts.append((text, _generic_layout(group, name, titles, methods), group))
            for heading, layout, part in layouts:
                lookup = _lookup(part)
                if reference is None:
                    out.append(Section(heading, _fill(layout, lookup), []))
                    continue
                published = published_for(reference, name, backbone, pretrained, shots)
                table = compare(layout, lookup, published)
                notes = _reference_notes(layout, published, part, reference)
                out.append(Section(heading, table, notes))
    return out


def leaderboard(
    df: pd.DataFrame,
    protocol: str | None = None,
    fmt: str = "github",
    titles: Mapping[str, str] | None = None,
    *,
    seeds: Collection[int] | None = None,
    methods: Sequence[str] | None = None,
    metric: str = "accuracy",
    reference: pd.DataFrame | None = None,
) -> str:
    """Every protocol present (or only ``protocol``), one table per backbone and weights,
    shot count and, for transfer protocols, source dataset; each after a heading line such as
    ``## few_shot (ViT-B-16, openai) · 16 shots``. Empty string when nothing matches.

    With ``reference``, every table shows the published numbers and the difference under
    each method (:func:`compare`), with notes naming the papers' tables, and the text starts
    by naming the datasets the papers publish nothing for."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    found = sections(
        df, protocol, titles, seeds=seeds, methods=methods, metric=metric, reference=reference
    )
    if not found:
        return ""
    blocks: list[str] = []
    if reference is not None:
        note = reference_note(df if protocol is None else df[df["protocol"] == protocol], reference)
        if note:
            blocks.append(_note(fmt, note))
    for section in found:
        text = f"{_heading(fmt, section.heading)}\n\n{render(section.table, fmt)}"
        if section.notes:
            text += "\n\n" + "\n\n".join(_note(fmt, n) for n in section.notes)
        blocks.append(text)
    return "\n\n".join(blocks) + "\n"
