"""CoCoOp: Conditional Prompt Learning for Vision-Language Models (Zhou et al., CVPR 2022).

Algorithm (per step, per run):

1. a lightweight meta-net h_theta = Linear(D, D/16) -> ReLU -> Linear(D/16, d) maps the
   normalised image feature x to pi = h_theta(x) (D: image feature width, d: token width);
2. every context token is shifted by it: v_m(x) = v_m + pi (CoCoOp eq. 3), so each image has
   its own prompts t_i(x) = {v_1(x), .., v_M(x), c_i};
3. p(y | x) = softmax_i(exp(t) cos(x, g(t_i(x)))) (eq. 4): text features are built per image;
4. the loss is cross-entropy; context and meta-net are learned together by plain SGD.

Presets follow the reference code: init "a photo of a" (M = 4), batch 1, 10 epochs, every
protocol (16 shots); the quick preset uses batch 4 and 1 epoch at lr 0.02 without the
warm-up epoch (the schedule's first epoch runs at lr 1e-5: a one-epoch run would learn
nothing, its classifier would stay the meta-net's random initial shift). The meta-net's
weights carry the run as leading dimension (S, ...) and are initialised like ``nn.Linear``
(kaiming-uniform weights, uniform bias, bound 1/sqrt(fan_in)) from a generator seeded by the
run's seed; the reference draws from the global RNG, so the distribution matches but the draw
differs.
Scoring builds text features per image, in chunks of about CHUNK_PROMPTS prompts.
Deviation: fp32 master weights (bf16 autocast on GPU) instead of pure fp16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from vlprompt_methods.coop import QUICK
from vlprompt_methods.kgcoop import initial_context

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.rules import plain
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch, Optimisation, fit
from benchmark.protocol import Classes, TrainData

CHUNK_PROMPTS = 4096  # images per scoring chunk: about this many prompts / K
QUICK_EPOCHS = 1  # per-image prompts cost K text passes per image: one epoch
QUICK_BATCH = 4


@dataclass(frozen=True)
class Config:
    n_ctx: int = 4  # used only when ctx_init is empty
    ctx_init: str = "a photo of a"
    epochs: int = 10
    batch_size: int = 1
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    views: int = 0  # augmented views cycled through; 0: a new one each epoch (reference)
    warmup: bool = True  # a first epoch at lr 1e-5 (reference); the quick preset's one has none

    def optimisation(self) -> Optimisation:
        return Optimisation.of(self)


def _linear(generator: torch.Generator, fan_in: int, fan_out: int):
    """``nn.Linear``'s init: weight (fan_in, fan_out) and bias (fan_out,), U(-1/sqrt(in), ..)."""
    bound = 1 / math.sqrt(fan_in)
    weight = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
    return weight.T.contiguous(), bias


def meta_net(seeds: Sequence[int], image_dim: int, width: int) -> list[torch.Tensor]:
    """[W1 (S, D, H), b1 (S, H), W2 (S, H, d), b2 (S, d)], H = max(1, D // 16)."""
    hidden = max(1, image_dim // 16)
    per_run = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        per_run.append((*_linear(generator, image_dim, hidden), *_linear(generator, hidden, width)))
    return [torch.stack(parts) for parts in zip(*per_run, strict=True)]


def meta_shift(net: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """pi (S, B, d) for normalised image features x (S, B, D)."""
    w1, b1, w2, b2 = net
    hidden = F.relu(torch.bmm(x, w1) + b1[:, None])
    return torch.bmm(hidden, w2) + b2[:, None]


def conditional_logits(
    encoder: PromptEncoder,
    ctx: torch.Tensor,
    net: Sequence[torch.Tensor],
    x: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Logits (S, B, K): ctx (S, M, d), x normalised (S, B, D)."""
    shifted = ctx[:, None] + meta_shift(net, x)[:, :, None]  # (S, B, M, d)
    texts = F.normalize(encoder(shifted[:, :, None]), dim=-1)  # (S, B, K, D)
    return scale * (texts @ x[..., None])[..., 0]


class CoCoOpClassifier:
    def __init__(self, engine: Engine, ctx, net, diagnostics) -> None:
        self.engine = engine
        self.ctx = ctx.detach()
        self.net = [p.detach() for p in net]
        self.diagnostics = dict(diagnostics)

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor:
        device = self.engine.device
        encoder = PromptEncoder(self.engine.tower, classes.names, self.ctx.shape[-2])
        ctx = self.ctx[None].to(device)
        net = [p[None].to(device) for p in self.net]
        x = F.normalize(features.to(device).float(), dim=-1)
        chunk = max(1, CHUNK_PROMPTS // len(classes.names))
        scale = self.engine.backbone.logit_scale
        out = []
        with torch.no_grad():
            for part in x.split(chunk):
                out.append(conditional_logits(encoder, ctx, net, part[None], scale)[0])
        if not out:
            return x.new_zeros(0, len(classes.names))
        return torch.cat(out)


class CoCoOp:
    name = "cocoop"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        if setting.preset == "reference":
            return Config()
        return Config(epochs=QUICK_EPOCHS, batch_size=QUICK_BATCH, lr=QUICK["lr"], warmup=False)

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        ctx = initial_context(config.ctx_init, config.n_ctx, runs, engine)
        width = ctx.shape[-1]
        net = [
            p.to(engine.device)
            for p in meta_net([r.seed for r in runs], engine.backbone.embed_dim, width)
        ]
        encoder = PromptEncoder(engine.tower, runs[0].classes.names, ctx.shape[-2])
        scale = engine.backbone.logit_scale

        def losses(params, batch: Batch):
            logits = conditional_logits(encoder, params[0], params[1:], batch.features, scale)
            ce = F.cross_entropy(logits.transpose(1, 2), batch.labels, reduction="none")
            return {"loss": ce.mean(1)}

        params = [ctx, *net]
        diagnostics = fit(runs, engine, params, losses, plain, config.optimisation())
        return [
            CoCoOpClassifier(engine, ctx[i], [p[i] for p in net], diagnostics[i])
            for i in range(len(runs))
        ]


METHOD = CoCoOp()
