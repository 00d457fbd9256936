"""Second order (forward over reverse) and forward-mode rules of every op:
second derivatives against finite differences of the oracles' exact first
derivatives, tangents against those exact first derivatives."""
import math

import numpy as np
import pytest

import pytape
from test_ops import BINARY, ORACLES, UNARY, points

FD_RTOL = 1e-5


def fd(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


def usable(*vals):
    return all(math.isfinite(v) and 1e-3 < abs(v) < 1e3 or v == 0.0 for v in vals)


def agree(got, want, scale):
    return abs(got - want) <= FD_RTOL * max(abs(want), scale) + 1e-7


@pytest.mark.parametrize("name", UNARY)
def test_unary_second_derivative_and_tangent(name):
    o = ORACLES[name]
    checked = 0
    for x in points(name):
        h = 1e-5 * max(1.0, abs(x))
        if not usable(x) or o.fd_skip(x, h):
            continue
        want2 = fd(o.d, x, h)
        want1 = o.d(x)
        if not (math.isfinite(want2) and math.isfinite(want1)) or abs(want2) > 1e8:
            continue
        f = pytape.recording.FUNCTIONS[name]
        got2 = pytape.hessian(f)(x)
        got1 = pytape.jvp(f, (x,), (1.0,))[1]
        assert agree(got2, want2, abs(want1)), (name, x, got2, want2)
        assert got1 == pytest.approx(want1, rel=1e-12, abs=1e-14), (name, x)
        checked += 1
    assert checked >= 10, f"only {checked} usable points for {name}"


@pytest.mark.parametrize("name", BINARY)
def test_binary_second_derivatives(name):
    o = ORACLES[name]
    f = pytape.recording.FUNCTIONS[name]
    checked = 0
    for a, b in points(name):
        ha, hb = 1e-5 * max(1.0, abs(a)), 1e-5 * max(1.0, abs(b))
        if not usable(a, b) or any(o.fd_skip(a, b, ha, hb)):
            continue
        want = np.array([[fd(lambda u: o.da(u, b), a, ha), fd(lambda u: o.da(a, u), b, hb)],
                         [fd(lambda u: o.db(u, b), a, ha), fd(lambda u: o.db(a, u), b, hb)]])
        if not np.all(np.isfinite(want)) or np.abs(want).max() > 1e8:
            continue
        H = pytape.hessian(lambda x: f(x[0], x[1]))(np.array([a, b]))
        scale = abs(o.da(a, b)) + abs(o.db(a, b))
        for i in range(2):
            for j in range(2):
                assert agree(H[i, j], want[i, j], scale), (name, a, b, i, j, H, want)
        assert H[0, 1] == pytest.approx(H[1, 0], rel=1e-12, abs=1e-14)
        # the tangent rules, in every operand form: (var, var), (var, constant), (constant, var)
        da, db = o.da(a, b), o.db(a, b)
        J = pytape.jacfwd(lambda x: f(x[0], x[1]))(np.array([a, b]))
        assert J.tolist() == pytest.approx([da, db], rel=1e-12, abs=1e-14), (name, a, b)
        assert pytape.jvp(lambda u: f(u, b), (a,), (1.0,))[1] == pytest.approx(da, rel=1e-12, abs=1e-14)
        assert pytape.jvp(lambda u: f(a, u), (b,), (1.0,))[1] == pytest.approx(db, rel=1e-12, abs=1e-14)
        checked += 1
    assert checked >= 5, f"only {checked} usable points for {name}"


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    n = len(x)
    H = np.zeros((n, n))
    for i in range(n - 1):
        H[i, i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2
        H[i, i + 1] -= 400 * x[i]
        H[i + 1, i] -= 400 * x[i]
        H[i + 1, i + 1] += 200
    return H


@pytest.mark.parametrize("n", [2, 10, 100])
def test_rosenbrock_hessian_exact(n):
    x = 1.0 + 0.1 * np.sin(np.arange(n))
    np.testing.assert_allclose(pytape.hessian(rosenbrock)(x), rosenbrock_hessian(x), rtol=1e-13, atol=1e-9)


def smooth(x):
    return np.sum(np.sin(x) * np.exp(x[::-1] * 0.3)) + pytape.atan2(x[0], x[-1] + 3.0) * np.prod(x[:3])


def test_hvp_equals_hessian_times_v_and_hessian_is_symmetric():
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, 7)
    H = pytape.hessian(smooth)(x)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-13)
    for _ in range(3):
        v = rng.normal(size=7)
        np.testing.assert_allclose(pytape.hvp(smooth, x, v), H @ v, rtol=1e-12, atol=1e-13)
    # and finite differences of the gradient
    g = pytape.grad(smooth)
    eps = 1e-6
    fdH = np.array([(g(x + eps * e) - g(x - eps * e)) / (2 * eps) for e in np.eye(7)])
    np.testing.assert_allclose(H, fdH, rtol=1e-6, atol=1e-7)


def test_hessian_of_several_arguments_and_shapes():
    f = lambda x, y: x[0] * x[1] * y + y ** 3  # noqa: E731
    (Hxx, Hxy), (Hyx, Hyy) = pytape.hessian(f, argnums=(0, 1))(np.array([1.0, 2.0]), 3.0)
    np.testing.assert_array_equal(Hxx, [[0.0, 3.0], [3.0, 0.0]])
    np.testing.assert_array_equal(Hxy, [2.0, 1.0])
    np.testing.assert_array_equal(Hyx, [2.0, 1.0])
    assert Hyy == 18.0
    M = pytape.hessian(lambda m: np.sum(m ** 3))(np.ones((2, 2)))
    assert M.shape == (2, 2, 2, 2) and M[1, 0, 1, 0] == 6.0 and M[1, 0, 0, 1] == 0.0
    with pytest.raises(TypeError, match="scalar"):
        pytape.hessian(lambda x: x * 2.0)(np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        pytape.hvp(rosenbrock, np.ones(3), np.ones(2))


def test_hessian_cross_blocks_of_two_array_arguments():
    # d2/dx dy of x A y is A (2 x 3), of y A^T x its transpose: a block must keep
    # its rows and columns (it once came out reshaped from the transposed block)
    A = np.arange(1.0, 7.0).reshape(2, 3)
    f = lambda x, y: x @ A @ y + np.sum(x ** 3) + np.sum(np.sin(y))  # noqa: E731
    x, y = np.array([1.0, 2.0]), np.array([0.5, -1.0, 2.0])
    (Hxx, Hxy), (Hyx, Hyy) = pytape.hessian(f, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(Hxy, A)
    np.testing.assert_array_equal(Hyx, A.T)
    np.testing.assert_array_equal(Hxx, np.diag(6.0 * x))
    np.testing.assert_allclose(Hyy, np.diag(-np.sin(y)), rtol=1e-15)
    # a compiled function's Hessian is the same assembly of the same sweeps
    fn = pytape.trace(f, x, y)
    (Cxx, Cxy), (Cyx, Cyy) = fn.hessian(x, y)
    for got, want in zip([Cxx, Cxy, Cyx, Cyy], [Hxx, Hxy, Hyx, Hyy]):
        np.testing.assert_array_equal(got, want)


def test_zero_direction_never_makes_nan():
    # sqrt''(0) is inf, but the direction does not move that input
    f = lambda x: x[0] ** 2 + pytape.sqrt(x[1])  # noqa: E731
    assert list(pytape.hvp(f, np.array([1.0, 0.0]), np.array([1.0, 0.0]))) == [2.0, 0.0]
