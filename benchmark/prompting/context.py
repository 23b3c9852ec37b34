"""Initial context vectors of the CoOp family, one set per run (seed).

A prompt is ``[SOS] <lead> <class name> . [EOT]``; the first ``M`` tokens of the lead are the
learned context. Without an init phrase the lead is ``M`` placeholders and the context is
drawn from N(0, 0.02). With an init phrase of ``w`` words (counted as the reference code
counts them, ``len(phrase.split(" "))``), the lead is ``M - w`` placeholders followed by the
phrase: the context starts as ``M - w`` zero vectors and the embeddings of the phrase's
first ``w`` BPE tokens; a phrase with more tokens than words ("pet," is two tokens) keeps its
remaining tokens in the lead after the context, fixed, before the class name. This is the
reference code's construction (CoOp, CoCoOp, KgCoOp with ``M = w``; ProGrad with ``M = 16``
and the phrase at the tail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.prompting.text import TextTower, placeholders


def words(phrase: str) -> int:
    """The reference code's length of an init phrase: its words."""
    return len(phrase.split(" "))


@dataclass(frozen=True)
class Lead:
    """A prompt's text before the class name (module docstring): ``n_ctx`` context vectors,
    the last ``n_words`` of them from the init phrase (0 without one)."""

    text: str
    n_ctx: int
    n_words: int


def prompt_lead(ctx_init: str, n_ctx: int) -> Lead:
    """The lead of a context of ``n_ctx`` vectors started from ``ctx_init`` (empty: none;
    ``n_ctx`` 0 with a phrase: one vector per word)."""
    if not ctx_init:
        return Lead(placeholders(n_ctx), n_ctx, 0)
    n_words = words(ctx_init)
    n_ctx = n_ctx or n_words
    if n_words > n_ctx:
        raise ValueError(f"init phrase {ctx_init!r} has {n_words} words, more than n_ctx={n_ctx}")
    return Lead(" ".join(filter(None, (placeholders(n_ctx - n_words), ctx_init))), n_ctx, n_words)


def random_context(seeds: Sequence[int], shape: Sequence[int], std: float = 0.02) -> torch.Tensor:
    """N(0, std^2) context (S, *shape), each run drawing from a generator seeded by its seed.

    ``shape`` is (M, d), or (K, M, d) for class-specific context. The reference draws from
    the global RNG after seeding it; the distribution is the same, the draw differs.
    """
    contexts = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        contexts.append(torch.randn(*shape, generator=generator) * std)
    return torch.stack(contexts)


@dataclass(frozen=True)
class InitialContext:
    """The learned context (S, M, d), or (S, K, M, d) per class, and the prompt's lead."""

    ctx: torch.Tensor
    lead: str


def initial_context(
    tower: TextTower,
    ctx_init: str,
    n_ctx: int,
    seeds: Sequence[int],
    n_classes: int = 0,
) -> InitialContext:
    """The context of runs ``seeds`` (module docstring); ``n_ctx`` 0 with a phrase: one
    vector per word. ``n_classes`` > 0: one random context per class (CSC)."""
    width = tower.tower.token_embedding.weight.shape[1]
    lead = prompt_lead(ctx_init, n_ctx)
    if not ctx_init:
        shape = (n_classes, n_ctx, width) if n_classes else (n_ctx, width)
        return InitialContext(random_context(seeds, shape), lead.text)
    n_ctx, zeros = lead.n_ctx, lead.n_ctx - lead.n_words
    tokens, _ = tower.tokens([lead.text])
    ctx = torch.zeros(n_ctx, width)
    ctx[zeros:] = tower.embed(tokens)[0, 1 + zeros : 1 + n_ctx].cpu()
    return InitialContext(ctx.expand(len(seeds), -1, -1).clone(), lead.text)
