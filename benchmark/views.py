"""The image views of the reference code, made deterministic.

Test view: resize the shorter side to the model's size (bicubic), centre crop, CLIP
normalisation. Training view ``e`` of an image for seed ``s``: RandomResizedCrop(scale=(0.08,
1), ratio (3/4, 4/3), bicubic) + horizontal flip with p = 0.5 + CLIP normalisation, with its
random draws seeded by (the image's pixels, s, e). View ``e`` is the augmentation of epoch
``e``: every run of seed ``s`` draws new augmentations each epoch, as the reference code
does, and runs of another seed draw others; all methods and shot counts of one seed see the
same views, which pairs their comparison. The draws depend on the pixels, not on where the
file lies, so results do not depend on the data or cache folder. A dataset may declare
another crop scale or no flip (:class:`~benchmark.datasets.spec.Augmentation`).
"""

from __future__ import annotations

import hashlib
import math
import random

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from benchmark.backbone import CLIP_MEAN, CLIP_STD
from benchmark.datasets.spec import REFERENCE_AUGMENTATION, Augmentation

TEST_VIEW = -1
CROP_RATIO = (3 / 4, 4 / 3)


def transform_id(image_size: int, view: int, augmentation: Augmentation) -> str:
    """Names a view's transform, so that features of another transform are never used."""
    if view == TEST_VIEW:
        return f"clip-s{image_size}-centre-bicubic-v1"
    return f"clip-s{image_size}-{augmentation.id}-bicubic-v3"


def _rng(image: Image.Image, view: int, seed: int) -> random.Random:
    """The random draws of ``view`` of ``image`` for runs of ``seed``, seeded by the image's
    size, mode and pixels."""
    digest = hashlib.sha256(f"{image.size}|{image.mode}|{seed}|{view}|".encode())
    digest.update(image.tobytes())
    return random.Random(int.from_bytes(digest.digest()[:8], "little"))


def _crop_box(
    width: int, height: int, scale: tuple[float, float], rng: random.Random
) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (top, left, height, width), torchvision's algorithm."""
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    ratio = width / height  # fallback: centre crop of the whole image
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def render(
    image: Image.Image,
    view: int,
    size: int,
    augmentation: Augmentation = REFERENCE_AUGMENTATION,
    seed: int = 0,
) -> torch.Tensor:
    """The normalised pixel tensor of ``view`` of an RGB image (a training view: for runs of
    ``seed``)."""
    if view == TEST_VIEW:
        image = TF.center_crop(TF.resize(image, size, InterpolationMode.BICUBIC), size)
    else:
        rng = _rng(image, view, seed)
        top, left, h, w = _crop_box(image.width, image.height, augmentation.crop_scale, rng)
        image = TF.resized_crop(image, top, left, h, w, [size, size], InterpolationMode.BICUBIC)
        flip = rng.random() < 0.5  # drawn either way: a view's crop never depends on the flip
        if flip and augmentation.flip:
            image = TF.hflip(image)
    return TF.normalize(TF.to_tensor(image), CLIP_MEAN, CLIP_STD)
