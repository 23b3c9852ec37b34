"""Sharpness-aware minimisation (SAM) for the batched runs of the CoOp family.

One SAM step (Foret et al.; SCoOp/GCSCoOp eqs. 3-5): g = grad L(w); e = rho * g / |g|, the
norm taken over all learned tensors of a run (per run, never across runs); G_SAM =
grad L(w + e). The learned tensors themselves are never modified: the perturbed values are
fresh tensors handed to the closure, so "restore w" is implicit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from benchmark.prompting.rules import Closure, Grads, dot, flat, grad, scale

NORM_EPS = 1e-12  # the reference SAM's ``rho / (grad_norm + 1e-12)``
COS_EPS = 1e-8  # torch.nn.functional.cosine_similarity's eps


def norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-run global L2 norms (S,) over all gradient tensors."""
    return flat(grads).norm(dim=1)


def cosine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-run cosine (S,) of two gradient lists; 0 where either is zero (as torch's)."""
    return dot(a, b) / (norms(a) * norms(b)).clamp_min(COS_EPS)


def perturbation(grads: Sequence[torch.Tensor], rho: float) -> Grads:
    """e = rho * g / (|g| + 1e-12), per run; zero where the gradient is zero."""
    return scale(grads, rho / (norms(grads) + NORM_EPS))


def sam_gradients(
    params: Sequence[torch.Tensor], closure: Closure, rho: float, key: str = "loss"
) -> tuple[Grads, Grads]:
    """(g, G_SAM): the gradient at w and the gradient at w + e of the loss ``key``."""
    g = grad(closure(params)[key], params)
    e = perturbation(g, rho)
    perturbed = [(p.detach() + d).requires_grad_(True) for p, d in zip(params, e, strict=True)]
    g_sam = grad(closure(perturbed)[key], perturbed)
    return [x.detach() for x in g], [x.detach() for x in g_sam]
