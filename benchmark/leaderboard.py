"""Leaderboards: pure functions of the result table, in the papers' layouts.

The input is the tidy result table of :mod:`benchmark.results` as a pandas DataFrame (one
row per run, evaluated dataset, split and metric). Only rows with ``status == "ok"`` and a
non-missing value count; accuracies are percentages (0-100).

Pipeline::

    cells = aggregate(df)                      # mean ± population std over seeds
    table = few_shot_table(cells_subset, ...)  # one builder per protocol
    text = render(table, "github")             # github | latex | csv
    leaderboard(df)                            # all of the above, every protocol and backbone

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
    "Stat",
    "Table",
    "aggregate",
    "base_to_new_table",
    "cross_dataset_table",
    "domain_generalization_table",
    "few_shot_table",
    "generic_table",
    "harmonic_mean",
    "leaderboard",
    "render",
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
    """A table number: a mean over seeds (or datasets) and, where one exists, its std."""

    mean: float
    std: float | None = None


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
    subset = subset[(subset["eval_dataset"] == subset["dataset"]) & (subset["split"] == "all")]
    lookup = _lookup(subset)
    names = _order(subset["dataset"], datasets, titles)
    table: Table = [["Method", *(_title(d, titles) for d in names), "Average"]]
    for method in _methods(subset, methods):
        row = [lookup.get((method, d, d, "all")) for d in names]
        table.append([method, *row, _mean_of(row)])
    return table


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
    subset = subset[subset["eval_dataset"] == subset["dataset"]]
    lookup = _lookup(subset)
    names = _order(subset["dataset"], datasets, titles)
    order = _methods(subset, methods)

    def h(base: Stat | None, new: Stat | None) -> Stat | None:
        return None if base is None or new is None else Stat(harmonic_mean(base.mean, new.mean))

    table: Table = [["Dataset", "Method", "Base", "New", "H"]]
    for method in order:
        base = _mean_of([lookup.get((method, d, d, "base")) for d in names])
        new = _mean_of([lookup.get((method, d, d, "new")) for d in names])
        table.append(["Average", method, base, new, h(base, new)])
    for name in names:
        for method in order:
            base = lookup.get((method, name, name, "base"))
            new = lookup.get((method, name, name, "new"))
            table.append([_title(name, titles), method, base, new, h(base, new)])
    return table


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
    subset = _only(subset, "dataset", source, "source datasets")
    subset = subset[subset["split"] == "all"]
    if source is None:
        present = subset["dataset"].dropna().unique()
        source = str(present[0]) if len(present) else ""
    lookup = _lookup(subset)
    shifted = subset[subset["eval_dataset"] != source]["eval_dataset"]
    names = _order(shifted, targets, titles)
    header = [
        "Method",
        f"{_title(source, titles)} (source)",
        *(_title(t, titles) for t in names),
        "Average",
    ]
    table: Table = [header]
    for method in _methods(subset, methods):
        row = [lookup.get((method, source, t, "all")) for t in names]
        table.append([method, lookup.get((method, source, source, "all")), *row, _mean_of(row)])
    return table


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
    lookup = _lookup(subset)
    columns = sorted({key[1:] for key in lookup}, key=lambda k: tuple(map(str, k)))

    def label(dataset: str, eval_dataset: str, split: str) -> str:
        text = _title(dataset, titles)
        if eval_dataset != dataset:
            text += f" → {_title(eval_dataset, titles)}"
        return text if split in ("all", "", None) else f"{text} ({split})"

    table: Table = [["Method", *(label(*c) for c in columns)]]
    for method in _methods(subset, methods):
        table.append([method, *(lookup.get((method, *c)) for c in columns)])
    return table


# -- rendering -----------------------------------------------------------------------------


def _text(cell: Cell, pm: str) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Stat):
        if cell.std is None:
            return f"{cell.mean:.1f}"
        return f"{cell.mean:.1f} {pm} {cell.std:.1f}"
    return str(cell)


def _label_columns(table: Table) -> list[bool]:
    """Which columns are labels: every body cell a string (columns of numbers align right)."""
    width = len(table[0])
    body = table[1:]
    return [bool(body) and all(isinstance(row[i], str) for row in body) for i in range(width)]


def render(table: Table, fmt: str = "github") -> str:
    """The table as text: ``github`` or ``latex`` (tabulate) or ``csv`` (see module doc)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    header, body = [str(h) for h in table[0]], table[1:]
    labels = _label_columns(table)
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
    rows = [[_text(cell, pm) for cell in row] for row in body]
    text = tabulate(
        rows,
        headers=header,
        tablefmt="latex_booktabs" if fmt == "latex" else "github",
        disable_numparse=True,
        colalign=["left" if is_label else "right" for is_label in labels],
    )
    return text.replace(_LATEX_PLACEHOLDER, _LATEX_PM) if fmt == "latex" else text


# -- the whole leaderboard -----------------------------------------------------------------


def _heading(fmt: str, text: str) -> str:
    return {"github": f"## {text}", "latex": f"% {text}", "csv": f"# {text}"}[fmt]


def leaderboard(
    df: pd.DataFrame,
    protocol: str | None = None,
    fmt: str = "github",
    titles: Mapping[str, str] | None = None,
    *,
    seeds: Collection[int] | None = None,
    methods: Sequence[str] | None = None,
    metric: str = "accuracy",
) -> str:
    """Every protocol present (or only ``protocol``), one table per backbone and weights,
    shot count and, for transfer protocols, source dataset; each after a heading line such as
    ``## few_shot (ViT-B-16, openai) · 16 shots``. Empty string when nothing matches."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows = df if protocol is None else df[df["protocol"] == protocol]
    cells = aggregate(rows, seeds=seeds, metric=metric)
    if cells.empty:
        return ""
    # many small selections follow: plain Python objects beat Arrow-backed strings there
    cells = cells.astype({c: object for c in CELL_KEYS if c != "shots"})
    present = list(cells["protocol"].dropna().unique())
    protocols = [p for p in PROTOCOL_ORDER if p in present] + sorted(
        p for p in present if p not in PROTOCOL_ORDER
    )
    blocks: list[str] = []
    for name in protocols:
        of_protocol = cells[cells["protocol"] == name]
        groups = of_protocol.groupby(["backbone", "pretrained", "shots"], dropna=False, sort=True)
        for (backbone, pretrained, shots), group in groups:
            text = f"{name} ({backbone}, {pretrained}) · {shots} shots"
            kwargs = {"titles": titles, "methods": methods, "metric": metric}
            if name in ("cross_dataset", "domain_generalization"):
                builder = (
                    cross_dataset_table if name == "cross_dataset" else domain_generalization_table
                )
                by_source = dict(list(group.groupby("dataset", sort=False)))
                for source in _order(by_source, None, titles):
                    table = builder(by_source[source], source, **kwargs)
                    title = f"{text} · source {_title(source, titles)}"
                    blocks.append(f"{_heading(fmt, title)}\n\n{render(table, fmt)}")
                continue
            if name == "few_shot":
                table = few_shot_table(group, **kwargs)
            elif name == "base_to_new":
                table = base_to_new_table(group, **kwargs)
            else:
                table = generic_table(group, name, **kwargs)
            blocks.append(f"{_heading(fmt, text)}\n\n{render(table, fmt)}")
    return "\n\n".join(blocks) + "\n"
