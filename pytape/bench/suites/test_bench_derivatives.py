"""Derivative sweeps on one recorded tape: gradient vs Hessian-vector product,
Jacobians of wide and tall functions in each mode, a full Hessian.

The recording happens once, outside the timing; each benchmark times sweeps
over that tape only (the ratios are what matter: hvp costs a small constant
times a gradient; auto picks the cheaper Jacobian mode)."""
import numpy as np
import pytest

import pytape
from pytape.program import Recording


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.fixture(scope="module")
def rosen_tape():
    x = 1.0 + 0.1 * np.sin(np.arange(10_000))
    return Recording(rosenbrock, (x,), 0), x


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
    rec = Recording(dense(n, m), (np.linspace(-1, 1, n),), 0)
    run = (lambda: rec.columns(0, np.eye(n))) if mode == "fwd" else (lambda: rec.rows(np.eye(m))[0])
    J = benchmark.pedantic(run, rounds=3)
    assert J.shape == (m, n)


def test_hessian_rosenbrock_100(benchmark):
    benchmark.group = "Hessian of Rosenbrock n=100 (record + sweeps)"
    x = 1.0 + 0.1 * np.sin(np.arange(100))
    H = benchmark(pytape.hessian(rosenbrock), x)
    assert H[0, 0] == pytest.approx(1200 * x[0] ** 2 - 400 * x[1] + 2)


# ---- whole calls (record + sweeps), beside torch and HIPS autograd where importable ----
# They run the same functions in their own idiom: vectorized tensors / numpy
# arrays, where pytape records one instruction per scalar operation.

JAC_CASES = [(1000, 10), (10, 1000)]


@pytest.mark.parametrize("n, m", JAC_CASES)
@pytest.mark.parametrize("engine", ["pytape-auto", "torch", "autograd"])
def test_jacobian_whole_call(benchmark, engine, n, m):
    benchmark.group = f"Jacobian R^{n} -> R^{m} (whole call)"
    W = np.random.default_rng(0).normal(size=(m, n)) / np.sqrt(n)
    x = np.linspace(-1, 1, n)
    if engine == "pytape-auto":
        import pytape
        J = benchmark.pedantic(pytape.jacobian(lambda v: np.tanh(W @ v)), args=(x,), rounds=3)
    elif engine == "torch":
        torch = pytest.importorskip("torch")
        Wt, xt = torch.tensor(W), torch.tensor(x)
        strategy = "forward-mode" if n < m else "reverse-mode"
        J = benchmark.pedantic(lambda: torch.autograd.functional.jacobian(
            lambda v: torch.tanh(Wt @ v), xt, vectorize=True, strategy=strategy).numpy(), rounds=3)
    else:
        ag = pytest.importorskip("autograd")
        anp = pytest.importorskip("autograd.numpy")
        J = benchmark.pedantic(ag.jacobian(lambda v: anp.tanh(anp.dot(W, v))), args=(x,), rounds=3)
    np.testing.assert_allclose(J, (1 - np.tanh(W @ x) ** 2)[:, None] * W, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("what", ["grad", "hvp"])
@pytest.mark.parametrize("engine", ["pytape", "torch", "autograd"])
def test_rosenbrock_grad_and_hvp_whole_call(benchmark, engine, what):
    benchmark.group = f"Rosenbrock n=10^3: {what} (whole call)"
    x = 1.0 + 0.1 * np.sin(np.arange(1000))
    v = np.cos(np.arange(1000))
    if engine == "pytape":
        import pytape
        run = (lambda: pytape.grad(rosenbrock)(x)) if what == "grad" else (lambda: pytape.hvp(rosenbrock, x, v))
    elif engine == "torch":
        torch = pytest.importorskip("torch")
        xt, vt = torch.tensor(x), torch.tensor(v)

        def rt(z):
            return torch.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2)

        run = ((lambda: torch.func.grad(rt)(xt).numpy()) if what == "grad"
               else (lambda: torch.autograd.functional.hvp(rt, xt, vt)[1].numpy()))
    else:
        ag = pytest.importorskip("autograd")
        run = ((lambda: ag.grad(rosenbrock)(x)) if what == "grad"
               else (lambda: ag.hessian_vector_product(rosenbrock)(x, v)))
    out = benchmark.pedantic(run, rounds=5)
    assert np.all(np.isfinite(out)) and out.shape == (1000,)
