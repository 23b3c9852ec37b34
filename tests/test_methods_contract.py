"""Every registered method and protocol honours its contract: the built-in ones and any
third-party plugin installed (the example plugin in CI), as timm's tests iterate its models.

Methods: their settings give valid configs everywhere, variants apply, a tiny training run
gives classifiers that score any class list (or say they cannot). Protocols: a cell's plan
holds training data and evaluation splits with consistent labels. Also: runs that differ only
by seed train together exactly as they would alone, for every prompt-learning method.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from benchmark.catalog import DatasetCatalog
from benchmark.datasets.sampling import few_shot
from benchmark.datasets.spec import DataContext
from benchmark.datasets.splitfile import read_split_file
from benchmark.method import Setting
from benchmark.protocol import Classes, Plan, TrainData
from benchmark.registry import build_registry
from tests.conftest import TOY_DATASET

REGISTRY = build_registry()  # third-party plugins included
METHODS = REGISTRY.methods.names()
PROTOCOLS = REGISTRY.protocols.names()
UNSEEN = Classes("toy_target", ("black square", "purple circle", "orange star"), "a {}.")
#: A tiny run, for the fields a config has: a couple of epochs, small batches.
TINY = {"epochs": 2, "batch_size": 4, "max_iter": 50, "bisection_steps": 2}
REQUIRED_DIAGNOSTICS = {
    "prograd": ("prograd_projected_fraction", "prograd_mean_angle"),
    "scoop": ("sam_mean_cosine",),
    "gcscoop": (
        "sam_mean_cosine",
        "gcscoop_branch_ce",
        "gcscoop_branch_sam",
        "gcscoop_branch_bisector",
    ),
}
PROMPT_METHODS = ("kgcoop", "prograd", "scoop", "gcscoop")


def toy_splits(toy_root: Path):
    base = toy_root / TOY_DATASET
    return read_split_file(base / f"split_zhou_{TOY_DATASET}.json", base / "images")


def toy_runs(toy_root: Path, seeds, shots: int = 2) -> list[TrainData]:
    """TrainData built straight from the toy split file (no registry needed)."""
    splits = toy_splits(toy_root)
    classes = Classes(TOY_DATASET, splits.classnames, "a photo of a {}.")
    runs = []
    for seed in seeds:
        train, val = few_shot(splits.train, splits.val, shots, seed)
        runs.append(TrainData(TOY_DATASET, shots, seed, tuple(train), tuple(val), classes))
    return runs


def tiny_config(name: str):
    """The method's quick config for the toy dataset, made tiny (:data:`TINY`)."""
    method = REGISTRY.methods.get(name).load()
    config = method.config(Setting("few_shot", TOY_DATASET, 2, "tiny", "quick"))
    fields = {f.name for f in dataclasses.fields(config)}
    return dataclasses.replace(config, **{k: v for k, v in TINY.items() if k in fields})


@pytest.mark.parametrize("name", METHODS)
def test_settings_give_configs_and_variants_apply(name):
    spec = REGISTRY.methods.get(name)
    method = spec.load()
    assert method.name == name and isinstance(method.version, str) and method.version
    assert dataclasses.is_dataclass(method.Config) and method.Config.__dataclass_params__.frozen
    for protocol in ("few_shot", "base_to_new", "cross_dataset", "domain_generalization"):
        for preset in ("reference", "quick"):
            for dataset in ("imagenet", "dtd", "oxford_pets", "oxford_flowers", "toy"):
                setting = Setting(protocol, dataset, 16, "ViT-B/16", preset)
                config = method.config(setting)
                assert isinstance(config, method.Config)
                assert all(isinstance(v, int) for v in method.training_views(config))
                for variant in spec.variants.values():
                    dataclasses.replace(config, **variant.changes)


@pytest.mark.parametrize("name", METHODS)
def test_contract(name, toy_root, tiny_engine):
    method = REGISTRY.methods.get(name).load()
    runs = toy_runs(toy_root, [1, 2])
    classifiers = method.train(runs, tiny_config(name), tiny_engine)
    assert len(classifiers) == len(runs)
    test = toy_splits(toy_root).test
    features = tiny_engine.features.features(test)
    n_classes = len(runs[0].classes.names)
    for classifier in classifiers:
        scores = classifier.scores(features, runs[0].classes)
        assert scores.shape == (len(test), n_classes)
        assert torch.isfinite(scores).all()
        unseen = classifier.scores(features, UNSEEN)
        if name == "linear_probe":
            assert unseen is None
        else:
            assert unseen.shape == (len(test), len(UNSEEN.names))
        assert all(isinstance(v, float) for v in classifier.diagnostics.values())
        for key in REQUIRED_DIAGNOSTICS.get(name, ()):
            assert key in classifier.diagnostics
    if name == "gcscoop":
        shares = [classifiers[0].diagnostics[k] for k in REQUIRED_DIAGNOSTICS[name][1:]]
        assert sum(shares) == pytest.approx(1.0)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_contract(name, toy_plugin):
    registry = build_registry(extra_plugins=[toy_plugin])
    protocol = registry.protocols.get(name)
    assert protocol.name == name and protocol.summary and protocol.default_shots
    selected = [n for n in registry.datasets if registry.datasets.get(n).world == "toy"]
    catalog = DatasetCatalog(registry.datasets, DataContext(None, Path()), selected)
    trained = protocol.training_datasets(selected, catalog)
    assert trained and set(trained) <= set(selected)
    for dataset in trained:
        plan = protocol.plan(dataset, 2, 1, catalog)
        assert isinstance(plan, Plan) and plan.evals
        train = plan.train
        assert (train.dataset, train.shots, train.seed) == (dataset, 2, 1)
        assert all(0 <= s.label < len(train.classes.names) for s in train.samples)
        for split in plan.evals:
            assert split.samples
            assert all(0 <= s.label < len(split.classes.names) for s in split.samples)
        accuracy = {(s.eval_dataset, s.split): 50.0 for s in plan.evals}
        assert all(0 <= m.value <= 100 for m in protocol.derived(accuracy))


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_batched_seeds_equal_separate_runs(name, toy_root, tiny_engine):
    method = REGISTRY.methods.get(name).load()
    config = tiny_config(name)
    if name == "prograd":
        # zeros ahead of the phrase: the student starts apart from its teacher. Started equal,
        # the KL gradient is float rounding, whose direction no two matmul shapes share.
        config = dataclasses.replace(config, n_ctx=6)
    runs = toy_runs(toy_root, [1, 2, 3])
    together = method.train(runs, config, tiny_engine)
    for run, batched in zip(runs, together, strict=True):
        (alone,) = method.train([run], config, tiny_engine)
        torch.testing.assert_close(batched.ctx, alone.ctx, rtol=1e-5, atol=1e-6)
        for key, value in alone.diagnostics.items():
            assert batched.diagnostics[key] == pytest.approx(value, abs=1e-4)
    assert not torch.allclose(together[0].ctx, together[1].ctx)
