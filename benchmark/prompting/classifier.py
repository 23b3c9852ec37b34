"""Classifiers of the CoOp family: learned context plus the frozen text encoder."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.prompting.text import PromptEncoder
from benchmark.protocol import Classes


def cosine_logits(images: torch.Tensor, texts: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos``: images (..., B, D) against texts (..., K, D), both normalised."""
    return scale * images @ texts.transpose(-1, -2)


class PromptClassifier:
    """One run's learned context ``ctx`` (M, d), or (K, M, d) for class-specific context,
    in prompts ``[SOS] <lead> <class name> .`` (see :mod:`benchmark.prompting.context`)."""

    def __init__(
        self,
        engine: Engine,
        ctx: torch.Tensor,
        lead: str,
        diagnostics: Mapping[str, float] | None = None,
        trained_on: Classes | None = None,
    ) -> None:
        self.engine = engine
        self.ctx = ctx.detach()
        self.lead = lead
        self.diagnostics = dict(diagnostics or {})
        self.trained_on = trained_on

    def text_features(self, classes: Classes) -> torch.Tensor | None:
        class_specific = self.ctx.dim() == 3
        if class_specific and (self.trained_on is None or classes.names != self.trained_on.names):
            return None  # class-specific context exists only for the training classes
        encoder = PromptEncoder(self.engine.tower, classes.names, self.ctx.shape[-2], self.lead)
        ctx = self.ctx if class_specific else self.ctx[None]
        with torch.no_grad():
            return F.normalize(encoder(ctx.to(self.engine.device)), dim=-1)

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor | None:
        texts = self.text_features(classes)
        if texts is None:
            return None
        return cosine_logits(F.normalize(features, dim=-1), texts, self.engine.backbone.logit_scale)
