"""pytape.optimize.minimize: scipy with jac, hess and hessp from a traced tape."""
import numpy as np
import pytest

import pytape

scipy = pytest.importorskip("scipy")


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def start(n):
    if n == 2:
        return np.array([-1.2, 1.0])  # the classic starting point
    # in n >= 4 dimensions Rosenbrock has a second, local minimum near
    # (-1, 1, ..., 1) that trust-region methods find from (-1.2, 1, ...)
    return np.zeros(n)


@pytest.mark.parametrize("n", [2, 100, 1000])
@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Newton-CG", "trust-exact"])
def test_rosenbrock_reaches_the_optimum(method, n):
    if method in ("trust-exact", "BFGS") and n == 1000:
        pytest.skip("scipy's dense n x n work per iteration (eigen-solves, BFGS updates) takes "
                    "minutes at n = 1000; covered at n <= 100")
    opts = {"maxiter": 20000}
    if method in ("BFGS", "L-BFGS-B", "trust-exact"):
        opts["gtol"] = 1e-10
    if method == "Newton-CG":
        opts["xtol"] = 1e-12
    res = pytape.optimize.minimize(rosen, start(n), method=method, options=opts)
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


def test_bad_x0():
    with pytest.raises(ValueError, match="1-d"):
        pytape.optimize.minimize(rosen, np.zeros((2, 2)))
