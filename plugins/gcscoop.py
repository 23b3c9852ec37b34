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

Settings: ``gcscoop.toml`` (rho, beta1, beta2 per dataset from the paper's appendix table 4;
the ``default`` variant keeps rho 0.1, beta1 0.5, beta2 0.8 everywhere).
Diagnostics: ``sam_mean_cosine`` (mean cos(G_SAM, G_CE)) and the share of steps in each
branch (``gcscoop_branch_ce``, ``gcscoop_branch_sam``, ``gcscoop_branch_bisector``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.config import at_least, require
from benchmark.perf.reference_step import ReferenceDesign, bisector
from benchmark.prompting.method import PromptConfig, PromptMethod
from benchmark.prompting.rules import Grads, UpdateRule, combine, dot, flat
from benchmark.prompting.sam import cosine, sam_gradients
from benchmark.settings import beside

NO_LOWER_BOUND = 0.0  # table 4's '-': beta1 <= 0 removes the lower bound
BRANCH_CE, BRANCH_SAM, BRANCH_BISECTOR = 0, 1, 2


@dataclass(frozen=True)
class Config(PromptConfig):
    rho: float = 0.1
    beta1: float = 0.5  # <= 0: no lower bound
    beta2: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("rho", self.rho, 0)
        for name, beta in (("beta1", self.beta1), ("beta2", self.beta2)):
            require(-1 <= beta <= 1, f"{name} is a cosine bound, from -1 to 1; got {beta}")


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


def gcscoop_rule(rho: float, beta1: float, beta2: float) -> UpdateRule:
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


class GCSCoOp(PromptMethod[Config]):
    name, version, Config = "gcscoop", "2", Config
    settings_file = beside(__file__)
    reference_design = ReferenceDesign(passes=2, combine=bisector)

    def rule(self, config: Config) -> UpdateRule:
        return gcscoop_rule(config.rho, config.beta1, config.beta2)


METHOD = GCSCoOp()
