"""Top-1 accuracy refuses scores that could only give a wrong number."""

from __future__ import annotations

import pytest
import torch

from benchmark.datasets.spec import Sample
from benchmark.protocol import Classes, EvalSplit
from benchmark.scoring import InvalidScores, top1

SPLIT = EvalSplit(
    "all",
    tuple(Sample(f"{i}.png", label, name) for i, (label, name) in enumerate([(0, "a"), (1, "b")])),
    Classes("toy", ("a", "b", "c"), "a photo of a {}."),
)


class Fixed:
    """A classifier whose scores are given."""

    def __init__(self, scores: torch.Tensor) -> None:
        self._scores = scores

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor:
        return self._scores


def test_accuracy_of_valid_scores():
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # right, then wrong
    assert top1(Fixed(scores), torch.zeros(2, 4), SPLIT) == 50.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_infinite_scores_are_refused_not_counted(bad):
    # the argmax of such a row is a class all the same: unchecked, this scores 100.0
    scores = torch.tensor([[bad, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with pytest.raises(InvalidScores, match=r"'toy' hold NaN or \+inf for 1 of 2 images"):
        top1(Fixed(scores), torch.zeros(2, 4), SPLIT)


def test_minus_infinity_is_a_valid_never_this_class():
    scores = torch.tensor([[0.0, float("-inf"), -1.0], [float("-inf"), 1.0, 0.0]])
    assert top1(Fixed(scores), torch.zeros(2, 4), SPLIT) == 100.0


@pytest.mark.parametrize("shape", [(2, 2), (1, 3), (2, 3, 1)])
def test_scores_of_another_shape_are_refused(shape):
    with pytest.raises(InvalidScores, match=r"expected \(images, classes\) = \(2, 3\)"):
        top1(Fixed(torch.zeros(shape)), torch.zeros(2, 4), SPLIT)
