"""Is there something for prompt learning to learn in the mini world? A quick check.

    python -m benchmark.miniworld.diagnose [--checkpoint FILE] [--root DIR] [--datasets a,b]

For each dataset: zero-shot top-1 with its hand-crafted template, then a minimal CoOp
(context initialised from "a photo of a", trained with Adam on 16-shot features of the
un-augmented train images, class token at the end) and its test top-1. This is a
self-contained diagnostic of the world and checkpoint, not the suite's CoOp. Shift datasets
are also scored with the context learned on the source (domain generalisation).

Measured with the shipped checkpoint (world ``miniworld-6``, 16 shots, ``--epochs 8``, seed
1; top-1 %: hand-crafted template, "a photo of a" init -> CoOp; shifts: template, the
source's CoOp context):

    mini_shapes     51.2  51.2 -> 60.3      mini_shapes_v2  46.6 -> 57.1
    mini_patterns   58.3  55.5 -> 59.0      mini_sketch     72.1 -> 70.0
    mini_counts     76.7  77.9 -> 82.5      mini_noisy      57.7 -> 67.6
    mini_positions  29.2  29.2 -> 46.3      mini_pixel      80.6 -> 82.0
    mini_textures   77.1  74.0 -> 85.0
    mini_sizes      46.1  46.1 -> 55.0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _features(model, samples, size):
    import torch

    from benchmark.miniworld.pretrain import read_images, to_pixels

    imgs = read_images([s.path for s in samples], size)
    with torch.no_grad():
        f = torch.cat([model.encode_image(to_pixels(imgs[i : i + 512]))
                       for i in range(0, len(imgs), 512)])  # fmt: skip
    return f / f.norm(dim=-1, keepdim=True), torch.tensor([s.label for s in samples])


def prompt_encoder(model, tokenizer, init: str):
    """``(ctx, features(classnames, ctx))``: CoOp text features with a learnable context."""
    import torch
    import torch.nn.functional as F

    m = len(tokenizer([init])[0].nonzero()) - 2
    with torch.no_grad():
        ctx = model.token_embedding(tokenizer([init])[:, 1 : 1 + m])[0].clone()

    def features(classnames, ctx):
        tokens = tokenizer([f"{init} {c}." for c in classnames])
        length = int(tokens.argmax(-1).max()) + 1
        tokens = tokens[:, :length]
        with torch.no_grad():
            emb = model.token_embedding(tokens)
        n = len(classnames)
        x = torch.cat([emb[:, :1], ctx.expand(n, -1, -1), emb[:, 1 + m :]], 1)
        x = x + model.positional_embedding[:length]
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)[torch.arange(n), tokens.argmax(-1)] @ model.text_projection
        return F.normalize(x, dim=-1)

    return torch.nn.Parameter(ctx), features


def coop(model, tokenizer, classnames, train, test, init="a photo of a", epochs=30, lr=2e-3,
         seed=1):  # fmt: skip
    """``(accuracy of the init prompt, CoOp accuracy, features)`` on ``test``."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    ctx, features = prompt_encoder(model, tokenizer, init)

    def accuracy():
        with torch.no_grad():
            return float(
                ((test[0] @ features(classnames, ctx).T).argmax(-1) == test[1]).float().mean()
            )

    before = accuracy()
    opt = torch.optim.Adam([ctx], lr=lr)
    scale = model.logit_scale.exp().detach()
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(train[1]), generator=g)
        for i in range(0, len(order), 32):
            b = order[i : i + 32]
            text = features(classnames, ctx)
            loss = F.cross_entropy(scale * train[0][b] @ text.T, train[1][b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return before, accuracy(), lambda names: features(names, ctx)


def main(argv: list[str] | None = None) -> None:
    import open_clip
    import torch

    from benchmark.datasets.splitfile import read_split_file
    from benchmark.miniworld.generate import ensure_generated
    from benchmark.miniworld.model import CHECKPOINT, MODEL_NAME, register_model_config
    from benchmark.miniworld.plugin import DATASETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache/vlprompt-miniworld")
    parser.add_argument("--datasets", default="")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    register_model_config()
    model = open_clip.create_model(MODEL_NAME, pretrained=str(args.checkpoint)).eval()
    model.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    root = ensure_generated(args.root)
    wanted = [n for n in args.datasets.split(",") if n] or list(DATASETS)
    source_prompt = None  # the source comes first in DATASETS
    for name in wanted:
        role, split_name, template, _ = DATASETS[name]
        s = read_split_file(root / name / f"split_zhou_{split_name}.json", root / name / "images")
        test = _features(model, s.test, 32)
        with torch.no_grad():
            text = model.encode_text(tokenizer([template.format(c) for c in s.classnames]))
        text = text / text.norm(dim=-1, keepdim=True)
        zs = float(((test[0] @ text.T).argmax(-1) == test[1]).float().mean())
        chance = 100 / len(s.classnames)
        line = f"{name:16s} {role:6s} zero-shot {100 * zs:5.1f}% chance {chance:4.1f}%"
        if s.train:
            rng = np.random.default_rng(1)
            by_label: dict[int, list] = {}
            for x in s.train:
                by_label.setdefault(x.label, []).append(x)
            shots = [x for v in by_label.values()
                     for x in rng.permutation(np.array(v, dtype=object))[: args.shots]]  # fmt: skip
            train = _features(model, shots, 32)
            t = time.time()
            init_acc, coop_acc, learned = coop(
                model, tokenizer, s.classnames, train, test, epochs=args.epochs
            )
            if role == "source":
                source_prompt = learned
            line += (f" | 'a photo of a' {100 * init_acc:5.1f}% -> CoOp {100 * coop_acc:5.1f}%"
                     f" ({time.time() - t:.0f}s)")  # fmt: skip
        if role == "shift" and source_prompt is not None:
            with torch.no_grad():
                pred = (test[0] @ source_prompt(s.classnames).T).argmax(-1)
            line += f" | CoOp of the source {100 * float((pred == test[1]).float().mean()):5.1f}%"
        print(line, flush=True)


if __name__ == "__main__":
    main()
