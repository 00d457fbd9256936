"""pytape.optim: SGD (with momentum) and Adam follow torch.optim's updates."""
import math
import random

import numpy as np
import pytest

import pytape


def quadratic_grads(ps, target):
    loss = sum((p - t) ** 2 for p, t in zip(ps, target))
    loss.backward()
    return [2 * (p.value - t) for p, t in zip(ps, target)]


def test_sgd_momentum_matches_the_formula():
    ps = [pytape.Var(1.0), pytape.Var(-2.0)]
    opt = pytape.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)
    x, v = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(5):
        opt.zero_grad()
        quadratic_grads(ps, [0.5, 0.5])
        g = 2 * (x - 0.5) + 0.01 * x
        v = 0.9 * v + g
        x = x - 0.1 * v
        opt.step()
        np.testing.assert_allclose([p.value for p in ps], x, rtol=1e-14)


def test_adam_matches_the_formula():
    ps = [pytape.Var(1.0), pytape.Var(-2.0)]
    opt = pytape.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    x, m, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    for t in range(1, 6):
        opt.zero_grad()
        quadratic_grads(ps, [0.5, 0.5])
        g = 2 * (x - 0.5)
        m = 0.8 * m + 0.2 * g
        s = 0.99 * s + 0.01 * g * g
        x = x - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(s / (1 - 0.99 ** t)) + 1e-6)
        opt.step()
        np.testing.assert_allclose([p.value for p in ps], x, rtol=1e-13)


def test_adam_trains_an_mlp():
    random.seed(3)
    model = pytape.nn.MLP(1, [16, 16, 1])
    opt = pytape.optim.Adam(model.parameters(), lr=0.03)
    xs = np.linspace(-1, 1, 8)
    for _ in range(300):
        loss = sum((model([x]) - math.sin(2 * x)) ** 2 for x in xs) * (1 / len(xs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.value < 0.01


def test_bad_parameters():
    with pytest.raises(ValueError, match="empty"):
        pytape.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="leaves"):
        pytape.optim.Adam([pytape.Var(1.0) * 2.0])
