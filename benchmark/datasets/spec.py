"""What a dataset is to the suite: samples, splits, and the registered description."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("source", "target", "shift")


def template_problem(template: str) -> str | None:
    """What is wrong with a zero-shot template, or None: it must hold ``{}`` (the class
    name) exactly once and no other replacement field; ``{{`` and ``}}`` are literal braces."""
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        fields = [("", str(exc), None)]
    if fields != [("", "", None)]:
        return (
            f"template {template!r} must hold {{}} exactly once (the class name) and no other "
            "braces; write {{ and }} for literal braces"
        )
    return None


@dataclass(frozen=True)
class Augmentation:
    """The random augmentation of a dataset's training views.

    RandomResizedCrop with area scale in ``crop_scale`` (aspect ratio 3/4 to 4/3), then a
    horizontal flip with probability 0.5 when ``flip``. The default is the reference code's
    (scale 0.08 to 1, flip). A dataset whose labels a flip would change (left and right) or
    whose images are too small for an 8% crop to keep the object declares its own.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")

    @property
    def id(self) -> str:
        """Names the augmentation in feature-cache paths."""
        low, high = self.crop_scale
        return f"rrc{low:g}-{high:g}" + ("-flip" if self.flip else "")


REFERENCE_AUGMENTATION = Augmentation()


@dataclass(frozen=True)
class Sample:
    """One image: absolute path, integer label, and the class name of that label."""

    path: str
    label: int
    classname: str


@dataclass(frozen=True)
class Splits:
    """The train/val/test splits of a dataset; ``classnames[label]`` names each label.

    ``fingerprint`` is a digest of what the reader read (a split file's bytes, an
    ImageFolder's image list with sizes and modification times), or ``""`` when the reader
    gives none; :func:`benchmark.datasets.fingerprint.dataset_fingerprint` completes it.
    """

    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    classnames: tuple[str, ...]
    fingerprint: str = field(default="", compare=False)


@dataclass(frozen=True)
class DataContext:
    """Where data lives: the user's data root (may be None) and the suite's cache folder."""

    data_root: Path | None
    cache_dir: Path


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    ``world`` groups datasets that belong together in the protocols (``"standard"``: the
    papers' datasets; ``"mini"``: the offline mini world). ``role`` is ``source`` (trained on
    for cross-dataset and domain generalisation), ``target`` (cross-dataset evaluation) or
    ``shift`` (a domain-shifted version of ``source``, for domain generalisation).
    ``template`` is the hand-crafted zero-shot prompt with ``{}`` for the class name.
    ``load`` reads the splits; it raises :class:`benchmark.errors.DataError` with the
    expected path and layout when data is missing. ``augmentation`` makes the training views
    (the reference code's unless the dataset needs another).
    """

    name: str
    world: str
    role: str
    template: str
    load: Callable[[DataContext], Splits] = field(compare=False)
    folder: str = ""
    title: str = ""
    source: str | None = None
    augmentation: Augmentation = REFERENCE_AUGMENTATION

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"dataset {self.name!r}: role must be one of {ROLES}")
        if self.role == "shift" and not self.source:
            raise ValueError(f"dataset {self.name!r}: a shift dataset names its source")
        problem = template_problem(self.template)
        if problem:
            raise ValueError(f"dataset {self.name!r}: {problem}")

    @property
    def display_name(self) -> str:
        return self.title or self.name
