"""ProGrad: Prompt-aligned Gradient (Zhu et al., ICCV 2023).

Algorithm (per step, per run):

1. student logits = exp(t) cos(f(x), g([V]_1 .. [V]_M [CLASS_i] .)) (CoOp's prompt);
2. teacher logits = zero-shot CLIP logits of the same (augmented) batch: exp(t) cos(f(x),
   w_zs_i) with ProGrad's wording of the dataset's prompt (``teacher_template``: "a type of
   pet, a photo of a {}." on OxfordPets, ...);
3. G_d = grad L_CE (domain-specific), G_g = grad KL(p_teacher || p_student) at T = 1,
   ``batchmean`` over the run's batch (general direction);
4. G_prograd = G_d if G_d . G_g >= 0, else G_d - lambda (G_d . G_g / |G_g|^2) G_g
   (paper eq. 4); the KL gradient itself is never added; SGD step with G_prograd.

Boundaries, as the reference code compares (``dot < 0`` projects): exactly orthogonal
gradients (G_d . G_g = 0) are not projected; a zero G_g is never projected (the reference
would divide by zero), and neither is a G_g that is zero but for float rounding, |G_g| <=
1e-6 |G_d| (when the context starts as the teacher's prompt, the KL and its gradient are
exactly zero; the rounding left in G_g points anywhere, and the reference would project on
it); a G_g of a real difference between student and teacher is larger by orders. Dot
products and norms are over all learned tensors of one run (the reference projects per
parameter tensor; with the single context tensor that is the same).

Context: M = 16 slots, the init phrase (the teacher template without " {}.") at the tail and
zeros before it, counted in words as the reference counts them: "a type of pet, a photo of a"
has 8 words and 9 tokens, so 8 zeros, the first 8 tokens learned and the last "a" fixed
before the class name (:mod:`benchmark.prompting.context`). The ``ensemble`` variant
(ProGrad++) uses CLIP++'s features of the dataset as teacher (no public code: the seven
ImageNet templates and CoOp's dataset template, see :mod:`benchmark.prompting.templates`).
Settings: ``prograd.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.config import a_template, at_least
from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.perf.reference_step import ReferenceDesign, project_conflicting
from benchmark.prompting.classifier import cosine_logits
from benchmark.prompting.method import Objective, PromptConfig, PromptMethod, Step, cross_entropy
from benchmark.prompting.rules import Grads, UpdateRule, combine, dot, flat, grad
from benchmark.prompting.templates import ensemble, text_features
from benchmark.protocol import Classes
from benchmark.settings import beside

ZERO_RATIO = 1e-6  # |G_g| / |G_d| below which G_g is float rounding of zero


@dataclass(frozen=True)
class Config(PromptConfig):
    lambda_: float = 1.0
    teacher_template: str = ""  # empty: the dataset's hand-crafted template
    ensemble: bool = False  # ProGrad++: the CLIP++ ensemble teacher

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("lambda_", self.lambda_, 0)
        a_template("teacher_template", self.teacher_template)


def prograd_project(
    g_d: Sequence[torch.Tensor], g_g: Sequence[torch.Tensor], lambda_: float
) -> tuple[Grads, torch.Tensor, torch.Tensor]:
    """Eq. 4 per run: (G_prograd, projected (S,) bool, angle between G_d and G_g in degrees).

    Projected iff G_d . G_g < 0 and |G_g| > ZERO_RATIO |G_d| (module docstring). The angle of a
    zero gradient is 90 degrees.
    """
    d = dot(g_d, g_g)
    gg = (flat(g_g) ** 2).sum(1)
    projected = (d < 0) & (gg > ZERO_RATIO**2 * (flat(g_d) ** 2).sum(1))
    factor = torch.where(projected, -lambda_ * d / gg.clamp_min(1e-30), torch.zeros_like(d))
    out = combine(g_d, g_g, torch.ones_like(d), factor)
    norms = flat(g_d).norm(dim=1) * gg.sqrt()
    cos = torch.where(norms > 0, d / norms.clamp_min(1e-30), torch.zeros_like(d))
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    return out, projected, angle


def prograd_rule(lambda_: float) -> UpdateRule:
    def rule(params, closure):
        losses = closure(params)
        g_d = grad(losses["ce"], params, retain=True)
        g_g = grad(losses["kl"], params)
        out, projected, angle = prograd_project(g_d, g_g, lambda_)
        stats = {"prograd_projected_fraction": projected.float(), "prograd_mean_angle": angle}
        return out, stats

    return rule


def prograd_losses(step: Step, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-run CE and KL(teacher || student) at T = 1, batchmean; teacher logits (S, B, K)."""
    log_p = F.log_softmax(step.logits, dim=-1)
    log_q = F.log_softmax(teacher, dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1).mean(-1)
    return {"ce": cross_entropy(step), "kl": kl}


def teacher_templates(config: Config, dataset: str, template: str) -> tuple[str, ...]:
    """The teacher's prompts: ProGrad's wording, or CLIP++'s prompts of the dataset whose
    hand-crafted template is ``template`` (ProGrad++)."""
    return ensemble(dataset, template) if config.ensemble else (config.teacher_template,)


class ProGrad(PromptMethod[Config]):
    name, version, Config = "prograd", "2", Config
    settings_file = beside(__file__)
    reference_design = ReferenceDesign(teacher=True, combine=project_conflicting)

    def complete(self, config: Config, setting: Setting) -> Config:
        return replace(config, teacher_template=config.teacher_template or setting.template)

    def texts(self, config: Config, setting: Setting) -> dict[str, Any]:
        teacher = teacher_templates(config, setting.dataset, setting.template)
        return {**super().texts(config, setting), "teacher": list(teacher)}

    def objective(self, config: Config, classes: Classes, engine: Engine) -> Objective:
        templates = teacher_templates(config, classes.dataset, classes.template)
        zeroshot = text_features(engine, templates, classes.names).to(engine.device)
        scale = engine.backbone.logit_scale

        def losses(step: Step) -> dict[str, torch.Tensor]:
            return prograd_losses(step, cosine_logits(step.batch.features, zeroshot, scale))

        return losses

    def rule(self, config: Config) -> UpdateRule:
        return prograd_rule(config.lambda_)


METHOD = ProGrad()
