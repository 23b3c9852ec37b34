"""Readers of the 15 standard datasets of the papers, in CoOp's layout under a data root.

This module is the ``standard_datasets`` plugin of the suite (entry point in
``pyproject.toml``): :func:`register_datasets` registers one
:class:`~benchmark.datasets.spec.DatasetSpec` per dataset, world ``"standard"``.

Layouts (``<root>`` is the data root, the folder names are CoOp's)::

    imagenet/             images/train/<wnid>/, images/val/<wnid>/, classnames.txt
    caltech-101/          101_ObjectCategories/, split_zhou_Caltech101.json
    oxford_pets/          images/, annotations/, split_zhou_OxfordPets.json
    stanford_cars/        cars_train/, cars_test/, split_zhou_StanfordCars.json
    oxford_flowers/       jpg/, split_zhou_OxfordFlowers.json
    food-101/             images/, split_zhou_Food101.json
    fgvc_aircraft/        images/, variants.txt, images_variant_{train,val,test}.txt
    sun397/               SUN397/, split_zhou_SUN397.json
    dtd/                  images/, split_zhou_DescribableTextures.json
    eurosat/              2750/, split_zhou_EuroSAT.json
    ucf101/               UCF-101-midframes/, split_zhou_UCF101.json
    imagenetv2/           imagenetv2-matched-frequency-format-val/<0..999>/, classnames.txt
    imagenet-sketch/      images/<wnid>/, classnames.txt
    imagenet-adversarial/ imagenet-a/<wnid>/ (200 folders), classnames.txt
    imagenet-rendition/   imagenet-r/<wnid>/ (200 folders), classnames.txt

Behaviour, following CoOp's dataset code:

- Split-file datasets: image paths in the JSON are relative to the image folder, except for
  StanfordCars whose paths (``cars_train/...``) are relative to the dataset folder itself.
- ImageNet: the ``val`` image folder is the test split, and, as in CoOp, the same samples
  also serve as the validation split (CoOp evaluates the last model and never selects on
  val; only the linear probe's C search uses it). Labels follow the line order of
  ``classnames.txt`` (``<wnid> <name>`` per line); CoOp labels by sorted wnid folder, which
  is the same for the usual wnid-sorted ``classnames.txt``.
- ImageNet-V2: folder ``i`` is ImageNet class ``i``. ImageNet-Sketch: folder ``<wnid>`` is
  the ImageNet class of that wnid. Both score all 1000 ImageNet class names.
- ImageNet-A and -R: labels are the index in their sorted 200 wnid folders and the class
  names are those 200 only.
- The four shifted ImageNets are test-only (empty train and val). Their ``classnames.txt``
  is read from their own folder, falling back to ``imagenet/classnames.txt``.
- Caltech101 contains greyscale images: converting them to RGB is the image loader's job
  (images are decoded elsewhere); readers never open images.
- Files are listed with :func:`os.scandir` (no ``stat`` per file), hidden files skipped,
  and sorted so that the few-shot draw is the same on every file system (CoOp lists in
  file-system order).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.datasets.spec import DataContext, DatasetSpec, Sample, Splits
from benchmark.datasets.splitfile import read_split_file
from benchmark.errors import DataError
from benchmark.hookspecs import hookimpl

WORLD = "standard"
CLASSNAMES_FILE = "classnames.txt"


@dataclass(frozen=True)
class Expected:
    """The sizes of a complete copy of a dataset: classes and train/val/test images."""

    classes: int
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class SplitFileLayout:
    """Where a split-file dataset keeps its JSON and the folder its paths are relative to."""

    split_file: str
    image_dir: str  # relative to the dataset folder; "" is the dataset folder itself


#: Expected sizes. Classes and the train/val/test sizes of the ten CoOp datasets are those of
#: CoOp's split files (KaiyangZhou/CoOp DATASETS.md, split_zhou_*.json). ImageNet's val is its
#: test set (as in CoOp). The sizes of the shifted ImageNets are those of their publications.
EXPECTED: dict[str, Expected] = {
    "imagenet": Expected(1000, 1_281_167, 50_000, 50_000),
    "caltech101": Expected(100, 4128, 1649, 2465),
    "oxford_pets": Expected(37, 2944, 736, 3669),
    "stanford_cars": Expected(196, 6509, 1635, 8041),
    "oxford_flowers": Expected(102, 4093, 1633, 2463),
    "food101": Expected(101, 50500, 20200, 30300),
    "fgvc_aircraft": Expected(100, 3334, 3333, 3333),
    "sun397": Expected(397, 15880, 3970, 19850),
    "dtd": Expected(47, 2820, 1128, 1692),
    "eurosat": Expected(10, 13500, 5400, 8100),
    "ucf101": Expected(101, 7639, 1898, 3783),
    "imagenetv2": Expected(1000, 0, 0, 10_000),
    "imagenet_sketch": Expected(1000, 0, 0, 50_889),
    "imagenet_a": Expected(200, 0, 0, 7500),
    "imagenet_r": Expected(200, 0, 0, 30_000),
}

#: The split-file datasets: JSON name and image folder, per dataset name.
SPLIT_FILE_LAYOUTS: dict[str, SplitFileLayout] = {
    "caltech101": SplitFileLayout("split_zhou_Caltech101.json", "101_ObjectCategories"),
    "oxford_pets": SplitFileLayout("split_zhou_OxfordPets.json", "images"),
    "stanford_cars": SplitFileLayout("split_zhou_StanfordCars.json", ""),
    "oxford_flowers": SplitFileLayout("split_zhou_OxfordFlowers.json", "jpg"),
    "food101": SplitFileLayout("split_zhou_Food101.json", "images"),
    "sun397": SplitFileLayout("split_zhou_SUN397.json", "SUN397"),
    "dtd": SplitFileLayout("split_zhou_DescribableTextures.json", "images"),
    "eurosat": SplitFileLayout("split_zhou_EuroSAT.json", "2750"),
    "ucf101": SplitFileLayout("split_zhou_UCF101.json", "UCF-101-midframes"),
}

#: The layout of each dataset folder, for error messages and ``datasets check``.
LAYOUTS: dict[str, str] = {
    "imagenet": "images/train/<wnid>/, images/val/<wnid>/, classnames.txt",
    "caltech101": "101_ObjectCategories/, split_zhou_Caltech101.json",
    "oxford_pets": "images/, annotations/, split_zhou_OxfordPets.json",
    "stanford_cars": "cars_train/, cars_test/, split_zhou_StanfordCars.json",
    "oxford_flowers": "jpg/, split_zhou_OxfordFlowers.json",
    "food101": "images/, split_zhou_Food101.json",
    "fgvc_aircraft": "images/, variants.txt, images_variant_{train,val,test}.txt",
    "sun397": "SUN397/, split_zhou_SUN397.json",
    "dtd": "images/, split_zhou_DescribableTextures.json",
    "eurosat": "2750/, split_zhou_EuroSAT.json",
    "ucf101": "UCF-101-midframes/, split_zhou_UCF101.json",
    "imagenetv2": "imagenetv2-matched-frequency-format-val/<0..999>/, classnames.txt",
    "imagenet_sketch": "images/<wnid>/, classnames.txt",
    "imagenet_a": "imagenet-a/<wnid>/ (200 folders), classnames.txt",
    "imagenet_r": "imagenet-r/<wnid>/ (200 folders), classnames.txt",
}

GENERIC = "a photo of a {}."


@dataclass(frozen=True)
class _Entry:
    name: str
    folder: str
    title: str
    role: str
    template: str
    source: str | None = None


_ENTRIES: tuple[_Entry, ...] = (
    _Entry("imagenet", "imagenet", "ImageNet", "source", GENERIC),
    _Entry("caltech101", "caltech-101", "Caltech101", "target", GENERIC),
    _Entry("oxford_pets", "oxford_pets", "OxfordPets", "target", "a photo of a {}, a type of pet."),
    _Entry("stanford_cars", "stanford_cars", "StanfordCars", "target", GENERIC),
    _Entry(
        "oxford_flowers",
        "oxford_flowers",
        "Flowers102",
        "target",
        "a photo of a {}, a type of flower.",
    ),
    _Entry("food101", "food-101", "Food101", "target", "a photo of {}, a type of food."),
    _Entry(
        "fgvc_aircraft",
        "fgvc_aircraft",
        "FGVCAircraft",
        "target",
        "a photo of a {}, a type of aircraft.",
    ),
    _Entry("sun397", "sun397", "SUN397", "target", GENERIC),
    _Entry("dtd", "dtd", "DTD", "target", "{} texture."),
    _Entry("eurosat", "eurosat", "EuroSAT", "target", "a centered satellite photo of {}."),
    _Entry("ucf101", "ucf101", "UCF101", "target", "a photo of a person doing {}."),
    _Entry("imagenetv2", "imagenetv2", "ImageNet-V2", "shift", GENERIC, "imagenet"),
    _Entry("imagenet_sketch", "imagenet-sketch", "ImageNet-Sketch", "shift", GENERIC, "imagenet"),
    _Entry("imagenet_a", "imagenet-adversarial", "ImageNet-A", "shift", GENERIC, "imagenet"),
    _Entry("imagenet_r", "imagenet-rendition", "ImageNet-R", "shift", GENERIC, "imagenet"),
)

FOLDERS: dict[str, str] = {e.name: e.folder for e in _ENTRIES}
#: The eleven datasets the papers train on (ImageNet and the ten cross-dataset targets).
TRAINED_ON: tuple[str, ...] = tuple(e.name for e in _ENTRIES if e.role != "shift")


# -- helpers ---------------------------------------------------------------------------------


def dataset_dir(ctx: DataContext, name: str) -> Path:
    """The folder of dataset ``name`` under the data root, or a DataError naming the layout."""
    folder = FOLDERS[name]
    layout = LAYOUTS[name]
    if ctx.data_root is None:
        raise DataError(
            f"dataset {name!r} needs a data root (--data-root DIR) holding {folder}/ with {layout}"
        )
    base = Path(ctx.data_root).expanduser() / folder
    if not base.is_dir():
        raise DataError(f"dataset {name!r}: folder not found: {base} (expected {layout})")
    return base


def _require_dir(path: Path, name: str) -> None:
    if not path.is_dir():
        raise DataError(f"dataset {name!r}: folder not found: {path} (expected {LAYOUTS[name]})")


def list_subdirs(path: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``path``."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def list_files(path: str) -> list[str]:
    """Sorted names of the non-hidden files in ``path`` (``os.scandir``: no stat per file)."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_file())


def read_classnames(path: Path) -> dict[str, str]:
    """``classnames.txt``: one ``<wnid> <class name>`` per line, in label order."""
    names: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        wnid, _, classname = line.strip().partition(" ")
        if not classname.strip():
            raise DataError(f"{path}:{number}: expected '<wnid> <class name>', got {line!r}")
        if wnid in names:
            raise DataError(f"{path}:{number}: wnid {wnid} appears twice")
        names[wnid] = classname.strip()
    if not names:
        raise DataError(f"{path}: empty; expected one '<wnid> <class name>' per line")
    return names


def _classnames_for(ctx: DataContext, name: str, base: Path) -> dict[str, str]:
    own = base / CLASSNAMES_FILE
    if own.is_file():
        return read_classnames(own)
    shared = None
    if ctx.data_root is not None and name != "imagenet":
        shared = Path(ctx.data_root).expanduser() / FOLDERS["imagenet"] / CLASSNAMES_FILE
        if shared.is_file():
            return read_classnames(shared)
    where = f"{own}" + (f" (or {shared})" if shared is not None else "")
    raise DataError(
        f"dataset {name!r}: {CLASSNAMES_FILE} not found at {where}. It holds the 1000 ImageNet "
        "classes, one '<wnid> <class name>' per line in label order (sorted by wnid), e.g. "
        "'n01440764 tench'; CoOp's README links the file used for the papers' numbers"
    )


def _wnid_samples(
    folder: Path, wnids: list[str], label_of: dict[str, int], names: tuple[str, ...]
) -> list[Sample]:
    samples: list[Sample] = []
    for wnid in wnids:
        directory = os.path.join(folder, wnid)
        label = label_of[wnid]
        classname = names[label]
        samples.extend(
            Sample(os.path.join(directory, f), label, classname) for f in list_files(directory)
        )
    return samples


def _unknown_wnids(folders: list[str], known: dict[str, str], where: Path, name: str) -> None:
    unknown = [f for f in folders if f not in known]
    if unknown:
        raise DataError(
            f"dataset {name!r}: {len(unknown)} folder(s) in {where} are not wnids of "
            f"{CLASSNAMES_FILE}: {', '.join(unknown[:5])}"
        )


# -- readers ---------------------------------------------------------------------------------


def load_split_file_dataset(ctx: DataContext, name: str) -> Splits:
    """A dataset described by a CoOp split file (``split_zhou_<Name>.json``)."""
    base = dataset_dir(ctx, name)
    layout = SPLIT_FILE_LAYOUTS[name]
    split_file = base / layout.split_file
    if not split_file.is_file():
        raise DataError(
            f"dataset {name!r}: split file not found: {split_file} (expected "
            f"{LAYOUTS[name]}; CoOp's DATASETS.md links the split files)"
        )
    image_dir = base / layout.image_dir if layout.image_dir else base
    return read_split_file(split_file, image_dir)


def load_imagenet(ctx: DataContext) -> Splits:
    """ImageNet: train from ``images/train``, test (and val, as in CoOp) from ``images/val``."""
    name = "imagenet"
    base = dataset_dir(ctx, name)
    classnames = _classnames_for(ctx, name, base)
    names = tuple(classnames.values())
    label_of = {wnid: i for i, wnid in enumerate(classnames)}
    splits = []
    for split in ("train", "val"):
        folder = base / "images" / split
        _require_dir(folder, name)
        wnids = list_subdirs(folder)
        _unknown_wnids(wnids, classnames, folder, name)
        splits.append(tuple(_wnid_samples(folder, wnids, label_of, names)))
    train, test = splits
    return Splits(train=train, val=test, test=test, classnames=names)


def load_imagenetv2(ctx: DataContext) -> Splits:
    """ImageNet-V2 (matched frequency): folder ``i`` holds ImageNet class ``i``; test only."""
    name = "imagenetv2"
    base = dataset_dir(ctx, name)
    names = tuple(_classnames_for(ctx, name, base).values())
    folder = base / "imagenetv2-matched-frequency-format-val"
    _require_dir(folder, name)
    samples: list[Sample] = []
    for sub in list_subdirs(folder):
        if not sub.isdigit() or int(sub) >= len(names):
            raise DataError(
                f"dataset {name!r}: unexpected folder {folder / sub} (expected 0..{len(names) - 1})"
            )
        label = int(sub)
        directory = os.path.join(folder, sub)
        samples.extend(
            Sample(os.path.join(directory, f), label, names[label]) for f in list_files(directory)
        )
    samples.sort(key=lambda s: (s.label, s.path))
    return Splits(train=(), val=(), test=tuple(samples), classnames=names)


def load_imagenet_sketch(ctx: DataContext) -> Splits:
    """ImageNet-Sketch: ``images/<wnid>/`` with ImageNet's labels; test only."""
    name = "imagenet_sketch"
    base = dataset_dir(ctx, name)
    classnames = _classnames_for(ctx, name, base)
    names = tuple(classnames.values())
    label_of = {wnid: i for i, wnid in enumerate(classnames)}
    folder = base / "images"
    _require_dir(folder, name)
    wnids = list_subdirs(folder)
    _unknown_wnids(wnids, classnames, folder, name)
    test = _wnid_samples(folder, wnids, label_of, names)
    return Splits(train=(), val=(), test=tuple(test), classnames=names)


def _load_subset(ctx: DataContext, name: str, image_folder: str) -> Splits:
    base = dataset_dir(ctx, name)
    classnames = _classnames_for(ctx, name, base)
    folder = base / image_folder
    _require_dir(folder, name)
    wnids = list_subdirs(folder)  # files such as README.txt are not folders
    _unknown_wnids(wnids, classnames, folder, name)
    names = tuple(classnames[w] for w in wnids)
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    test = _wnid_samples(folder, wnids, label_of, names)
    return Splits(train=(), val=(), test=tuple(test), classnames=names)


def load_imagenet_a(ctx: DataContext) -> Splits:
    """ImageNet-A: labels index the sorted 200 wnid folders; only their 200 class names."""
    return _load_subset(ctx, "imagenet_a", "imagenet-a")


def load_imagenet_r(ctx: DataContext) -> Splits:
    """ImageNet-R: labels index the sorted 200 wnid folders; only their 200 class names."""
    return _load_subset(ctx, "imagenet_r", "imagenet-r")


def read_fgvc_variants(path: Path) -> list[str]:
    """``variants.txt``: one variant (class) name per line, in label order."""
    if not path.is_file():
        raise DataError(
            f"dataset 'fgvc_aircraft': {path} not found (expected {LAYOUTS['fgvc_aircraft']})"
        )
    variants = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(variants)) != len(variants):
        raise DataError(f"{path}: a variant name appears twice")
    return variants


def read_fgvc_split(path: Path, image_dir: Path, label_of: dict[str, int]) -> list[Sample]:
    """``images_variant_<split>.txt``: ``<image id> <variant name>`` per line."""
    if not path.is_file():
        raise DataError(
            f"dataset 'fgvc_aircraft': {path} not found (expected {LAYOUTS['fgvc_aircraft']})"
        )
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        image_id, _, variant = line.strip().partition(" ")
        variant = variant.strip()
        if not variant:
            raise DataError(f"{path}:{number}: expected '<image id> <variant>', got {line!r}")
        if variant not in label_of:
            raise DataError(f"{path}:{number}: variant {variant!r} is not in variants.txt")
        samples.append(Sample(str(image_dir / f"{image_id}.jpg"), label_of[variant], variant))
    return samples


def load_fgvc_aircraft(ctx: DataContext) -> Splits:
    """FGVC-Aircraft (variants): labels follow the order of ``variants.txt``."""
    base = dataset_dir(ctx, "fgvc_aircraft")
    variants = read_fgvc_variants(base / "variants.txt")
    label_of = {v: i for i, v in enumerate(variants)}
    image_dir = base / "images"
    train, val, test = (
        tuple(read_fgvc_split(base / f"images_variant_{s}.txt", image_dir, label_of))
        for s in ("train", "val", "test")
    )
    return Splits(train=train, val=val, test=test, classnames=tuple(variants))


def _split_file_loader(name: str) -> Callable[[DataContext], Splits]:
    def load(ctx: DataContext) -> Splits:
        return load_split_file_dataset(ctx, name)

    load.__doc__ = f"Read {name} from its CoOp split file."
    return load


LOADERS: dict[str, Callable[[DataContext], Splits]] = {
    "imagenet": load_imagenet,
    "fgvc_aircraft": load_fgvc_aircraft,
    "imagenetv2": load_imagenetv2,
    "imagenet_sketch": load_imagenet_sketch,
    "imagenet_a": load_imagenet_a,
    "imagenet_r": load_imagenet_r,
    **{name: _split_file_loader(name) for name in SPLIT_FILE_LAYOUTS},
}


def standard_specs() -> list[DatasetSpec]:
    """The 15 standard datasets, in the papers' column order."""
    return [
        DatasetSpec(
            name=e.name,
            world=WORLD,
            role=e.role,
            template=e.template,
            load=LOADERS[e.name],
            folder=e.folder,
            title=e.title,
            source=e.source,
        )
        for e in _ENTRIES
    ]


@hookimpl
def register_datasets(register) -> None:
    """Register the 15 standard datasets."""
    for spec in standard_specs():
        register(spec)
