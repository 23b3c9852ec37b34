"""Zero-shot CLIP: class names in the dataset's hand-crafted prompt, no training.

logits = exp(t) * cos(f_image, f_text("a photo of a {class}.")). The ``ensemble`` preset
(CLIP++) averages the normalised text features of CoOp's seven ImageNet templates and the
dataset's own template, then normalises again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.method import Setting
from benchmark.prompting.classifier import cosine_logits
from benchmark.protocol import Classes, TrainData

ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


@dataclass(frozen=True)
class Config:
    ensemble: bool = False


def class_text_features(engine: Engine, classes: Classes, ensemble: bool) -> torch.Tensor:
    """Normalised zero-shot text features (K, D) of ``classes``."""
    templates = (classes.template, *ENSEMBLE_TEMPLATES) if ensemble else (classes.template,)
    per_template = [
        engine.text_features(tuple(t.format(name) for name in classes.names)) for t in templates
    ]
    return F.normalize(torch.stack(per_template).mean(0), dim=-1)


class ZeroShotClassifier:
    def __init__(self, engine: Engine, ensemble: bool) -> None:
        self.engine = engine
        self.ensemble = ensemble
        self.diagnostics: dict[str, float] = {}

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor:
        texts = class_text_features(self.engine, classes, self.ensemble)
        return cosine_logits(F.normalize(features, dim=-1), texts, self.engine.backbone.logit_scale)


class ZeroShot:
    name = "zeroshot"
    version = "1"
    Config = Config

    def config(self, setting: Setting) -> Config:
        return Config()

    def train(self, runs: Sequence[TrainData], config: Config, engine: Engine):
        return [ZeroShotClassifier(engine, config.ensemble) for _ in runs]


METHOD = ZeroShot()
