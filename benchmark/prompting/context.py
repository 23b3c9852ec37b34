"""Initial context vectors of the CoOp family, one set per run (seed)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.prompting.text import TextTower


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


def phrase_embeddings(tower: TextTower, phrase: str) -> torch.Tensor:
    """Token embeddings (M, d) of a phrase, without [SOS] and [EOT]."""
    tokens, eot = tower.tokens([phrase])
    return tower.embed(tokens)[0, 1 : int(eot[0])].cpu()


def phrase_context(tower: TextTower, phrase: str, n_runs: int) -> torch.Tensor:
    """Context (S, M, d) initialised to a phrase's embeddings ("a photo of a" gives M = 4)."""
    return phrase_embeddings(tower, phrase).expand(n_runs, -1, -1).clone()


def tail_phrase_context(tower: TextTower, phrase: str, n_ctx: int, n_runs: int) -> torch.Tensor:
    """ProGrad's init: ``n_ctx`` vectors, zeros, then the phrase's embeddings as the LAST ones
    (``n_ctx`` 0: as many vectors as the phrase has tokens, no zeros)."""
    tail = phrase_embeddings(tower, phrase)
    n_ctx = n_ctx or len(tail)
    if len(tail) > n_ctx:
        raise ValueError(f"init phrase {phrase!r} has {len(tail)} tokens, more than n_ctx={n_ctx}")
    ctx = torch.zeros(n_runs, n_ctx, tail.shape[1])
    ctx[:, n_ctx - len(tail) :] = tail
    return ctx
