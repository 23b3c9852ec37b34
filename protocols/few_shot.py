"""Few-shot: train on K shots of every class, test on the full test split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmark.datasets.sampling import few_shot
from benchmark.leaderboard.layout import Column, Key, Layout, Mean, Scope
from benchmark.protocol import Catalog, Classes, EvalSplit, Metric, Plan, TrainData


def full_training_data(dataset: str, shots: int, seed: int, catalog: Catalog) -> TrainData:
    """K shots per class of all classes of ``dataset``, with its names and template."""
    spec, splits = catalog.spec(dataset), catalog.splits(dataset)
    train, val = few_shot(splits.train, splits.val, shots, seed)
    classes = Classes(dataset, splits.classnames, spec.template)
    return TrainData(dataset, shots, seed, tuple(train), tuple(val), classes, spec.augmentation)


class FewShot:
    name = "few_shot"
    summary = "K shots of all classes (K = 1, 2, 4, 8, 16); accuracy on the full test split"
    default_shots = (1, 2, 4, 8, 16)
    leaderboard_order = 10
    leaderboard_plots = ("accuracy_vs_shots",)

    def training_datasets(self, selected: Sequence[str], catalog: Catalog) -> list[str]:
        return [name for name in selected if catalog.spec(name).role != "shift"]

    def plan(self, dataset: str, shots: int, seed: int, catalog: Catalog) -> Plan:
        train = full_training_data(dataset, shots, seed, catalog)
        test = catalog.splits(dataset).test
        return Plan(train, (EvalSplit("all", tuple(test), train.classes),))

    def derived(self, accuracy: Mapping[tuple[str, str], float]) -> list[Metric]:
        return []

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        """A column per dataset (its own test split), then their Average, which ranks."""
        keys = tuple(Key(d, d, "all") for d in scope.datasets("all"))
        columns = tuple(Column(scope.title(key.dataset), key) for key in keys)
        return [Layout((*columns, Column("Average", Mean(keys))), rank_by=len(columns))]
