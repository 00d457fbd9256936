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


# ---- constraints ----------------------------------------------------------------------------------------------

def banded_objective(x):
    return np.sum((x - 0.3) ** 2) + 0.1 * np.sum(x[1:] * x[:-1] ** 2)


def banded_constraint(x):
    return x[1:] * x[:-1]


def exact_derivatives(x, v):
    """The objective's Hessian, the constraint's Jacobian and the Hessian of v . c, by hand."""
    n = len(x)
    H = 2.0 * np.eye(n)
    i = np.arange(n - 1)
    H[i, i] += 0.2 * x[1:]          # d2/dx_i2 of 0.1 x_{i+1} x_i^2
    H[i, i + 1] += 0.2 * x[:-1]
    H[i + 1, i] += 0.2 * x[:-1]
    J = np.zeros((n - 1, n))
    J[i, i], J[i, i + 1] = x[1:], x[:-1]
    L = np.zeros((n, n))
    L[i, i + 1] = L[i + 1, i] = v
    return H, J, L


def spy_on_scipy(run):
    from scipy import optimize as so
    seen, real = {}, so.minimize

    def spy(fun, x0, **kw):
        seen.update(kw, fun=fun)
        return real(fun, x0, **kw)
    so.minimize = spy
    try:
        res = run()
    finally:
        so.minimize = real
    return res, seen


@pytest.mark.parametrize("sparse", [True, False])
def test_trust_constr_gets_the_constraints_derivatives(sparse):
    from scipy.optimize import NonlinearConstraint
    n = 40
    res, seen = spy_on_scipy(lambda: pytape.optimize.minimize(
        banded_objective, np.ones(n), method="trust-constr", sparse=sparse,
        constraints=[NonlinearConstraint(banded_constraint, 0.2, np.inf)]))
    assert res.success and res.constr_violation < 1e-8
    rng = np.random.default_rng(0)
    x, v = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n - 1)
    H, J, L = exact_derivatives(x, v)
    con = seen["constraints"][0]
    got = [seen["hess"](x), con.jac(x), con.hess(x, v)]
    for g, want in zip(got, (H, J, L)):
        assert hasattr(g, "toarray") == sparse  # scipy.sparse matrices when sparse
        np.testing.assert_allclose(g.toarray() if sparse else g, want, rtol=1e-13, atol=1e-14)
    # the same optimum as scipy's run with the derivatives written by hand
    from scipy import optimize as so
    hand = so.minimize(lambda x: (banded_objective(x), 2 * (x - 0.3) + 0.1 * np.concatenate(
        [2 * x[:-1] * x[1:], [0.0]]) + 0.1 * np.concatenate([[0.0], x[:-1] ** 2])), np.ones(n), jac=True,
        method="trust-constr", hess=lambda x: exact_derivatives(x, np.zeros(n - 1))[0],
        constraints=[so.NonlinearConstraint(banded_constraint, 0.2, np.inf,
                                            jac=lambda x: exact_derivatives(x, np.zeros(n - 1))[1],
                                            hess=lambda x, v: exact_derivatives(x, v)[2])])
    np.testing.assert_allclose(res.x, hand.x, atol=1e-6)


def test_sparse_is_the_default_for_large_trust_constr_problems():
    from scipy.optimize import NonlinearConstraint
    n = pytape.optimize.SPARSE_FROM
    res, seen = spy_on_scipy(lambda: pytape.optimize.minimize(
        banded_objective, np.ones(n), method="trust-constr",
        constraints=NonlinearConstraint(banded_constraint, 0.2, np.inf), options={"maxiter": 50}))
    assert hasattr(seen["hess"](np.ones(n)), "toarray") and hasattr(seen["constraints"].jac(np.ones(n)), "toarray")
    assert seen["constraints"].jac(np.ones(n)).nnz == 2 * (n - 1)


def test_slsqp_gets_dense_jacobians_of_dict_constraints():
    n = 8
    cons = [{"type": "ineq", "fun": lambda x, c: banded_constraint(x) - c, "args": (0.2,)},
            {"type": "eq", "fun": lambda x: np.sum(x) - 4.0}]
    res, seen = spy_on_scipy(lambda: pytape.optimize.minimize(banded_objective, np.ones(n), method="SLSQP",
                                                              constraints=cons))
    assert res.success and abs(np.sum(res.x) - 4.0) < 1e-8 and np.all(banded_constraint(res.x) >= 0.2 - 1e-8)
    x = np.random.default_rng(1).uniform(-1, 1, n)
    np.testing.assert_allclose(seen["constraints"][0]["jac"](x, 0.2), exact_derivatives(x, np.zeros(n - 1))[1],
                               rtol=1e-14)
    np.testing.assert_allclose(seen["constraints"][1]["jac"](x), np.ones((1, n)))


def test_constraints_with_their_own_derivatives_are_left_alone():
    from scipy.optimize import LinearConstraint, NonlinearConstraint
    own = NonlinearConstraint(banded_constraint, 0.2, np.inf, jac=lambda x: exact_derivatives(x, x[1:])[1])
    lin = LinearConstraint(np.ones((1, 5)), 1.0, 4.0)
    res, seen = spy_on_scipy(lambda: pytape.optimize.minimize(banded_objective, np.ones(5), method="trust-constr",
                                                              constraints=[own, lin]))
    assert seen["constraints"][0] is own and seen["constraints"][1] is lin and res.success
    with pytest.raises(ValueError, match="trust-constr"):
        pytape.optimize.minimize(banded_objective, np.ones(5), method="SLSQP", sparse=True)


# ---- IPOPT (cyipopt: optional) ---------------------------------------------------------------------------------

def test_ipopt_without_cyipopt_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cyipopt", None)
    with pytest.raises(ImportError, match="coinor-libipopt-dev"):
        pytape.optimize.ipopt(banded_objective, np.ones(3))


def test_ipopt_gets_sparse_derivatives_of_the_lagrangian():
    pytest.importorskip("cyipopt", reason="cyipopt (and the IPOPT library) is not installed")
    n = 30
    g = lambda x: np.concatenate([banded_constraint(x), [np.sum(x ** 2)]])  # noqa: E731
    prob = pytape.optimize._IpoptProblem(banded_objective, g, np.ones(n), n)
    rng = np.random.default_rng(2)
    x, lam, sigma = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), 0.7
    rows, cols = prob.jacobianstructure()
    J = np.zeros((n, n))
    J[rows, cols] = prob.jacobian(x)
    np.testing.assert_allclose(J, pytape.jacobian(g)(x), rtol=1e-14)
    assert len(rows) == 2 * (n - 1) + n  # the band and the dense row, nothing else
    rows, cols = prob.hessianstructure()
    assert np.all(rows >= cols)  # the lower triangle
    Hl = np.zeros((n, n))
    Hl[rows, cols] = prob.hessian(x, lam, sigma)
    want = pytape.hessian(lambda v: sigma * banded_objective(v) + np.dot(lam, g(v)))(x)
    np.testing.assert_allclose(Hl, np.tril(want), rtol=1e-13, atol=1e-14)


def test_ipopt_solves_with_constraints_and_bounds():
    pytest.importorskip("cyipopt", reason="cyipopt (and the IPOPT library) is not installed")
    from scipy.optimize import NonlinearConstraint
    res = pytape.optimize.ipopt(lambda x: (x[0] - 2) ** 2 + (x[1] - 1) ** 2, np.array([1.0, 0.0]),
                                constraints=NonlinearConstraint(lambda x: x[0] ** 2 + x[1] ** 2, 1.0, 1.0))
    assert res.success
    np.testing.assert_allclose(res.x, np.array([2.0, 1.0]) / np.sqrt(5.0), atol=1e-7)
    res = pytape.optimize.ipopt(lambda x: np.sum((x - 2.0) ** 2), np.zeros(3), bounds=[(None, 1.0)] * 3)
    np.testing.assert_allclose(res.x, np.ones(3), atol=1e-7)
    # the banded problem: the same optimum as trust-constr's with hand-written derivatives
    n = 40
    res = pytape.optimize.ipopt(banded_objective, np.ones(n), constraints=[
        NonlinearConstraint(banded_constraint, 0.2, np.inf)], options={"tol": 1e-10})
    assert res.success and np.all(banded_constraint(res.x) >= 0.2 - 1e-8)
    tc = pytape.optimize.minimize(banded_objective, np.ones(n), method="trust-constr", sparse=True,
                                  constraints=[NonlinearConstraint(banded_constraint, 0.2, np.inf)],
                                  options={"gtol": 1e-12, "xtol": 1e-14, "barrier_tol": 1e-12, "maxiter": 3000})
    np.testing.assert_allclose(res.x, tc.x, atol=1e-5)
    assert res.fun <= tc.fun + 1e-8
