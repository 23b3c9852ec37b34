"""CoOp with gradient-norm clipping: CoOp's prompts and objective, a new update rule.

Each step, every run's gradient (all its learned tensors as one vector) is scaled down to
norm ``max_norm`` when it is longer; runs trained together are clipped separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.prompting.method import PromptConfig, PromptMethod
from benchmark.prompting.rules import UpdateRule, flat, grad, scale


@dataclass(frozen=True)
class Config(PromptConfig):
    max_norm: float = 1.0  # --set coop_clipped.max_norm=0.5


def clip_by_norm(max_norm: float) -> UpdateRule:
    def rule(params, closure):
        grads = grad(closure(params)["loss"], params)
        norms = flat(grads).norm(dim=1)  # (S,): one norm per run
        factor = (max_norm / norms.clamp_min(1e-12)).clamp(max=1.0)
        return scale(grads, factor), {"clipped_fraction": (factor < 1).float()}

    return rule


class CoOpClipped(PromptMethod[Config]):
    name, version, Config = "coop_clipped", "1", Config

    def rule(self, config: Config) -> UpdateRule:
        return clip_by_norm(config.max_norm)


METHOD = CoOpClipped()
