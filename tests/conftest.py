"""Shared fixtures: a tiny random-initialised open_clip model and a generated CoOp dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.hookspecs import hookimpl

FIXTURES = Path(__file__).parent / "fixtures"
TINY_MODEL = "vlprompt-test-tiny"
TOY_CLASSES = ("red square", "green circle", "blue triangle", "yellow cross", "white ring")
TOY_DATASET = "toy_shapes"


def register_tiny_model() -> None:
    import open_clip

    if TINY_MODEL not in open_clip.list_models():
        open_clip.add_model_config(FIXTURES / f"{TINY_MODEL}.json")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Random-initialised weights of the tiny model, saved as safetensors."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    register_tiny_model()
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL, pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def write_coop_dataset(
    root: Path, folder: str, classes: tuple[str, ...], per_split=(6, 2, 4), seed: int = 0
) -> Path:
    """A CoOp-layout dataset of coloured shapes: images/ plus split_zhou_<folder>.json."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / folder
    images = base / "images"
    split = {}
    for name, count in zip(("train", "val", "test"), per_split, strict=True):
        entries = []
        for label, classname in enumerate(classes):
            directory = images / classname.replace(" ", "_")
            directory.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 60, size=(40, 40, 3), dtype=np.uint8)
                pixels[8:32, 8:32, label % 3] = 200 + 10 * (label // 3)
                relative = f"{classname.replace(' ', '_')}/{name}_{i}.png"
                Image.fromarray(pixels).save(images / relative)
                entries.append([relative, label, classname.replace(" ", "_")])
        split[name] = entries
    (base / f"split_zhou_{folder}.json").write_text(json.dumps(split))
    return base


def write_imagefolder(
    root: Path, classes: tuple[str, ...], per_split=(2, 1, 2), seed: int = 0
) -> Path:
    """An ImageFolder tree of coloured shapes: train/, val/ and test/, one folder per class.

    A split with count 0 is left out (no folder).
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val", "test"), per_split, strict=True):
        for label, classname in enumerate(classes):
            directory = root / split / classname.replace(" ", "_")
            for i in range(count):
                directory.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 60, size=(32, 32, 3), dtype=np.uint8)
                pixels[6:26, 6:26, label % 3] = 200 + 10 * (label // 3)
                Image.fromarray(pixels).save(directory / f"{split}_{i}.png")
    return root


class CoopUnderAnotherName:
    """CoOp's settings and training under another name: a stand-in third-party method that
    tests change one part of."""

    version = "1"

    def __init__(self, name: str) -> None:
        from benchmark.registry import build_registry

        self.name = name
        self._coop = build_registry(autoload=False).methods.get("coop").load()
        self.Config = self._coop.Config

    def config(self, setting):
        return self._coop.config(setting)

    def training_views(self, config):
        return self._coop.training_views(config)

    def train(self, runs, config, engine):
        return self._coop.train(runs, config, engine)


class ToyDatasets:
    """An inline plugin registering generated datasets (source, target and shift)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @hookimpl
    def register_datasets(self, register) -> None:
        from benchmark.datasets.spec import DatasetSpec
        from benchmark.datasets.splitfile import read_split_file

        def loader(folder):
            def load(ctx):
                base = self.root / folder
                return read_split_file(base / f"split_zhou_{folder}.json", base / "images")

            return load

        register(
            DatasetSpec(
                TOY_DATASET,
                "toy",
                "source",
                "a photo of a {}.",
                loader(TOY_DATASET),
                folder=TOY_DATASET,
            )
        )
        register(
            DatasetSpec(
                "toy_target",
                "toy",
                "target",
                "a drawing of a {}.",
                loader("toy_target"),
                folder="toy_target",
            )
        )
        register(
            DatasetSpec(
                "toy_shift",
                "toy",
                "shift",
                "a photo of a {}.",
                loader("toy_shift"),
                folder="toy_shift",
                source=TOY_DATASET,
            )
        )


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_coop_dataset(root, TOY_DATASET, TOY_CLASSES)
    write_coop_dataset(root, "toy_target", ("black square", "purple circle", "orange star"), seed=1)
    write_coop_dataset(root, "toy_shift", TOY_CLASSES[:3], per_split=(0, 0, 4), seed=2)
    return root


@pytest.fixture
def toy_plugin(toy_root) -> ToyDatasets:
    return ToyDatasets(toy_root)


@pytest.fixture
def toy_registry(toy_plugin):
    from benchmark.registry import build_registry

    return build_registry(autoload=False, extra_plugins=[toy_plugin])


@pytest.fixture
def tiny_backbone(tiny_checkpoint):
    from benchmark.backbone import BackboneSpec

    register_tiny_model()
    return BackboneSpec(TINY_MODEL, None, tiny_checkpoint)


@pytest.fixture
def tiny_engine(tiny_backbone, tmp_path):
    from benchmark.backbone import Backbone
    from benchmark.engine import Engine
    from benchmark.features import FeatureCache

    backbone = Backbone(tiny_backbone)
    return Engine(backbone, FeatureCache(tmp_path / "cache", backbone))


def toy_request(backbone, tmp_path, **changes):
    from benchmark.request import RunRequest

    values = dict(
        methods=["zeroshot", "coop"],
        protocols=["few_shot"],
        datasets=[TOY_DATASET],
        seeds=[1, 2],
        backbone=backbone,
        results=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        shots=[2],
        preset="quick",
    )
    values.update(changes)
    return RunRequest(**values)
