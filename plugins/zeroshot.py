"""Zero-shot CLIP: class names in the dataset's hand-crafted prompt, no training.

logits = exp(t) * cos(f_image, f_text("a photo of a {class}.")), with the prompt of the
dataset being scored (CoOp's wording). The ``ensemble`` variant (CLIP++) averages the
normalised text features of CoOp's seven ImageNet templates and the dataset's own template
(on ImageNet the seven alone), then normalises again (:mod:`benchmark.prompting.templates`).
Settings: ``zeroshot.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import cosine_logits
from benchmark.prompting.templates import ensemble, text_features
from benchmark.protocol import Classes, TrainData
from benchmark.settings import Configured, beside


@dataclass(frozen=True)
class Config:
    ensemble: bool = False


def templates(dataset: str, template: str, use_ensemble: bool) -> tuple[str, ...]:
    """The prompts zero-shot CLIP scores the classes of ``dataset`` with."""
    return ensemble(dataset, template) if use_ensemble else (template,)


class ZeroShotClassifier:
    def __init__(self, engine: Engine, use_ensemble: bool) -> None:
        self.engine = engine
        self.ensemble = use_ensemble
        self.diagnostics: dict[str, float] = {}

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor:
        prompts = templates(classes.dataset, classes.template, self.ensemble)
        texts = text_features(self.engine, prompts, classes.names)
        return cosine_logits(F.normalize(features, dim=-1), texts, self.engine.backbone.logit_scale)


class ZeroShot(Configured[Config]):
    name, version, Config = "zeroshot", "2", Config
    settings_file = beside(__file__)

    def texts(self, config: Config, setting: Setting) -> dict[str, Any]:
        return {"templates": list(templates(setting.dataset, setting.template, config.ensemble))}

    def train(
        self, runs: Sequence[TrainData], config: Config, engine: Engine
    ) -> list[ZeroShotClassifier]:
        return [ZeroShotClassifier(engine, config.ensemble) for _ in runs]


METHOD = ZeroShot()
