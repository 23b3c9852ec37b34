"""Hand-crafted prompts shared by methods: zero-shot text features and CLIP's ensemble.

The ensemble ("CLIP++", and ProGrad++'s teacher) averages the normalised text features of the
seven ImageNet templates CoOp selected (KaiyangZhou/CoOp trainers/imagenet_templates.py,
``IMAGENET_TEMPLATES_SELECT``) and of the dataset's own template, then normalises again; on
ImageNet itself the seven are used alone (KaiyangZhou/CoOp trainers/zsclip.py,
``ZeroshotCLIP2``: the dataset template is added when the dataset is not ImageNet, so the
shifted ImageNets get it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from benchmark.engine import Engine

ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
ENSEMBLE_ALONE_ON = ("imagenet",)


def ensemble(dataset: str, template: str) -> tuple[str, ...]:
    """The ensemble's templates on ``dataset`` whose hand-crafted prompt is ``template``."""
    if dataset in ENSEMBLE_ALONE_ON:
        return ENSEMBLE_TEMPLATES
    return (*ENSEMBLE_TEMPLATES, template)


def text_features(engine: Engine, templates: Sequence[str], names: Sequence[str]) -> torch.Tensor:
    """Normalised features (K, D) of class ``names``: the mean over ``templates`` of each
    template's normalised features, normalised again."""
    per_template = [engine.text_features(tuple(t.format(n) for n in names)) for t in templates]
    return F.normalize(torch.stack(per_template).mean(0), dim=-1)
