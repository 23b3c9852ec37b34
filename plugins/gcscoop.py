"""GCSCoOp: Gradient Constrained Sharpness-aware Context Optimization.

Algorithm (per step, per run; the GCSCoOp paper's algorithm 1):

1. G_CE = g = grad L_CE(v) of CoOp's prompt ("a photo of a", M = 4);
2. e = rho * g / |g| (eq. 4, global norm over the run's learned tensors); G_SAM =
   grad L_CE(v + e) (eq. 5); v itself is left unchanged;
3. c = cos(G_SAM, G_CE) (eq. 6);
4. G_GCSAM (eq. 7) = G_CE if c <= beta1; G_SAM if c >= beta2; otherwise the projection of
   G_SAM onto the bisector z = G_SAM + G_CE: (G_SAM . z / |z|^2) z (the paper's
   G_mid = z / 2 gives the same vector);
5. SGD step (momentum, weight decay) with G_GCSAM.

Boundaries, as the reference code (GCSAM.gradient_constrain) compares: c == beta1 goes to
G_CE, c == beta2 to G_SAM, and beta1 >= beta2 means G_CE or G_SAM only. beta1 <= 0 removes
the lower bound altogether (the reference's convention; table 4's '-' is beta1 = 0): then
c < beta2 -> bisector, else G_SAM. Deliberate deviations from the reference on degenerate
steps, where it divides by zero and gets NaN: a zero gradient has c = 0 (torch's
cosine_similarity convention; G_CE = G_SAM = 0 there, so the update is zero either way), and
a zero bisector (G_SAM = -G_CE, reachable only without lower bound) gives a zero update. The
reference constrains each parameter tensor separately; with the single context tensor that
is the same as our per-run global vectors.

Presets: init "a photo of a" (M = 4), batch 128, 200 epochs, every protocol (16 shots in the
paper); defaults rho 0.1, beta1 0.5, beta2 0.8, replaced by dataset name with the appendix
table 4 values (Pets and Food101: beta1 -, beta2 0.3; Aircraft: 0.6/0.9; DTD: rho 0.3,
beta1 0.2; EuroSAT: rho 0.2, beta1 -). The ``default`` preset keeps the defaults everywhere.
Diagnostics: ``sam_mean_cosine`` (mean cos(G_SAM, G_CE)) and the share of steps in each
branch (``gcscoop_branch_ce``, ``gcscoop_branch_sam``, ``gcscoop_branch_bisector``).
Deviation: fp32 master weights (bf16 autocast on GPU) instead of pure fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from vlprompt_methods.coop import for_preset
from vlprompt_methods.kgcoop import initial_context
from vlprompt_methods.scoop import ce_losses

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import PromptClassifier
from benchmark.prompting.rules import Grads, combine, dot, flat
from benchmark.prompting.sam import cosine, sam_gradients
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Optimisation, fit
from benchmark.protocol import TrainData

NO_LOWER_BOUND = 0.0  # table 4's '-': beta1 <= 0 removes the lower bound
TABLE4 = {  # dataset: (rho, beta1, beta2), GCSCoOp column of appendix table 4
    "imagenet": (0.1, 0.5, 0.8),
    "caltech101": (0.1, 0.5, 0.8),
    "oxford_pets": (0.1, NO_LOWER_BOUND, 0.3),
    "stanford_cars": (0.1, 0.5, 0.8),
    "oxford_flowers": (0.1, 0.5, 0.8),
    "food101": (0.1, NO_LOWER_BOUND, 0.3),
    "fgvc_aircraft": (0.1, 0.6, 0.9),
    "sun397": (0.1, 0.5, 0.8),
    "dtd": (0.3, 0.2, 0.8),
    "eurosat": (0.2, NO_LOWER_BOUND, 0.8),
    "ucf101": (0.1, 0.5, 0.8),
}
BRANCH_CE, BRANCH_SAM, BRANCH_BISECTOR = 0, 1, 2


@dataclass(frozen=True)
class Config:
    n_ctx: int = 4  # used only when ctx_init is empty
    ctx_init: str = "a photo of a"
    rho: float = 0.1
    beta1: float = 0.5
    beta2: float = 0.8
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    views: int = 0  # augmented views cycled through; 0: a new one each epoch (reference)

    def optimisation(self) -> Optimisation:
        return Optimisation.of(self)


def gcsam(
    g: Sequence[torch.Tensor], g_sam: Sequence[torch.Tensor], beta1: float, beta2: float
) -> tuple[Grads, torch.Tensor, torch.Tensor]:
    """Eq. 7 per run: (G_GCSAM, branch (S,) in BRANCH_*, cos(G_SAM, G_CE) (S,))."""
    c = cosine(g_sam, g)
    use_ce = c <= beta1 if beta1 > 0 else torch.zeros_like(c, dtype=torch.bool)
    use_sam = ~use_ce & (c >= beta2)
    bisect = ~use_ce & ~use_sam
    z = [a + b for a, b in zip(g_sam, g, strict=True)]
    zz = (flat(z) ** 2).sum(1)
    proj = torch.where(zz > 0, dot(g_sam, z) / zz.clamp_min(1e-30), torch.zeros_like(zz))
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    # out = a * g_sam + b * g with per-run factors (the bisector is proj * (g_sam + g))
    a = torch.where(use_sam, one, torch.where(bisect, proj, zero))
    b = torch.where(use_ce, one, torch.where(bisect, proj, zero))
    branch = torch.full_like(c, BRANCH_BISECTOR, dtype=torch.long)
    branch = torch.where(use_ce, BRANCH_CE, torch.where(use_sam, BRANCH_SAM, branch))
    return combine(g_sam, g, a, b), branch, c


def gcscoop_rule(rho: float, beta1: float, beta2: float):
    def rule(params, closure):
        g, g_sam = sam_gradients(params, closure, rho)
        out, branch, c = gcsam(g, g_sam, beta1, beta2)
        return out, {
            "sam_mean_cosine": c,
            "gcscoop_branch_ce": (branch == BRANCH_CE).float(),
            "gcscoop_branch_sam": (branch == BRANCH_SAM).float(),
            "gcscoop_branch_bisector": (branch == BRANCH_BISECTOR).float(),
        }

    return rule


class GCSCoOp:
    name = "gcscoop"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        rho, beta1, beta2 = TABLE4.get(setting.dataset, (0.1, 0.5, 0.8))
        return for_preset(Config(rho=rho, beta1=beta1, beta2=beta2, epochs=200), setting)

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        ctx = initial_context(config.ctx_init, config.n_ctx, runs, engine)
        encoder = PromptEncoder(engine.tower, runs[0].classes.names, ctx.shape[-2])
        rule = gcscoop_rule(config.rho, config.beta1, config.beta2)
        diagnostics = fit(
            runs, engine, [ctx], ce_losses(encoder, engine), rule, config.optimisation()
        )
        return [
            PromptClassifier(engine, ctx[i], diagnostics[i], run.classes)
            for i, run in enumerate(runs)
        ]


METHOD = GCSCoOp()
