"""Contrastive pretraining of the mini world's tiny CLIP on generated image-caption pairs.

    python -m benchmark.miniworld.pretrain --out benchmark/miniworld/tinyclip.safetensors

A pool of images is drawn with the renderers of :mod:`benchmark.miniworld.generate` (own
random streams, so no test image of the datasets is ever seen) covering every concept of the
world: colour x shape in six styles (photo, plain, cartoon, sketch, noisy, pixel art), fill
patterns, counts, positions, textures and sizes. Each time an image is used, its caption is
drawn anew from varied phrasings. On purpose, the captions never use the zero-shot templates
of the datasets ("a photo of a {}." in particular): styles are named by words ("a sketch of
...", "pixel art of ...", "a cartoon of ...", "a noisy image of ...") that the hand-crafted
templates lack, class names are often paraphrased ("a square with stripes", "3 stars"), so a
learned prompt context has something to find beyond the hand-crafted template. The
benchmark's datasets are drawn harder than the pool (more noise and clutter, coarser pixels,
thinner lines: ``Item.level``), the mini analogue of benchmark images that differ from web
captions.

Training: AdamW (lr 1e-3, weight decay 0.1 on matrices), linear warm-up then cosine, batch
256, symmetric InfoNCE with a learned temperature. The text transformer is causal and
pooled at the EOT token, so each batch's tokens are cut after its longest caption (exact).

The shipped ``tinyclip.safetensors`` (fp16, 10.8 MiB) was made with the defaults of this
script (``--steps 1500 --pool 80000 --batch 256 --lr 1e-3 --seed 0``) on the development
machine: 2 CPU cores (AMD EPYC), no GPU, torch 2.14.1 CPU, ``torch.set_num_threads(2)``.
Drawing the 80k-image pool took 145 s (2 processes), the 1500 steps 1515 s (1.0 s per
step), 27.7 minutes in all; the final contrastive loss was about 0.55. Zero-shot top-1 of
that checkpoint with each dataset's template, as ``python -m benchmark run`` measures it
(world version ``miniworld-6``, chance in brackets):

    mini_shapes 51.2 (0.8)     mini_patterns 58.3 (2.5)   mini_counts 76.7 (3.1)
    mini_positions 29.2 (2.5)  mini_textures 77.1 (3.1)   mini_sizes 46.1 (4.2)
    mini_shapes_v2 46.6 (0.8)  mini_sketch 72.1 (0.8)     mini_noisy 57.7 (1.7)
    mini_pixel 80.6 (1.7)

Training is not bit-reproducible across machines (threaded float reductions); the shipped
file is the reference.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.miniworld import generate as g

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

# -- what to draw --------------------------------------------------------------------------


@dataclass(frozen=True)
class Drawn:
    """One pool image's content, from which its captions are drawn."""

    kind: str  # shape | pattern | count | position | texture | size
    item: g.Item
    colour: str


KINDS = (("shape", 0.50), ("pattern", 0.11), ("count", 0.11), ("position", 0.10),
         ("texture", 0.08), ("size", 0.10))  # fmt: skip
STYLE_P = (("photo", 0.22), ("plain", 0.14), ("cartoon", 0.22), ("sketch", 0.14), ("noisy", 0.14),
           ("pixel", 0.14))  # fmt: skip
#: The styles in which counts and sizes are drawn.
FLAT_STYLES = (("photo", 0.4), ("plain", 0.2), ("cartoon", 0.4))


def _pick(rng: np.random.Generator, table) -> str:
    names, p = zip(*table, strict=True)
    return str(rng.choice(names, p=np.asarray(p) / sum(p)))


def sample_drawn(rng: np.random.Generator) -> Drawn:
    kind = _pick(rng, KINDS)
    colour = str(rng.choice(list(g.COLOURS)))
    shape = str(rng.choice(g.SHAPES))
    if kind == "shape":
        item = g.Item(shape=shape, colour=colour, style=_pick(rng, STYLE_P))
    elif kind == "pattern":
        item = g.Item(shape=shape, colour=colour, fill=str(rng.choice(g.PATTERNS)), style="plain")
    elif kind == "count":
        item = g.Item(shape=shape, colour=colour, count=int(rng.integers(1, 5)),
                      style=_pick(rng, FLAT_STYLES))  # fmt: skip
    elif kind == "position":
        style = "plain" if rng.random() < 0.7 else "photo"
        item = g.Item(shape=shape, colour=colour, position=str(rng.choice(list(g.POSITIONS))),
                      style=style)  # fmt: skip
    elif kind == "texture":
        item = g.Item(colour=colour, fill=str(rng.choice(g.PATTERNS)), texture=True,
                      style="photo" if rng.random() < 0.7 else "plain")  # fmt: skip
    else:
        item = g.Item(shape=shape, colour=colour, size=str(rng.choice(list(g.SIZES))),
                      style=_pick(rng, FLAT_STYLES))  # fmt: skip
    return Drawn(kind, item, colour)


def _pool_chunk(args) -> tuple[np.ndarray, list[Drawn]]:
    seed, chunk, n = args
    images, drawn = np.zeros((n, g.SIZE, g.SIZE, 3), np.uint8), []
    for i in range(n):
        rng = np.random.default_rng([seed, 7777, chunk, i])
        d = sample_drawn(rng)
        images[i] = np.asarray(g.render(d.item, rng))
        drawn.append(d)
    return images, drawn


def make_pool(n: int, seed: int, workers: int = 2) -> tuple[np.ndarray, list[Drawn]]:
    from concurrent.futures import ProcessPoolExecutor

    size = 2000
    jobs = [(seed, c, min(size, n - c * size)) for c in range(math.ceil(n / size))]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_pool_chunk, jobs))
    return np.concatenate([p[0] for p in parts]), [d for p in parts for d in p[1]]


# -- captions --------------------------------------------------------------------------------

STYLE_TEMPLATES = {
    "photo": ["{} in a photo", "a photograph of a {}", "photo: {}", "a {}, photographed",
              "a real photo showing a {}", "a snapshot of a {}"],
    "plain": ["a {}", "the {}", "{}", "an image of a {}", "a {} on a plain background",
              "a simple {}", "a picture of a {}", "there is a {}"],
    "cartoon": ["a cartoon of a {}", "a {} cartoon", "a cartoon {}", "clip art of a {}",
                "a {} in cartoon style", "a comic drawing of a {}"],
    "sketch": ["a sketch of a {}", "a drawing of a {}", "an outline drawing of the {}",
               "a {} sketched in ink", "a line sketch of a {}"],
    "noisy": ["a noisy image of a {}", "a {} with lots of noise", "a cluttered picture of a {}",
              "a grainy {}", "a {} hidden in noise"],
    "pixel": ["pixel art of a {}", "a pixelated {}", "a low resolution {}", "a {} in pixel art",
              "an 8-bit {}"],
}  # fmt: skip
#: Sentences around a count phrase ("three stars"), by style.
COUNT_TEMPLATES = {
    "photo": ["{} in a photo", "a photograph showing {}", "a snapshot of {}"],
    "plain": ["{}", "an image with {}", "there are {}"],
    "cartoon": ["a cartoon of {}", "{} in cartoon style", "clip art of {}"],
}
NUMERALS = {"one": "1", "two": "2", "three": "3", "four": "4"}
PATTERN_NOUN = {"striped": "stripes", "dotted": "dots", "checkered": "checks", "zigzag": "zigzags"}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _wrap(rng: np.random.Generator, phrase: str, style: str) -> str:
    """Put the content phrase in a style sentence (the style is left unsaid 25% of the time)."""
    if style != "plain" and rng.random() < 0.25:
        style = "plain"
    return _choice(rng, STYLE_TEMPLATES[style]).format(phrase)


def caption(d: Drawn, rng: np.random.Generator) -> str:
    it, c = d.item, d.colour
    if d.kind == "shape":
        s = it.shape
        phrase = _choice(
            rng, [f"{c} {s}"] * 4 + [f"{s} in {c}", f"{s} that is {c}", f"{c} colored {s}"]
        )
        return _wrap(rng, phrase, it.style)
    if d.kind == "pattern":
        p, s = it.fill, it.shape
        col = f"{c} " if rng.random() < 0.4 else ""
        phrase = _choice(rng, [f"{col}{p} {s}", f"{col}{p} {s}", f"{s} with {col}{PATTERN_NOUN[p]}",
                               f"{s} filled with {col}{PATTERN_NOUN[p]}"])  # fmt: skip
        return _wrap(rng, phrase, "plain")
    if d.kind == "count":
        n, s = g.COUNTS[it.count - 1], it.shape
        noun = s if it.count == 1 else g.PLURAL[s]
        col = f"{c} " if rng.random() < 0.4 else ""
        if it.count == 1:
            phrases = [f"one {col}{noun}", f"a single {col}{noun}", f"1 {col}{noun}"]
        else:
            phrases = [
                f"{n} {col}{noun}",
                f"{NUMERALS[n]} {col}{noun}",
                f"a group of {n} {col}{noun}",
            ]
        style = "plain" if rng.random() < 0.25 else it.style
        return _choice(rng, COUNT_TEMPLATES[style]).format(_choice(rng, phrases))
    if d.kind == "position":
        pos, s = it.position, it.shape
        col = f"{c} " if rng.random() < 0.4 else ""
        phrase = _choice(rng, [g.POSITION_PHRASE[pos].format(col + s)] * 2
                         + [f"{col}{s} in the {pos} part", f"{col}{s}, placed {pos}"])  # fmt: skip
        return _wrap(rng, phrase, "plain")
    if d.kind == "texture":
        p = it.fill
        phrase = _choice(rng, [f"{c} {p} pattern", f"{c} {p} fabric", f"{c} {PATTERN_NOUN[p]}",
                               f"{PATTERN_NOUN[p]} in {c}", f"{c} {p} texture"])  # fmt: skip
        return _choice(rng, ["{}", "a {}", "close-up of {}", "a surface of {}"]).format(phrase)
    z, s = it.size, it.shape
    col = f"{c} " if rng.random() < 0.4 else ""
    phrase = f"{_choice(rng, SIZE_WORDS[z])} {col}{s}"
    return _wrap(rng, phrase, it.style)


# -- model pieces ----------------------------------------------------------------------------


def encode_text_cut(model, tokens):
    """``model.encode_text`` with the tokens after the batch's last EOT cut off (exact)."""
    import torch

    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection


def to_pixels(images: np.ndarray):
    import torch

    x = torch.from_numpy(images).float().div_(255).permute(0, 3, 1, 2)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def read_images(paths, size: int) -> np.ndarray:
    """RGB images resized (bicubic) to ``size`` x ``size``, as one uint8 array."""
    from PIL import Image

    def read(path):
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))

    return np.stack([read(p) for p in paths])


def zero_shot(model, tokenizer, root: Path, names=None) -> dict[str, tuple[float, float, int]]:
    """Zero-shot top-1 accuracy on each mini dataset's test split: {name: (acc, chance, n)}."""
    import torch

    from benchmark.datasets.splitfile import read_split_file
    from benchmark.miniworld.plugin import DATASETS

    out = {}
    model.eval()
    for name, (_role, split_name, template, _title) in DATASETS.items():
        if names and name not in names:
            continue
        s = read_split_file(root / name / f"split_zhou_{split_name}.json", root / name / "images")
        size = model.visual.image_size
        size = size[0] if isinstance(size, tuple | list) else size
        imgs = read_images([x.path for x in s.test], size)
        labels = torch.tensor([x.label for x in s.test])
        with torch.no_grad():
            feats = torch.cat([model.encode_image(to_pixels(imgs[i : i + 512]))
                               for i in range(0, len(imgs), 512)])  # fmt: skip
            text = model.encode_text(tokenizer([template.format(c) for c in s.classnames]))
        feats = feats / feats.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        acc = float(((feats @ text.T).argmax(-1) == labels).float().mean())
        out[name] = (acc, 1 / len(s.classnames), len(s.test))
    return out


def train(steps: int, pool_size: int, batch: int, lr: float, seed: int, log_every: int = 50):
    import open_clip
    import torch
    import torch.nn.functional as F

    from benchmark.miniworld.model import MODEL_NAME, register_model_config

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    register_model_config()
    model = open_clip.create_model(MODEL_NAME, pretrained=None)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    t0 = time.time()
    images, drawn = make_pool(pool_size, seed)
    print(f"pool of {len(drawn)} images in {time.time() - t0:.0f}s", flush=True)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.98), eps=1e-6,
    )  # fmt: skip
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    rng = np.random.default_rng([seed, 4242])
    model.train()
    t1 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = rng.choice(len(drawn), batch, replace=False)
        x = to_pixels(images[idx])
        tokens = tokenizer([caption(drawn[i], rng) for i in idx])
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(encode_text_cut(model, tokens), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        target = torch.arange(batch)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % log_every == 0 or step == steps - 1:
            el = time.time() - t1
            print(f"step {step} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f}"
                  f" {el:.0f}s", flush=True)  # fmt: skip
    print(f"trained {steps} steps in {time.time() - t1:.0f}s; total {time.time() - t0:.0f}s")
    return model.eval(), tokenizer


def save(model, out: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": "vlprompt-tiny", "source": "benchmark.miniworld.pretrain"}
    save_file(state, str(out), metadata=meta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--pool", type=int, default=80000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-root", type=Path, help="generate the world here and evaluate")
    args = parser.parse_args(argv)
    model, tokenizer = train(args.steps, args.pool, args.batch, args.lr, args.seed)
    save(model, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    if args.eval_root:
        import open_clip

        from benchmark.miniworld.model import MODEL_NAME

        loaded = open_clip.create_model(MODEL_NAME, pretrained=str(args.out))
        root = g.ensure_generated(args.eval_root)
        for name, (acc, chance, n) in zero_shot(loaded, tokenizer, root).items():
            print(f"zero-shot {name:16s} {100 * acc:5.1f}%  chance {100 * chance:4.1f}%  n={n}")


if __name__ == "__main__":
    main()
