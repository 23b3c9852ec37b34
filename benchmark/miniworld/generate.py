"""Procedural images of the offline mini world, written in CoOp's layout.

Everything here is deterministic: every image is drawn from its own random stream, seeded
by ``(seed, dataset, split, class, index)``, so one image never depends on another, and
PNGs are written with fixed parameters and no metadata. The same seed gives the same bytes.

Layout written under ``root`` (one folder per dataset, as CoOp's datasets)::

    <root>/<folder>/images/<split>/<class_slug>/<index>.png
    <root>/<folder>/split_zhou_<Name>.json     {"train"|"val"|"test": [[rel_path, label, name]]}
    <root>/VERSION                              written last: the done-marker

The concepts of the world (colours, shapes, fill patterns, counts, positions, sizes) and the
rendering styles (photo, plain, cartoon, sketch, noisy, pixel art) are shared with the
pretraining captions of :mod:`benchmark.miniworld.pretrain`, which draws its images with the
same renderers. The datasets draw some styles harder than pretraining did (``Item.level``:
more noise and clutter, coarser pixels, thinner lines), as benchmark images differ from web
captions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmark.errors import EXIT_ENVIRONMENT, UserError
from benchmark.locking import exclusive

#: Bump when anything changes what is generated; a cache with another version is rebuilt.
VERSION = "miniworld-6"
SEED = 2024
SIZE = 32  # stored image size (the tiny CLIP's input size)
SS = 4  # supersampling factor of the renderer
BIG = SIZE * SS

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (235, 215, 25),
    "green": (35, 160, 55),
    "cyan": (30, 200, 215),
    "blue": (35, 70, 215),
    "purple": (135, 45, 185),
    "pink": (245, 125, 190),
    "brown": (125, 75, 35),
    "black": (20, 20, 20),
}
SHAPES = (
    "circle", "square", "triangle", "star", "heart", "cross",
    "diamond", "ring", "arrow", "crescent", "bolt", "rectangle",
)  # fmt: skip
PLURAL = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}
PATTERNS = ("striped", "dotted", "checkered", "zigzag")
COUNTS = ("one", "two", "three", "four")
POSITIONS = {"left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75)}
POSITION_PHRASE = {
    "left": "{} on the left",
    "right": "{} on the right",
    "top": "{} at the top",
    "bottom": "{} at the bottom",
}
SIZES = {"small": (0.12, 0.17), "large": (0.36, 0.44)}
STYLES = ("photo", "plain", "cartoon", "sketch", "noisy", "pixel")

SOURCE_CLASSES = tuple((c, s) for c in COLOURS for s in SHAPES)  # 120 classes "red circle"


# -- drawing -----------------------------------------------------------------------------------


def _polygon(shape: str) -> list[tuple[float, float]] | None:
    """Unit polygons (radius about 1, y down) of the polygonal shapes."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "rectangle":
        return [(-1.0, -0.45), (1.0, -0.45), (1.0, 0.45), (-1.0, 0.45)]
    if shape == "triangle":
        return [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]
    if shape == "bolt":  # a lightning bolt
        return [(-0.15, -1), (0.65, -1), (0.2, -0.2), (0.7, -0.2), (-0.4, 1), (-0.05, 0.1),
                (-0.6, 0.1)]  # fmt: skip
    if shape == "star":
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.42
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        return pts
    if shape == "cross":
        w = 0.33
        return [
            (-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
            (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w),
        ]  # fmt: skip
    if shape == "arrow":
        return [(-1, -0.25), (0.1, -0.25), (0.1, -0.7), (1, 0), (0.1, 0.7), (0.1, 0.25), (-1, 0.25)]
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [(float(a) / 17, (float(b) + 2) / 17) for a, b in zip(x, y, strict=True)]
    return None


def shape_mask(shape: str, cx: float, cy: float, r: float, angle: float, n: int = BIG):
    """Float mask in [0, 1] of one shape on an ``n``-pixel canvas; positions in [0, 1]."""
    img = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(img)
    cxp, cyp, rp = cx * n, cy * n, r * n
    poly = _polygon(shape)
    if poly is not None:
        ca, sa = math.cos(angle), math.sin(angle)
        pts = [(cxp + rp * (x * ca - y * sa), cyp + rp * (x * sa + y * ca)) for x, y in poly]
        draw.polygon(pts, fill=255)
    elif shape == "circle":
        draw.ellipse([cxp - rp, cyp - rp, cxp + rp, cyp + rp], fill=255)
    elif shape == "ring":
        draw.ellipse([cxp - rp, cyp - rp, cxp + rp, cyp + rp], fill=255)
        q = rp * 0.55
        draw.ellipse([cxp - q, cyp - q, cxp + q, cyp + q], fill=0)
    elif shape == "crescent":
        draw.ellipse([cxp - rp, cyp - rp, cxp + rp, cyp + rp], fill=255)
        dx, dy = 0.45 * rp * math.cos(angle), 0.45 * rp * math.sin(angle)
        q = rp * 0.85
        draw.ellipse([cxp + dx - q, cyp + dy - q, cxp + dx + q, cyp + dy + q], fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(img, dtype=np.float32) / 255.0


def outline(mask: np.ndarray, width: int = 2 * SS + 1) -> np.ndarray:
    img = Image.fromarray((mask * 255).astype(np.uint8))
    eroded = np.asarray(img.filter(ImageFilter.MinFilter(width)), dtype=np.float32) / 255.0
    return np.clip(mask - eroded, 0, 1)


def pattern(name: str, rng: np.random.Generator, n: int = BIG, scale: float = 1.0) -> np.ndarray:
    """A binary fill pattern in [0, 1] (1 = ink) on an ``n``-pixel canvas."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    period = rng.uniform(0.16, 0.22) * n * scale
    phase = rng.uniform(0, period)
    if name == "striped":
        a = rng.choice([0.0, math.pi / 2, math.pi / 4, -math.pi / 4]) + rng.uniform(-0.15, 0.15)
        u = xx * math.cos(a) + yy * math.sin(a) + phase
        return ((u % period) < period * 0.5).astype(np.float32)
    if name == "dotted":
        u, v = (xx + phase) % period - period / 2, (yy + phase) % period - period / 2
        return ((u * u + v * v) < (period * 0.28) ** 2).astype(np.float32)
    if name == "checkered":
        return (((xx + phase) // period + (yy + phase) // period) % 2).astype(np.float32)
    if name == "zigzag":
        amp = period * 0.5
        tri = np.abs(((xx + phase) % period) / period * 2 - 1) * amp
        return (((yy + tri) % period) < period * 0.45).astype(np.float32)
    raise ValueError(f"unknown pattern {name!r}")


def _background(rng: np.random.Generator, avoid: tuple[int, int, int] | None) -> np.ndarray:
    """A light, softly graded background whose tint keeps away from ``avoid``."""
    base = rng.uniform(175, 245, size=3)
    if avoid is not None:
        base = 0.8 * base + 0.2 * (255 - np.asarray(avoid, dtype=np.float32) * 0.3)
    grad = rng.uniform(-25, 25, size=3)
    t = np.linspace(0, 1, BIG, dtype=np.float32)
    ramp = np.clip(base[None, :] + grad[None, :] * t[:, None], 0, 255)  # (BIG, 3)
    vertical = rng.random() < 0.5  # the ramp runs down the rows, else across the columns
    return np.ascontiguousarray(
        np.broadcast_to(ramp[:, None] if vertical else ramp[None], (BIG, BIG, 3))
    )


def _paint(canvas: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """Blend ``colour`` into ``canvas`` (in place) by ``mask``; only the mask's bounding box
    is touched, where the blend can change a pixel."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return canvas
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    m = mask[box][..., None]
    col = np.asarray(colour, dtype=np.float32)
    canvas[box] = canvas[box] * (1 - m) + col[None, None, :] * m
    return canvas


def _jitter(colour, rng: np.random.Generator, amount: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.normal(0, amount, 3), 0, 255)


def _finish(
    canvas: np.ndarray, style: str, rng: np.random.Generator, level: float = 1.0
) -> Image.Image:
    """Downsample the supersampled canvas and apply the style's post-processing."""
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).resize(
        (SIZE, SIZE), Image.Resampling.BOX
    )
    if style == "pixel":
        k = round(10 / level)
        img = img.resize((k, k), Image.Resampling.BOX).resize(
            (SIZE, SIZE), Image.Resampling.NEAREST
        )
        arr = np.asarray(img, dtype=np.float32)
        arr = np.round(arr / 64) * 64  # a small palette
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    elif style == "noisy":
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 40 * level, (SIZE, SIZE, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    elif style == "photo":
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (SIZE, SIZE, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


@dataclass(frozen=True)
class Item:
    """What to draw: one or more shapes with fill, colour, placement, in a style."""

    shape: str = "circle"
    colour: str | None = None  # None: a random colour
    fill: str = "solid"  # "solid" or one of PATTERNS
    count: int = 1
    position: str | None = None  # one of POSITIONS, None: anywhere near the centre
    size: str | None = None  # one of SIZES, None: medium
    style: str = "photo"
    texture: bool = False  # a full-image texture instead of shapes
    grain: float = 1.0  # pattern period relative to the pretraining's
    level: float = 1.0  # strength of the noisy, pixel and sketch styles relative to pretraining


def render(item: Item, rng: np.random.Generator) -> Image.Image:
    """Draw one image of ``item``; all randomness comes from ``rng``."""
    colour = COLOURS[item.colour] if item.colour else COLOURS[rng.choice(list(COLOURS))]
    colour = _jitter(colour, rng)
    style = item.style
    if style == "sketch":
        canvas = np.full((BIG, BIG, 3), rng.uniform(235, 255), np.float32)
    elif style == "cartoon":  # a flat pastel background
        canvas = np.broadcast_to(rng.uniform(205, 250, size=3), (BIG, BIG, 3)).astype(np.float32)
    elif style == "plain":
        canvas = np.full((BIG, BIG, 3), rng.uniform(200, 245), np.float32)
    else:
        canvas = _background(rng, tuple(int(c) for c in colour))
    if style == "noisy":  # clutter: grey distractor blobs
        for _ in range(round(rng.integers(2, 5) * item.level)):
            m = shape_mask(
                str(rng.choice(["circle", "square"])),
                rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.12), 0.0,
            )  # fmt: skip
            canvas = _paint(canvas, m, np.full(3, rng.uniform(60, 200)))

    if item.texture:
        ink = pattern(item.fill, rng, scale=item.grain)
        ground = np.full(3, rng.uniform(225, 250), np.float32)
        canvas = _paint(np.broadcast_to(ground, canvas.shape).copy(), ink, colour)
        return _finish(canvas, style, rng, item.level)

    n = item.count
    if n == 1:
        if item.position is not None:
            px, py = POSITIONS[item.position]
            r = rng.uniform(0.14, 0.19)
            centres = [(px + rng.uniform(-0.05, 0.05), py + rng.uniform(-0.05, 0.05))]
        else:
            r = rng.uniform(*SIZES[item.size]) if item.size else rng.uniform(0.27, 0.38)
            slack = max(0.0, 0.45 - r)
            centres = [(0.5 + rng.uniform(-slack, slack), 0.5 + rng.uniform(-slack, slack))]
    else:
        r = {2: 0.17, 3: 0.15, 4: 0.13}[n] * rng.uniform(0.85, 1.1)
        centres = _spread(n, r, rng)
    for cx, cy in centres:
        angle = rng.uniform(-0.3, 0.3)
        if item.shape == "crescent":
            angle += rng.uniform(0, 2 * math.pi)
        mask = shape_mask(item.shape, cx, cy, r, angle)
        if style == "sketch":  # thinner lines at a higher level
            canvas = _paint(canvas, outline(mask, 2 * round(SS / item.level) + 1), colour)
            continue
        if style == "cartoon":  # flat fill inside a thick dark outline
            canvas = _paint(canvas, mask, colour)
            canvas = _paint(canvas, outline(mask, 2 * SS + 3), np.full(3, 25.0))
            continue
        if item.fill != "solid":
            mask_ink = mask * pattern(item.fill, rng)
            canvas = _paint(canvas, mask, np.full(3, 250.0))
            canvas = _paint(canvas, outline(mask, SS + 1), colour)
            canvas = _paint(canvas, mask_ink, colour)
        else:
            if style == "photo":  # soft shading across the shape
                shade = np.linspace(1.12, 0.85, BIG, dtype=np.float32)[:, None, None]
                col = np.clip(colour[None, None, :] * shade, 0, 255)
                canvas = canvas * (1 - mask[..., None]) + col * mask[..., None]
            else:
                canvas = _paint(canvas, mask, colour)
    return _finish(canvas, style, rng, item.level)


def _spread(n: int, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` non-overlapping centres for shapes of radius ``r`` (rejection sampling)."""
    for _ in range(200):
        pts: list[tuple[float, float]] = []
        for _ in range(200):
            p = (rng.uniform(r + 0.02, 0.98 - r), rng.uniform(r + 0.02, 0.98 - r))
            if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 > (2.15 * r) ** 2 for q in pts):
                pts.append(p)
                if len(pts) == n:
                    return pts
    grid = [(0.27, 0.27), (0.73, 0.73), (0.73, 0.27), (0.27, 0.73)]
    return grid[:n]


# -- datasets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniDataset:
    """One dataset of the mini world: its classes, how to draw them, and its split sizes."""

    name: str  # registered name, also the folder
    split_name: str  # split_zhou_<split_name>.json
    role: str
    classes: tuple[str, ...]
    items: tuple[Item, ...]  # what to draw for each class
    train: int  # images per class
    val: int
    test: int

    @property
    def folder(self) -> str:
        return self.name


def _source_items(style: str, classes=SOURCE_CLASSES, level: float = 1.0) -> tuple[Item, ...]:
    return tuple(Item(shape=s, colour=c, style=style, level=level) for c, s in classes)


def _names(classes) -> tuple[str, ...]:
    return tuple(f"{c} {s}" for c, s in classes)


_FEW_SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "diamond", "ring")
_TEN_SHAPES = SHAPES[:10]
_TEXTURE_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black")
# ImageNet-A/-R analogues keep half of the source classes (every second one).
_HALF_A = SOURCE_CLASSES[0::2]
_HALF_R = SOURCE_CLASSES[1::2]


def datasets(scale: float = 1.0) -> tuple[MiniDataset, ...]:
    """The datasets of the mini world; ``scale`` < 1 shrinks the split sizes (for tests)."""

    def k(n: int) -> int:
        return max(1, round(n * scale)) if n else 0

    def ds(name, split_name, role, classes, items, train, val, test):
        return MiniDataset(
            name, split_name, role, tuple(classes), tuple(items), k(train), k(val), k(test)
        )

    pat = [(p, s) for p in PATTERNS for s in _TEN_SHAPES]
    cnt = [(c, s) for c in COUNTS for s in _FEW_SHAPES]
    pos = [(p, s) for p in POSITIONS for s in _TEN_SHAPES]
    tex = [(c, p) for c in _TEXTURE_COLOURS for p in PATTERNS]
    siz = [(z, s) for z in SIZES for s in SHAPES]
    return (
        ds("mini_shapes", "MiniShapes", "source", _names(SOURCE_CLASSES),
           _source_items("noisy", level=1.3), 20, 4, 10),
        ds("mini_patterns", "MiniPatterns", "target", [f"{p} {s}" for p, s in pat],
           [Item(shape=s, fill=p, style="plain") for p, s in pat], 20, 4, 15),
        ds("mini_counts", "MiniCounts", "target",
           [f"{c} {s if c == 'one' else PLURAL[s]}" for c, s in cnt],
           [Item(shape=s, count=COUNTS.index(c) + 1, style="cartoon") for c, s in cnt],
           20, 4, 15),
        ds("mini_positions", "MiniPositions", "target",
           [POSITION_PHRASE[p].format(s) for p, s in pos],
           [Item(shape=s, position=p, style="pixel") for p, s in pos], 20, 4, 15),
        ds("mini_textures", "MiniTextures", "target", [f"{c} {p}" for c, p in tex],
           [Item(colour=c, fill=p, texture=True, grain=0.75, style="photo") for c, p in tex],
           20, 4, 15),
        ds("mini_sizes", "MiniSizes", "target", [f"{z} {s}" for z, s in siz],
           [Item(shape=s, size=z, style="noisy") for z, s in siz], 20, 4, 15),
        ds("mini_shapes_v2", "MiniShapesV2", "shift", _names(SOURCE_CLASSES),
           _source_items("noisy", level=1.45), 0, 0, 10),
        ds("mini_sketch", "MiniSketch", "shift", _names(SOURCE_CLASSES),
           _source_items("sketch", level=1.2), 0, 0, 10),
        ds("mini_noisy", "MiniNoisy", "shift", _names(_HALF_A),
           _source_items("noisy", _HALF_A, level=1.6), 0, 0, 15),
        ds("mini_pixel", "MiniPixel", "shift", _names(_HALF_R),
           _source_items("pixel", _HALF_R, level=1.1), 0, 0, 15),
    )  # fmt: skip


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def _save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", optimize=False, compress_level=6)


def generate_dataset(d: MiniDataset, index: int, out: Path, seed: int = SEED) -> None:
    """Write one dataset's images and split file into ``out/<d.folder>``."""
    base = out / d.folder
    splits: dict[str, list[list]] = {"train": [], "val": [], "test": []}
    for split_id, split in enumerate(("train", "val", "test")):
        n = getattr(d, split)
        for label, (name, item) in enumerate(zip(d.classes, d.items, strict=True)):
            for i in range(n):
                rng = np.random.default_rng([seed, index, split_id, label, i])
                rel = f"{split}/{_slug(name)}/{i:03d}.png"
                _save_png(render(item, rng), base / "images" / rel)
                splits[split].append([rel, label, name])
    (base / f"split_zhou_{d.split_name}.json").write_text(json.dumps(splits, indent=None))


def generate(out: Path, seed: int = SEED, scale: float = 1.0, workers: int | None = None) -> None:
    """Generate every dataset of the mini world into ``out`` (no done-marker)."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = list(enumerate(datasets(scale)))
    workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        for index, d in jobs:
            generate_dataset(d, index, out, seed)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(generate_dataset, d, index, out, seed) for index, d in jobs]
        for future in futures:
            future.result()


def _complete(root: Path, stamp: str) -> bool:
    marker = root / "VERSION"
    try:
        return marker.is_file() and marker.read_text().strip() == stamp
    except OSError:
        return False


def ensure_generated(root: Path, seed: int = SEED, scale: float = 1.0) -> Path:
    """Generate the mini world into ``root`` once; regenerate when its version differs.

    Safe when several processes ask at once (two terminals, a job array on one home folder):
    generation happens under a lock file beside ``root`` (``fcntl``), so one process
    generates while the others wait and then use its world, and a complete world of this
    version is never deleted. The world is built in a temporary sibling folder renamed
    into place, with the marker ``root/VERSION`` written last, so an interrupted run never
    leaves a half world; what a killed generator left is removed by the next one. A write
    that fails (a full disk) is a one-line environment error.
    """
    root = Path(root)
    stamp = f"{VERSION} seed={seed} scale={scale}"
    if _complete(root, stamp):
        return root
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(root.with_name(f"{root.name}.lock")):
            if _complete(root, stamp):  # made by another process while this one waited
                return root
            for leftover in root.parent.glob(f"{root.name}.tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # a killed generator's
            generate(tmp, seed, scale)
            (tmp / "VERSION").write_text(stamp + "\n")
            if root.exists():  # another version's world: nobody of this version reads it
                old = root.with_name(f"{root.name}.old-{os.getpid()}")
                os.replace(root, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, root)
    except OSError as exc:
        raise UserError(
            f"cannot generate the mini world in {root} ({exc.strerror or exc})", EXIT_ENVIRONMENT
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def spec_of(name: str) -> MiniDataset:
    for d in datasets():
        if d.name == name:
            return d
    raise KeyError(name)


def dataset_index(name: str) -> int:
    return [d.name for d in datasets()].index(name)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="generate the offline mini world")
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    ensure_generated(args.root, args.seed)
    print(args.root)


if __name__ == "__main__":
    main()
