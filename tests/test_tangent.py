"""The forward (tangent) sweep: directional derivatives from the same op table."""
import math

import numpy as np
import pytest

import pytape
from pytape import Var


def test_textbook_example_forward_mode():
    with pytape.Tape() as t:
        x1, x2 = Var(2.0), Var(5.0)
        y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    t.tangent_sweep({x1: 1.0})
    assert y.tangent == 5.5
    t.tangent_sweep({x2: 1.0})
    assert y.tangent == pytest.approx(2.0 - math.cos(5.0), rel=1e-15)


def test_tangent_equals_reverse_gradient_dot_seed():
    rng = np.random.default_rng(0)
    with pytape.Tape() as t:
        xs = [Var(v) for v in rng.uniform(0.5, 2.0, 4)]
        y = pytape.sin(xs[0] * xs[1]) + pytape.exp(xs[2]) / xs[3] + pytape.hypot(xs[0], 2.0) * pytape.atan2(xs[1], xs[3])
    seed = rng.normal(size=4)
    t.tangent_sweep(dict(zip(xs, seed)))
    jvp = y.tangent
    y.backward()
    grad = np.array([x.grad for x in xs])
    assert jvp == pytest.approx(float(grad @ seed), rel=1e-12)


def test_tangent_matches_finite_differences_and_intermediates():
    with pytape.Tape() as t:
        x = Var(0.7)
        h = pytape.tanh(x) * 3.0
        y = h ** 2 + pytape.softplus(h)
    t.tangent_sweep({x: 1.0})

    def f(v):
        hv = math.tanh(v) * 3.0
        return hv ** 2 + math.log1p(math.exp(hv))

    eps = 1e-6
    assert y.tangent == pytest.approx((f(0.7 + eps) - f(0.7 - eps)) / (2 * eps), rel=1e-7)
    assert h.tangent == pytest.approx(3.0 * (1 - math.tanh(0.7) ** 2), rel=1e-14)


def test_zero_tangent_never_makes_nan():
    with pytape.Tape() as t:
        x, z = Var(1.0), Var(0.0)
        y = x * 2.0 + pytape.sqrt(z)  # sqrt'(0) = inf, but z is not seeded
    t.tangent_sweep({x: 1.0})
    assert y.tangent == 2.0


def test_tangent_seed_must_be_a_leaf_of_the_tape():
    with pytape.Tape() as t:
        x = Var(1.0)
        y = x * 2.0
    with pytest.raises(ValueError, match="not a leaf recorded on this tape"):
        t.tangent_sweep({Var(3.0): 1.0})
    with pytest.raises(ValueError, match="not a leaf recorded on this tape"):
        t.tangent_sweep({y: 1.0})
