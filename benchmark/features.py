"""The feature cache: the frozen image encoder runs once per (backbone, image, view).

Features live under ``<cache>/features/<backbone fingerprint>/<transform id>/<view>/`` as
safetensors shards (no pickle, nothing executes on load); the transform id names the test
transform, or the training augmentation of the dataset, and a training view's folder names
the seed whose runs draw it (``seed1-view0``). Each shard's metadata repeats the
backbone fingerprint, transform id and view and lists its images' keys; an image's key is
its absolute path with its size and modification time, so an edited or replaced image is
encoded again. A shard that is truncated, whose feature bytes do not match their checksum, or
whose metadata does not match is deleted and its images are encoded again; it is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISREG

import torch
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from benchmark.backbone import Backbone
from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Augmentation, Sample
from benchmark.errors import EXIT_ENVIRONMENT, DataError, UserError, first_line
from benchmark.views import TEST_VIEW, render, transform_id

BATCH_SIZE = 64


def image_key(path: str) -> str:
    """The cache key of an image: its absolute path, size and modification time.

    Only regular files are images: a named pipe, a device or a folder listed as an image is
    refused here, before anything opens it (opening a named pipe waits for a writer forever).
    """
    try:
        stat = os.stat(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"image not found: {path}") from exc
    if not S_ISREG(stat.st_mode):
        raise DataError(f"image {path} is not a regular file (a folder, named pipe or device)")
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


def _checksum(features: torch.Tensor) -> str:
    """Digest of the feature bytes: a shard damaged in place (same size) is detected."""
    return hashlib.blake2b(features.contiguous().numpy().tobytes(), digest_size=16).hexdigest()


def _view_name(view: int, seed: int) -> str:
    return "test" if view == TEST_VIEW else f"seed{seed}-view{view}"


class _Images(Dataset):
    """Decodes each image once and renders all the views it needs."""

    def __init__(
        self,
        paths: list[str],
        views: list[int],
        size: int,
        augmentation: Augmentation,
        seed: int = 0,
    ) -> None:
        self.paths, self.views, self.size = paths, views, size
        self.augmentation, self.seed = augmentation, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        path = self.paths[index]
        try:
            with warnings.catch_warnings():
                # PIL only warns between its two pixel limits: refuse such images too
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    rgb = image.convert("RGB")  # greyscale and palette images become RGB
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return index, f"{path}: too many pixels to decode safely ({exc})"
        except (OSError, UnidentifiedImageError) as exc:
            return index, f"{path}: {exc}"
        return index, torch.stack(
            [render(rgb, v, self.size, self.augmentation, self.seed) for v in self.views]
        )


def _collate(items):
    return items


Slot = tuple[str, int, int]  # (transform id, view, seed)


class FeatureCache:
    """Cached image features of one backbone; ask for samples and views, get a tensor.

    Training views (``view >= 0``) are rendered with the ``augmentation`` of the dataset the
    samples come from, with the draws of runs of ``seed``; the test view (:data:`TEST_VIEW`)
    has no augmentation and no seed.
    """

    def __init__(self, root: Path, backbone: Backbone, workers: int | None = None) -> None:
        self.backbone = backbone
        self.folder = Path(root) / "features" / backbone.fingerprint
        self.workers = workers
        self.encoding_seconds = 0.0  # time spent encoding images (and writing them) so far
        self._index: dict[Slot, dict[str, torch.Tensor]] = {}

    # -- reading ------------------------------------------------------------------------

    def _slot(self, view: int, augmentation: Augmentation, seed: int) -> Slot:
        size = self.backbone.image_size
        return transform_id(size, view, augmentation), view, 0 if view == TEST_VIEW else seed

    def _folder(self, slot: Slot) -> Path:
        transform, view, seed = slot
        return self.folder / transform / _view_name(view, seed)

    def view_folder(
        self, view: int, augmentation: Augmentation = REFERENCE_AUGMENTATION, seed: int = 0
    ) -> Path:
        """The folder of the shards of ``view`` made with ``augmentation`` for ``seed``."""
        return self._folder(self._slot(view, augmentation, seed))

    def _meta(self, slot: Slot) -> dict[str, str]:
        transform, view, seed = slot
        return {
            "backbone": self.backbone.fingerprint,
            "transform": transform,
            "view": str(view),
            "seed": str(seed),
        }

    def _load(self, slot: Slot) -> dict[str, torch.Tensor]:
        if slot in self._index:
            return self._index[slot]
        index: dict[str, torch.Tensor] = {}
        folder = self._folder(slot)
        expected = self._meta(slot)
        for shard in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                with safe_open(str(shard), framework="pt") as handle:
                    meta = handle.metadata() or {}
                tensors = load_file(str(shard))
                keys = json.loads(meta.get("keys", "[]"))
                features = tensors["features"]
                valid = (
                    all(meta.get(k) == v for k, v in expected.items())
                    and len(keys) == len(features)
                    and meta.get("checksum") == _checksum(features)
                )
            except (SafetensorError, OSError, KeyError, ValueError, json.JSONDecodeError):
                valid = False
            if not valid:
                shard.unlink(missing_ok=True)  # never serve a damaged or foreign shard
                continue
            index.update(zip(keys, features, strict=True))
        self._index[slot] = index
        return index

    def features(
        self,
        samples: Sequence[Sample],
        view: int = TEST_VIEW,
        augmentation: Augmentation = REFERENCE_AUGMENTATION,
        seed: int = 0,
    ) -> torch.Tensor:
        """Features (N, D) of the samples' images in ``view``, on the backbone's device."""
        return self.views(samples, [view], augmentation, seed)[0]

    def views(
        self,
        samples: Sequence[Sample],
        views: Sequence[int],
        augmentation: Augmentation = REFERENCE_AUGMENTATION,
        seed: int = 0,
    ) -> torch.Tensor:
        """Features (V, N, D) of the samples' images in each of ``views``; extracts misses."""
        keys = self.ensure(samples, views, augmentation, seed)
        slots = [self._slot(v, augmentation, seed) for v in views]
        out = (
            torch.stack([torch.stack([self._index[slot][k] for k in keys]) for slot in slots])
            if keys
            else torch.empty(len(views), 0, self.backbone.embed_dim)
        )
        return out.to(self.backbone.device)

    def hold(
        self,
        samples: Sequence[Sample],
        view: int,
        features: torch.Tensor,
        augmentation: Augmentation = REFERENCE_AUGMENTATION,
        seed: int = 0,
    ) -> None:
        """Hold given features (N, D) of the samples' ``view`` in memory, as if encoded: for
        synthetic benchmarks. Nothing is written to disk."""
        index = self._load(self._slot(view, augmentation, seed))
        index.update(zip((image_key(s.path) for s in samples), features, strict=True))

    def ensure(
        self,
        samples: Sequence[Sample],
        views: Sequence[int],
        augmentation: Augmentation = REFERENCE_AUGMENTATION,
        seed: int = 0,
    ) -> list[str]:
        """Extract, in one pass, every missing view of the samples (training views: those of
        ``seed``); returns their keys."""
        paths = [s.path for s in samples]
        keys = [image_key(p) for p in paths]
        missing: dict[str, str] = {}
        missing_views: set[int] = set()
        for view in views:
            index = self._load(self._slot(view, augmentation, seed))
            for key, path in zip(keys, paths, strict=True):
                if key not in index:
                    missing[key] = path
                    missing_views.add(view)
        if missing:
            self._extract(list(missing.items()), sorted(missing_views), augmentation, seed)
        return keys

    # -- writing ------------------------------------------------------------------------

    def _workers(self, n_images: int) -> int:
        if self.workers is not None:
            return self.workers
        return 0 if n_images < 512 else min(8, os.cpu_count() or 1)

    def _extract(
        self,
        items: list[tuple[str, str]],
        views: list[int],
        augmentation: Augmentation,
        seed: int,
    ) -> None:
        start = time.perf_counter()
        keys = [k for k, _ in items]
        paths = [p for _, p in items]
        loader = DataLoader(
            _Images(paths, views, self.backbone.image_size, augmentation, seed),
            batch_size=max(1, BATCH_SIZE // len(views)),
            num_workers=self._workers(len(paths)),
            collate_fn=_collate,
        )
        per_view: dict[int, list[torch.Tensor]] = {v: [] for v in views}
        done_keys: list[str] = []
        total = len(paths) * len(views)  # a bar on a terminal only (disable=None), not in a log
        bar = tqdm(total=total, desc="encoding images", unit="view", leave=False, disable=None)
        for batch in loader:
            for _, pixels in batch:
                if isinstance(pixels, str):
                    raise DataError(f"cannot read image {pixels}")
            pixels = torch.cat([p for _, p in batch])  # (B * V, 3, H, W), image-major
            encoded = self.backbone.encode_images(pixels).cpu()
            encoded = encoded.view(len(batch), len(views), -1)
            for j, view in enumerate(views):
                per_view[view].append(encoded[:, j])
            done_keys.extend(keys[i] for i, _ in batch)
            bar.update(len(batch) * len(views))
        bar.close()
        for view in views:
            slot = self._slot(view, augmentation, seed)
            features = torch.cat(per_view[view])
            self._write_shard(slot, done_keys, features)
            self._index[slot].update(zip(done_keys, features, strict=True))
        self.encoding_seconds += time.perf_counter() - start

    def _write_shard(self, slot: Slot, keys: list[str], features: torch.Tensor) -> None:
        """Write a shard atomically; a cache that cannot be written (a full disk, a file in
        the way) is a one-line environment error, leaving no partial shard."""
        folder = self._folder(slot)
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
        meta = dict(self._meta(slot), keys=json.dumps(keys), checksum=_checksum(features))
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".shard-", suffix=".tmp")
            os.close(fd)
            save_file({"features": features.contiguous()}, tmp, metadata=meta)
            os.replace(tmp, folder / f"{name}.safetensors")
        except OSError as exc:
            raise UserError(
                f"cannot write the feature cache in {self.folder.parent.parent} "
                f"({exc.strerror or first_line(exc)})",
                EXIT_ENVIRONMENT,
            ) from exc
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
