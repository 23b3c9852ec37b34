"""CoCoOp: Conditional Prompt Learning for Vision-Language Models (Zhou et al., CVPR 2022).

Algorithm (per step, per run):

1. a lightweight meta-net h_theta = Linear(D, D/16) -> ReLU -> Linear(D/16, d) maps the
   normalised image feature x to pi = h_theta(x) (D: image feature width, d: token width);
2. every context token is shifted by it: v_m(x) = v_m + pi (CoCoOp eq. 3), so each image has
   its own prompts t_i(x) = {v_1(x), .., v_M(x), c_i};
3. p(y | x) = softmax_i(exp(t) cos(x, g(t_i(x)))) (eq. 4): text features are built per image;
4. the loss is cross-entropy; context and meta-net are learned together by plain SGD.

Settings: ``cocoop.toml`` (init "a photo of a", M = 4, batch 1, 10 epochs, every protocol;
the quick preset: batch 4, one epoch at lr 0.02 without the warm-up epoch, whose lr 1e-5
would leave a one-epoch run untrained). The meta-net's
weights carry the run as leading dimension (S, ...) and are initialised like ``nn.Linear``
(kaiming-uniform weights, uniform bias, bound 1/sqrt(fan_in)) from a generator seeded by the
run's seed; the reference draws from the global RNG, so the distribution matches but the draw
differs.
Scoring builds text features per image, in chunks of about CHUNK_PROMPTS prompts. A run's
saved state is its context ``ctx`` and the meta-net's ``meta_net.w1``, ``.b1``, ``.w2``,
``.b2`` (:data:`META_NET`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.method import LearnedState
from benchmark.perf.reference_step import ReferenceDesign
from benchmark.prompting.classifier import context_state, saved_context
from benchmark.prompting.context import InitialContext
from benchmark.prompting.method import PromptConfig, PromptLearner, PromptMethod, Step
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch
from benchmark.protocol import Classes, TrainData
from benchmark.settings import beside

CHUNK_PROMPTS = 4096  # images per scoring chunk: about this many prompts / K
#: The names of the meta-net's tensors in a saved state, in :func:`meta_net`'s order.
META_NET = ("meta_net.w1", "meta_net.b1", "meta_net.w2", "meta_net.b2")


def _linear(generator: torch.Generator, fan_in: int, fan_out: int):
    """``nn.Linear``'s init: weight (fan_in, fan_out) and bias (fan_out,), U(-1/sqrt(in), ..)."""
    bound = 1 / math.sqrt(fan_in)
    weight = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
    return weight.T.contiguous(), bias


def hidden_width(image_dim: int) -> int:
    """The meta-net's hidden width H = max(1, D // 16)."""
    return max(1, image_dim // 16)


def meta_net(seeds: Sequence[int], image_dim: int, width: int) -> list[torch.Tensor]:
    """[W1 (S, D, H), b1 (S, H), W2 (S, H, d), b2 (S, d)], H = :func:`hidden_width`."""
    hidden = hidden_width(image_dim)
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
    """One run's context (M, d), meta-net and prompt lead; text features per image."""

    def __init__(self, engine: Engine, ctx, net, lead: str, diagnostics) -> None:
        self.engine = engine
        self.ctx = ctx.detach()
        self.net = [p.detach() for p in net]
        self.lead = lead
        self.diagnostics = dict(diagnostics)

    def state(self) -> LearnedState:
        return context_state(self.ctx, self.lead, **dict(zip(META_NET, self.net, strict=True)))

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor:
        device = self.engine.device
        encoder = PromptEncoder(self.engine.tower, classes.names, self.ctx.shape[-2], self.lead)
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


class ConditionalLearner(PromptLearner):
    """The context and the meta-net of each run; every image of a step has its own prompts."""

    def __init__(self, engine: Engine, runs: Sequence[TrainData], init: InitialContext) -> None:
        super().__init__(engine, runs, init)
        seeds = [run.seed for run in runs]
        net = meta_net(seeds, engine.backbone.embed_dim, init.ctx.shape[-1])
        self.params += [p.to(engine.device) for p in net]

    def step(self, params: Sequence[torch.Tensor], batch: Batch) -> Step:
        scale = self.engine.backbone.logit_scale
        logits = conditional_logits(self.encoder, params[0], params[1:], batch.features, scale)
        return Step(logits.new_empty(0), logits, batch)

    def classifiers(self, runs, diagnostics) -> list[CoCoOpClassifier]:
        ctx, *net = self.params
        return [
            CoCoOpClassifier(self.engine, ctx[i], [p[i] for p in net], self.lead, diagnostics[i])
            for i in range(len(runs))
        ]


class CoCoOp(PromptMethod[PromptConfig]):
    name, version, Config = "cocoop", "2", PromptConfig
    settings_file = beside(__file__)
    learner_type = ConditionalLearner
    reference_design = ReferenceDesign(per_image_prompts=True)

    def classifier_from(
        self, state: LearnedState, trained_on: Classes, engine: Engine
    ) -> CoCoOpClassifier:
        """The classifier of a saved context and meta-net (:meth:`CoCoOpClassifier.state`)."""
        ctx, lead = saved_context(state, engine)
        image_dim, width = engine.backbone.embed_dim, ctx.shape[-1]
        hidden = hidden_width(image_dim)
        shapes = ((image_dim, hidden), (hidden,), (hidden, width), (width,))
        net = [
            state.tensor(name, *shape, dtype=torch.float32).to(engine.device)
            for name, shape in zip(META_NET, shapes, strict=True)
        ]
        return CoCoOpClassifier(engine, ctx.to(engine.device), net, lead, {})


METHOD = CoCoOp()
