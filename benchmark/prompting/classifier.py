"""Classifiers of the CoOp family: learned context plus the frozen text encoder."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from benchmark.engine import Engine
from benchmark.method import LearnedState, StateError
from benchmark.prompting.text import PromptEncoder
from benchmark.protocol import Classes


def cosine_logits(images: torch.Tensor, texts: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * cos``: images (..., B, D) against texts (..., K, D), both normalised."""
    return scale * images @ texts.transpose(-1, -2)


def context_state(ctx: torch.Tensor, lead: str, **tensors: torch.Tensor) -> LearnedState:
    """The learned state of a context ``ctx`` in prompts led by ``lead``, with further
    learned ``tensors``: tensor ``ctx``, text ``lead``."""
    saved = {"ctx": ctx, **tensors}
    return LearnedState(
        {name: t.detach().cpu().contiguous().clone() for name, t in saved.items()},
        {"lead": lead},
        contexts=("ctx",),
    )


def saved_context(
    state: LearnedState, engine: Engine, *dims: int | None
) -> tuple[torch.Tensor, str]:
    """The context tensor of ``state`` (float32, shape ``(*dims, M, d)``, d the token width
    of ``engine``'s text encoder) and its prompt lead, which must hold at least M tokens."""
    width = engine.tower.tower.token_embedding.weight.shape[1]
    ctx = state.tensor("ctx", *dims, None, width, dtype=torch.float32)
    lead = state.text("lead")
    _, eot = engine.tower.tokens([lead])
    if int(eot[0]) - 1 < ctx.shape[-2]:
        raise StateError(f"lead {lead!r} has fewer tokens than the {ctx.shape[-2]} context vectors")
    return ctx, lead


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

    def state(self) -> LearnedState:
        return context_state(self.ctx, self.lead)

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
