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


def test_without_warmup_the_cosine_starts_at_epoch_zero():
    epochs, lr = 4, 0.02
    for k in range(epochs):
        expected = lr * 0.5 * (1 + math.cos(math.pi * k / epochs))
        assert learning_rate(k, lr, epochs, warmup=False) == pytest.approx(expected)
    assert learning_rate(0, lr, 1, warmup=False) == lr  # a one-epoch run trains at lr


def test_quick_cocoop_trains_its_single_epoch_at_its_learning_rate():
    from vlprompt_methods.cocoop import METHOD

    from benchmark.method import Setting

    for preset, first_lr in (("quick", None), ("reference", 1e-5)):
        opt = METHOD.config(Setting("few_shot", "d", 16, "b", preset)).optimisation()
        lr = learning_rate(0, opt.lr, opt.epochs, opt.warmup_lr, warmup=opt.warmup)
        assert lr == (opt.lr if first_lr is None else first_lr), preset
    assert METHOD.config(Setting("few_shot", "d", 16, "b", "quick")).optimisation().epochs == 1
