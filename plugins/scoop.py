"""SCoOp: Sharpness-aware Context Optimization (the GCSCoOp paper's SAM baseline).

Algorithm (per step, per run; GCSCoOp paper eqs. 3-5, algorithm 1 with "if SCoOp"):

1. G_CE = g = grad L_CE(v) of CoOp's prompt ("a photo of a", M = 4);
2. e = rho * g / |g| (eq. 4), the norm global over all learned tensors of the run;
3. G_SAM = grad L_CE(v + e) (eq. 5), at the same batch; v itself is left unchanged;
4. SGD step (momentum, weight decay) with G_SAM.

Two forward/backward passes per step, on the same batch features (the reference's two passes
see the same augmented images). Diagnostic ``sam_mean_cosine``: the mean over steps of
cos(G_SAM, G_CE) (0 for a zero gradient, as torch's cosine_similarity). Settings:
``scoop.toml`` (rho per dataset from the paper's appendix table 4; SCoOp-dagger's searched rho
is not a setting: set ``rho`` by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config import at_least
from benchmark.perf.reference_step import ReferenceDesign
from benchmark.prompting.method import PromptConfig, PromptMethod
from benchmark.prompting.rules import UpdateRule
from benchmark.prompting.sam import cosine, sam_gradients
from benchmark.settings import beside


@dataclass(frozen=True)
class Config(PromptConfig):
    rho: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("rho", self.rho, 0)


def scoop_rule(rho: float) -> UpdateRule:
    def rule(params, closure):
        g, g_sam = sam_gradients(params, closure, rho)
        return g_sam, {"sam_mean_cosine": cosine(g_sam, g)}

    return rule


class SCoOp(PromptMethod[Config]):
    name, version, Config = "scoop", "2", Config
    settings_file = beside(__file__)
    reference_design = ReferenceDesign(passes=2)

    def rule(self, config: Config) -> UpdateRule:
        return scoop_rule(config.rho)


METHOD = SCoOp()
