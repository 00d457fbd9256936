"""Record once, replay many (pytape.trace).

* Rosenbrock n = 10^4 (9·10^4 instructions), value and gradient at 100 points:
  the one-off trace, replays point by point and as one batch (1 and 2
  threads), recording again at every point, and CasADi / JAX / HIPS autograd
  where they are importable.  Per operation: divide a call's time by 100 and
  by ``num_ops`` (the target is at most 10 ns per operation).
* Batch throughput: 10^4 points of a 100-instruction function, values and
  gradients in one call, against a Python loop of single-point replays.
* scipy's L-BFGS-B on Rosenbrock n = 1000 with gradients from pytape (a
  compiled tape) and from the pure-Python reference engine.
"""
import numpy as np
import pytest

import pytape
from pytape import reference as R


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


N = 10_000
POINTS = np.random.default_rng(0).uniform(0.5, 1.5, (100, N))
ROSEN = "Rosenbrock n=10^4, value+gradient at 100 points"


def analytic_grad0(x):
    return -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])


@pytest.fixture(scope="module")
def fn():
    return pytape.trace(rosenbrock, np.ones(N))


def test_trace_once(benchmark):
    benchmark.group = ROSEN
    f = benchmark.pedantic(pytape.trace, args=(rosenbrock, np.ones(N)), rounds=3)
    assert f.num_ops == 9 * N - 9


def test_replay_point_by_point(benchmark, fn):
    benchmark.group = ROSEN
    fn.threads = 1
    out = benchmark.pedantic(lambda: [fn.value_and_grad(x) for x in POINTS], rounds=5)
    assert out[7][1][0] == pytest.approx(analytic_grad0(POINTS[7]))


@pytest.mark.parametrize("threads", [1, 2])
def test_replay_batch(benchmark, fn, threads):
    benchmark.group = ROSEN
    fn.threads = threads
    values, grads = benchmark.pedantic(fn.value_and_grad, args=(POINTS,), rounds=5)
    assert grads[7][0] == pytest.approx(analytic_grad0(POINTS[7]))


def test_record_again_at_every_point(benchmark):
    benchmark.group = ROSEN
    vg = pytape.value_and_grad(rosenbrock)
    out = benchmark.pedantic(lambda: [vg(x) for x in POINTS], rounds=1)
    assert out[7][1][0] == pytest.approx(analytic_grad0(POINTS[7]))


def test_casadi_function(benchmark):
    ca = pytest.importorskip("casadi")
    benchmark.group = ROSEN
    x = ca.SX.sym("x", N)
    f = ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    F = ca.Function("vg", [x], [f, ca.gradient(f, x)])
    out = benchmark.pedantic(lambda: [F(p) for p in POINTS], rounds=3)
    assert float(out[7][1][0]) == pytest.approx(analytic_grad0(POINTS[7]))


def test_jax_jit(benchmark):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    benchmark.group = ROSEN
    vg = jax.jit(jax.value_and_grad(lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)))
    vg(POINTS[0])[1].block_until_ready()
    out = benchmark.pedantic(lambda: [vg(p)[1].block_until_ready() for p in POINTS], rounds=3)
    assert float(out[7][0]) == pytest.approx(analytic_grad0(POINTS[7]))


def test_hips_autograd(benchmark):
    ag = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    benchmark.group = ROSEN
    vg = ag.value_and_grad(lambda x: anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))
    out = benchmark.pedantic(lambda: [vg(p) for p in POINTS], rounds=3)
    assert out[7][1][0] == pytest.approx(analytic_grad0(POINTS[7]))


# ---- batch throughput -------------------------------------------------------------

BATCH = "batch: 10^4 points of a 100-instruction function"
W = np.random.default_rng(1).normal(size=(8, 10)) / 3.0
XS = np.random.default_rng(2).normal(size=(10_000, 10))


def small(x):
    return np.sum(np.tanh(W @ x) * 0.5)  # 10 leaves, 8*(10 mul + 9 add) + 8 tanh + 8 mul + 7 add


@pytest.fixture(scope="module")
def small_fn():
    f = pytape.trace(small, np.zeros(10))
    assert 95 <= f.num_ops <= 200
    return f


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("what", ["values", "gradients"])
def test_batch_throughput(benchmark, small_fn, what, threads):
    benchmark.group = BATCH
    small_fn.threads = threads
    call = small_fn if what == "values" else small_fn.gradient
    out = benchmark.pedantic(call, args=(XS,), rounds=5)
    assert out.shape[0] == len(XS)


def test_batch_vs_python_loop(benchmark, small_fn):
    benchmark.group = BATCH
    small_fn.threads = 1
    out = benchmark.pedantic(lambda: [small_fn.gradient(x) for x in XS], rounds=1)
    np.testing.assert_allclose(out[3], pytape.grad(small)(XS[3]), rtol=1e-12)


# ---- scipy L-BFGS-B ---------------------------------------------------------------

LBFGS = "scipy L-BFGS-B, Rosenbrock n=1000"


def test_lbfgs_with_pytape(benchmark):
    pytest.importorskip("scipy")
    benchmark.group = LBFGS
    res = benchmark.pedantic(pytape.optimize.minimize, args=(rosenbrock, np.zeros(1000)),
                             kwargs={"method": "L-BFGS-B"}, rounds=3)
    assert res.fun < 1e-6


def test_lbfgs_with_reference_engine(benchmark):
    so = pytest.importorskip("scipy.optimize")
    benchmark.group = LBFGS

    def value_and_grad(x):
        xs = [R.Value(v) for v in x]
        y = 0.0
        for a, b in zip(xs[:-1], xs[1:]):
            y = y + 100.0 * (b - a ** 2) ** 2 + (1.0 - a) ** 2
        y.backward()
        return y.data, np.array([v.grad for v in xs])

    res = benchmark.pedantic(so.minimize, args=(value_and_grad, np.zeros(1000)),
                             kwargs={"method": "L-BFGS-B", "jac": True}, rounds=1)
    assert res.fun < 1e-6
