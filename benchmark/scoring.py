"""Top-1 accuracy of a classifier on one evaluation split."""

from __future__ import annotations

from typing import Any

import torch

from benchmark.protocol import EvalSplit


class InvalidScores(ValueError):
    """A classifier's scores that can give no accuracy: another shape than (images, classes),
    or NaN or +inf values (the argmax of such a row picks a class all the same). A score of
    -inf is a valid "never this class"."""


def top1(classifier: Any, features: torch.Tensor, split: EvalSplit) -> float | None:
    """Top-1 accuracy (%) of ``classifier`` on the image ``features`` of ``split``'s samples,
    scored against ``split.classes``; None when the classifier cannot score those classes.
    Raises :class:`InvalidScores` rather than count an invalid score as a prediction."""
    with torch.no_grad():
        scores = classifier.scores(features, split.classes)
    if scores is None:
        return None
    expected = (len(split.samples), len(split.classes.names))
    if tuple(scores.shape) != expected:
        raise InvalidScores(
            f"the classifier scored {split.eval_dataset!r} with shape {tuple(scores.shape)}, "
            f"expected (images, classes) = {expected}"
        )
    bad = int((torch.isnan(scores) | torch.isposinf(scores)).any(dim=-1).sum())
    if bad:
        raise InvalidScores(
            f"the classifier's scores on {split.eval_dataset!r} hold NaN or +inf for {bad} of "
            f"{expected[0]} images"
        )
    labels = torch.tensor([s.label for s in split.samples], device=scores.device)
    return 100.0 * float((scores.argmax(dim=-1) == labels).float().mean())
