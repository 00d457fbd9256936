"""grad, value_and_grad, jvp, vjp, jacfwd, jacrev, jacobian (pytape/functional.py) and the sweep driver (pytape/program.py)."""
import math

import numpy as np
import pytest

import pytape
from pytape import program


def textbook(x1, x2):
    return pytape.log(x1) + x1 * x2 - pytape.sin(x2)


def test_textbook_example_every_way():
    assert pytape.grad(textbook)(2.0, 5.0) == 5.5
    value, (d1, d2) = pytape.value_and_grad(textbook, argnums=(0, 1))(2.0, 5.0)
    assert round(value, 3) == 11.652 and d1 == 5.5 and round(d2, 3) == 1.716
    assert pytape.jvp(textbook, (2.0, 5.0), (1.0, 0.0))[1] == 5.5
    value, vjp_fn = pytape.vjp(textbook, 2.0, 5.0)
    assert vjp_fn(1.0) == (5.5, 2.0 - math.cos(5.0))


def test_forward_mode_on_the_nested_polynomial_is_exact():
    # l1 = x, l(n+1) = l(n) * (l(n) + 4), f = l4: the forward-mode example of AD tutorials
    def f(x):
        l = x
        for _ in range(3):
            l = l * (l + 4.0)
        return l

    x = 1.0
    hand = 8 * (x**7 + 14 * x**6 + 78 * x**5 + 220 * x**4 + 330 * x**3 + 252 * x**2 + 84 * x + 8)
    assert pytape.jvp(f, (x,), (1.0,))[1] == hand
    assert pytape.grad(f)(x) == hand


def test_shapes_follow_numpy():
    x = np.arange(6.0).reshape(2, 3) / 10
    g = pytape.grad(lambda a: np.sum(a ** 3))(x)
    assert g.shape == (2, 3) and np.allclose(g, 3 * x ** 2, rtol=1e-15)
    J = pytape.jacobian(lambda a: a * 2.0)(x)
    assert J.shape == (2, 3, 2, 3)
    assert np.array_equal(J.reshape(6, 6), 2 * np.eye(6))
    assert isinstance(pytape.grad(lambda a: a * a)(3.0), float)
    assert pytape.jacobian(lambda a: [a, a * a])(3.0).shape == (2,)
    assert pytape.jacobian(lambda a: pytape.sin(a[0]) * a[1])(np.array([0.5, 2.0])).shape == (2,)


def random_function(n, m, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, n))
    b = rng.normal(size=m)

    def f(x):
        h = np.tanh(W @ x + b)  # object arrays of Vars: numpy calls Var.tanh
        return h * np.sin(W @ x) + np.exp(np.sum(x) * 0.1)

    return f, rng.normal(size=n)


@pytest.mark.parametrize("n, m", [(3, 2), (2, 7), (100, 70), (5, 130)])
def test_forward_and_reverse_jacobians_agree(n, m):
    f, x = random_function(n, m, seed=n * 1000 + m)
    Jf = pytape.jacfwd(f)(x)
    Jr = pytape.jacrev(f)(x)
    assert Jf.shape == Jr.shape == (m, n)
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-14)
    # and the finite differences of the function
    eps = 1e-6
    e0 = np.eye(n)[0]
    col = (f(x + eps * e0) - f(x - eps * e0)) / (2 * eps)  # f on plain floats: numpy alone
    np.testing.assert_allclose(Jr[:, 0], col, rtol=1e-6, atol=1e-8)


def test_jvp_and_vjp_are_products_with_the_jacobian():
    f, x = random_function(6, 4, seed=7)
    J = pytape.jacrev(f)(x)
    v = np.linspace(-1, 1, 6)
    u = np.linspace(2, -1, 4)
    value, tangent = pytape.jvp(f, (x,), (v,))
    np.testing.assert_allclose(tangent, J @ v, rtol=1e-12)
    value2, vjp_fn = pytape.vjp(f, x)
    np.testing.assert_allclose(vjp_fn(u)[0], u @ J, rtol=1e-12)
    np.testing.assert_allclose(value, value2)


def test_auto_mode_picks_the_cheaper_sweep(monkeypatch):
    calls = []
    rows, columns = program.Recording.rows, program.Recording.columns
    monkeypatch.setattr(program.Recording, "rows", lambda self, s: calls.append("rev") or rows(self, s))
    monkeypatch.setattr(program.Recording, "columns", lambda self, j, s: calls.append("fwd") or columns(self, j, s))
    # elementwise=True: the object-array recording (program.Recording) is the one watched here;
    # tests/test_array_functional.py watches the Tensor recording's choice
    wide, x = random_function(2, 9, seed=1)    # 2 inputs, 9 outputs: forward
    pytape.jacobian(wide, elementwise=True)(x)
    tall, x = random_function(9, 2, seed=2)    # 9 inputs, 2 outputs: reverse
    pytape.jacobian(tall, elementwise=True)(x)
    assert calls == ["fwd", "rev"]


def test_argnums_has_aux_constants_and_identity():
    f = lambda x, y, z: x * y * z  # noqa: E731
    assert pytape.grad(f, argnums=(0, 2))(2.0, 3.0, 4.0) == (12.0, 6.0)
    g, aux = pytape.grad(lambda x: (x * x, "aux"), has_aux=True)(3.0)
    assert (g, aux) == (6.0, "aux")
    assert pytape.grad(lambda x: 5.0)(1.0) == 0.0           # a constant output
    assert pytape.grad(lambda x, y: x * 2.0, argnums=1)(1.0, 2.0) == 0.0  # unused input
    assert pytape.grad(lambda x: x)(3.0) == 1.0             # the input itself
    assert pytape.grad(lambda x: x, argnums=-1)(3.0) == 1.0


def test_errors_are_clear():
    with pytest.raises(TypeError, match="scalar"):
        pytape.grad(lambda x: [x, x])(1.0)
    with pytest.raises(ValueError, match="argnums 3 is out of range"):
        pytape.grad(lambda x: x, argnums=3)(1.0)
    with pytest.raises(ValueError, match="one tangent per primal"):
        pytape.jvp(textbook, (2.0, 5.0), (1.0,))
    with pytest.raises(ValueError, match="shape"):
        pytape.jvp(lambda x: x * 2.0, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="shape"):
        pytape.vjp(lambda x: x * 2.0, np.ones(3))[1](np.ones(2))
    with pytest.raises(TypeError, match="must return"):
        pytape.grad(lambda x: "no")(1.0)
    with pytest.raises(TypeError, match="real number"):
        pytape.grad(lambda x: x)("a")
    with pytest.raises(ValueError, match="mode"):
        pytape.jacobian(lambda x: x, mode="sideways")
