"""The readers of the 15 standard datasets, on generated copies of their layouts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchmark.datasets import standard
from benchmark.datasets.spec import DataContext, DatasetSpec, Splits
from benchmark.errors import DataError

# -- fixture builders (also used by test_datasets_check.py) -----------------------------------

_IMAGE_BYTES: dict[str, bytes] = {}


def image_bytes(suffix: str = ".jpg") -> bytes:
    """A 4x4 image encoded as JPEG or PNG, made once."""
    if suffix not in _IMAGE_BYTES:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), (120, 30, 200)).save(
            buffer, format="PNG" if suffix == ".png" else "JPEG"
        )
        _IMAGE_BYTES[suffix] = buffer.getvalue()
    return _IMAGE_BYTES[suffix]


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(path.suffix.lower()))


#: name -> (classes, per-class counts of train/val/test) of the generated split-file datasets
SPLIT_CLASSES: dict[str, tuple[str, ...]] = {
    "caltech101": ("accordion", "airplanes", "Faces_easy"),
    "oxford_pets": ("Abyssinian", "american_bulldog", "yorkshire_terrier"),
    "stanford_cars": ("2012 Tesla Model S", "2000 AM General Hummer SUV"),
    "oxford_flowers": ("pink primrose", "globe thistle", "hard-leaved pocket orchid"),
    "food101": ("apple_pie", "baby_back_ribs"),
    "sun397": ("abbey", "airplane_cabin", "volcano"),
    "dtd": ("banded", "blotchy", "zigzagged"),
    "eurosat": ("Annual Crop Land", "Forest", "Sea or Lake"),
    "ucf101": ("Apply_Eye_Makeup", "Basketball", "YoYo"),
}
PER_SPLIT = (3, 2, 2)


def _relative(name: str, classname: str, split: str, i: int) -> str:
    """A path in the style of each dataset's split file."""
    slug = classname.replace(" ", "_")
    if name == "stanford_cars":
        return f"cars_{'test' if split == 'test' else 'train'}/{slug}_{split}_{i:05d}.jpg"
    if name == "oxford_pets":
        return f"{slug}_{split}_{i}.jpg"
    if name == "oxford_flowers":
        index = SPLIT_CLASSES[name].index(classname)
        part = ("train", "val", "test").index(split)
        return f"image_{index:02d}{part}{i:02d}.jpg"
    if name == "sun397":
        return f"{slug[0]}/{slug}/sun_{split}{i}.jpg"
    if name == "ucf101":
        return f"{slug}/v_{slug}_g0{i}_c01.jpg"
    return f"{slug}/{split}_{i:04d}.jpg"


def write_split_dataset(root: Path, name: str, per_split: tuple[int, int, int] = PER_SPLIT) -> Path:
    """A generated copy of a split-file dataset in CoOp's layout; returns its folder."""
    layout = standard.SPLIT_FILE_LAYOUTS[name]
    base = root / standard.FOLDERS[name]
    image_dir = base / layout.image_dir if layout.image_dir else base
    image_dir.mkdir(parents=True, exist_ok=True)
    content: dict[str, list[list[object]]] = {}
    for split, count in zip(("train", "val", "test"), per_split, strict=True):
        entries: list[list[object]] = []
        for label, classname in enumerate(SPLIT_CLASSES[name]):
            for i in range(count):
                relative = _relative(name, classname, split, i)
                write_image(image_dir / relative)
                entries.append([relative, label, classname])
        content[split] = entries
    (base / layout.split_file).write_text(json.dumps(content))
    return base


WNIDS = tuple(f"n0{1440764 + 7 * i}" for i in range(10))
NAMES = (
    "tench",
    "goldfish",
    "great white shark",
    "tiger shark",
    "hammerhead shark",
    "electric ray",
    "stingray",
    "rooster",
    "hen",
    "ostrich",
)


def write_classnames(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {n}\n" for w, n in zip(WNIDS, NAMES, strict=True)))


def write_imagenet(root: Path, per_class: tuple[int, int] = (3, 2)) -> Path:
    base = root / "imagenet"
    write_classnames(base / "classnames.txt")
    for split, count in zip(("train", "val"), per_class, strict=True):
        for wnid in WNIDS:
            for i in range(count):
                stem = f"{wnid}_{i}" if split == "train" else f"ILSVRC2012_val_{wnid[3:]}{i}"
                write_image(base / "images" / split / wnid / f"{stem}.JPEG")
    return base


def write_imagenetv2(root: Path, folders: tuple[int, ...] = (0, 1, 2, 5, 9)) -> Path:
    base = root / "imagenetv2"
    write_classnames(base / "classnames.txt")
    for label in folders:
        for i in range(2):
            write_image(
                base / "imagenetv2-matched-frequency-format-val" / str(label) / f"{label}{i}a.jpeg"
            )
    return base


def write_sketch(root: Path) -> Path:
    base = root / "imagenet-sketch"
    write_classnames(base / "classnames.txt")
    for wnid in WNIDS[::3]:
        for i in range(2):
            write_image(base / "images" / wnid / f"sketch_{i}.JPEG")
    return base


SUBSET = (WNIDS[7], WNIDS[1], WNIDS[4], WNIDS[8], WNIDS[2])  # unsorted on purpose


def write_subset(root: Path, folder: str, image_folder: str, readme: bool = True) -> Path:
    base = root / folder
    write_classnames(base / "classnames.txt")
    for wnid in SUBSET:
        for i in range(3):
            write_image(base / image_folder / wnid / f"{image_folder}_{i}.jpg")
    if readme:
        (base / image_folder / "README.txt").write_text("about this dataset\n")
    return base


AIRCRAFT = ("707-320", "A300B4", "Cessna 172", "F-16A/B")


def write_fgvc(root: Path) -> Path:
    base = root / "fgvc_aircraft"
    base.mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("".join(f"{v}\n" for v in AIRCRAFT))
    number = 1000000
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        lines = []
        for variant in reversed(AIRCRAFT):
            for _ in range(count):
                number += 1
                lines.append(f"{number:07d} {variant}\n")
                write_image(base / "images" / f"{number:07d}.jpg")
        (base / f"images_variant_{split}.txt").write_text("".join(lines))
    return base


def write_all(root: Path) -> Path:
    """A generated copy of all 15 datasets."""
    for name in standard.SPLIT_FILE_LAYOUTS:
        write_split_dataset(root, name)
    write_imagenet(root)
    write_imagenetv2(root)
    write_sketch(root)
    write_subset(root, "imagenet-adversarial", "imagenet-a")
    write_subset(root, "imagenet-rendition", "imagenet-r")
    write_fgvc(root)
    return root


# -- tests ------------------------------------------------------------------------------------


def specs() -> dict[str, DatasetSpec]:
    collected: list[DatasetSpec] = []
    standard.register_datasets(register=collected.append)
    return {s.name: s for s in collected}


def ctx(root: Path | None) -> DataContext:
    return DataContext(data_root=root, cache_dir=Path("/nonexistent-cache"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_all(tmp_path_factory.mktemp("standard"))


def test_registers_all_fifteen_with_titles_templates_and_roles():
    registered = specs()
    assert list(registered) == [
        "imagenet",
        "caltech101",
        "oxford_pets",
        "stanford_cars",
        "oxford_flowers",
        "food101",
        "fgvc_aircraft",
        "sun397",
        "dtd",
        "eurosat",
        "ucf101",
        "imagenetv2",
        "imagenet_sketch",
        "imagenet_a",
        "imagenet_r",
    ]
    assert {s.world for s in registered.values()} == {"standard"}
    roles = {n: s.role for n, s in registered.items()}
    assert roles["imagenet"] == "source"
    assert [n for n, r in roles.items() if r == "target"] == list(registered)[1:11]
    for name in ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"):
        assert registered[name].role == "shift" and registered[name].source == "imagenet"
    assert [s.title for s in registered.values()] == [
        "ImageNet",
        "Caltech101",
        "OxfordPets",
        "StanfordCars",
        "Flowers102",
        "Food101",
        "FGVCAircraft",
        "SUN397",
        "DTD",
        "EuroSAT",
        "UCF101",
        "ImageNet-V2",
        "ImageNet-Sketch",
        "ImageNet-A",
        "ImageNet-R",
    ]
    assert registered["oxford_pets"].template == "a photo of a {}, a type of pet."
    assert registered["oxford_flowers"].template == "a photo of a {}, a type of flower."
    assert registered["fgvc_aircraft"].template == "a photo of a {}, a type of aircraft."
    assert registered["dtd"].template == "{} texture."
    assert registered["eurosat"].template == "a centered satellite photo of {}."
    assert registered["food101"].template == "a photo of {}, a type of food."
    assert registered["ucf101"].template == "a photo of a person doing {}."
    for name in ("imagenet", "caltech101", "stanford_cars", "sun397", "imagenet_r"):
        assert registered[name].template == "a photo of a {}."
    assert set(standard.EXPECTED) == set(registered) == set(standard.LAYOUTS)


def test_registered_through_the_plugin_manager():
    import pluggy

    from benchmark import ENTRY_POINT_GROUP, hookspecs

    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(standard)
    collected: list[DatasetSpec] = []
    pm.hook.register_datasets(register=collected.append)
    assert len(collected) == 15


def _check_splits(splits: Splits, classes: int) -> None:
    assert len(splits.classnames) == classes
    for split in (splits.train, splits.val, splits.test):
        for sample in split:
            assert splits.classnames[sample.label] == sample.classname
            assert Path(sample.path).is_file(), sample.path


@pytest.mark.parametrize("name", sorted(standard.SPLIT_FILE_LAYOUTS))
def test_split_file_datasets(data_root, name):
    splits = specs()[name].load(ctx(data_root))
    classes = SPLIT_CLASSES[name]
    assert splits.classnames == tuple(c.replace("_", " ") for c in classes)
    n = len(classes)
    assert (len(splits.train), len(splits.val), len(splits.test)) == tuple(c * n for c in PER_SPLIT)
    _check_splits(splits, n)
    assert [s.label for s in splits.train[:3]] == [0, 0, 0]


def test_stanford_cars_paths_are_relative_to_the_dataset_folder(data_root):
    splits = specs()["stanford_cars"].load(ctx(data_root))
    base = data_root / "stanford_cars"
    assert splits.train[0].path.startswith(str(base / "cars_train") + "/")
    assert splits.test[0].path.startswith(str(base / "cars_test") + "/")


def test_image_dirs_of_split_file_datasets(data_root):
    loaded = specs()
    for name, image_dir in (
        ("caltech101", "caltech-101/101_ObjectCategories"),
        ("eurosat", "eurosat/2750"),
        ("ucf101", "ucf101/UCF-101-midframes"),
    ):
        first = loaded[name].load(ctx(data_root)).test[0]
        assert first.path.startswith(f"{data_root}/{image_dir}/")


def test_imagenet(data_root):
    splits = specs()["imagenet"].load(ctx(data_root))
    assert splits.classnames == NAMES
    assert len(splits.train) == 30 and len(splits.test) == 20
    assert splits.val == splits.test  # CoOp: the val folder is test and val
    _check_splits(splits, 10)
    for sample in splits.train:
        wnid = Path(sample.path).parent.name
        assert sample.label == WNIDS.index(wnid)
        assert "/images/train/" in sample.path
    assert all("/images/val/" in s.path for s in splits.test)


def test_imagenet_labels_follow_classnames_txt(tmp_path):
    base = write_imagenet(tmp_path, per_class=(1, 1))
    order = [4, 0, 9, 1, 2, 3, 5, 6, 7, 8]
    (base / "classnames.txt").write_text("".join(f"{WNIDS[i]} {NAMES[i]}\n" for i in order))
    splits = specs()["imagenet"].load(ctx(tmp_path))
    assert splits.classnames == tuple(NAMES[i] for i in order)
    by_wnid = {Path(s.path).parent.name: s.label for s in splits.train}
    assert by_wnid[WNIDS[4]] == 0 and by_wnid[WNIDS[9]] == 2


def test_imagenet_without_classnames_txt_says_what_it_needs(tmp_path):
    base = write_imagenet(tmp_path, per_class=(1, 1))
    (base / "classnames.txt").unlink()
    with pytest.raises(DataError) as info:
        specs()["imagenet"].load(ctx(tmp_path))
    message = str(info.value)
    assert str(base / "classnames.txt") in message
    assert "<wnid> <class name>" in message and "1000" in message


def test_imagenet_folder_not_in_classnames_txt(tmp_path):
    base = write_imagenet(tmp_path, per_class=(1, 1))
    write_image(base / "images" / "train" / "n99999999" / "x.JPEG")
    with pytest.raises(DataError, match="n99999999"):
        specs()["imagenet"].load(ctx(tmp_path))


def test_missing_data_root_or_folder_names_path_and_layout(tmp_path):
    registered = specs()
    with pytest.raises(DataError, match="--data-root"):
        registered["dtd"].load(ctx(None))
    with pytest.raises(DataError) as info:
        registered["dtd"].load(ctx(tmp_path))
    assert str(tmp_path / "dtd") in str(info.value)
    assert "split_zhou_DescribableTextures.json" in str(info.value)
    (tmp_path / "dtd").mkdir()
    with pytest.raises(DataError, match="split file not found"):
        registered["dtd"].load(ctx(tmp_path))
    with pytest.raises(DataError, match=r"imagenet/classnames\.txt"):
        (tmp_path / "imagenet-rendition" / "imagenet-r").mkdir(parents=True)
        registered["imagenet_r"].load(ctx(tmp_path))


def test_imagenetv2_folder_i_is_class_i(data_root):
    splits = specs()["imagenetv2"].load(ctx(data_root))
    assert splits.classnames == NAMES
    assert splits.train == () and splits.val == ()
    assert [s.label for s in splits.test] == [0, 0, 1, 1, 2, 2, 5, 5, 9, 9]
    for sample in splits.test:
        assert Path(sample.path).parent.name == str(sample.label)
        assert sample.classname == NAMES[sample.label]


def test_imagenetv2_reads_imagenet_classnames_when_its_own_is_missing(tmp_path):
    base = write_imagenetv2(tmp_path, folders=(3,))
    (base / "classnames.txt").unlink()
    write_classnames(tmp_path / "imagenet" / "classnames.txt")
    splits = specs()["imagenetv2"].load(ctx(tmp_path))
    assert splits.classnames == NAMES and {s.label for s in splits.test} == {3}


def test_imagenetv2_rejects_unexpected_folders(tmp_path):
    base = write_imagenetv2(tmp_path, folders=(0,))
    write_image(base / "imagenetv2-matched-frequency-format-val" / "10" / "x.jpeg")
    with pytest.raises(DataError, match=r"0\.\.9"):
        specs()["imagenetv2"].load(ctx(tmp_path))


def test_imagenet_sketch_uses_imagenet_labels(data_root):
    splits = specs()["imagenet_sketch"].load(ctx(data_root))
    assert splits.classnames == NAMES
    assert sorted({s.label for s in splits.test}) == [0, 3, 6, 9]
    _check_splits(splits, 10)


@pytest.mark.parametrize(
    ("name", "folder"), [("imagenet_a", "imagenet-a"), ("imagenet_r", "imagenet-r")]
)
def test_a_and_r_relabel_to_their_sorted_wnid_folders(data_root, name, folder):
    splits = specs()[name].load(ctx(data_root))
    ordered = sorted(SUBSET)
    assert splits.classnames == tuple(NAMES[WNIDS.index(w)] for w in ordered)
    assert splits.train == () and splits.val == () and len(splits.test) == 15
    for sample in splits.test:
        wnid = Path(sample.path).parent.name
        assert sample.label == ordered.index(wnid)
        assert sample.classname == NAMES[WNIDS.index(wnid)]
        assert f"/{folder}/" in sample.path
    assert not any(s.path.endswith("README.txt") for s in splits.test)


def test_fgvc_aircraft(data_root):
    splits = specs()["fgvc_aircraft"].load(ctx(data_root))
    assert splits.classnames == AIRCRAFT
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 8, 8)
    _check_splits(splits, 4)
    assert splits.train[0].classname == "F-16A/B" and splits.train[0].label == 3
    assert splits.train[0].path == str(data_root / "fgvc_aircraft" / "images" / "1000001.jpg")


def test_fgvc_parsing_errors(tmp_path):
    base = write_fgvc(tmp_path)
    path = base / "images_variant_val.txt"
    path.write_text("1234567 Boeing 999\n")
    with pytest.raises(DataError, match="Boeing 999"):
        specs()["fgvc_aircraft"].load(ctx(tmp_path))
    path.write_text("1234567\n")
    with pytest.raises(DataError, match=r"images_variant_val\.txt:1"):
        specs()["fgvc_aircraft"].load(ctx(tmp_path))
    path.unlink()
    with pytest.raises(DataError, match=r"images_variant_val\.txt"):
        specs()["fgvc_aircraft"].load(ctx(tmp_path))


def test_variant_names_with_spaces_and_blank_lines(tmp_path):
    base = tmp_path / "fgvc_aircraft"
    base.mkdir()
    (base / "variants.txt").write_text("Cessna 172\n\nDC-10\n")
    for split in ("train", "val", "test"):
        (base / f"images_variant_{split}.txt").write_text("0000001 DC-10\n0000002 Cessna 172\n")
    splits = specs()["fgvc_aircraft"].load(ctx(tmp_path))
    assert splits.classnames == ("Cessna 172", "DC-10")
    assert [s.label for s in splits.test] == [1, 0]


def test_read_classnames_rejects_malformed_lines(tmp_path):
    path = tmp_path / "classnames.txt"
    path.write_text("n01440764 tench\nn01443537\n")
    with pytest.raises(DataError, match=r"classnames\.txt:2"):
        standard.read_classnames(path)
    path.write_text("n01440764 tench\nn01440764 goldfish\n")
    with pytest.raises(DataError, match="twice"):
        standard.read_classnames(path)
    path.write_text("n01440764 tench   \n\nn01443537 great  white\n")
    assert standard.read_classnames(path) == {"n01440764": "tench", "n01443537": "great  white"}
