"""The torch linear probe matches scikit-learn's LogisticRegression and lpclip's C search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from vlprompt_methods import linear_probe
from vlprompt_methods.linear_probe import Config, fit_logistic, objective, search_c

from benchmark.protocol import Classes


def random_features(seed: int, n_classes: int = 5, shots: int = 8, dim: int = 32):
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(n_classes, dim)) * 0.6
    labels = np.repeat(np.arange(n_classes), shots)
    x = centres[labels] + generator.normal(size=(len(labels), dim))
    return x, labels


@pytest.mark.parametrize("C", [1e-2, 1.0, 1e2])
def test_fit_matches_sklearn(C):
    x, y = random_features(0)
    x_test, _ = random_features(1, shots=40)
    reference = LogisticRegression(C=C, max_iter=1000, tol=1e-8).fit(x, y)
    weight, bias = fit_logistic(torch.tensor(x), torch.tensor(y), 5, C)
    ours = (torch.tensor(x_test) @ weight.T + bias).argmax(1).numpy()
    assert (ours == reference.predict(x_test)).mean() >= 0.99
    xt, yt = torch.tensor(x), torch.tensor(y)
    sk_weight = torch.tensor(reference.coef_)
    sk_bias = torch.tensor(reference.intercept_)
    ours_loss, sk_loss = (
        objective(xt, yt, weight, bias, C),
        objective(xt, yt, sk_weight, sk_bias, C),
    )
    assert ours_loss <= sk_loss * (1 + 1e-5)  # at least as good a minimum
    assert ours_loss == pytest.approx(sk_loss, rel=1e-4, abs=1e-6)


def lpclip_search(x, y, xv, yv, steps):
    """CoOp's lpclip/linear_probe.py search, with scikit-learn (the specification)."""

    def accuracy(c):
        clf = LogisticRegression(solver="lbfgs", max_iter=1000, C=c).fit(x, y)
        return (clf.predict(xv) == yv).mean()

    grid = [1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]
    peak = grid[int(np.argmax([accuracy(c) for c in grid]))]
    left, right = 0.1 * peak, 10 * peak
    final = None
    for _ in range(steps):
        acc_left, acc_right = accuracy(left), accuracy(right)
        if acc_left < acc_right:
            final = right
            left, right = 0.5 * (np.log10(right) + np.log10(left)), np.log10(right)
        else:
            final = left
            right, left = 0.5 * (np.log10(right) + np.log10(left)), np.log10(left)
        left, right = 10**left, 10**right
    return final


def test_search_follows_lpclip():
    x, y = random_features(2, shots=8)
    xv, yv = random_features(3, shots=4)
    config = Config(bisection_steps=3)
    c, _, _, _ = search_c(
        torch.tensor(x), torch.tensor(y), torch.tensor(xv), torch.tensor(yv), 5, config
    )
    assert c == pytest.approx(lpclip_search(x, y, xv, yv, 3), rel=1e-9)


def test_classifier_scores_only_training_classes():
    classes = Classes("d", ("a", "b", "c"), "{}")
    weight, bias = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    classifier = linear_probe.LinearProbeClassifier(weight, bias, classes, {})
    features = torch.randn(6, 4)
    assert classifier.scores(features, classes).shape == (6, 3)
    assert classifier.scores(features, Classes("d", ("a", "b"), "{}")) is None


class FakeFeatures:
    def __init__(self, table):
        self.table = table

    def features(self, samples):
        return torch.stack([self.table[s.path] for s in samples])


class FakeEngine:
    device = torch.device("cpu")

    def __init__(self, table):
        self.features = FakeFeatures(table)


def test_train_selects_on_train_split_without_val():
    from benchmark.datasets.spec import Sample
    from benchmark.protocol import TrainData

    x, y = random_features(4, n_classes=3, shots=4, dim=8)
    samples = tuple(Sample(f"img{i}", int(label), "c") for i, label in enumerate(y))
    table = {s.path: torch.tensor(v, dtype=torch.float32) for s, v in zip(samples, x, strict=True)}
    classes = Classes("d", ("a", "b", "c"), "{}")
    run = TrainData("d", 4, 1, samples, (), classes)
    (classifier,) = linear_probe.METHOD.train([run], Config(bisection_steps=1), FakeEngine(table))
    assert classifier.diagnostics["linear_probe_selected_on_train"] == 1.0
    assert classifier.scores(torch.tensor(x, dtype=torch.float32), classes).shape == (12, 3)
