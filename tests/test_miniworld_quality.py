"""The mini world's quality bar, measured end to end: the shipped tiny CLIP on the generated
datasets, through the runner, with the quick preset the default benchmark uses.

- zero-shot top-1 on every test split is at least 3x chance and at most 85%;
- CoOp with 16 shots beats zero-shot on the source by at least 5 points and on most targets.
"""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.miniworld import generate, plugin
from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME


@pytest.fixture(scope="module")
def accuracy(tmp_path_factory) -> pd.DataFrame:
    from benchmark.backbone import BackboneSpec
    from benchmark.registry import build_registry
    from benchmark.request import RunRequest
    from benchmark.runner import Runner

    tmp = tmp_path_factory.mktemp("quality")
    request = RunRequest(
        methods=["zeroshot", "coop"],
        protocols=["few_shot", "domain_generalization"],
        datasets=list(plugin.DATASETS),
        seeds=[1],
        backbone=BackboneSpec(MODEL_NAME, None, CHECKPOINT),
        results=tmp / "results",
        cache_dir=tmp / "cache",
        shots=[16],
        preset="quick",
    )
    summary = Runner(build_registry(autoload=False), request, progress=lambda m: None).run()
    assert summary.failed == []
    table = pd.read_parquet(tmp / "results" / "runs")
    table = table[(table.metric == "accuracy") & (table.split == "all")]
    return table.groupby(["method", "eval_dataset"]).value.first().unstack("method")


def test_zero_shot_is_well_above_chance_and_below_the_ceiling(accuracy):
    assert set(accuracy.index) == set(plugin.DATASETS)
    for name, value in accuracy.zeroshot.items():
        chance = 100 / len(generate.spec_of(name).classes)
        assert 3 * chance <= value <= 85, (name, value, chance)


def test_coop_beats_zero_shot_on_the_source_and_on_most_targets(accuracy):
    gain = accuracy.coop - accuracy.zeroshot
    assert gain[plugin.SOURCE] >= 5, gain.to_dict()
    targets = [n for n, (role, *_) in plugin.DATASETS.items() if role == "target"]
    assert (gain[targets] > 0).sum() > len(targets) / 2, gain.to_dict()
