"""The feature cache: one encoder pass per (backbone, image, view), never stale."""

from __future__ import annotations

import torch

from benchmark.datasets.spec import Augmentation
from benchmark.datasets.splitfile import read_split_file
from benchmark.features import FeatureCache
from benchmark.views import TEST_VIEW
from tests.conftest import TOY_DATASET


def _samples(toy_root):
    base = toy_root / TOY_DATASET
    return read_split_file(base / f"split_zhou_{TOY_DATASET}.json", base / "images").train[:6]


class Counting:
    """Counts images through the real encoder (not a mock: it calls it)."""

    def __init__(self, backbone):
        self.backbone, self.images = backbone, 0
        self.original = backbone.encode_images

    def __call__(self, pixels):
        self.images += len(pixels)
        return self.original(pixels)


def test_each_view_is_encoded_once_and_reused(tiny_engine, toy_root, tmp_path):
    samples = _samples(toy_root)
    backbone = tiny_engine.backbone
    counter = Counting(backbone)
    backbone.encode_images = counter
    cache = FeatureCache(tmp_path / "c", backbone)
    first = cache.views(samples, [TEST_VIEW, 0, 1])
    assert first.shape == (3, 6, backbone.embed_dim)
    assert counter.images == 18
    again = FeatureCache(tmp_path / "c", backbone).views(samples, [1, TEST_VIEW])  # from disk
    assert counter.images == 18
    torch.testing.assert_close(again[0], first[2])
    assert not torch.allclose(first[1], first[2])  # epochs see different augmentations


def test_views_are_deterministic(tiny_engine, toy_root, tmp_path):
    samples = _samples(toy_root)
    a = FeatureCache(tmp_path / "a", tiny_engine.backbone).features(samples, view=3)
    b = FeatureCache(tmp_path / "b", tiny_engine.backbone).features(samples, view=3)
    torch.testing.assert_close(a, b)


def test_each_seed_draws_its_own_views(tiny_engine, toy_root, tmp_path):
    """Runs of another seed see other augmentations (as the reference's), the test view is
    shared, and a seed's views are the same in any cache folder."""
    samples = _samples(toy_root)
    cache = FeatureCache(tmp_path / "a", tiny_engine.backbone)
    one, two = cache.features(samples, 0, seed=1), cache.features(samples, 0, seed=2)
    assert not torch.allclose(one, two)
    assert cache.view_folder(0, seed=1) != cache.view_folder(0, seed=2)
    assert cache.view_folder(TEST_VIEW, seed=1) == cache.view_folder(TEST_VIEW, seed=2)
    elsewhere = FeatureCache(tmp_path / "b", tiny_engine.backbone).features(samples, 0, seed=2)
    torch.testing.assert_close(elsewhere, two)


def test_damaged_shard_is_rebuilt(tiny_engine, toy_root, tmp_path):
    samples = _samples(toy_root)
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    expected = cache.features(samples)
    (shard,) = cache.view_folder(TEST_VIEW).glob("*.safetensors")
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    rebuilt = FeatureCache(tmp_path / "c", tiny_engine.backbone).features(samples)
    torch.testing.assert_close(rebuilt, expected)


def test_other_backbone_gets_its_own_folder(tiny_engine, tmp_path):
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    assert tiny_engine.backbone.fingerprint in str(cache.folder)
    assert str(cache.view_folder(0)).startswith(str(cache.folder))


def test_each_augmentation_has_its_own_views(tiny_engine, toy_root, tmp_path):
    samples = _samples(toy_root)
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    mild = Augmentation(crop_scale=(0.5, 1.0), flip=False)
    assert cache.view_folder(0, mild) != cache.view_folder(0)
    assert cache.view_folder(TEST_VIEW, mild) == cache.view_folder(TEST_VIEW)
    reference, other = cache.features(samples, 0), cache.features(samples, 0, mild)
    assert not torch.allclose(reference, other)
    torch.testing.assert_close(
        FeatureCache(tmp_path / "c", tiny_engine.backbone).features(samples, 0, mild), other
    )


def test_no_flip_keeps_the_crop_and_never_mirrors():
    from PIL import Image

    from benchmark.views import render

    image = Image.new("RGB", (40, 40), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, 20, 40))  # left half black
    whole = Augmentation(crop_scale=(1.0, 1.0), flip=False)
    for view in range(12):
        pixels = render(image, view, 32, whole)
        assert pixels[:, :, :8].mean() < pixels[:, :, -8:].mean()  # left stays dark


def test_edited_image_is_encoded_again(tiny_engine, toy_root, tmp_path):
    import shutil

    samples = _samples(toy_root)[:1]
    copy = tmp_path / "img.png"
    shutil.copy(samples[0].path, copy)
    from benchmark.datasets.spec import Sample

    sample = [Sample(str(copy), 0, "x")]
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    before = cache.features(sample)
    shutil.copy(_samples(toy_root)[3].path, copy)  # same path, other content
    after = FeatureCache(tmp_path / "c", tiny_engine.backbone).features(sample)
    assert not torch.allclose(before, after)


def test_shard_damaged_in_place_is_rebuilt(tiny_engine, toy_root, tmp_path):
    samples = _samples(toy_root)
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    expected = cache.features(samples)
    (shard,) = cache.view_folder(TEST_VIEW).glob("*.safetensors")
    data = bytearray(shard.read_bytes())
    data[-8:] = b"\xff" * 8  # same size, last feature's bytes overwritten
    shard.write_bytes(bytes(data))
    rebuilt = FeatureCache(tmp_path / "c", tiny_engine.backbone).features(samples)
    torch.testing.assert_close(rebuilt, expected)


def test_training_views_depend_on_the_image_not_on_where_it_lies(tiny_engine, toy_root, tmp_path):
    import shutil

    from benchmark.datasets.spec import Sample

    original = _samples(toy_root)[0].path
    elsewhere = tmp_path / "another" / "folder" / "renamed.png"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(original, elsewhere)
    views = range(3)
    here = FeatureCache(tmp_path / "c1", tiny_engine.backbone).views(
        [Sample(original, 0, "x")], views
    )
    there = FeatureCache(tmp_path / "c2", tiny_engine.backbone).views(
        [Sample(str(elsewhere), 0, "x")], views
    )
    torch.testing.assert_close(here, there)
    assert not torch.allclose(here[0], here[1])  # and each view is its own draw


def test_a_cache_that_cannot_be_written_is_an_environment_error(tiny_engine, toy_root, tmp_path):
    import pytest

    from benchmark.errors import EXIT_ENVIRONMENT, UserError

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(UserError) as error:
        FeatureCache(blocker, tiny_engine.backbone).features(_samples(toy_root))
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert f"cannot write the feature cache in {blocker}" in str(error.value)


def test_a_full_disk_while_writing_features_leaves_no_shard(
    tiny_engine, toy_root, tmp_path, monkeypatch
):
    import errno
    import os

    import pytest

    from benchmark.errors import EXIT_ENVIRONMENT, UserError

    def full(tensors, path, metadata=None):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("benchmark.features.save_file", full)
    cache = FeatureCache(tmp_path / "c", tiny_engine.backbone)
    with pytest.raises(UserError) as error:
        cache.features(_samples(toy_root))
    assert error.value.exit_code == EXIT_ENVIRONMENT
    assert "No space left on device" in str(error.value)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
