"""Domain generalisation: the source-trained prompt evaluated on shifted versions of the
source (ImageNet-V2, -Sketch, -A, -R). Each shift is scored over its own classes only: A and
R have 200 of the 1000 classes, labelled by their index among those 200."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from vlprompt_protocols.cross_dataset import (
    evaluations,
    source_training_datasets,
    transfer_layouts,
)
from vlprompt_protocols.few_shot import full_training_data

from benchmark.leaderboard.layout import Layout, Scope
from benchmark.protocol import Catalog, Metric, Plan


class DomainGeneralization:
    name = "domain_generalization"
    summary = "train on the source dataset; evaluate on its domain-shifted versions"
    default_shots = (16,)
    leaderboard_order = 40

    def training_datasets(self, selected: Sequence[str], catalog: Catalog) -> list[str]:
        return source_training_datasets(selected, catalog)

    def plan(self, dataset: str, shots: int, seed: int, catalog: Catalog) -> Plan:
        train = full_training_data(dataset, shots, seed, catalog)
        return Plan(train, evaluations(dataset, "shift", catalog))

    def derived(self, accuracy: Mapping[tuple[str, str], float]) -> list[Metric]:
        return []

    def leaderboard_layouts(self, scope: Scope) -> list[Layout]:
        return transfer_layouts(scope)
