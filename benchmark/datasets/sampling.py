"""The few-shot sampler of the reference code (Dassl's ``generate_fewshot_dataset``)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from benchmark.datasets.spec import Sample

VAL_SHOTS_CAP = 4


def _draw(samples: Sequence[Sample], shots: int, rng: random.Random) -> list[Sample]:
    by_label: dict[int, list[Sample]] = {}
    for sample in samples:  # dicts keep the order of first appearance
        by_label.setdefault(sample.label, []).append(sample)
    drawn: list[Sample] = []
    for items in by_label.values():
        drawn.extend(rng.sample(items, shots) if len(items) >= shots else items)
    return drawn


def few_shot(
    train: Sequence[Sample], val: Sequence[Sample], shots: int, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Draw ``shots`` training items per class, then ``min(shots, 4)`` validation items.

    Per class, in order of first appearance in the split, items are drawn without
    replacement (all of them if there are fewer). The draw is seeded by ``seed`` alone, so
    the same seed gives the same subset to every method; base-to-new draws before filtering
    classes, as the reference does.
    """
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    rng = random.Random(seed)
    train_subset = _draw(train, shots, rng)
    val_subset = _draw(val, min(shots, VAL_SHOTS_CAP), rng)
    return train_subset, val_subset
