"""Users' own datasets: an ImageFolder tree or a CoOp-format split file (world ``"user"``).

ImageFolder layout::

    PATH/train/<class>/*.jpg     (optional: without it the dataset is evaluation-only)
    PATH/val/<class>/*.jpg       (optional: without it val is empty)
    PATH/test/<class>/*.jpg      (required)

Class names are the sorted union of the class folder names of all splits, ``_`` read as a
space; the label of a class is its index in that sorted list. Only files with an image
suffix are read; hidden files and folders are skipped.

A user dataset's fingerprint (part of its runs' identity) covers its images: their paths,
sizes and modification times, and the split file's bytes for a split-file dataset.

On the command line (``run --dataset``) a dataset is given as ``NAME=PATH`` (an ImageFolder
directory), ``NAME=SPLIT.json`` (a split file whose image paths are relative to the JSON's
folder) or ``NAME=SPLIT.json:IMAGEDIR`` (image paths relative to ``IMAGEDIR``), each
optionally followed by ``:TEMPLATE``, the zero-shot prompt with ``{}`` for the class name;
see :func:`parse_dataset_option`. :class:`UserDatasets` registers them as a plugin.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

from benchmark.datasets.fingerprint import image_list_fingerprint
from benchmark.datasets.spec import DataContext, DatasetSpec, Sample, Splits, template_problem
from benchmark.datasets.splitfile import read_split_file
from benchmark.errors import DataError, UserError, unknown_name
from benchmark.hookspecs import hookimpl

WORLD = "user"
DEFAULT_TEMPLATE = "a photo of a {}."
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
SPLIT_DIRS = ("train", "val", "test")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
IMAGEFOLDER_LAYOUT = "train/<class>/*.jpg, test/<class>/*.jpg and optionally val/<class>/*.jpg"


def _class_dirs(split_dir: Path) -> list[str]:
    with os.scandir(split_dir) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _images(directory: str) -> list[str]:
    with os.scandir(directory) as it:
        return sorted(
            e.name
            for e in it
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
            and e.is_file()
        )


def read_imagefolder(path: Path) -> Splits:
    """Read an ImageFolder tree (``train/``, ``test/``, optional ``val/``) into splits."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"ImageFolder dataset not found: {path} (expected {IMAGEFOLDER_LAYOUT})")
    if not (path / "test").is_dir():
        raise DataError(f"{path}: no test/ folder (expected {IMAGEFOLDER_LAYOUT})")
    present = [s for s in SPLIT_DIRS if (path / s).is_dir()]
    folders = {s: _class_dirs(path / s) for s in present}
    classes = sorted({c for names in folders.values() for c in names})
    if not classes:
        raise DataError(f"{path}: no class folders in {', '.join(present)} ({IMAGEFOLDER_LAYOUT})")
    names = tuple(c.replace("_", " ") for c in classes)
    if len(set(names)) != len(names):
        raise DataError(f"{path}: two class folders give the same name once '_' reads as ' '")
    label_of = {c: i for i, c in enumerate(classes)}
    splits: dict[str, tuple[Sample, ...]] = {}
    for split in SPLIT_DIRS:
        samples: list[Sample] = []
        for folder in folders.get(split, []):
            directory = os.path.join(path, split, folder)
            label = label_of[folder]
            samples.extend(
                Sample(os.path.join(directory, f), label, names[label]) for f in _images(directory)
            )
        splits[split] = tuple(samples)
    if not splits["test"]:
        raise DataError(f"{path}/test: no images (suffixes {', '.join(sorted(IMAGE_SUFFIXES))})")
    every = (s.path for split in SPLIT_DIRS for s in splits[split])
    return Splits(
        splits["train"],
        splits["val"],
        splits["test"],
        classnames=names,
        fingerprint=image_list_fingerprint(str(path), every),
    )


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise DataError(
            f"dataset name {name!r}: use letters, digits, '_', '.' and '-', starting with a "
            "letter or digit"
        )


def _user_spec(
    name: str,
    load: Callable[[DataContext], Splits],
    folder: Path,
    template: str,
    role: str,
    source: str | None,
) -> DatasetSpec:
    """The spec of a user dataset read by ``load``, its files under ``folder``."""
    return DatasetSpec(
        name=name,
        world=WORLD,
        role=role,
        template=template,
        load=load,
        folder=str(folder),
        title=name,
        source=source,
    )


def imagefolder_spec(
    name: str,
    path: Path,
    template: str = DEFAULT_TEMPLATE,
    role: str = "target",
    source: str | None = None,
) -> DatasetSpec:
    """A user dataset in ImageFolder layout at ``path`` (see the module docstring)."""
    _check_name(name)
    path = Path(path).expanduser()

    def load(ctx: DataContext) -> Splits:
        return read_imagefolder(path)

    return _user_spec(name, load, path, template, role, source)


def splitfile_spec(
    name: str,
    split_file: Path,
    image_dir: Path | None = None,
    template: str = DEFAULT_TEMPLATE,
    role: str = "target",
    source: str | None = None,
) -> DatasetSpec:
    """A user dataset given by a CoOp split file; image paths relative to ``image_dir``.

    ``image_dir`` defaults to the split file's folder.
    """
    _check_name(name)
    split_file = Path(split_file).expanduser()
    images = Path(image_dir).expanduser() if image_dir is not None else split_file.parent

    def load(ctx: DataContext) -> Splits:
        if not images.is_dir():
            raise DataError(f"dataset {name!r}: image folder not found: {images}")
        splits = read_split_file(split_file, images)
        every = (s.path for split in (splits.train, splits.val, splits.test) for s in split)
        listed = image_list_fingerprint(str(images), every)
        return dataclasses.replace(splits, fingerprint=f"{splits.fingerprint}|{listed}")

    return _user_spec(name, load, split_file.parent, template, role, source)


def parse_dataset_option(
    text: str, template: str = DEFAULT_TEMPLATE, role: str = "target"
) -> DatasetSpec:
    """Parse ``NAME=PATH``, ``NAME=SPLIT.json`` or ``NAME=SPLIT.json:IMAGEDIR``.

    A path ending in ``.json`` is a CoOp split file (images relative to its folder, or to
    ``IMAGEDIR``); anything else is an ImageFolder directory. Paths must exist. A last
    ``:``-separated part that contains a brace is the zero-shot template (it replaces
    ``template``; it cannot itself contain ``:``), which must hold ``{}`` exactly once.
    ``NAME@SOURCE=...`` is a domain-shifted version of the dataset ``SOURCE`` (role
    ``shift``).
    """
    name, sep, value = text.partition("=")
    name, at, source = name.strip().partition("@")
    name, source, value = name.strip(), source.strip(), value.strip()
    if at:
        _check_name(source)
        role = "shift"
    head, colon, tail = value.rpartition(":")
    if colon and ("{" in tail or "}" in tail):
        value, template = head.strip(), tail.strip()
        problem = template_problem(template)
        if problem:
            raise DataError(f"dataset option {text!r}: {problem}")
    if not sep or not name or not value:
        raise DataError(
            f"dataset option {text!r}: expected NAME=PATH (an ImageFolder directory), "
            "NAME=SPLIT.json or NAME=SPLIT.json:IMAGEDIR, optionally followed by :TEMPLATE"
        )
    _check_name(name)
    match = re.search(r"\.json:", value, flags=re.IGNORECASE)
    if match:
        split_file = Path(value[: match.start() + 5]).expanduser()
        image_dir: Path | None = Path(value[match.end() :]).expanduser()
    elif value.lower().endswith(".json"):
        split_file, image_dir = Path(value).expanduser(), None
    else:
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise DataError(
                f"dataset {name!r}: {folder} is not a directory (expected an ImageFolder "
                f"directory with {IMAGEFOLDER_LAYOUT}, or a .json split file)"
            )
        return imagefolder_spec(name, folder, template, role, source or None)
    if not split_file.is_file():
        raise DataError(f"dataset {name!r}: split file not found: {split_file}")
    if image_dir is not None and not image_dir.is_dir():
        raise DataError(f"dataset {name!r}: image folder not found: {image_dir}")
    return splitfile_spec(name, split_file, image_dir, template, role, source or None)


def parse_dataset_options(texts: list[str], template: str = DEFAULT_TEMPLATE) -> list[DatasetSpec]:
    """Parse several ``NAME=PATH`` options; a name given twice is an error.

    The first dataset that is not a shift (``NAME@SOURCE``) is the source of its world
    (cross-dataset and domain generalisation train on it), the others are targets
    (cross-dataset evaluates on them). A shift names one of the other datasets as source.
    """
    specs = [parse_dataset_option(t, template=template) for t in texts]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise DataError(f"dataset {spec.name!r} is given twice")
        seen.add(spec.name)
    unshifted = [spec.name for spec in specs if spec.role != "shift"]
    for spec in specs:
        if spec.source is not None and spec.source not in unshifted:
            raise unknown_name("source dataset", spec.source, unshifted)
    if unshifted:
        at = next(i for i, spec in enumerate(specs) if spec.role != "shift")
        specs[at] = dataclasses.replace(specs[at], role="source")
    return specs


class UserDatasets:
    """A dataset plugin registering the given specs (the datasets of ``run --dataset``)."""

    def __init__(self, specs: list[DatasetSpec]) -> None:
        self.specs = list(specs)

    @hookimpl
    def register_datasets(self, register) -> None:
        for spec in self.specs:
            taken_by = register.provider_of(spec.name)
            if taken_by is not None:
                raise UserError(
                    f"--dataset {spec.name}=...: {taken_by.plugin} ({taken_by.distribution}) "
                    "already has a dataset of that name; give yours another name"
                )
            register(spec)
