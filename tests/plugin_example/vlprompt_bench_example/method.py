"""CoOp with gradient-norm clipping: CoOp's prompts, objective and schedule, a new update rule.

Each step, every run's gradient (all its learned tensors as one vector) is scaled down to
norm ``max_norm`` when it is longer. Runs trained together are clipped separately, so a
batch of seeds still equals separate runs. The share of clipped steps is reported as the
diagnostic ``clipped_fraction``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from vlprompt_methods import coop

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import PromptClassifier
from benchmark.prompting.rules import Closure, Grads, flat, grad, scale
from benchmark.prompting.text import PromptEncoder
from benchmark.prompting.trainer import Batch, fit
from benchmark.protocol import TrainData


@dataclasses.dataclass(frozen=True)
class Config(coop.Config):
    """CoOp's fields plus the clipping threshold (``--set coop_clipped.max_norm=0.5``)."""

    max_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_norm > 0:
            raise ValueError(f"max_norm must be positive, got {self.max_norm}")


def clip_by_norm(max_norm: float):
    """An update rule: the CE gradient, scaled per run to norm at most ``max_norm``."""

    def rule(
        params: Sequence[torch.Tensor], closure: Closure
    ) -> tuple[Grads, dict[str, torch.Tensor]]:
        grads = grad(closure(params)["loss"], params)
        norms = flat(grads).norm(dim=1)  # (S,): one norm per run
        factor = (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)
        return scale(grads, factor), {"clipped_fraction": (factor < 1).float()}

    return rule


class CoOpClipped(coop.CoOp):
    name = "coop_clipped"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        return Config(**dataclasses.asdict(super().config(setting)))

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        ctx = coop.initial_context(config, runs, engine)
        encoder = PromptEncoder(engine.tower, runs[0].classes.names, ctx.shape[-2])

        def losses(params, batch: Batch):
            return {"loss": coop.cross_entropy(encoder, engine, params[0], batch)}

        rule = clip_by_norm(config.max_norm)
        diagnostics = fit(runs, engine, [ctx], losses, rule, config.optimisation())
        return [
            PromptClassifier(engine, ctx[i], diagnostics[i], run.classes)
            for i, run in enumerate(runs)
        ]


METHOD = CoOpClipped()
