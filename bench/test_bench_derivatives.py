"""Derivative sweeps on one recorded tape: gradient vs Hessian-vector product,
Jacobians of wide and tall functions in each mode, a full Hessian.

The recording happens once, outside the timing; each benchmark times sweeps
over that tape only (the ratios are what matter: hvp costs a small constant
times a gradient; auto picks the cheaper Jacobian mode)."""
import numpy as np
import pytest

from pytape import functional as F


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.fixture(scope="module")
def rosen_tape():
    x = 1.0 + 0.1 * np.sin(np.arange(10_000))
    return F._Recording(rosenbrock, (x,), 0), x


def test_gradient_sweep(benchmark, rosen_tape):
    rec, x = rosen_tape
    benchmark.group = "Rosenbrock n=10^4: gradient vs hvp (one tape)"
    g = benchmark(rec.rows, np.ones((1, 1)))[0][0]
    assert g[0] == pytest.approx(-400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0]))


def test_hvp_sweep(benchmark, rosen_tape):
    rec, x = rosen_tape
    benchmark.group = "Rosenbrock n=10^4: gradient vs hvp (one tape)"
    v = np.zeros((len(x), 1))
    v[0, 0] = 1.0
    hv = benchmark(rec.hvps, v)[:, 0]
    assert hv[0] == pytest.approx(1200 * x[0] ** 2 - 400 * x[1] + 2) and hv[1] == pytest.approx(-400 * x[0])


def dense(n, m):
    W = np.random.default_rng(0).normal(size=(m, n)) / np.sqrt(n)
    return lambda x: np.tanh(W @ x)


@pytest.mark.parametrize("n, m", [(1000, 10), (10, 1000)])
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_jacobian_mode(benchmark, n, m, mode):
    benchmark.group = f"Jacobian R^{n} -> R^{m} (sweeps only)"
    rec = F._Recording(dense(n, m), (np.linspace(-1, 1, n),), 0)
    run = (lambda: rec.columns(0, np.eye(n))) if mode == "fwd" else (lambda: rec.rows(np.eye(m))[0])
    J = benchmark.pedantic(run, rounds=3)
    assert J.shape == (m, n)


def test_hessian_rosenbrock_100(benchmark):
    benchmark.group = "Hessian of Rosenbrock n=100 (record + sweeps)"
    x = 1.0 + 0.1 * np.sin(np.arange(100))
    H = benchmark(F.hessian(rosenbrock), x)
    assert H[0, 0] == pytest.approx(1200 * x[0] ** 2 - 400 * x[1] + 2)
