"""Synthetic data for the performance tools: nothing is downloaded.

- :func:`classnames`: K distinct class names that tokenise like real ones;
- :func:`write_jpeg`: a photo-like JPEG file (colour cells and pixel noise, so that it
  decodes at about the cost of a photograph of its size, unlike pure noise);
- :func:`synthetic_runs`: training runs whose image features are held in memory (random),
  for timing training steps without encoding images;
- :class:`SyntheticDataset`, :func:`write_world` and :class:`SyntheticDatasets`: datasets in
  CoOp's layout (``<name>/images/...`` and ``split_zhou_<name>.json``) written to a folder,
  and an inline plugin that registers them, so that the runner reads them like real data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.datasets.spec import DataContext, DatasetSpec, Sample, Splits
from benchmark.datasets.splitfile import read_split_file
from benchmark.engine import Engine
from benchmark.hookspecs import hookimpl
from benchmark.protocol import Classes, TrainData
from benchmark.views import TEST_VIEW

#: The world of the synthetic datasets (protocols pair datasets of one world).
WORLD = "synthetic"
TEMPLATE = "a photo of a {}."
SPLITS = ("train", "val", "test")


def classnames(k: int, first: int = 0) -> tuple[str, ...]:
    """``k`` distinct two-word class names ("red cat", ...), numbered beyond 500, starting
    at the ``first``-th."""
    colours = "red green blue yellow black white purple orange pink brown grey golden silver"
    colours += " striped spotted wooden glass metal paper plastic"
    things = "cat dog car bird house tree flower boat chair lamp truck horse apple clock guitar"
    things += " bottle shoe kite bridge train robot castle piano rocket violin"
    names = [f"{c} {t}" for t in things.split() for c in colours.split()]
    return tuple(
        names[i % len(names)] + (f" {i // len(names)}" if i >= len(names) else "")
        for i in range(first, first + k)
    )


def write_jpeg(path: Path, width: int, height: int, rng: np.random.Generator) -> None:
    """A photo-like RGB JPEG (quality 90): random colours in 4-pixel cells, upsampled
    bicubically, plus pixel noise; at 500x375 about 100 KiB, as ImageNet's JPEGs (a JPEG of
    pure noise, 170 KiB, decodes about half as fast)."""
    coarse = rng.integers(0, 256, size=(max(2, height // 4), max(2, width // 4), 3))
    smooth = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(smooth, dtype=np.int16) + rng.integers(-12, 13, size=(height, width, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def synthetic_runs(
    engine: Engine,
    names: tuple[str, ...],
    seeds: int,
    samples_per_run: int,
    folder: Path,
    views: int,
) -> list[TrainData]:
    """``seeds`` runs of ``samples_per_run`` samples each (random labels), whose features in
    the test view and training views ``0 .. views - 1`` are random and held in memory (empty
    files stand for the images)."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    runs = []
    classes = Classes("bench", names, TEMPLATE)
    for seed in range(1, seeds + 1):
        labels = torch.randint(0, len(names), (samples_per_run,), generator=generator).tolist()
        samples = []
        for i, label in enumerate(labels):
            path = folder / f"s{seed}-{i}.jpg"
            path.touch()
            samples.append(Sample(str(path), label, names[label]))
        runs.append(TrainData("bench", 16, seed, tuple(samples), (), classes))
    for run in runs:  # each run reads the training views of its own seed
        for view in (TEST_VIEW, *range(views)):
            features = torch.randn(len(run.samples), engine.backbone.embed_dim, generator=generator)
            engine.features.hold(run.samples, view, features, seed=run.seed)
    return runs


@dataclass(frozen=True)
class SyntheticDataset:
    """A dataset of ``classes`` classes with ``per_class`` (train, val, test) images each.

    Its class names are ``classnames(classes, first_class)``; a ``shift`` dataset names its
    ``source`` and takes the source's first ``classes`` class names (a subset, as ImageNet-A
    and -R are of ImageNet).
    """

    name: str
    role: str
    classes: int
    per_class: tuple[int, int, int]
    first_class: int = 0
    source: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return classnames(self.classes, self.first_class)


def write_world(root: Path, datasets: Sequence[SyntheticDataset], image_size: int) -> None:
    """Write each dataset in CoOp's layout under ``root``: square JPEGs of ``image_size``
    pixels and the split file."""
    rng = np.random.default_rng(0)
    for dataset in datasets:
        base = root / dataset.name
        split: dict[str, list] = {name: [] for name in SPLITS}
        for label, name in enumerate(dataset.names):
            folder = name.replace(" ", "_")
            (base / "images" / folder).mkdir(parents=True, exist_ok=True)
            for part, count in zip(SPLITS, dataset.per_class, strict=True):
                for i in range(count):
                    relative = f"{folder}/{part}_{i}.jpg"
                    write_jpeg(base / "images" / relative, image_size, image_size, rng)
                    split[part].append([relative, label, folder])
        (base / f"split_zhou_{dataset.name}.json").write_text(json.dumps(split))


class SyntheticDatasets:
    """An inline plugin registering datasets written by :func:`write_world` under ``root``."""

    def __init__(self, root: Path, datasets: Sequence[SyntheticDataset]) -> None:
        self.root = Path(root)
        self.datasets = tuple(datasets)

    def _loader(self, name: str):
        def load(context: DataContext) -> Splits:
            base = self.root / name
            return read_split_file(base / f"split_zhou_{name}.json", base / "images")

        return load

    @hookimpl
    def register_datasets(self, register) -> None:
        for dataset in self.datasets:
            register(
                DatasetSpec(
                    dataset.name,
                    WORLD,
                    dataset.role,
                    TEMPLATE,
                    self._loader(dataset.name),
                    folder=dataset.name,
                    source=dataset.source,
                )
            )
