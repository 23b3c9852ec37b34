"""The offline mini world as a dataset plugin (entry point ``mini_world``, world ``"mini"``).

Ten procedurally generated datasets (:mod:`benchmark.miniworld.generate`), the mini
analogues of the papers' datasets:

- source ``mini_shapes`` (ImageNet): 120 classes, colour x shape ("red circle"), cluttered
  and noisy photos (noisier than any pretraining image);
- targets (the cross-dataset datasets): ``mini_patterns`` (fill pattern x shape, 40),
  ``mini_counts`` (count x shape, "three stars", 32, cartoons), ``mini_positions`` (shape x
  position, "star on the left", 40, pixel art), ``mini_textures`` (colour x texture, "red
  striped", 32), ``mini_sizes`` (size x shape, "small star", 24, noisy photos);
- shifts of the source (domain generalisation): ``mini_shapes_v2`` (ImageNetV2: the same
  classes, a new draw with a little more noise, 120), ``mini_sketch`` (ImageNet-Sketch:
  thin outlines, 120), ``mini_noisy`` (ImageNet-A: still more noise and clutter, 60 of the 120
  classes) and ``mini_pixel`` (ImageNet-R: pixel-art rendition, the other 60).

The hand-crafted templates are CoOp's kind of prompt ("a photo of a {}." for the source, as
for ImageNet). The pretraining captions name the styles ("a noisy image of", "a cartoon of",
"pixel art of") and never say "a photo of a": the gap between a template and its dataset's
images is what a learned context can close, as on real data.

Images are generated on first use into ``<cache_dir>/miniworld`` (about 15k PNGs, 25 s).
This module imports neither torch nor numpy: generation is imported inside ``load``.
"""

from __future__ import annotations

from functools import partial

from benchmark.datasets.spec import Augmentation, DataContext, DatasetSpec, Splits
from benchmark.hookspecs import hookimpl

WORLD = "mini"
SOURCE = "mini_shapes"
#: Training views of the mini world. Its 32-pixel images hold a shape whose outline is the
#: class: the reference's crops down to 8% of the area cut it away (a crop of half the image
#: already drops CoOp's training views from 82% to 52% zero-shot accuracy on mini_shapes), so
#: crops keep at least 90% of the image. Left and right are labels in ``mini_positions``:
#: no flip there.
AUGMENTATION = Augmentation(crop_scale=(0.9, 1.0))
NO_FLIP = {"mini_positions"}

#: name -> (role, split-file name, zero-shot template, title). The templates are CoOp-like
#: hand-crafted prompts; on purpose none of them is a phrasing of the pretraining captions.
DATASETS: dict[str, tuple[str, str, str, str]] = {
    "mini_shapes": ("source", "MiniShapes", "a photo of a {}.", "Mini Shapes"),
    "mini_patterns": ("target", "MiniPatterns", "a {}, a patterned shape.", "Mini Patterns"),
    "mini_counts": ("target", "MiniCounts", "a photo of {}.", "Mini Counts"),
    "mini_positions": ("target", "MiniPositions", "a photo of a {}.", "Mini Positions"),
    "mini_textures": ("target", "MiniTextures", "{} texture.", "Mini Textures"),
    "mini_sizes": ("target", "MiniSizes", "a photo of a {}.", "Mini Sizes"),
    "mini_shapes_v2": ("shift", "MiniShapesV2", "a photo of a {}.", "Mini Shapes V2"),
    "mini_sketch": ("shift", "MiniSketch", "a photo of a {}.", "Mini Sketch"),
    "mini_noisy": ("shift", "MiniNoisy", "a photo of a {}.", "Mini Noisy"),
    "mini_pixel": ("shift", "MiniPixel", "a photo of a {}.", "Mini Pixel"),
}


def world_root(ctx: DataContext):
    return ctx.cache_dir / "miniworld"


def load(name: str, ctx: DataContext) -> Splits:
    """Generate the mini world if needed, then read ``name``'s split file."""
    from benchmark.datasets.splitfile import read_split_file
    from benchmark.miniworld.generate import ensure_generated

    root = ensure_generated(world_root(ctx))
    split_name = DATASETS[name][1]
    return read_split_file(root / name / f"split_zhou_{split_name}.json", root / name / "images")


@hookimpl
def register_datasets(register) -> None:
    for name, (role, _split, template, title) in DATASETS.items():
        register(
            DatasetSpec(
                name=name,
                world=WORLD,
                role=role,
                template=template,
                load=partial(load, name),
                folder=name,
                title=title,
                source=SOURCE if role == "shift" else None,
                augmentation=Augmentation(AUGMENTATION.crop_scale, flip=name not in NO_FLIP),
            )
        )
