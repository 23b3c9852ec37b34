"""SCoOp: Sharpness-aware Context Optimization (the GCSCoOp paper's SAM baseline).

Algorithm (per step, per run; GCSCoOp paper eqs. 3-5, algorithm 1 with "if SCoOp"):

1. G_CE = g = grad L_CE(v) of CoOp's prompt ("a photo of a", M = 4);
2. e = rho * g / |g| (eq. 4), the norm global over all learned tensors of the run;
3. G_SAM = grad L_CE(v + e) (eq. 5), at the same batch; v itself is left unchanged;
4. SGD step (momentum, weight decay) with G_SAM.

Two forward/backward passes per step. Diagnostic ``sam_mean_cosine``: the mean over steps of
cos(G_SAM, G_CE) (0 for a zero gradient, as torch's cosine_similarity).

Presets: init "a photo of a" (M = 4), batch 128, 200 epochs, every protocol (16 shots in the
paper); rho from the paper's appendix table 4, SCoOp column (DTD 0.3, EuroSAT 0.2, all others
0.1), applied by dataset name. SCoOp-dagger's per-dataset searched rho is not a preset (set
``rho`` by hand). Deviations: fp32 master weights (bf16 autocast on GPU) instead of pure
fp16; the perturbation uses the same batch features (the reference's two passes see the same
augmented images, as here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vlprompt_methods.coop import cross_entropy, for_preset
from vlprompt_methods.kgcoop import initial_context

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import PromptClassifier
from benchmark.prompting.sam import cosine, sam_gradients
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch, Optimisation, fit
from benchmark.protocol import TrainData

SCOOP_RHO = {"dtd": 0.3, "eurosat": 0.2}  # table 4, SCoOp column; others 0.1


@dataclass(frozen=True)
class Config:
    n_ctx: int = 4  # used only when ctx_init is empty
    ctx_init: str = "a photo of a"
    rho: float = 0.1
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.002
    momentum: float = 0.9
    weight_decay: float = 5e-4
    views: int = 0  # augmented views cycled through; 0: a new one each epoch (reference)

    def optimisation(self) -> Optimisation:
        return Optimisation.of(self)


def scoop_rule(rho: float):
    def rule(params, closure):
        g, g_sam = sam_gradients(params, closure, rho)
        return g_sam, {"sam_mean_cosine": cosine(g_sam, g)}

    return rule


def ce_losses(encoder: PromptEncoder, engine: Engine):
    def losses(params, batch: Batch):
        return {"loss": cross_entropy(encoder, engine, params[0], batch)}

    return losses


class SCoOp:
    name = "scoop"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        return for_preset(Config(rho=SCOOP_RHO.get(setting.dataset, 0.1), epochs=200), setting)

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        ctx = initial_context(config.ctx_init, config.n_ctx, runs, engine)
        encoder = PromptEncoder(engine.tower, runs[0].classes.names, ctx.shape[-2])
        rule = scoop_rule(config.rho)
        diagnostics = fit(
            runs, engine, [ctx], ce_losses(encoder, engine), rule, config.optimisation()
        )
        return [
            PromptClassifier(engine, ctx[i], diagnostics[i], run.classes)
            for i, run in enumerate(runs)
        ]


METHOD = SCoOp()
