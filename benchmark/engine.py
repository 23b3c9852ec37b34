"""What a method gets to work with: the frozen backbone, its feature cache, its text tower."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from benchmark.backbone import Backbone
from benchmark.features import FeatureCache
from benchmark.prompting.text import TextTower


@dataclass
class Engine:
    backbone: Backbone
    features: FeatureCache
    _text_cache: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    @cached_property
    def tower(self) -> TextTower:
        return TextTower(self.backbone)

    def text_features(self, texts: tuple[str, ...]) -> torch.Tensor:
        """Normalised features (N, D) of plain texts, cached for the engine's lifetime."""
        if texts not in self._text_cache:
            features = self.tower.encode_texts(list(texts))
            self._text_cache[texts] = torch.nn.functional.normalize(features, dim=-1)
        return self._text_cache[texts]
