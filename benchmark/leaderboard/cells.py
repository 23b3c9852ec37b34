"""Aggregation over seeds: the result table's rows become cells (mean ± population std).

The input is the tidy result table of :mod:`benchmark.results` as a pandas DataFrame (one
row per run, evaluated dataset, split and metric). Only rows with ``status == "ok"`` and a
non-missing value count; accuracies are percentages (0-100).

* A cell (:data:`CELL_KEYS`: everything but the seed) is *complete* only if it holds a value
  for every expected seed. The expected seeds are passed explicitly (``seeds=``) or else are
  the union of the seeds seen for that (protocol, backbone, pretrained) in the whole table,
  failed runs included (a seed that failed everywhere is still a missing seed). An
  incomplete cell has no mean and shows empty, never as a partial mean.
* Should one seed of a cell hold several ok rows (the same cell run twice under different
  run ids), the newest by ``timestamp`` counts. Seeds never mix settings: where a cell's
  rows were run with several configurations (``--set``, a preset, a new version of the
  method's settings), only the rows of its newest row's configuration count, so the other
  seeds of an older configuration leave the cell incomplete rather than averaged in. Such
  cells are reported (a :class:`MixedConfigurationsWarning`).
* The std is the population standard deviation over seeds (``ddof=0``), as in the papers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

import pandas as pd

from benchmark.leaderboard.layout import Key, Scope, Spec, evaluate

__all__ = [
    "CELL_KEYS",
    "Measured",
    "Measurements",
    "MixedConfigurationsWarning",
    "aggregate",
    "measurements",
    "measurements_by_protocol",
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

GROUP_KEYS = ("protocol", "backbone", "pretrained", "shots")
"""The columns of one leaderboard table (transfer protocols split it further by source)."""


class MixedConfigurationsWarning(UserWarning):
    """Cells whose rows were run with several configurations: only the newest one counts."""


def newest_configuration(ok: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``ok`` (sorted oldest first) run with their cell's newest configuration.

    A :class:`MixedConfigurationsWarning` names the cells where this leaves out a seed that
    only an older configuration has (those cells would have mixed settings)."""
    if "config" not in ok.columns or ok.empty:
        return ok
    keys = list(CELL_KEYS)
    newest = ok["config"] == ok.groupby(keys, dropna=False, observed=True)["config"].transform(
        "last"
    )
    kept = set(ok[newest][[*keys, "seed"]].itertuples(index=False, name=None))
    dropped = ok[~newest][[*keys, "seed"]].itertuples(index=False, name=None)
    lost = sorted({row[:-1] for row in dropped if row not in kept}, key=str)
    if lost:
        key = dict(zip(keys, lost[0], strict=True))
        shots = f"{key['shots']} shot{'' if key['shots'] == 1 else 's'}"
        warnings.warn(
            f"cells whose seeds were run with different configurations: {len(lost)} (e.g. "
            f"{key['method']} · {key['protocol']} · {key['dataset']} · {shots}); each shows "
            "its newest configuration's seeds only, incomplete until the other seeds are run "
            "with it",
            MixedConfigurationsWarning,
            stacklevel=3,
        )
    return ok[newest]


def aggregate(
    df: pd.DataFrame, seeds: Collection[int] | None = None, metric: str | None = None
) -> pd.DataFrame:
    """Mean and population std over seeds of every cell of the result table.

    Returns one row per cell with the columns :data:`CELL_KEYS` plus ``mean``, ``std``
    (ddof 0), ``n_seeds`` (seeds with a value), ``n_expected``, ``complete``, and ``seeds``
    and ``values``: the seeds with a value and their values, in seed order (tuples).
    ``mean`` and ``std`` are NaN for an incomplete cell. ``seeds`` fixes the expected seed
    set (values of other seeds are ignored); by default it is the union of the seeds of each
    (protocol, backbone, pretrained), failed runs included. ``metric`` keeps only that
    metric.
    """
    columns = [*CELL_KEYS, "seed", "value", "status"]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"result table lacks columns {missing}")
    out_columns = [
        *CELL_KEYS,
        *("mean", "std", "n_seeds", "n_expected", "complete", "seeds", "values"),
    ]
    rows = df if metric is None else df[df["metric"] == metric]
    if seeds is not None:
        expected_set = {int(s) for s in seeds}
        rows = rows[rows["seed"].isin(expected_set)]
    ok = rows[(rows["status"] == "ok") & rows["value"].notna()]
    if "timestamp" in ok.columns and ok["timestamp"].notna().any():
        ok = ok.sort_values("timestamp", kind="stable")
    ok = newest_configuration(ok).drop_duplicates([*CELL_KEYS, "seed"], keep="last")
    if ok.empty:
        return pd.DataFrame(columns=out_columns)
    ok = ok.sort_values("seed", kind="stable")
    groups = ok.groupby(list(CELL_KEYS), dropna=False, sort=True, observed=True)
    values = groups["value"]
    cells = pd.DataFrame(
        {
            "mean": values.mean(),
            "std": values.std(ddof=0),
            "n_seeds": values.size(),
            "seeds": groups["seed"].agg(lambda s: tuple(int(x) for x in s)),
            "values": values.agg(lambda v: tuple(float(x) for x in v)),
        }
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


@dataclass(frozen=True)
class Measured:
    """A complete cell: the mean and population std over seeds, and each seed's value."""

    mean: float
    std: float
    by_seed: Mapping[int, float]


@dataclass(frozen=True)
class Measurements:
    """The cells of one leaderboard table (one protocol, backbone, weights and shot count):
    ``cells`` maps (method, :class:`Key`) to the cell, None where it is incomplete;
    ``n_seeds`` is the number of seeds a complete cell has."""

    protocol: str
    backbone: str
    pretrained: str
    shots: int
    cells: Mapping[tuple[str, Key], Measured | None]
    n_seeds: int

    def cell_keys(self) -> frozenset[Key]:
        """Every cell present, any method, complete or not."""
        return frozenset(key for _, key in self.cells)

    def methods(self, keys: Collection[Key]) -> set[str]:
        """The methods with a cell (complete or not) among ``keys``."""
        return {method for method, key in self.cells if key in keys}

    def mean(self, method: str, key: Key) -> float | None:
        """A cell's mean over seeds; None if it is incomplete or absent."""
        cell = self.cells.get((method, key))
        return None if cell is None else cell.mean

    def std(self, method: str, key: Key) -> float | None:
        """A cell's std over seeds; None if it is incomplete, absent or has one seed."""
        cell = self.cells.get((method, key))
        return None if cell is None or len(cell.by_seed) < 2 else cell.std

    def seed_value(self, method: str, key: Key, seed: int) -> float | None:
        """One seed's value of a complete cell; None otherwise."""
        cell = self.cells.get((method, key))
        return None if cell is None else cell.by_seed.get(seed)

    def value(self, spec: Spec, method: str, seed: int | None = None) -> float | None:
        """A spec's value for a method, from its cells' means or from one seed's values."""
        if seed is None:
            return evaluate(spec, lambda key: self.mean(method, key))
        return evaluate(spec, lambda key: self.seed_value(method, key, seed))

    def seeds(self) -> list[int]:
        """The seeds of the complete cells."""
        return sorted({s for cell in self.cells.values() if cell is not None for s in cell.by_seed})

    def seed_values(self, spec: Spec, method: str) -> tuple[float, ...]:
        """A spec's value for each seed, in seed order, each from that seed's cells (a
        seed's average over datasets, a seed's H); empty where any cell it needs is empty."""
        values = [self.value(spec, method, seed) for seed in self.seeds()]
        return () if not values or None in values else tuple(values)

    def scope(self, titles: Mapping[str, str], average_h: str) -> Scope:
        """What a layout of this table is built from."""
        return Scope(self.protocol, self.cell_keys(), titles, average_h)


def measurements(cells: pd.DataFrame) -> Iterator[Measurements]:
    """The :class:`Measurements` of every (protocol, backbone, pretrained, shots) in the
    :func:`aggregate` output ``cells`` (one metric), in that sort order."""
    # many small selections follow: plain Python objects beat Arrow-backed strings there
    cells = cells.astype({c: object for c in CELL_KEYS if c != "shots"})
    groups = cells.groupby(list(GROUP_KEYS), dropna=False, sort=True)
    for (protocol, backbone, pretrained, shots), group in groups:
        found: dict[tuple[str, Key], Measured | None] = {}
        for row in group.itertuples(index=False):
            key = Key(row.dataset, row.eval_dataset, row.split)
            found[row.method, key] = (
                Measured(
                    float(row.mean), float(row.std), dict(zip(row.seeds, row.values, strict=True))
                )
                if row.complete
                else None
            )
        n_seeds = int(group["n_expected"].max())
        yield Measurements(protocol, backbone, pretrained, int(shots), found, n_seeds)


def measurements_by_protocol(cells: pd.DataFrame) -> dict[str, list[Measurements]]:
    """:func:`measurements` of ``cells`` grouped by protocol."""
    by_protocol: dict[str, list[Measurements]] = {}
    for data in measurements(cells):
        by_protocol.setdefault(data.protocol, []).append(data)
    return by_protocol
