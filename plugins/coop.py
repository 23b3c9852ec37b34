"""CoOp: Learning to Prompt for Vision-Language Models (Zhou et al., IJCV 2022).

Algorithm: the prompt of class i is ``[V]_1 .. [V]_M [CLASS_i] .``; the context vectors
``[V]`` are the only learned parameters. p(y = i | x) = softmax_i(exp(t) cos(f(x), g(t_i)))
(CoOp eq. 2); the loss is cross-entropy; plain SGD steps.

Presets follow the reference code: few-shot: M = 16 random N(0, 0.02) context, class token
at the end, batch 32, 50/100/100/200/200 epochs for 1/2/4/8/16 shots (ImageNet: 50);
base-to-new and cross-dataset: init "a photo of a" (M = 4), 200 epochs (ImageNet: 50).
The quick preset (the mini world's default, not the papers') is the base-to-new init for every
protocol and the short schedule of ``QUICK``, shared by the whole family.
Deviation: fp32 master weights (bf16 autocast on GPU) instead of pure fp16.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import PromptClassifier, cosine_logits
from benchmark.prompting.context import phrase_context, random_context
from benchmark.prompting.rules import plain
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch, Optimisation, fit
from benchmark.protocol import TrainData

FEW_SHOT_EPOCHS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}
IMAGENET_LIKE = ("imagenet",)
#: The quick preset (the mini world's default). A random 16-token context needs the
#: reference's 50-200 epochs to catch up with the hand-crafted prompt, so the quick preset
#: starts CoOp from the phrase "a photo of a" (M = 4, CoOp's base-to-new setting), and every
#: method of the family trains QUICK["epochs"] epochs at batch 128 and 10x the reference's
#: learning rate, cycling through 2 augmented views.
QUICK = {"epochs": 10, "batch_size": 128, "lr": 0.02, "views": 2}
QUICK_INIT, QUICK_N_CTX = "a photo of a", 4


@dataclass(frozen=True)
class Config:
    n_ctx: int = 16
    ctx_init: str = ""  # an init phrase ("a photo of a"); empty: random N(0, 0.02)
    class_specific: bool = False  # CSC: one context per class
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    views: int = 0  # augmented views cycled through; 0: a new one each epoch (reference)

    def optimisation(self) -> Optimisation:
        return Optimisation.of(self)


def for_preset(config, setting: Setting):
    """``config`` (the reference preset) as the setting's preset asks (see QUICK)."""
    if setting.preset == "reference":
        return config
    changes = dict(QUICK)
    if not config.ctx_init:
        changes.update(ctx_init=QUICK_INIT, n_ctx=QUICK_N_CTX)
    return dataclasses.replace(config, **changes)


def reference_epochs(setting: Setting) -> int:
    if setting.dataset in IMAGENET_LIKE:
        return 50
    if setting.protocol == "few_shot":
        return FEW_SHOT_EPOCHS.get(setting.shots, 200)
    return 200


def initial_context(config: Config, runs: Sequence[TrainData], engine: Engine) -> torch.Tensor:
    """(S, M, d), or (S, K, M, d) with class-specific context."""
    width = engine.tower.tower.token_embedding.weight.shape[1]
    n_classes = len(runs[0].classes.names)
    if config.ctx_init:
        ctx = phrase_context(engine.tower, config.ctx_init, len(runs))
        if config.class_specific:
            ctx = ctx[:, None].repeat(1, n_classes, 1, 1)
    else:
        shape = (n_classes, config.n_ctx, width) if config.class_specific else (config.n_ctx, width)
        ctx = random_context([r.seed for r in runs], shape)
    return ctx.to(engine.device)


def cross_entropy(
    encoder: PromptEncoder, engine: Engine, ctx: torch.Tensor, batch: Batch
) -> torch.Tensor:
    """Per-run CE (S,) of the batch under context ``ctx``."""
    texts = F.normalize(encoder(ctx if ctx.dim() == 4 else ctx[:, None]), dim=-1)
    logits = cosine_logits(batch.features, texts, engine.backbone.logit_scale)
    return F.cross_entropy(logits.transpose(1, 2), batch.labels, reduction="none").mean(1)


class CoOp:
    name = "coop"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        epochs = reference_epochs(setting)
        if setting.protocol == "few_shot":
            return for_preset(Config(epochs=epochs), setting)
        return for_preset(Config(n_ctx=4, ctx_init="a photo of a", epochs=epochs), setting)

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        ctx = initial_context(config, runs, engine)
        encoder = PromptEncoder(engine.tower, runs[0].classes.names, ctx.shape[-2])

        def losses(params, batch: Batch):
            return {"loss": cross_entropy(encoder, engine, params[0], batch)}

        diagnostics = fit(runs, engine, [ctx], losses, plain, config.optimisation())
        return [
            PromptClassifier(engine, ctx[i], diagnostics[i], run.classes)
            for i, run in enumerate(runs)
        ]


METHOD = CoOp()
