"""pytape.optimize.minimize: scipy with jac, hess and hessp from a traced tape."""
import numpy as np
import pytest

import pytape

scipy = pytest.importorskip("scipy")


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def start(n, method=None):
    if n == 2:
        return np.array([-1.2, 1.0])  # the classic starting point
    if n >= 1000 and method in ("BFGS", "trust-exact"):
        # scipy's BFGS does O(n^3) dense work per iteration and trust-exact
        # eigen-solves an n x n matrix: from 0 in 1000 dimensions they take
        # minutes (measured: BFGS 1140 iterations, 282 s; trust-exact > 15 min),
        # whatever the derivatives cost.  They start near the optimum here
        # (BFGS still needs ~450 iterations to build its curvature from I).
        return 1.0 + (0.01 if method == "BFGS" else 0.05) * np.cos(np.arange(n))
    # in n >= 4 dimensions Rosenbrock has a second, local minimum near
    # (-1, 1, ..., 1) that trust-region methods find from (-1.2, 1, ...)
    return np.zeros(n)


@pytest.mark.parametrize("n", [2, 100, 1000])
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Newton-CG", "trust-exact"])
def test_rosenbrock_reaches_the_optimum(method, n):
    opts = {"maxiter": 20000}
    if method in ("BFGS", "L-BFGS-B", "trust-exact"):
        opts["gtol"] = 1e-10
    if method == "Newton-CG":
        opts["xtol"] = 1e-12
    x0 = start(n, method)
    res = pytape.optimize.minimize(rosen, x0, method=method, options=opts)
    assert rosen(x0) > 1e-3  # a real start, not the answer
    np.testing.assert_allclose(res.x, np.ones(n), atol=2e-4)
    assert res.fun < 1e-7
    assert res.retraces == 0  # no branches in Rosenbrock: one tape throughout


def test_derivatives_given_to_scipy_are_the_tapes():
    seen = {}
    from scipy import optimize as so

    real = so.minimize

    def spy(fun, x0, **kw):
        seen.update(kw)
        seen["fun"] = fun
        return real(fun, x0, **kw)

    so.minimize = spy
    try:
        pytape.optimize.minimize(rosen, start(4), method="Newton-CG")
        pytape.optimize.minimize(rosen, start(4), method="trust-exact")
    finally:
        so.minimize = real
    x = np.linspace(0.5, 1.5, 4)
    value, g = seen["fun"](x)
    assert value == pytest.approx(rosen(x)) and np.allclose(g, pytape.grad(rosen)(x))
    np.testing.assert_allclose(seen["hess"](x), pytape.hessian(rosen)(x))


def test_progress_and_user_callback(capsys):
    calls = []
    res = pytape.optimize.minimize(rosen, start(2), method="BFGS", progress=True, callback=lambda xk: calls.append(1))
    err = capsys.readouterr().err
    assert res.success and "pytape.optimize: iteration 1: f = " in err and len(calls) == res.nit


def test_without_scipy_the_error_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy fails
    with pytest.raises(ImportError, match=r"pip install \"pytape\[optimize\]\""):
        pytape.optimize.minimize(rosen, start(2))


def test_bad_x0():
    with pytest.raises(ValueError, match="1-d"):
        pytape.optimize.minimize(rosen, np.zeros((2, 2)))
