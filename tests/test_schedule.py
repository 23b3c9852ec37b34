from __future__ import annotations

import math

import pytest

from benchmark.prompting.schedule import learning_rate


def test_warmup_epoch_then_cosine_per_epoch():
    epochs, lr = 10, 0.002
    assert learning_rate(0, lr, epochs) == 1e-5
    assert learning_rate(1, lr, epochs) == pytest.approx(lr)
    for k in range(1, epochs):
        expected = lr * 0.5 * (1 + math.cos(math.pi * (k - 1) / epochs))
        assert learning_rate(k, lr, epochs) == pytest.approx(expected)
    assert learning_rate(epochs - 1, lr, epochs) > 0


def test_squared_cosine_option():
    plain = learning_rate(5, 0.002, 10) / 0.002
    assert learning_rate(5, 0.002, 10, squared=True) == pytest.approx(0.002 * plain**2)
