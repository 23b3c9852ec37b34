"""Update rules: how a step's gradients are made from the losses.

Runs that differ only by seed train together: every learned tensor has the run as its
leading dimension, and each run's losses depend only on its own slice. The gradient of the
sum of the runs' losses is therefore, slice by slice, each run's own gradient, and every
per-run quantity (dot products, norms, projections, SAM perturbations) is computed per slice.
The result equals S separate runs.

A rule is called with the learned tensors and a closure that evaluates the losses (a dict of
tensors of shape (S,)) at given values of those tensors; it returns one gradient per tensor
and, optionally, per-run diagnostics of the step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

Losses = dict[str, torch.Tensor]
Closure = Callable[[Sequence[torch.Tensor]], Losses]
Grads = list[torch.Tensor]


class UpdateRule(Protocol):
    """Makes the gradients of one step; may record per-run diagnostics (shape (S,))."""

    def __call__(
        self, params: Sequence[torch.Tensor], closure: Closure
    ) -> tuple[Grads, dict[str, torch.Tensor]]: ...


def grad(loss: torch.Tensor, params: Sequence[torch.Tensor], retain: bool = False) -> Grads:
    """Per-run gradients of per-run losses (S,): the gradient of their sum."""
    return list(torch.autograd.grad(loss.sum(), list(params), retain_graph=retain))


def flat(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """All gradients of each run as one vector: (S, P)."""
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-run dot products (S,) of two gradient lists."""
    return (flat(a) * flat(b)).sum(dim=1)


def scale(grads: Sequence[torch.Tensor], factor: torch.Tensor) -> Grads:
    """Multiply each run's gradients by its factor (S,)."""
    return [g * factor.view(-1, *([1] * (g.dim() - 1))) for g in grads]


def combine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], fa, fb) -> Grads:
    """Per-run linear combination ``fa * a + fb * b`` with factors of shape (S,)."""
    return [x + y for x, y in zip(scale(a, fa), scale(b, fb), strict=True)]


def plain(params: Sequence[torch.Tensor], closure: Closure) -> tuple[Grads, dict]:
    """The plain rule: the gradient of the objective ``loss``."""
    return grad(closure(params)["loss"], params), {}
