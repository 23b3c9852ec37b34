"""Cross-dataset transfer: train on the source (ImageNet: all classes, 16 shots), evaluate
the same prompt on the test split of every target dataset with the target's class names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vlprompt_protocols.few_shot import full_training_data

from benchmark.leaderboard.layout import Column, Key, Layout, Mean, Scope
from benchmark.protocol import Catalog, Classes, EvalSplit, Metric, Plan


def source_training_datasets(selected: Sequence[str], catalog: Catalog) -> list[str]:
    """The sources of the selected datasets' worlds (shift datasets name their source)."""
    sources: list[str] = []
    for name in selected:
        spec = catalog.spec(name)
        source = name if spec.role == "source" else spec.source
        if source is None:
            source = next(
                (
                    n
                    for n in catalog.names()
                    if catalog.spec(n).role == "source" and catalog.spec(n).world == spec.world
                ),
                None,
            )
        if source is not None and source not in sources:
            sources.append(source)
    return sources


def evaluations(source: str, role: str, catalog: Catalog) -> tuple[EvalSplit, ...]:
    """The source's own test split, then the test split of every selected ``role`` dataset."""
    world = catalog.spec(source).world
    evals = []
    for name in [source, *(n for n in catalog.names() if n != source)]:
        spec = catalog.spec(name)
        if name != source and (spec.role != role or spec.world != world):
            continue
        if role == "shift" and name != source and spec.source != source:
            continue
        splits = catalog.splits(name)
        evals.append(EvalSplit("all", splits.test, Classes(name, splits.classnames, spec.template)))
    return tuple(evals)


def transfer_layouts(scope: Scope) -> list[Layout]:
    """A table per source dataset: the source (its own test split), each dataset it is
    evaluated on, then their Average (the source excluded), which ranks."""
    found = []
    for source in scope.sources():
        keys = tuple(Key(source, target, "all") for target in scope.targets(source))
        columns = (
            Column(f"{scope.title(source)} (source)", Key(source, source, "all")),
            *(Column(scope.title(key.eval_dataset), key) for key in keys),
            Column("Average", Mean(keys)),
        )
        caption = f"source {scope.title(source)}"
        found.append(Layout(columns, rank_by=len(columns) - 1, caption=caption))
    return found


class CrossDataset:
    name = "cross_dataset"
    summary = "train on the source dataset; evaluate on every target dataset's own classes"
    default_shots = (16,)
    leaderboard_order = 30

    def training_datasets(self, selected: Sequence[str], catalog: Catalog) -> list[str]:
        return source_training_datasets(selected, catalog)

    def plan(self, dataset: str, shots: int, seed: int, catalog: Catalog) -> Plan:
        train = full_training_data(dataset, shots, seed, catalog)
        return Plan(train, evaluations(dataset, "target", catalog))

    def derived(self, accuracy: Mapping[tuple[str, str], float]) -> list[Metric]:
        return []

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        return transfer_layouts(scope)
