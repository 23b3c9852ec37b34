"""Every built-in method honours the Method/Classifier contract on the tiny model.

Also: presets are valid configs, and runs that differ only by seed train together exactly as
they would alone, for every prompt-learning method.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import torch
from vlprompt_methods import BUILTIN_METHODS

from benchmark.datasets.sampling import few_shot
from benchmark.datasets.splitfile import read_split_file
from benchmark.method import Setting
from benchmark.protocol import Classes, TrainData
from tests.conftest import TOY_DATASET

SPECS = {spec.name: spec for spec in BUILTIN_METHODS}
METHODS = list(SPECS)
UNSEEN = Classes("toy_target", ("black square", "purple circle", "orange star"), "a {}.")
# tiny configs: a couple of epochs, small batches
TINY = {
    "coop": {"n_ctx": 4, "epochs": 2, "batch_size": 4},
    "kgcoop": {"epochs": 2, "batch_size": 4},
    "prograd": {"n_ctx": 6, "epochs": 2, "batch_size": 4},
    "scoop": {"epochs": 2, "batch_size": 4},
    "gcscoop": {"epochs": 2, "batch_size": 4},
    "cocoop": {"epochs": 1, "batch_size": 2},
    "linear_probe": {"max_iter": 50, "bisection_steps": 2},
}
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


def module(name: str):
    return importlib.import_module(f"vlprompt_methods.{name}")


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
    return module(name).METHOD.Config(**TINY.get(name, {}))


@pytest.mark.parametrize("name", METHODS)
def test_presets_are_configs(name):
    method = module(name).METHOD
    assert method.name == name
    for protocol in ("few_shot", "base_to_new", "cross_dataset", "domain_generalization"):
        for preset in ("reference", "quick"):
            for dataset in ("imagenet", "dtd", "oxford_pets", "oxford_flowers", "toy"):
                setting = Setting(protocol, dataset, 16, "ViT-B/16", preset)
                config = method.config(setting)
                assert isinstance(config, method.Config)
                for variant in SPECS[name].variants.values():
                    dataclasses.replace(config, **variant.changes)


@pytest.mark.parametrize("name", METHODS)
def test_contract(name, toy_root, tiny_engine):
    method = module(name).METHOD
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


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_batched_seeds_equal_separate_runs(name, toy_root, tiny_engine):
    method = module(name).METHOD
    config = tiny_config(name)
    runs = toy_runs(toy_root, [1, 2, 3])
    together = method.train(runs, config, tiny_engine)
    for run, batched in zip(runs, together, strict=True):
        (alone,) = method.train([run], config, tiny_engine)
        torch.testing.assert_close(batched.ctx, alone.ctx, rtol=1e-5, atol=1e-6)
        for key, value in alone.diagnostics.items():
            assert batched.diagnostics[key] == pytest.approx(value, abs=1e-4)
    assert not torch.allclose(together[0].ctx, together[1].ctx)


def setting(protocol="few_shot", dataset="toy", shots=16, preset="reference") -> Setting:
    return Setting(protocol, dataset, shots, "ViT-B/16", preset)


def test_reference_presets():
    gcscoop = module("gcscoop").METHOD
    dtd = gcscoop.config(setting("base_to_new", "dtd"))
    assert (dtd.rho, dtd.beta1, dtd.beta2, dtd.epochs, dtd.batch_size) == (0.3, 0.2, 0.8, 200, 128)
    pets = gcscoop.config(setting("base_to_new", "oxford_pets"))
    assert (pets.rho, pets.beta1, pets.beta2) == (0.1, 0.0, 0.3)
    assert gcscoop.config(setting(dataset="toy", preset="quick")).epochs == 10
    assert module("scoop").METHOD.config(setting(dataset="eurosat")).rho == 0.2
    prograd = module("prograd").METHOD
    flowers = prograd.config(setting(dataset="oxford_flowers"))
    assert (flowers.lambda_, flowers.n_ctx, flowers.epochs, flowers.batch_size) == (
        0.8,
        16,
        200,
        32,
    )
    assert flowers.ctx_init == "a type of flower, a photo of a"
    assert prograd.config(setting(dataset="oxford_flowers", shots=4)).lambda_ == 1.0
    assert prograd.config(setting(dataset="imagenet", shots=16)).epochs == 50
    assert prograd.config(setting("base_to_new", "dtd", shots=4)).epochs == 100
    kgcoop = module("kgcoop").METHOD
    kg = kgcoop.config(setting())
    assert (kg.weight, kg.epochs, kg.batch_size, kg.ctx_init) == (8.0, 100, 128, "a photo of a")
    cocoop = module("cocoop").METHOD.config(setting("base_to_new"))
    assert (cocoop.epochs, cocoop.batch_size, cocoop.ctx_init) == (10, 1, "a photo of a")
