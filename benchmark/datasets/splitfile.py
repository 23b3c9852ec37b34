"""Reader for CoOp's split files (``split_zhou_<Name>.json``)."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

from benchmark.datasets.spec import Sample, Splits
from benchmark.errors import DataError

SPLITS = ("train", "val", "test")
MAX_MISSING_SHOWN = 10


def _samples(entries: object, split: str, image_dir: Path, where: Path) -> list[Sample]:
    if not isinstance(entries, list):
        raise DataError(f"{where}: {split!r} must be a list of [path, label, classname]")
    samples = []
    for i, entry in enumerate(entries):
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 3
            or not isinstance(entry[0], str)
            or isinstance(entry[1], bool)
            or not isinstance(entry[1], int)
            or not isinstance(entry[2], str)
        ):
            raise DataError(
                f"{where}: {split}[{i}] is {entry!r}; expected [relative_path, label, classname]"
            )
        samples.append(Sample(str(image_dir / entry[0]), entry[1], entry[2]))
    return samples


def classnames_of(*splits: list[Sample]) -> tuple[str, ...]:
    """Class names indexed by label, with ``_`` read as a space; labels must be 0..n-1."""
    names: dict[int, str] = {}
    for split in splits:
        for sample in split:
            names.setdefault(sample.label, sample.classname)
    labels = sorted(names)
    if labels and labels[0] < 0:
        raise DataError(f"labels must run from 0 without gaps; found label {labels[0]}")
    if labels != list(range(len(labels))):
        # the first gaps only: a label of 10**12 must not build a list of 10**12 numbers
        missing = list(islice((i for i in range(labels[-1]) if i not in names), MAX_MISSING_SHOWN))
        raise DataError(f"labels must run from 0 without gaps; missing labels {missing}")
    return tuple(names[label].replace("_", " ") for label in labels)


def read_split_file(split_file: Path, image_dir: Path) -> Splits:
    """Read a split file; image paths in it are relative to ``image_dir``."""
    if not split_file.is_file():
        raise DataError(
            f"split file not found: {split_file} (expected CoOp's JSON "
            '{"train": [[relative_path, label, classname], ...], "val": [...], "test": [...]})'
        )
    try:
        content = json.loads(split_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{split_file}: not valid JSON ({exc})") from exc
    if not isinstance(content, dict) or not set(SPLITS) <= set(content):
        raise DataError(f"{split_file}: expected an object with keys {', '.join(SPLITS)}")
    train, val, test = (_samples(content[s], s, image_dir, split_file) for s in SPLITS)
    names = classnames_of(train, val, test)
    relabelled = [
        [Sample(s.path, s.label, names[s.label]) for s in split] for split in (train, val, test)
    ]
    return Splits(*(tuple(split) for split in relabelled), classnames=names)
