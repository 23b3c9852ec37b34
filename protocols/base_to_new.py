"""Base-to-new generalisation (CoCoOp's protocol).

Classes are the sorted labels of the train split; base = the first ceil(n/2), new = the
rest, each relabelled from 0. K shots are drawn from ALL classes first (as the reference
does), then the base classes are kept for training. Base test images are scored against base
names, new test images against new names; H = 2BN / (B + N).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from benchmark.datasets.sampling import few_shot
from benchmark.datasets.spec import Sample
from benchmark.leaderboard.layout import (
    Column,
    HarmonicOf,
    Key,
    Layout,
    Mean,
    Scope,
    average_h_column,
    harmonic_mean,
)
from benchmark.protocol import Catalog, Classes, EvalSplit, Metric, Plan, TrainData


def split_classes(labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """(base, new) labels: the first ceil(n/2) sorted labels, and the rest."""
    ordered = sorted(set(labels))
    cut = math.ceil(len(ordered) / 2)
    return ordered[:cut], ordered[cut:]


def subset(samples: Sequence[Sample], labels: Sequence[int]) -> tuple[Sample, ...]:
    """Samples of ``labels``, relabelled 0..len(labels)-1 in the order given."""
    relabel = {old: new for new, old in enumerate(labels)}
    return tuple(
        Sample(s.path, relabel[s.label], s.classname) for s in samples if s.label in relabel
    )


class BaseToNew:
    name = "base_to_new"
    summary = "train on K shots of the base half of the classes; test on base and on new"
    default_shots = (16,)
    leaderboard_order = 20
    leaderboard_plots = ("base_vs_new",)

    def training_datasets(self, selected: Sequence[str], catalog: Catalog) -> list[str]:
        return [name for name in selected if catalog.spec(name).role != "shift"]

    def plan(self, dataset: str, shots: int, seed: int, catalog: Catalog) -> Plan:
        spec, splits = catalog.spec(dataset), catalog.splits(dataset)
        base, new = split_classes([s.label for s in splits.train])
        train, val = few_shot(splits.train, splits.val, shots, seed)

        def classes(labels: list[int]) -> Classes:
            return Classes(dataset, tuple(splits.classnames[i] for i in labels), spec.template)

        base_classes, new_classes = classes(base), classes(new)
        data = TrainData(
            dataset,
            shots,
            seed,
            subset(train, base),
            subset(val, base),
            base_classes,
            spec.augmentation,
        )
        evals = (
            EvalSplit("base", subset(splits.test, base), base_classes),
            EvalSplit("new", subset(splits.test, new), new_classes),
        )
        return Plan(data, evals)

    def derived(self, accuracy: Mapping[tuple[str, str], float]) -> list[Metric]:
        metrics = []
        for dataset in {d for d, _ in accuracy}:
            if (dataset, "base") in accuracy and (dataset, "new") in accuracy:
                h = harmonic_mean(accuracy[dataset, "base"], accuracy[dataset, "new"])
                metrics.append(Metric(dataset, "hm", "accuracy", h))
        return metrics

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        """The papers' wide table: a row per method; Base, New and H averaged over the
        datasets first (the average H ranks), then Base, New and H of each dataset."""
        names = scope.datasets("base")
        bases = tuple(Key(d, d, "base") for d in names)
        news = tuple(Key(d, d, "new") for d in names)
        columns = [
            Column("Base", Mean(bases), "Average"),
            Column("New", Mean(news), "Average"),
            average_h_column(bases, news, scope.average_h),
        ]
        for base, new in zip(bases, news, strict=True):
            group = scope.title(base.dataset)
            columns += [
                Column("Base", base, group),
                Column("New", new, group),
                Column("H", HarmonicOf(base, new), group),
            ]
        return [Layout(tuple(columns), rank_by=2)]
