"""Layouts: what a leaderboard table shows, described as data before any number is filled in.

A protocol describes its tables with these building blocks (a protocol that describes none
gets :func:`generic_layout`). A :class:`Layout` is a tuple of :class:`Column`; every table has
one row per method. A column shows one :data:`Spec` per method:

* :class:`Key`: one cell, the seed-averaged accuracy of (dataset trained on, dataset
  evaluated, split);
* :class:`Mean`: the mean of other specs (an average over datasets);
* :class:`HarmonicOf`: H = 2BN/(B+N) of two specs (base and new).

:func:`evaluate` computes a spec from cell values; it is the only place where averages and H
are computed, for the tables, the comparison with published numbers and the plots alike. A
spec is empty (None) when any cell it needs is empty.

This module imports nothing heavy, so that protocol plugins can import it when they are
registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "AVERAGE_H",
    "H_OF_MEANS",
    "MEAN_OF_H",
    "Column",
    "HarmonicOf",
    "Key",
    "Layout",
    "Mean",
    "Scope",
    "Spec",
    "average_h_column",
    "average_h_spec",
    "evaluate",
    "generic_layout",
    "harmonic_mean",
    "keys_of",
]

MEAN_OF_H = "mean-of-h"
"""Average H = the mean over the datasets of each dataset's H (ProGrad, GCSCoOp)."""
H_OF_MEANS = "of-means"
"""Average H = H of the base and new accuracies averaged over the datasets (CoCoOp,
KgCoOp, MaPLe)."""
AVERAGE_H = (MEAN_OF_H, H_OF_MEANS)
"""The two conventions of an average H; the first is the default."""


def harmonic_mean(base: float, new: float) -> float:
    """H = 2BN/(B+N) of a base and a new accuracy; 0 when both are 0."""
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)


class Key(NamedTuple):
    """One cell of a method: trained on ``dataset``, evaluated on ``eval_dataset``'s
    ``split`` (``all``, ``base``, ``new``)."""

    dataset: str
    eval_dataset: str
    split: str


class Mean(NamedTuple):
    """The mean of ``parts`` (cells, or H of cells): empty if any part is, or if none."""

    parts: tuple[Spec, ...]


class HarmonicOf(NamedTuple):
    """H = 2BN/(B+N) of two specs."""

    base: Spec
    new: Spec


Spec = Key | Mean | HarmonicOf
"""What one column shows for one method."""


def evaluate(spec: Spec, value: Callable[[Key], float | None]) -> float | None:
    """The number a spec shows, from ``value`` of each cell (None: an empty cell)."""
    if isinstance(spec, Key):
        return value(spec)
    if isinstance(spec, Mean):
        parts = [evaluate(part, value) for part in spec.parts]
        if not parts or any(p is None for p in parts):
            return None
        return sum(parts) / len(parts)
    base, new = evaluate(spec.base, value), evaluate(spec.new, value)
    return None if base is None or new is None else harmonic_mean(base, new)


def keys_of(spec: Spec) -> Iterator[Key]:
    """Every cell a spec reads."""
    if isinstance(spec, Key):
        yield spec
    elif isinstance(spec, Mean):
        for part in spec.parts:
            yield from keys_of(part)
    else:
        yield from keys_of(spec.base)
        yield from keys_of(spec.new)


@dataclass(frozen=True)
class Column:
    """A value column: its ``header``, the ``spec`` it shows, the ``group`` of columns it
    belongs to (a dataset's Base, New and H; empty for none) and a ``note`` explaining it,
    printed once per page."""

    header: str
    spec: Spec
    group: str = ""
    note: str = ""

    @property
    def name(self) -> str:
        """The header with its group, as one-line formats print it (``"ImageNet Base"``)."""
        return f"{self.group} {self.header}" if self.group else self.header


@dataclass(frozen=True)
class Layout:
    """One table: its value ``columns`` (a row per method comes with them), ``rank_by``, the
    index of the column whose value ranks the rows (highest first; None: by name), and a
    ``caption`` added to the table's heading (``"source ImageNet"``)."""

    columns: tuple[Column, ...]
    rank_by: int | None = None
    caption: str = ""

    def __post_init__(self) -> None:
        if self.rank_by is not None and not 0 <= self.rank_by < len(self.columns):
            raise ValueError(f"rank_by {self.rank_by} is not a column index")


def average_h_spec(bases: Iterable[Key], news: Iterable[Key], convention: str) -> Spec:
    """The average H over datasets of paired base and new cells, in ``convention``
    (:data:`MEAN_OF_H` or :data:`H_OF_MEANS`)."""
    bases, news = tuple(bases), tuple(news)
    if convention == MEAN_OF_H:
        return Mean(tuple(HarmonicOf(b, n) for b, n in zip(bases, news, strict=True)))
    if convention == H_OF_MEANS:
        return HarmonicOf(Mean(bases), Mean(news))
    raise ValueError(f"unknown average H {convention!r}; choose one of {', '.join(AVERAGE_H)}")


_H_LABELS = {MEAN_OF_H: "H (mean of H)", H_OF_MEANS: "H (of means)"}
_H_NOTES = {
    MEAN_OF_H: "Average H (mean of H) is the mean of the per-dataset H, as the ProGrad and "
    "GCSCoOp papers print it; H of the averaged base and new (CoCoOp, KgCoOp, MaPLe) is "
    "`leaderboard --average-h of-means`.",
    H_OF_MEANS: "Average H (of means) is H of the base and new accuracies averaged over the "
    "datasets, as the CoCoOp, KgCoOp and MaPLe papers print it; the default, the mean of "
    "the per-dataset H (ProGrad, GCSCoOp), is `leaderboard --average-h mean-of-h`.",
}


def average_h_column(
    bases: Iterable[Key], news: Iterable[Key], convention: str, group: str = "Average"
) -> Column:
    """The labelled column of an average H (its header and note name the convention)."""
    spec = average_h_spec(bases, news, convention)
    return Column(_H_LABELS[convention], spec, group, _H_NOTES[convention])


@dataclass(frozen=True)
class Scope:
    """What one table is built for: the cells present in one (protocol, backbone, weights,
    shots) of the results, any method, complete or not, and the display options.

    ``titles`` maps dataset names to display names; its order is the datasets' order in the
    tables (names it lacks come after, sorted). ``average_h`` is the convention of an
    average H (:data:`AVERAGE_H`)."""

    protocol: str
    keys: frozenset[Key]
    titles: Mapping[str, str] = field(default_factory=dict)
    average_h: str = MEAN_OF_H

    def title(self, dataset: str) -> str:
        """The display name of a dataset (its name where none is known)."""
        return self.titles.get(dataset, dataset)

    def order(self, names: Iterable[str]) -> list[str]:
        """Dataset names in table order: as in ``titles``, then the others sorted."""
        present = set(names)
        first = [name for name in self.titles if name in present]
        return first + sorted(present - set(first))

    def datasets(self, split: str) -> list[str]:
        """The datasets evaluated on their own ``split``, in table order."""
        return self.order(
            k.dataset for k in self.keys if k.eval_dataset == k.dataset and k.split == split
        )

    def sources(self) -> list[str]:
        """The datasets trained on, in table order."""
        return self.order(k.dataset for k in self.keys)

    def targets(self, source: str, split: str = "all") -> list[str]:
        """The datasets other than ``source`` evaluated with what was trained on it."""
        return self.order(
            k.eval_dataset
            for k in self.keys
            if k.dataset == source and k.eval_dataset != source and k.split == split
        )


def generic_layout(scope: Scope) -> Layout:
    """The table of a protocol that describes none: a column per (dataset trained on,
    dataset evaluated, split) present, a dataset evaluated on itself first; no average and
    no ranking."""

    def label(key: Key) -> str:
        text = scope.title(key.dataset)
        if key.eval_dataset != key.dataset:
            text += f" → {scope.title(key.eval_dataset)}"
        return text if key.split in ("all", "") else f"{text} ({key.split})"

    names = scope.order({name for key in scope.keys for name in key[:2]})
    keys = sorted(
        scope.keys,
        key=lambda k: (
            names.index(k.dataset),
            k.eval_dataset != k.dataset,
            names.index(k.eval_dataset),
            k.split,
        ),
    )
    return Layout(tuple(Column(label(k), k) for k in keys))
