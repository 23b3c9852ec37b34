"""The comparison with the papers' published numbers (:func:`benchmark.reference.load`).

A column's spec is compared with the published number of the same protocol, backbone (OpenAI
weights), shot count, method, dataset and split (:func:`published_key`): a cell with the
number printed for it, a dataset's H with the printed H, and an average over datasets only
where it averages the same datasets as the paper (:data:`benchmark.reference.AVERAGED_OVER`)
and, for an average H, in the papers' convention (the mean of the per-dataset H).

:func:`compare_cells` gives, per method and column, the measured mean, each seed's value,
their spread, the published number, the difference and whether it lies beyond the seed
spread, the one rule of what counts as reproduced:

    **Beyond the seed spread**: |Δ| > max(2 × s, 0.5), where Δ is measured − published and s
    is the population std over our seeds of the cell's per-seed values (a seed's average or
    H is computed from that seed's cells). A published number is a mean over three seeds as
    ours is; for identical code their difference has a std of sigma·√(2/3) (sigma: one run's
    spread), which s estimates, so 2 × s is about a 95% band. The floor of 0.5 points holds
    because three seeds can agree by chance (and one seed has s = 0); it also covers the
    papers' two-decimal rounding. A difference within the bound counts as reproduced.

:func:`compare` is the table of ``leaderboard --reference``: under each method's row, a
``· paper`` row (the published numbers, two decimals, as printed) and a ``· Δ`` row
(measured − published, marked where beyond the seed spread).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from benchmark.leaderboard.cells import Measurements
from benchmark.leaderboard.layout import (
    Column,
    HarmonicOf,
    Key,
    Layout,
    Mean,
    Spec,
    keys_of,
)
from benchmark.leaderboard.table import (
    BEYOND_MARK,
    DELTA,
    PAPER,
    Stat,
    Table,
    TableRow,
    ranked,
)

__all__ = [
    "BEYOND_NOTE",
    "MIN_TOLERANCE",
    "SPREAD_FACTOR",
    "CellComparison",
    "Published",
    "compare",
    "compare_cell",
    "compare_cells",
    "delta_stat",
    "published_at",
    "published_for",
    "published_key",
    "unpublished_datasets",
    "used_sources",
]

BEYOND_NOTE = (
    f"A Δ marked {BEYOND_MARK} lies beyond the seed spread: |Δ| > max(2 × the population "
    "std over our seeds, 0.5 points); within it, a number counts as reproduced."
)
"""The page note that explains the mark."""

SPREAD_FACTOR = 2.0
"""|Δ| up to this many population stds over our seeds counts as reproduced (module doc)."""
MIN_TOLERANCE = 0.5
"""|Δ| up to this many points always counts as reproduced (module doc)."""


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
    rows = rows[(rows["protocol"] == protocol) & (rows["backbone"] == backbone)]
    return published_at(rows, shots, lambda method, variant: method)


def published_at(
    rows: pd.DataFrame, shots: int, row_of: Callable[[str, str], str | None]
) -> Published:
    """The numbers of these rows of the published table at ``shots`` (and zero-shot's, at 0
    shots), keyed by (``row_of(method, variant)``, dataset, eval_dataset, split); rows whose
    ``row_of`` is None are left out; of two rows with one key, the first counts."""
    rows = rows[(rows["shots"] == shots) | (rows["shots"] == 0)]
    values: dict[tuple, float] = {}
    sources: dict[tuple, tuple[str, str]] = {}
    columns = ["method", "variant", "dataset", "eval_dataset", "split", "value", "paper", "table"]
    for method, variant, dataset, eval_dataset, split, value, paper, name in rows[
        columns
    ].itertuples(index=False):
        row = row_of(method, variant)
        key = (row, dataset, eval_dataset, split)
        if row is not None and key not in values:
            values[key] = float(value)
            sources[key] = (paper, name)
    return Published(values, sources)


def _printed_cell(spec: Spec) -> tuple[str, str, str] | None:
    """The (dataset, eval_dataset, split) a paper prints for a cell or a dataset's H."""
    if isinstance(spec, Key):
        return tuple(spec)
    if (
        isinstance(spec, HarmonicOf)
        and isinstance(spec.base, Key)
        and isinstance(spec.new, Key)
        and spec.base[:2] == spec.new[:2]
    ):
        return (spec.base.dataset, spec.base.eval_dataset, "hm")
    return None


def published_key(protocol: str, method: str, spec: Spec) -> tuple | None:
    """The published (method, dataset, eval_dataset, split) a spec compares with; None where
    the papers print nothing comparable (an average over other datasets than theirs, H of
    averages)."""
    from benchmark.reference import AVERAGE, AVERAGED_OVER

    if not isinstance(spec, Mean):
        cell = _printed_cell(spec)
        return None if cell is None else (method, *cell)
    cells = [_printed_cell(part) for part in spec.parts]
    if not cells or any(c is None for c in cells) or len({c[2] for c in cells}) != 1:
        return None
    split = cells[0][2]
    sources = {dataset for dataset, _, _ in cells}
    if len(sources) == 1 and any(e != d for d, e, _ in cells):
        covered, key = {e for _, e, _ in cells}, (method, *sources, AVERAGE, split)
    else:
        covered, key = sources, (method, AVERAGE, AVERAGE, split)
    return key if covered == AVERAGED_OVER.get(protocol) else None


@dataclass(frozen=True)
class CellComparison:
    """One method's cell of a layout, measured and published (see the module doc)."""

    method: str
    column: Column
    mean: float | None
    seed_values: tuple[float, ...]
    published: float | None
    source: tuple[str, str] | None

    @property
    def std(self) -> float | None:
        """The population std of :attr:`seed_values`; None with fewer than two seeds."""
        return statistics.pstdev(self.seed_values) if len(self.seed_values) >= 2 else None

    @property
    def delta(self) -> float | None:
        """Measured − published; None where either is missing."""
        if self.mean is None or self.published is None:
            return None
        return self.mean - self.published

    @property
    def tolerance(self) -> float | None:
        """The largest |Δ| that counts as reproduced: max(2 × std, 0.5); None where the
        cell is empty."""
        if not self.seed_values:
            return None
        return max(SPREAD_FACTOR * (self.std or 0.0), MIN_TOLERANCE)

    @property
    def beyond_spread(self) -> bool | None:
        """Whether |Δ| exceeds :attr:`tolerance` (the module doc's rule); None where the
        measured or the published number is missing."""
        delta, tolerance = self.delta, self.tolerance
        if delta is None or tolerance is None:
            return None
        return abs(delta) > tolerance


def compare_cell(
    data: Measurements, published: Published, method: str, column: Column
) -> CellComparison:
    """One method's cell of a column, measured and published."""
    key = published_key(data.protocol, method, column.spec)
    return CellComparison(
        method=method,
        column=column,
        mean=data.value(column.spec, method),
        seed_values=data.seed_values(column.spec, method),
        published=published.values.get(key),
        source=published.sources.get(key),
    )


def compare_cells(
    layout: Layout, data: Measurements, published: Published, methods: Iterable[str]
) -> list[CellComparison]:
    """Every (method, column) of a layout, in that order, measured and published."""
    return [
        compare_cell(data, published, method, column)
        for method in methods
        for column in layout.columns
    ]


def compare(
    layout: Layout,
    data: Measurements,
    published: Published,
    method_titles: Mapping[str, str] | None = None,
) -> Table:
    """The ranked table of measured numbers; under each method that has published numbers,
    its ``· paper`` row and its ``· Δ`` row."""
    rows: list[TableRow] = []
    for row in ranked(layout, data, method_titles):
        rows.append(row)
        found = compare_cells(layout, data, published, [row.method])
        if all(c.published is None for c in found):
            continue
        paper = tuple(None if c.published is None else Stat(c.published) for c in found)
        delta = tuple(delta_stat(c) for c in found)
        rows.append(TableRow(f"{row.label} · paper", row.method, paper, PAPER))
        rows.append(TableRow(f"{row.label} · Δ", row.method, delta, DELTA))
    return Table(layout.columns, tuple(rows))


def delta_stat(comparison: CellComparison) -> Stat | None:
    """The ``· Δ`` cell of a comparison, marked where beyond the seed spread."""
    if comparison.delta is None:
        return None
    return Stat(comparison.delta, beyond_spread=bool(comparison.beyond_spread))


def used_sources(layout: Layout, data: Measurements, published: Published) -> list[tuple[str, str]]:
    """The (paper, table) pairs whose numbers :func:`compare` shows for this layout."""
    found = set()
    keys = {key for column in layout.columns for key in keys_of(column.spec)}
    for method in data.methods(keys):
        for column in layout.columns:
            key = published_key(data.protocol, method, column.spec)
            if key in published.sources:
                found.add(published.sources[key])
    return sorted(found)


def _datasets(frame: pd.DataFrame) -> set[str]:
    return {d for d in (*frame["dataset"], *frame["eval_dataset"]) if isinstance(d, str) and d}


def unpublished_datasets(df: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """The datasets of a result table for which the papers publish no numbers."""
    return sorted(_datasets(df) - _datasets(reference))
