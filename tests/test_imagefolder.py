"""Users' own datasets: ImageFolder trees, split files and the NAME=PATH option."""

from __future__ import annotations

import json
import re
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
        ("x=/tmp:a {} and a {}", "template 'a {} and a {}' must hold {} exactly once"),
        ("x=/tmp:a photo of a {", "template 'a photo of a {' must hold {} exactly once"),
        ("x=/tmp:a photo of a {}}", "must hold {} exactly once"),
        ("x=/tmp:a photo of a {name}", "must hold {} exactly once"),
        ("x=/tmp:a photo of a {!r}", "must hold {} exactly once"),
        ("x=/tmp:a photo of a {{}}", "must hold {} exactly once"),
    ],
)
def test_parse_option_errors(option, message):
    with pytest.raises(DataError, match=re.escape(message)):
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


def test_a_dataset_template_holds_one_placeholder():
    from benchmark.datasets.spec import DatasetSpec

    def spec(template: str) -> DatasetSpec:
        return DatasetSpec("d", "w", "target", template, lambda ctx: None)

    assert spec("a {{braced}} photo of a {}.").template == "a {{braced}} photo of a {}."
    for bad in ("no placeholder", "{} and {}", "{", "}", "{0}", "{:>10}"):
        with pytest.raises(ValueError, match="exactly once"):
            spec(bad)


def test_imagefolder_fingerprint_follows_the_images(tmp_path):
    import os
    import shutil

    root = write_tree(tmp_path / "tree")
    first = read_imagefolder(root).fingerprint
    assert first and read_imagefolder(root).fingerprint == first
    copy = shutil.copytree(root, tmp_path / "copy")  # same names, sizes and times
    assert read_imagefolder(copy).fingerprint == first
    image = root / "train" / CLASSES[0] / "img_0.jpg"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched
    touched = read_imagefolder(root).fingerprint
    assert touched != first
    image.rename(image.with_name("img_9.jpg"))  # renamed
    assert read_imagefolder(root).fingerprint not in (first, touched)


def test_user_split_file_fingerprint_follows_file_and_images(tmp_path):
    import os

    split_file = write_user_split(tmp_path)
    spec = splitfile_spec("foxes", split_file)
    first = spec.load(CTX).fingerprint
    assert first and spec.load(CTX).fingerprint == first
    image = Path(spec.load(CTX).test[0].path)
    image.write_bytes(image.read_bytes() + b"\0")  # the same name, other bytes
    second = spec.load(CTX).fingerprint
    assert second != first
    stat = split_file.stat()
    split_file.write_text(split_file.read_text() + " ")
    os.utime(split_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert spec.load(CTX).fingerprint not in (first, second)
