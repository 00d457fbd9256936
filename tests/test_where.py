"""pytape.where and cond_select: a branch-free choice whose gradient sends
exactly zero to the branch not taken, in every sweep, and stays valid on
replay at inputs on either side."""
import math

import numpy as np
import pytest

import pytape
import pytape.reference as R


def safe_sqrt(x):
    return pytape.where(pytape.greater(x, 0.0), pytape.sqrt(x), 0.0)


@pytest.mark.parametrize("x", [0.0, -0.0, -1.0, -1e300, 1e-100, 0.25, 4.0])
def test_branch_not_taken_gets_exactly_zero_in_every_sweep(x):
    want_v = math.sqrt(x) if x > 0 else 0.0
    want_d = 0.5 / math.sqrt(x) if x > 0 else 0.0
    want_d2 = -0.25 * x ** -1.5 if x > 0 else 0.0
    # reverse sweep (backward), the functional API, forward mode, second order
    v = pytape.Var(x)
    y = safe_sqrt(v)
    y.backward()
    assert y.value == want_v and v.grad == pytest.approx(want_d, rel=1e-15)
    assert pytape.grad(safe_sqrt)(x) == pytest.approx(want_d, rel=1e-15)
    assert pytape.jvp(safe_sqrt, (x,), (1.0,))[1] == pytest.approx(want_d, rel=1e-15)
    assert pytape.jacfwd(lambda z: np.array([safe_sqrt(z)]))(x)[0] == pytest.approx(want_d, rel=1e-15)
    assert pytape.hessian(safe_sqrt)(x) == pytest.approx(want_d2, rel=1e-13)
    # the same against the reference engine (where as one node of its own)
    r = R.Value(x)
    ry = R.where(R.greater(r, 0.0), R.sqrt(r), 0.0)
    ry.backward()
    assert ry.data == y.value and r.grad == pytest.approx(v.grad, rel=1e-15)


def test_where_is_exact_and_takes_every_operand_kind():
    x = pytape.Var(2.0)
    assert pytape.where(pytape.less(x, 3.0), -0.0, 1.0).value == 0.0
    assert math.copysign(1.0, pytape.where(pytape.less(x, 3.0), -0.0, 1.0).value) == -1.0  # -0.0 kept
    assert pytape.where(pytape.less(x, 1.0), 5.0, x * 3.0).value == 6.0
    big = pytape.where(pytape.equal(x, 2.0), x * 1e300, math.inf)  # the other branch is inf
    big.backward()
    assert big.value == 2e300 and x.grad == 1e300
    # a bool or number as the condition records nothing for the choice
    a, b = pytape.Var(1.0), pytape.Var(2.0)
    assert pytape.where(True, a, b) is a and pytape.where(0.0, a, b) is b
    # the condition may be a leaf (nonzero is true), or a constant
    c = pytape.Var(0.0)
    y = pytape.where(c, a * 2.0, b * 3.0)
    y.backward()
    assert y.value == 6.0 and (a.grad, b.grad, c.grad) == (0.0, 3.0, 0.0)
    # plain numbers in, plain number out
    assert pytape.where(pytape.greater(1.0, 0.0), 3.0, 4.0) == 3.0


def test_comparison_values_and_nan():
    nan = math.nan
    for a, b in [(1.0, 2.0), (2.0, 1.0), (1.0, 1.0), (nan, 1.0), (1.0, nan), (-0.0, 0.0)]:
        va = pytape.Var(a)
        for name, want in [("less", a < b), ("less_equal", a <= b), ("greater", a > b),
                           ("greater_equal", a >= b), ("equal", a == b), ("not_equal", a != b)]:
            got = getattr(pytape, name)(va, b)
            assert got.value == float(want), (name, a, b)
            assert getattr(pytape, name)(a, b) == float(want)


@pytest.mark.parametrize("cmp, op", [("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b),
                                     (">", lambda a, b: a > b), (">=", lambda a, b: a >= b),
                                     ("==", lambda a, b: a == b), ("!=", lambda a, b: a != b)])
def test_cond_select_matches_python_and_replays_without_guards(cmp, op):
    def f(x):
        return pytape.cond_select(x, cmp, 1.0, pytape.sin(x) * 3.0, x * x)

    fn = pytape.trace(f, 0.5)
    for x in [-2.0, 0.5, 1.0, 1.5, 3.0]:
        taken = op(x, 1.0)
        want_v = math.sin(x) * 3.0 if taken else x * x
        want_d = 3.0 * math.cos(x) if taken else 2.0 * x
        assert fn(x) == pytest.approx(want_v, rel=1e-15)
        assert fn.gradient(x) == pytest.approx(want_d, rel=1e-15)
        assert pytape.grad(f)(x) == pytest.approx(want_d, rel=1e-15)
    assert fn.retraces == 0  # one tape for every input: no guard was recorded
    with pytest.raises(ValueError, match="cmp must be one of"):
        pytape.cond_select(1.0, "=>", 0.0, 1.0, 2.0)


def test_where_on_arrays_broadcasts():
    x = np.array([-1.0, 0.0, 4.0])
    f = lambda x: np.sum(pytape.where(pytape.greater(x, 0.0), pytape.sqrt(x), x * 0.5))  # noqa: E731
    assert pytape.grad(f)(x).tolist() == [0.5, 0.5, 0.25]
    fn = pytape.trace(f, np.ones(3))
    assert fn.gradient(x).tolist() == [0.5, 0.5, 0.25] and fn.retraces == 0
    assert pytape.where(np.array([1.0, 0.0]), np.array([1.0, 2.0]), 5.0).tolist() == [1.0, 5.0]


def test_python_comparison_in_where_is_a_guard_under_trace():
    # documented: `x > 0` is a Python bool, so under trace it becomes a guard
    fn = pytape.trace(lambda x: pytape.where(x > 0, pytape.sqrt(x), 0.0), 4.0)
    assert fn.gradient(9.0) == pytest.approx(1.0 / 6.0) and fn.retraces == 0
    assert fn.gradient(-1.0) == 0.0 and fn.retraces == 1
