"""``datasets check``: found/missing datasets, absent images, inconsistencies, rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.datasets import standard
from benchmark.datasets.check import DatasetReport, absent_paths, check, render
from benchmark.datasets.imagefolder import imagefolder_spec
from tests.test_standard_datasets import (
    PER_SPLIT,
    SPLIT_CLASSES,
    specs,
    write_all,
    write_fgvc,
    write_image,
    write_split_dataset,
)


@pytest.fixture(scope="module")
def full_root(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("check_all"))


def by_name(reports: list[DatasetReport]) -> dict[str, DatasetReport]:
    return {r.name: r for r in reports}


def test_all_found_with_counts_and_size_mismatches(full_root):
    reports = by_name(check(full_root, list(specs().values())))
    assert len(reports) == 15
    assert all(r.found for r in reports.values())
    dtd = reports["dtd"]
    n = len(SPLIT_CLASSES["dtd"])
    assert (dtd.classes, dtd.train, dtd.val, dtd.test) == (n, *(c * n for c in PER_SPLIT))
    assert dtd.title == "DTD" and dtd.folder == "dtd"
    # a generated copy is far smaller than the real one
    assert any(p == f"classes: {n}, expected 47" for p in dtd.problems)
    assert any(p.startswith("train: 9, expected 2820") for p in dtd.problems)
    assert not any("absent" in p for r in reports.values() for p in r.problems)
    a = reports["imagenet_a"]
    assert (a.classes, a.train, a.val, a.test) == (5, 0, 0, 15)
    assert "classes: 5, expected 200" in a.problems


def test_missing_datasets_and_missing_split_file(tmp_path):
    write_split_dataset(tmp_path, "eurosat")
    (tmp_path / "dtd").mkdir()
    reports = by_name(check(tmp_path, list(specs().values())))
    assert reports["eurosat"].found and reports["eurosat"].classes == 3
    assert not reports["oxford_pets"].found
    assert reports["oxford_pets"].classes is None
    assert str(tmp_path / "oxford_pets") in reports["oxford_pets"].problems[0]
    assert "split_zhou_OxfordPets.json" in reports["oxford_pets"].problems[0]
    assert reports["dtd"].found and reports["dtd"].train is None
    assert any("split file not found" in p for p in reports["dtd"].problems)
    assert any("classnames.txt" in p for p in reports["imagenet"].problems)


def test_absent_images_are_counted_with_examples(tmp_path):
    base = write_split_dataset(tmp_path, "oxford_pets")
    images = sorted((base / "images").iterdir())
    for path in images[:4]:
        path.unlink()
    report = check(tmp_path, [specs()["oxford_pets"]])[0]
    absent = [p for p in report.problems if "absent" in p]
    assert len(absent) == 1
    total = sum(PER_SPLIT) * len(SPLIT_CLASSES["oxford_pets"])
    assert absent[0].startswith(f"4 of {total} images absent, e.g. ")
    assert str(images[0]) in absent[0]


def test_absent_images_of_fgvc_and_a_missing_image_folder(tmp_path):
    base = write_fgvc(tmp_path)
    next((base / "images").iterdir()).unlink()
    report = check(tmp_path, [specs()["fgvc_aircraft"]])[0]
    assert any(p.startswith("1 of 28 images absent") for p in report.problems)
    assert absent_paths([str(tmp_path / "nowhere" / "a.jpg")]) == [
        str(tmp_path / "nowhere" / "a.jpg")
    ]


def test_label_and_classname_inconsistencies_in_split_files(tmp_path):
    base = write_split_dataset(tmp_path, "food101")
    split_file = base / "split_zhou_Food101.json"
    content = json.loads(split_file.read_text())
    content["test"][0][2] = "apple_tart"  # label 0 named differently in one entry
    content["val"][0][2] = "baby_back_ribs"  # class name of label 1 used by label 0
    split_file.write_text(json.dumps(content))
    report = check(tmp_path, [specs()["food101"]])[0]
    assert report.found and report.classes is None  # the reader refuses the file
    (problem,) = report.problems
    assert "label 0 has several class names" in problem and "apple_tart" in problem
    assert "class name 'baby back ribs' is used by several labels [0, 1]" in problem


def test_user_datasets_are_not_compared_with_expected_sizes(tmp_path):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            write_image(tmp_path / "mine" / split / cls / "a.png")
    spec = imagefolder_spec("mine", tmp_path / "mine")
    report = check(tmp_path / "elsewhere", [spec])[0]
    assert report.found and report.problems == []
    assert (report.classes, report.train, report.val, report.test) == (2, 2, 0, 2)


def test_render_json_and_table(tmp_path):
    write_split_dataset(tmp_path, "eurosat")
    chosen = [specs()["eurosat"], specs()["ucf101"]]
    reports = check(tmp_path, chosen)
    data = json.loads(render(reports, "json"))
    assert [d["name"] for d in data] == ["eurosat", "ucf101"]
    assert data[0]["found"] is True and data[0]["classes"] == 3 and data[0]["test"] == 6
    assert data[1]["found"] is False and data[1]["classes"] is None
    assert set(data[0]) == {
        "name",
        "title",
        "folder",
        "found",
        "classes",
        "train",
        "val",
        "test",
        "problems",
    }
    table = render(reports, "table")
    assert "EuroSAT" in table and "UCF101" in table and "missing" in table
    assert "1/2 found" in table
    with pytest.raises(ValueError, match="format"):
        render(reports, "xml")


def test_expected_sizes_match_reference():
    assert standard.EXPECTED["caltech101"] == standard.Expected(100, 4128, 1649, 2465)
    assert standard.EXPECTED["sun397"] == standard.Expected(397, 15880, 3970, 19850)
    assert standard.EXPECTED["imagenet_r"].classes == 200
