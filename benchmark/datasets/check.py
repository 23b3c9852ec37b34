"""``python -m benchmark datasets check``: which datasets are present, and what is wrong.

For each dataset: whether its folder exists under the data root, its class count and split
sizes as read, and problems: a reader error (missing split file, missing classnames.txt,
...), images the split files name that are absent on disk (checked by listing folders once,
never by opening an image), labels without images or class names used twice, and sizes that
differ from the expected ones of complete copies (:data:`benchmark.datasets.standard.EXPECTED`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmark.datasets.spec import DataContext, DatasetSpec, Sample, Splits
from benchmark.errors import DataError

EXAMPLES = 3
FORMATS = ("table", "json")


@dataclass
class DatasetReport:
    """What ``datasets check`` found for one dataset."""

    name: str
    title: str
    folder: str
    found: bool
    classes: int | None = None
    train: int | None = None
    val: int | None = None
    test: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found and not self.problems


def absent_paths(paths: Iterable[str]) -> list[str]:
    """The paths that do not exist, listing each parent folder once (no stat per file)."""
    by_parent: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        parent, _, base = path.rpartition(os.sep)
        by_parent[parent].append(base)
    absent: list[str] = []
    for parent in sorted(by_parent):
        try:
            with os.scandir(parent or os.sep) as it:
                present = {e.name for e in it}
        except OSError:
            present = set()
        absent.extend(os.path.join(parent, b) for b in by_parent[parent] if b not in present)
    return absent


def _label_problems(splits: Splits) -> list[str]:
    problems = []
    n = len(splits.classnames)
    for split in ("train", "val", "test"):
        samples: tuple[Sample, ...] = getattr(splits, split)
        bad = [
            s for s in samples if not 0 <= s.label < n or s.classname != splits.classnames[s.label]
        ]
        if bad:
            problems.append(
                f"{len(bad)} {split} sample(s) have a label outside 0..{n - 1} or a class name "
                f"that differs from classnames[label], e.g. {bad[0].path}"
            )
    if len(set(splits.classnames)) != n:
        problems.append("class names are not unique")
    used = {s.label for s in splits.train} | {s.label for s in splits.test}
    unused = n - len(used)
    if (splits.train or splits.test) and unused:
        problems.append(f"{unused} class(es) have no train or test image")
    return problems


def check_one(data_root: Path, spec: DatasetSpec) -> DatasetReport:
    """Check one dataset under ``data_root``."""
    from benchmark.datasets import standard

    report = DatasetReport(spec.name, spec.display_name, spec.folder, found=False)
    folder = Path(spec.folder)
    base = folder if folder.is_absolute() else Path(data_root) / folder
    report.found = base.exists()
    if not report.found:
        layout = standard.LAYOUTS.get(spec.name, "")
        report.problems.append(f"missing: {base}" + (f" (expected {layout})" if layout else ""))
        return report
    try:
        splits = spec.load(DataContext(data_root=Path(data_root), cache_dir=Path(data_root)))
    except DataError as exc:
        report.problems.append(str(exc))
        return report
    report.classes = len(splits.classnames)
    report.train, report.val, report.test = len(splits.train), len(splits.val), len(splits.test)
    report.problems.extend(_label_problems(splits))
    paths = {s.path for split in (splits.train, splits.val, splits.test) for s in split}
    absent = absent_paths(paths)
    if absent:
        shown = ", ".join(sorted(absent)[:EXAMPLES])
        report.problems.append(f"{len(absent)} of {len(paths)} images absent, e.g. {shown}")
    expected = standard.EXPECTED.get(spec.name) if spec.world == standard.WORLD else None
    if expected is not None:
        for what in ("classes", "train", "val", "test"):
            got, want = getattr(report, what), getattr(expected, what)
            if got != want:
                report.problems.append(f"{what}: {got}, expected {want}")
    return report


def check(data_root: Path, specs: list[DatasetSpec]) -> list[DatasetReport]:
    """Check every dataset of ``specs`` under ``data_root``; never raises for bad data."""
    return [check_one(data_root, spec) for spec in specs]


def render(reports: list[DatasetReport], fmt: str = "table") -> str:
    """The reports as a ``tabulate`` table or as JSON (a list of objects)."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in reports], indent=2)
    if fmt != "table":
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    from tabulate import tabulate

    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    rows = [
        [
            r.title,
            r.folder,
            "ok" if r.ok else ("found" if r.found else "missing"),
            count(r.classes),
            count(r.train),
            count(r.val),
            count(r.test),
            "\n".join(r.problems),
        ]
        for r in reports
    ]
    headers = ["dataset", "folder", "status", "classes", "train", "val", "test", "problems"]
    table = tabulate(rows, headers=headers, tablefmt="simple")
    found = sum(r.found for r in reports)
    ok = sum(r.ok for r in reports)
    return f"{table}\n\n{found}/{len(reports)} found, {ok} without problems"
