"""Top-1 accuracy of a classifier on one evaluation split."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.protocol import EvalSplit


def top1(classifier: Any, features: torch.Tensor, split: EvalSplit) -> float | None:
    """Top-1 accuracy (%) of ``classifier`` on the image ``features`` of ``split``'s samples,
    scored against ``split.classes``; None when the classifier cannot score those classes."""
    with torch.no_grad():
        scores = classifier.scores(features, split.classes)
    if scores is None:
        return None
    labels = torch.tensor([s.label for s in split.samples], device=scores.device)
    return 100.0 * float((scores.argmax(dim=-1) == labels).float().mean())
