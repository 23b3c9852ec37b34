"""Fingerprints of a dataset's content, part of every run's identity.

A run id names the data a run read, not only the dataset's name: a changed split file,
changed images behind the same name, or another template give new run ids, so old results
are never taken for new data. Readers fingerprint what they read (the bytes of a split
file; the image list of an ImageFolder with each image's size and modification time, as
the feature cache keys images); :func:`dataset_fingerprint` adds the dataset's template and
augmentation, and digests the samples themselves where a reader gave no fingerprint.
Paths enter relative to the dataset's folder, so the same data in another place has the
same fingerprint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

from benchmark.datasets.spec import DatasetSpec, Splits

#: Digit count of a dataset fingerprint in run identities.
LENGTH = 16


def image_list_fingerprint(root: str, paths: Iterable[str]) -> str:
    """Digest of the images' paths relative to ``root`` with their sizes and modification
    times; an image that cannot be stat'ed counts as absent (reading it reports it)."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            seen = f"{stat.st_size}|{stat.st_mtime_ns}"
        except (OSError, ValueError):
            seen = "absent"
        digest.update(f"{os.path.relpath(path, root)}|{seen}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def samples_fingerprint(splits: Splits) -> str:
    """Digest of the class names and of every split's samples (path relative to the folder
    the samples share, label)."""
    folders = {
        os.path.dirname(s.path) for split in (splits.train, splits.val, splits.test) for s in split
    }
    try:
        root = os.path.commonpath(folders) if folders else ""
    except ValueError:  # absolute and relative paths mixed: keep them as they are
        root = ""
    digest = hashlib.sha256("\n".join(splits.classnames).encode("utf-8", "replace"))
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        digest.update(f"\n[{name}]\n".encode())
        for sample in split:
            relative = os.path.relpath(sample.path, root) if root else sample.path
            digest.update(f"{relative}|{sample.label}\n".encode("utf-8", "replace"))
    return digest.hexdigest()


def dataset_fingerprint(spec: DatasetSpec, splits: Splits) -> str:
    """The fingerprint of a dataset as a run reads it: its reader's fingerprint (or a digest
    of its samples), its zero-shot template and its training augmentation."""
    content = splits.fingerprint or samples_fingerprint(splits)
    parts = (spec.template, spec.augmentation.id, content)
    return hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()[:LENGTH]
