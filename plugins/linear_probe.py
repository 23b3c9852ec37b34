"""Linear probe CLIP: multinomial logistic regression on frozen image features.

Algorithm (CLIP's and CoOp's ``lpclip`` protocol):

1. features x = f(image) of the few-shot training set, UNNORMALISED, test transform (no
   augmentation);
2. for a given C, minimise C * sum_i CE(W x_i + b, y_i) + 0.5 ||W||^2 (bias unpenalised),
   the objective of scikit-learn's LogisticRegression(C, multinomial, lbfgs), by L-BFGS with
   at most 1000 iterations, starting from zero;
3. choose C on the few-shot validation split (min(K, 4) shots per class): accuracy on the
   grid 1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6 (the first best wins), then 8 bisection steps in
   log10 space between 0.1 C_peak and 10 C_peak: fit both ends, keep the better (ties go to
   the left end) and halve the interval towards it; the model of the last step is the result.

Deviations from the reference: the fit is ours, in torch (float64, strong-Wolfe L-BFGS on
the objective divided by C * N, which has the same minimiser; gradient tolerance 1e-8
instead of scikit-learn's 1e-4), so it runs on the GPU; weights agree with scikit-learn's to
the optimiser's tolerance, not bit for bit. When a run has no validation samples, C is
chosen on the training split (diagnostic ``linear_probe_selected_on_train`` = 1).

Settings: ``linear_probe.toml``; its quick preset caps each fit at 100 L-BFGS iterations and
bisects 4 times, not 8 (15 fits per run instead of 23).
The classifier scores only the classes it was trained on: for any other class list
``scores`` returns None (no result rather than a wrong one). Its saved state is ``weight``
(K, D) and ``bias`` (K,), float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark.config import above, at_least
from benchmark.engine import Engine
from benchmark.method import LearnedState
from benchmark.protocol import Classes, TrainData
from benchmark.settings import Configured, beside

SEARCH_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)


@dataclass(frozen=True)
class Config:
    C: float = 0.0  # > 0: use this C, no search
    max_iter: int = 1000
    bisection_steps: int = 8
    tolerance: float = 1e-8

    def __post_init__(self) -> None:
        at_least("C", self.C, 0)  # 0: searched
        at_least("max_iter", self.max_iter, 1)
        at_least("bisection_steps", self.bisection_steps, 0)
        above("tolerance", self.tolerance, 0)


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    C: float,
    max_iter: int = 1000,
    tolerance: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (K, D) and bias (K,) minimising ``C * sum CE + 0.5 |W|^2`` (float64)."""
    x = x.double()
    n, d = x.shape
    weight = torch.zeros(n_classes, d, dtype=torch.float64, device=x.device, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        max_eval=max_iter * 5 // 4,
        tolerance_grad=tolerance,
        tolerance_change=1e-12,
        history_size=10,
        line_search_fn="strong_wolfe",
    )
    penalty = 1.0 / (2.0 * C * n)

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + penalty * (weight * weight).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return weight.detach(), bias.detach()


def objective(x, y, weight, bias, C) -> float:
    """scikit-learn's objective ``C * sum CE + 0.5 |W|^2``."""
    ce = F.cross_entropy(x.double() @ weight.T + bias, y, reduction="sum")
    return float(C * ce + 0.5 * (weight * weight).sum())


def _accuracy(weight, bias, x, y) -> float:
    return float(((x.double() @ weight.T + bias).argmax(1) == y).double().mean())


def search_c(train_x, train_y, val_x, val_y, n_classes: int, config: Config):
    """CoOp's lpclip search; returns (C, weight, bias, validation accuracy)."""

    def fit(c):
        w, b = fit_logistic(train_x, train_y, n_classes, c, config.max_iter, config.tolerance)
        return w, b, _accuracy(w, b, val_x, val_y)

    accuracies = [fit(c)[2] for c in SEARCH_GRID]
    peak = SEARCH_GRID[max(range(len(accuracies)), key=lambda i: (accuracies[i], -i))]
    left, right = math.log10(peak) - 1, math.log10(peak) + 1
    best = None
    for _ in range(config.bisection_steps):
        c_left, c_right = 10.0**left, 10.0**right
        fit_left, fit_right = fit(c_left), fit(c_right)
        middle = 0.5 * (left + right)
        if fit_left[2] < fit_right[2]:
            best = (c_right, *fit_right)
            left = middle
        else:
            best = (c_left, *fit_left)
            right = middle
    if best is None:
        best = (peak, *fit(peak))
    return best


class LinearProbeClassifier:
    def __init__(self, weight, bias, classes: Classes, diagnostics: dict[str, float]) -> None:
        self.weight, self.bias, self.classes = weight, bias, classes
        self.diagnostics = diagnostics

    def state(self) -> LearnedState:
        return LearnedState({"weight": self.weight.cpu().clone(), "bias": self.bias.cpu().clone()})

    def scores(self, features: torch.Tensor, classes: Classes) -> torch.Tensor | None:
        if tuple(classes.names) != tuple(self.classes.names):
            return None
        weight = self.weight.to(features.device)
        return (features.double() @ weight.T + self.bias.to(features.device)).float()


class LinearProbe(Configured[Config]):
    name, version, Config = "linear_probe", "1", Config
    settings_file = beside(__file__)

    def train(
        self, runs: Sequence[TrainData], config: Config, engine: Engine
    ) -> list[LinearProbeClassifier]:
        classifiers = []
        for run in runs:
            n_classes = len(run.classes.names)
            device = engine.device
            x = engine.features.features(run.samples).to(device)
            y = torch.tensor([s.label for s in run.samples], device=device)
            on_train = not run.val
            if on_train:
                val_x, val_y = x, y
            else:
                val_x = engine.features.features(run.val).to(device)
                val_y = torch.tensor([s.label for s in run.val], device=device)
            if config.C > 0:
                w, b = fit_logistic(x, y, n_classes, config.C, config.max_iter, config.tolerance)
                c, accuracy = config.C, _accuracy(w, b, val_x, val_y)
            else:
                c, w, b, accuracy = search_c(x, y, val_x, val_y, n_classes, config)
            diagnostics = {
                "linear_probe_C": float(c),
                "linear_probe_val_accuracy": accuracy,
                "linear_probe_selected_on_train": float(on_train),
            }
            classifiers.append(LinearProbeClassifier(w, b, run.classes, diagnostics))
        return classifiers

    def classifier_from(
        self, state: LearnedState, trained_on: Classes, engine: Engine
    ) -> LinearProbeClassifier:
        """The probe of a saved ``weight`` and ``bias`` over the classes ``trained_on``."""
        k, d = len(trained_on.names), engine.backbone.embed_dim
        weight = state.tensor("weight", k, d, dtype=torch.float64)
        bias = state.tensor("bias", k, dtype=torch.float64)
        device = engine.device
        return LinearProbeClassifier(weight.to(device), bias.to(device), trained_on, {})


METHOD = LinearProbe()
