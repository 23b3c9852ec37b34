"""Reader for CoOp's split files (``split_zhou_<Name>.json``).

A split file is ``{"train": [[relative_path, label, classname], ...], "val": [...], "test":
[...]}``. Labels run from 0 without gaps, each label has one class name and each class name
one label (``_`` reads as a space: ``sea_lion`` and ``sea lion`` are one name). Anything else
is refused with a one-line :class:`~benchmark.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from itertools import islice
from pathlib import Path

from benchmark.datasets.spec import Sample, Splits
from benchmark.errors import DataError, first_line

SPLITS = ("train", "val", "test")
MAX_MISSING_SHOWN = 10
MAX_ENTRY_SHOWN = 120
LAYOUT = '{"train": [[relative_path, label, classname], ...], "val": [...], "test": [...]}'


def _shown(entry: object) -> str:
    text = repr(entry)
    return text if len(text) <= MAX_ENTRY_SHOWN else text[:MAX_ENTRY_SHOWN] + "..."


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
                f"{where}: {split}[{i}] is {_shown(entry)}; expected [relative_path, label, "
                "classname]"
            )
        if "\0" in entry[0] or "\0" in entry[2]:
            raise DataError(
                f"{where}: {split}[{i}] is {_shown(entry)}; a path or class name cannot hold "
                "a NUL byte"
            )
        if not entry[2].replace("_", " ").strip():
            raise DataError(
                f"{where}: {split}[{i}] is {_shown(entry)}; a class name cannot be empty "
                "(it is what the prompts say)"
            )
        samples.append(Sample(str(image_dir / entry[0]), entry[1], entry[2]))
    return samples


def _one_name_per_label(splits: tuple[list[Sample], ...]) -> dict[int, str]:
    """Each label's class name (``_`` read as a space); a label named differently in two
    places, or a name used by two labels, is refused (both, when both happen)."""
    spellings: dict[int, set[str]] = defaultdict(set)
    names: dict[int, set[str]] = defaultdict(set)
    for split in splits:
        for sample in split:
            spellings[sample.label].add(sample.classname)
            names[sample.label].add(sample.classname.replace("_", " "))
    labels_of: dict[str, set[int]] = defaultdict(set)
    for label, named in names.items():
        for name in named:
            labels_of[name].add(label)
    problems = []
    mixed = sorted(label for label, named in names.items() if len(named) > 1)
    if mixed:
        more = f" (and {len(mixed) - 1} more labels)" if len(mixed) > 1 else ""
        shown = sorted(spellings[mixed[0]])[:3]
        problems.append(f"label {mixed[0]} has several class names {shown}{more}")
    shared = sorted(name for name, labels in labels_of.items() if len(labels) > 1)
    if shared:
        more = f" (and {len(shared) - 1} more names)" if len(shared) > 1 else ""
        shown_labels = sorted(labels_of[shared[0]])[:3]
        problems.append(f"class name {shared[0]!r} is used by several labels {shown_labels}{more}")
    if problems:
        raise DataError(
            "; ".join(problems) + " (each label needs one class name, each name one label)"
        )
    return {label: named.pop() for label, named in names.items()}


def classnames_of(*splits: list[Sample]) -> tuple[str, ...]:
    """Class names indexed by label, with ``_`` read as a space; labels must be 0..n-1, each
    with one class name, each class name with one label."""
    names = _one_name_per_label(splits)
    labels = sorted(names)
    if labels and labels[0] < 0:
        raise DataError(f"labels must run from 0 without gaps; found label {labels[0]}")
    if labels != list(range(len(labels))):
        # the first gaps only: a label of 10**12 must not build a list of 10**12 numbers
        missing = list(islice((i for i in range(labels[-1]) if i not in names), MAX_MISSING_SHOWN))
        raise DataError(f"labels must run from 0 without gaps; missing labels {missing}")
    return tuple(names[label] for label in labels)


def _parse(split_file: Path, raw: bytes) -> object:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except RecursionError:
        raise DataError(f"{split_file}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise DataError(f"{split_file}: not valid JSON ({first_line(exc)})") from None


def read_split_file(split_file: Path, image_dir: Path) -> Splits:
    """Read a split file; image paths in it are relative to ``image_dir``.

    The splits' fingerprint is the digest of the file's bytes.
    """
    if not split_file.is_file():
        raise DataError(f"split file not found: {split_file} (expected CoOp's JSON {LAYOUT})")
    try:
        raw = split_file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read split file {split_file} ({exc.strerror})") from exc
    content = _parse(split_file, raw)
    if not isinstance(content, dict) or not set(SPLITS) <= set(content):
        raise DataError(f"{split_file}: expected an object with keys {', '.join(SPLITS)}")
    train, val, test = (_samples(content[s], s, image_dir, split_file) for s in SPLITS)
    try:
        names = classnames_of(train, val, test)
    except DataError as exc:
        raise DataError(f"{split_file}: {exc}") from None
    relabelled = [
        [Sample(s.path, s.label, names[s.label]) for s in split] for split in (train, val, test)
    ]
    return Splits(
        *(tuple(split) for split in relabelled),
        classnames=names,
        fingerprint=hashlib.sha256(raw).hexdigest(),
    )
