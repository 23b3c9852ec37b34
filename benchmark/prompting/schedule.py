"""The learning-rate schedule of the reference code (Dassl's cosine with constant warm-up)."""

from __future__ import annotations

import math

WARMUP_LR = 1e-5


def learning_rate(
    epoch: int,
    base_lr: float,
    epochs: int,
    warmup_lr: float = WARMUP_LR,
    squared: bool = False,
    warmup: bool = True,
) -> float:
    """The learning rate of ``epoch`` (0-based), stepped once per epoch.

    Epoch 0 is the warm-up epoch at the constant ``warmup_lr``; epoch k >= 1 uses
    ``base_lr * 0.5 * (1 + cos(pi * (k - 1) / epochs))``, which never reaches 0.
    ``squared`` squares the cosine factor: the schedule that KgCoOp's published runs used
    because two schedulers stepped the same optimiser. Without ``warmup`` the cosine starts at
    epoch 0 (for a run of one or two epochs, which the warm-up epoch would leave untrained).
    """
    if warmup and epoch == 0:
        return warmup_lr
    k = epoch - 1 if warmup else epoch
    factor = 0.5 * (1 + math.cos(math.pi * k / epochs))
    return base_lr * (factor * factor if squared else factor)
