"""Users' own datasets: ImageFolder trees, split files and the NAME=PATH option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.datasets.imagefolder import (
    imagefolder_spec,
    parse_dataset_option,
    parse_dataset_options,
    read_imagefolder,
    splitfile_spec,
)
from benchmark.datasets.spec import DataContext
from benchmark.errors import DataError
from tests.test_standard_datasets import write_image

CTX = DataContext(data_root=None, cache_dir=Path("/nonexistent-cache"))
CLASSES = ("golden_retriever", "Siamese_cat", "barn_owl")


def write_tree(root: Path, splits=(("train", 3), ("val", 1), ("test", 2))) -> Path:
    for split, count in splits:
        for cls in CLASSES:
            for i in range(count):
                write_image(root / split / cls / f"img_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_imagefolder_reads_sorted_classes(tmp_path):
    root = write_tree(tmp_path / "pets")
    (root / "train" / "barn_owl" / "notes.txt").write_text("not an image")
    (root / "train" / "barn_owl" / ".hidden.jpg").write_bytes(b"")
    (root / "train" / ".DS_Store").write_bytes(b"")
    spec = imagefolder_spec("pets", root)
    assert spec.world == "user" and spec.role == "target"
    assert spec.template == "a photo of a {}."
    splits = spec.load(CTX)
    assert splits.classnames == ("Siamese cat", "barn owl", "golden retriever")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 3, 6)
    for sample in (*splits.train, *splits.val, *splits.test):
        folder = Path(sample.path).parent.name
        assert sample.label == sorted(CLASSES).index(folder)
        assert sample.classname == folder.replace("_", " ")


def test_imagefolder_without_val_has_empty_val(tmp_path):
    root = write_tree(tmp_path / "d", splits=(("train", 2), ("test", 1)))
    splits = read_imagefolder(root)
    assert splits.val == () and len(splits.train) == 6


def test_imagefolder_test_only_and_classes_only_in_test(tmp_path):
    root = write_tree(tmp_path / "d", splits=(("test", 1),))
    write_image(root / "test" / "aardvark" / "x.jpg")
    splits = read_imagefolder(root)
    assert splits.train == () and splits.classnames[0] == "Siamese cat"
    assert splits.classnames[-1] == "golden retriever" and "aardvark" in splits.classnames


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_imagefolder(tmp_path / "absent")
    (tmp_path / "d" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no test/"):
        read_imagefolder(tmp_path / "d")
    (tmp_path / "d" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        read_imagefolder(tmp_path / "d")
    with pytest.raises(DataError, match="dataset name"):
        imagefolder_spec("bad name!", tmp_path)


def write_user_split(root: Path) -> Path:
    content = {"train": [], "val": [], "test": []}
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        for label, cls in enumerate(("red_fox", "grey_wolf")):
            for i in range(count):
                relative = f"pics/{cls}_{split}{i}.jpg"
                write_image(root / relative)
                content[split].append([relative, label, cls])
    path = root / "split.json"
    path.write_text(json.dumps(content))
    return path


def test_splitfile_spec(tmp_path):
    split_file = write_user_split(tmp_path)
    splits = splitfile_spec("foxes", split_file).load(CTX)
    assert splits.classnames == ("red fox", "grey wolf")
    assert splits.train[0].path == str(tmp_path / "pics" / "red_fox_train0.jpg")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 2)


def test_parse_option_imagefolder_and_json(tmp_path):
    root = write_tree(tmp_path / "tree", splits=(("test", 1),))
    spec = parse_dataset_option(f"mine={root}")
    assert spec.name == "mine" and spec.world == "user" and len(spec.load(CTX).test) == 3

    split_file = write_user_split(tmp_path / "foxes")
    spec = parse_dataset_option(f"foxes={split_file}")
    assert spec.load(CTX).test[0].path.startswith(str(tmp_path / "foxes" / "pics"))

    # JSON:IMAGEDIR: image paths relative to another folder
    moved = tmp_path / "elsewhere"
    (tmp_path / "foxes").rename(moved)
    (moved / "split.json").rename(tmp_path / "split.json")
    spec = parse_dataset_option(f"foxes={tmp_path / 'split.json'}:{moved}")
    splits = spec.load(CTX)
    assert splits.train[0].path == str(moved / "pics" / "red_fox_train0.jpg")
    assert Path(splits.train[0].path).is_file()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("justaname", "expected NAME=PATH"),
        ("=somewhere", "expected NAME=PATH"),
        ("x=", "expected NAME=PATH"),
        ("x y=/tmp", "dataset name"),
        ("x=/definitely/not/here", "not a directory"),
        ("x=/definitely/not/here.json", "split file not found"),
    ],
)
def test_parse_option_errors(option, message):
    with pytest.raises(DataError, match=message):
        parse_dataset_option(option)


def test_parse_option_missing_image_dir(tmp_path):
    split_file = write_user_split(tmp_path)
    with pytest.raises(DataError, match="image folder not found"):
        parse_dataset_option(f"x={split_file}:{tmp_path / 'nope'}")


def test_parse_options_rejects_duplicates(tmp_path):
    root = write_tree(tmp_path / "tree", splits=(("test", 1),))
    assert len(parse_dataset_options([f"a={root}", f"b={root}"])) == 2
    with pytest.raises(DataError, match="twice"):
        parse_dataset_options([f"a={root}", f"a={root}"])
