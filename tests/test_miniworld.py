"""The offline mini world: deterministic generation, readable splits, the shipped tiny CLIP."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.datasets.spec import DataContext
from benchmark.datasets.splitfile import read_split_file
from benchmark.miniworld import generate as g
from benchmark.miniworld import plugin

SCALE = 0.05  # one image per class and split: the same code path, a fraction of the time


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return g.ensure_generated(tmp_path_factory.mktemp("cache") / "miniworld", scale=SCALE)


def _specs():
    specs = []
    plugin.register_datasets(specs.append)
    return {s.name: s for s in specs}


def test_same_seed_same_bytes_other_seed_other_bytes(world, tmp_path):
    small = [d for d in g.datasets(SCALE) if d.name in ("mini_shapes", "mini_counts", "mini_pixel")]
    for seed, where in ((g.SEED, tmp_path / "again"), (g.SEED + 1, tmp_path / "other")):
        for d in small:
            g.generate_dataset(d, g.dataset_index(d.name), where, seed)
    again, other = _hashes(tmp_path / "again"), _hashes(tmp_path / "other")
    reference = {k: v for k, v in _hashes(world).items() if k in again}
    assert again and again == reference
    images = [k for k in again if k.endswith(".png")]
    assert sum(again[k] != other[k] for k in images) > 0.9 * len(images)


def test_ensure_generated_is_idempotent_and_marked(world):
    marker = world / "VERSION"
    assert marker.read_text().startswith(g.VERSION)
    before = marker.stat().st_mtime_ns
    assert g.ensure_generated(world, scale=SCALE) == world
    assert marker.stat().st_mtime_ns == before


def test_registered_datasets_and_roles():
    specs = _specs()
    roles = {name: s.role for name, s in specs.items()}
    assert list(roles.values()).count("source") == 1
    assert list(roles.values()).count("target") >= 4
    assert list(roles.values()).count("shift") >= 3
    for s in specs.values():
        assert s.world == "mini" and s.name.startswith("mini_") and "{}" in s.template
        assert s.source == ("mini_shapes" if s.role == "shift" else None)


def test_splits_read_with_expected_classes(world):
    source_names = None
    for d in g.datasets(SCALE):
        base = world / d.folder
        splits = read_split_file(base / f"split_zhou_{d.split_name}.json", base / "images")
        assert splits.classnames == d.classes
        assert len(set(d.classes)) == len(d.classes)
        n = len(d.classes)
        assert (len(splits.train), len(splits.val), len(splits.test)) == (
            n * d.train, n * d.val, n * d.test,
        )  # fmt: skip
        assert all(Path(s.path).is_file() for s in splits.test)
        if d.role == "source":
            source_names = set(d.classes)
            assert n >= 100
    for d in g.datasets():
        if d.role == "shift":
            assert d.train == d.val == 0 and d.test > 0
            assert set(d.classes) <= source_names
        else:
            assert d.train >= 16
    assert sum(len(d.classes) < 120 for d in g.datasets() if d.role == "shift") >= 2


def test_plugin_load_generates_into_the_cache(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(g, "ensure_generated", lambda root: calls.append(root) or world_stub)
    world_stub = tmp_path / "stub"
    d = g.spec_of("mini_sizes")
    g.generate_dataset(d, g.dataset_index(d.name), world_stub)
    splits = _specs()["mini_sizes"].load(DataContext(data_root=None, cache_dir=tmp_path))
    assert calls == [tmp_path / "miniworld"]
    assert len(splits.classnames) == 24 and len(splits.train) == 24 * d.train


def test_images_are_small_rgb(world):
    from PIL import Image

    path = next((world / "mini_shapes" / "images" / "test").rglob("*.png"))
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (g.SIZE, g.SIZE)


def test_listing_the_plugin_imports_nothing_heavy():
    code = (
        "import sys, benchmark.miniworld.plugin as p; p.register_datasets(lambda s: None); "
        "print(sorted(m for m in ('torch', 'open_clip', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shipped_checkpoint_loads_through_open_clip():
    import open_clip
    import torch

    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME, register_model_config

    assert CHECKPOINT.is_file(), f"missing {CHECKPOINT}"
    assert CHECKPOINT.stat().st_size <= 16 * 2**20
    register_model_config()
    register_model_config()  # idempotent
    model = open_clip.create_model(MODEL_NAME, pretrained=str(CHECKPOINT)).eval()
    tokens = open_clip.get_tokenizer(MODEL_NAME)(["a photo of a red circle.", "blue star"])
    with torch.no_grad():
        image = model.encode_image(torch.zeros(2, 3, 32, 32))
        text = model.encode_text(tokens)
    assert image.shape == text.shape == (2, 128)
    assert torch.isfinite(image).all() and torch.isfinite(text).all()


def test_training_views_keep_the_labels():
    """Left and right are labels of mini_positions: its views are never flipped; every mini
    dataset crops at most 10% of the area away, so the shape that is the class stays."""
    from benchmark.registry import build_registry

    registry = build_registry(autoload=False)
    for name in plugin.DATASETS:
        augmentation = registry.datasets.get(name).augmentation
        assert augmentation.flip == (name != "mini_positions")
        assert augmentation.crop_scale[0] >= 0.9


#: Two processes asking for the world at once. What is drawn does not matter here, only who
#: writes and who deletes: the drawing is replaced by a quick one that takes a moment, so
#: that the two generations overlap.
GENERATE_AND_READ = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from benchmark.miniworld import generate as g

def draw(out, seed, scale, workers=None):
    out.mkdir(parents=True)
    time.sleep(1.0)
    (out / "world.txt").write_text(str(seed))

g.generate = draw
root = Path(sys.argv[1])
print("ready", flush=True)
while not (root.parent / "go").exists():
    time.sleep(0.01)
world = g.ensure_generated(root)
seen = os.stat(world / "VERSION").st_ino
time.sleep(1.5)  # still reading while the other process finishes
assert (world / "world.txt").read_text() == str(g.SEED)
print("valid", seen, flush=True)
"""


def test_two_processes_generating_at_once_both_get_one_valid_world(tmp_path):
    script = tmp_path / "generate_and_read.py"
    script.write_text(GENERATE_AND_READ.format(repo=str(Path(__file__).resolve().parents[1])))
    root = tmp_path / "cache" / "miniworld"
    root.parent.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:  # both have imported everything: they start together
        assert process.stdout.readline().strip() == "ready"
    (tmp_path / "cache" / "go").touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    inodes = {out.split()[-1] for out, _ in outputs}
    # both read the same world, and it is still there: neither deleted the other's
    assert inodes == {str((root / "VERSION").stat().st_ino)}
    assert sorted(p.name for p in root.parent.iterdir()) == ["go", "miniworld", "miniworld.lock"]


def test_what_a_killed_generator_left_is_removed(tmp_path, monkeypatch):
    def draw(out, seed, scale, workers=None):
        out.mkdir(parents=True)
        (out / "world.txt").write_text("drawn")

    monkeypatch.setattr(g, "generate", draw)
    root = tmp_path / "miniworld"
    leftover = root.with_name(f"{root.name}.tmp-999999")
    (leftover / "mini_shapes").mkdir(parents=True)
    g.ensure_generated(root)
    assert (root / "world.txt").is_file() and (root / "VERSION").is_file()
    assert not leftover.exists()


def test_a_full_disk_while_generating_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from benchmark.errors import EXIT_ENVIRONMENT, UserError

    def draw(out, seed, scale, workers=None):
        out.mkdir(parents=True)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "a.png"))

    monkeypatch.setattr(g, "generate", draw)
    with pytest.raises(UserError) as error:
        g.ensure_generated(tmp_path / "miniworld")
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert "No space left on device" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["miniworld.lock"]
