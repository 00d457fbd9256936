"""numpy functions on Vars and on object arrays of Vars (issue 10: defects 3
and 7, and the numpy functions of README's "numpy functions on Vars").

Values against numpy on floats; derivatives against exact formulas or
central finite differences of numpy on floats (and torch where installed);
the numpy functions that would drop a derivative through a float64 buffer
raise inside a differentiation; comparisons broadcast both ways, and under
pytape.trace record one guard per element."""
import math
import operator
from fractions import Fraction

import numpy as np
import pytest

import pytape

H = 1e-6


def fd_grad(f, x):
    """central differences of a float function f at the float array x"""
    x = np.asarray(x, dtype=float)
    g = np.zeros(x.shape + np.shape(f(x)))
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = H
        g[i] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * H)
    return np.moveaxis(g, list(range(x.ndim)), list(range(g.ndim - x.ndim, g.ndim))) if x.ndim else g


def objects(xs):
    return np.array([pytape.Var(float(v)) for v in np.ravel(xs)], dtype=object).reshape(np.shape(xs))


def values(a):
    return np.array([v.value if isinstance(v, pytape.Var) else float(v) for v in np.ravel(a)]).reshape(np.shape(a))


# ---- remainders and floor division: %, //, divmod, np.mod / remainder / fmod / floor_divide

REMAINDER_CASES = [(5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (-5.5, -2.0), (1.0, 0.1), (7.3, 0.7), (-0.3, 1.1)]

REMAINDER_FORMS = {
    "%": (operator.mod, np.remainder, math.floor),
    "np.mod": (np.mod, np.remainder, math.floor),
    "np.remainder": (np.remainder, np.remainder, math.floor),
    "np.fmod": (np.fmod, np.fmod, math.trunc),
}


def test_remainder_derivatives_against_torch():
    torch = pytest.importorskip("torch")
    # fmod: where trunc of the rounded quotient is the exact quotient's (torch's rule is -trunc(a / b))
    for fn, tfn, cases in ((np.mod, torch.remainder, REMAINDER_CASES),
                           (np.fmod, torch.fmod, [c for c in REMAINDER_CASES if c != (1.0, 0.1)])):
        for a, b in cases:
            ta, tb = torch.tensor(a, dtype=torch.float64, requires_grad=True), torch.tensor(b, dtype=torch.float64,
                                                                                          requires_grad=True)
            y = tfn(ta, tb)
            y.backward()
            x, z = pytape.Var(a), pytape.Var(b)
            r = fn(x, z)
            r.backward()
            assert (r.value, x.grad, z.grad) == (y.item(), ta.grad.item(), tb.grad.item()), (fn, a, b)


@pytest.mark.parametrize("form", REMAINDER_FORMS)
@pytest.mark.parametrize("a,b", REMAINDER_CASES)
def test_remainders_on_vars(form, a, b):
    op, want, rounding = REMAINDER_FORMS[form]
    x, y = pytape.Var(a), pytape.Var(b)
    r = op(x, y)
    assert isinstance(r, pytape.Var) and r.value == float(want(a, b))
    r.backward()
    # d/da = 1, d/db = -n, n the integer quotient of a - n b (exact, as rationals)
    n = rounding(Fraction(a) / Fraction(b))
    assert (x.grad, y.grad) == (1.0, -float(n))
    r0 = float(want(a, b))
    if min(abs(r0), abs(b) - abs(r0)) > 1e-3:  # finite differences away from the jumps
        assert math.isclose(y.grad, (want(a, b + H) - want(a, b - H)) / (2 * H), rel_tol=1e-6)
    # a constant on either side, and numpy scalars
    assert op(x, b).value == op(a, y).value == op(np.float64(a), y).value == float(want(a, b))


def test_floor_division_and_divmod():
    for a, b in REMAINDER_CASES:
        x, y = pytape.Var(a), pytape.Var(b)
        q = x // y
        assert q.value == a // b == float(np.floor_divide(a, b))
        q.backward()
        assert (x.grad, y.grad) == (0.0, 0.0)
        assert [v.value for v in divmod(x, y)] == list(divmod(a, b))
        assert [v.value for v in divmod(a, y)] == [v.value for v in divmod(x, b)] == list(divmod(a, b))
        assert [v.value for v in np.divmod(x, y)] == list(divmod(a, b))
        assert (3 // y).value == 3 // b and np.floor_divide(x, b).value == a // b


def test_remainders_on_object_arrays():
    a, b = np.array([5.5, -5.5, 1.0, 7.3]), np.array([2.0, 2.0, 0.1, -0.7])
    for fn in (np.mod, np.remainder, np.fmod, np.floor_divide, operator.mod, operator.floordiv):
        got = fn(objects(a), objects(b))
        assert got.dtype == object and np.array_equal(values(got), fn(a, b))
        assert np.array_equal(values(fn(objects(a), 0.7)), fn(a, 0.7))
        if fn is not np.fmod:  # numpy's object loop calls a[i].fmod(b[i]): a float has none
            assert np.array_equal(values(fn(a, objects(b))), fn(a, b))
    assert np.array_equal(values(pytape.fmod(a, objects(b))), np.fmod(a, b))
    # derivatives: d/da = 1, d/db = -(a // b) for mod, -trunc for fmod
    ga, gb = pytape.grad(lambda u, v: np.sum(np.mod(u, v)), argnums=(0, 1))(a, b)
    assert np.array_equal(ga, np.ones(4)) and np.array_equal(gb, -np.floor_divide(a, b))
    ga, gb = pytape.grad(lambda u, v: np.sum(np.fmod(u, v)), argnums=(0, 1))(a, b)
    # the exact quotient's integer: fmod(1, 0.1) = 1 - 9 * 0.1, while trunc(1 / 0.1) is 10
    n = [math.trunc(Fraction(u) / Fraction(v)) for u, v in zip(a, b)]
    assert np.array_equal(ga, np.ones(4)) and np.array_equal(gb, -np.array(n, dtype=float))
    away = [0, 1, 3]  # finite differences away from a jump (fmod(1, 0.1) is 0.1 - 5.6e-17)
    assert np.allclose(gb[away], fd_grad(lambda v: np.sum(np.fmod(a, v)), b)[away], rtol=1e-6)
    assert np.array_equal(pytape.grad(lambda u: np.sum(u // 0.7))(a), np.zeros(4))


# ---- rounding: np.sign, np.floor, np.ceil, np.round / rint, np.trunc

ROUNDING_POINTS = [-2.5, -1.5, -0.5, -0.4, -0.0, 0.0, 0.3, 0.5, 1.5, 2.5, 2.7, 1e300, -np.inf, np.inf, np.nan]
ROUNDING = [np.sign, np.floor, np.ceil, np.rint, np.round, np.trunc, np.around]


@pytest.mark.parametrize("fn", ROUNDING, ids=lambda f: f.__name__)
def test_rounding_on_vars(fn):
    for v in ROUNDING_POINTS:
        x = pytape.Var(v)
        r = fn(x)
        want = float(fn(np.float64(v)))
        assert isinstance(r, pytape.Var), (fn, v)
        assert r.value == want or (math.isnan(want) and math.isnan(r.value)), (fn, v, r.value)
        assert math.copysign(1.0, r.value) == math.copysign(1.0, want) or want != want, (fn, v)
        r.backward()
        assert x.grad == 0.0


# elementwise=True below: these tests are about numpy's functions on object
# arrays of Vars (pytape.ops.VarArray), the transformations' elementwise path;
# functions without an array rule (np.round, np.sinc, np.gradient, np.diff,
# np.real, np.nan_to_num, np.logaddexp, pytape's vectorized functions) raise
# TypeError on the Tensors the transformations give by default


@pytest.mark.parametrize("fn", ROUNDING, ids=lambda f: f.__name__)
def test_rounding_on_object_arrays(fn):
    xs = np.array([-2.5, -1.5, -0.4, 0.3, 0.5, 1.5, 2.5, 2.7])
    got = fn(objects(xs))
    assert np.array_equal(values(got), fn(xs))
    assert np.array_equal(pytape.grad(lambda a: np.sum(fn(a) * a), elementwise=True)(xs), fn(xs))  # d(r(x) x)/dx = r(x)


def test_round_with_decimals():
    for v, d in [(1.2345, 2), (-1.2355, 3), (1234.5, -2), (2.5, 0)]:
        assert np.round(pytape.Var(v), d).value == np.round(v, d)
        assert np.array_equal(values(np.round(objects([v, -v]), d)), np.round([v, -v], d))
    assert pytape.grad(lambda a: np.sum(np.round(a, 1)), elementwise=True)(np.array([1.26, 2.0])).tolist() == [0.0, 0.0]


# ---- log-sum-exp

LSE_CASES = [(0.0, 0.0), (1.0, 2.0), (-3.0, 4.0), (1000.0, 1000.0), (1000.0, -1000.0), (-800.0, -801.0)]


@pytest.mark.parametrize("fn,base", [(np.logaddexp, math.e), (np.logaddexp2, 2.0)], ids=["logaddexp", "logaddexp2"])
def test_logaddexp(fn, base):
    for a, b in LSE_CASES:
        x, y = pytape.Var(a), pytape.Var(b)
        r = fn(x, y)
        want = float(fn(a, b))
        assert math.isclose(r.value, want, rel_tol=1e-15)
        r.backward()
        # d/da = base**(a - y): the share of a (exact formula, from numpy's value)
        assert math.isclose(x.grad, base ** (a - want), rel_tol=1e-12, abs_tol=1e-300)
        assert math.isclose(y.grad, base ** (b - want), rel_tol=1e-12, abs_tol=1e-300)
    a, b = np.array([0.5, -2.0, 30.0]), np.array([1.5, 3.0, -30.0])
    ga = pytape.grad(lambda u: np.sum(pytape.logaddexp(u, b) if base == math.e else pytape.logaddexp2(u, b)), elementwise=True)(a)
    assert np.allclose(ga, fd_grad(lambda u: np.sum(fn(u, b)), a), rtol=1e-7)
    h = pytape.hessian(lambda v: fn(v[0], v[1]))(np.array([0.3, -0.2]))
    s = 1 / (1 + base ** (-0.5))
    k = math.log(base)
    assert np.allclose(h, k * s * (1 - s) * np.array([[1, -1], [-1, 1]]), rtol=1e-12)


def test_logaddexp_on_object_arrays_is_refused_by_numpy_and_done_by_pytape():
    a = objects([1.0, 2.0])
    with pytest.raises(TypeError):  # numpy has no object loop for logaddexp
        np.logaddexp(a, a)
    assert np.allclose(values(pytape.logaddexp(a, 0.0)), np.logaddexp([1.0, 2.0], 0.0), rtol=1e-15)


# ---- np.var, np.std

@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("fn", [np.var, np.std])
def test_var_std(fn, ddof):
    x = np.array([1.0, 2.0, 4.0, 7.5, -3.0])
    assert math.isclose(fn(objects(x), ddof=ddof).value, fn(x, ddof=ddof), rel_tol=1e-14)
    g = pytape.grad(lambda a: fn(a, ddof=ddof))(x)
    n, d = x.size, x - x.mean()
    exact = 2 * d / (n - ddof) if fn is np.var else d / ((n - ddof) * np.std(x, ddof=ddof))
    assert np.allclose(g, exact, rtol=1e-13)
    assert np.allclose(g, fd_grad(lambda a: fn(a, ddof=ddof), x), rtol=1e-7)


def test_var_std_of_a_var():
    x = pytape.Var(2.0)
    for fn in (np.var, np.std):
        r = fn(x)
        assert r.value == fn(2.0) == 0.0
        r.backward()
        assert x.grad == 0.0
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):  # numpy's, for floats too
        assert math.isnan(np.var(pytape.Var(2.0), ddof=1).value)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("fn", [np.var, np.std])
def test_var_std_along_an_axis(fn, axis):
    x = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 3.0]])
    got = fn(objects(x), axis=axis, ddof=1)
    assert np.allclose(values(got), fn(x, axis=axis, ddof=1), rtol=1e-14)
    J = pytape.jacobian(lambda a: fn(a, axis=axis, ddof=1))(x)
    assert np.allclose(J, fd_grad(lambda a: fn(a, axis=axis, ddof=1), x), rtol=1e-7, atol=1e-9)


def test_var_std_against_torch():
    torch = pytest.importorskip("torch")
    x = np.array([0.3, -1.2, 2.5, 0.9])
    for fn, tfn in ((np.var, torch.var), (np.std, torch.std)):
        t = torch.tensor(x, requires_grad=True)
        tfn(t, correction=1).backward()
        assert np.allclose(pytape.grad(lambda a: fn(a, ddof=1))(x), t.grad.numpy(), rtol=1e-13)


# ---- predicates and comparisons with tolerance

PREDICATE_POINTS = [0.0, -1.5, 1e308, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("name", ["isfinite", "isnan", "isinf"])
def test_predicates(name):
    np_fn, pt_fn = getattr(np, name), getattr(pytape, name)
    for v in PREDICATE_POINTS:
        assert np_fn(pytape.Var(v)) == np_fn(v) == pt_fn(pytape.Var(v)) == pt_fn(v)
        assert np_fn(pytape.Var(v) * 1.0) == np_fn(v)
    got = pt_fn(objects(PREDICATE_POINTS))
    assert got.dtype == bool and np.array_equal(got, np_fn(PREDICATE_POINTS))


def test_isclose_allclose():
    for a, b in [(1.0, 1.0 + 1e-9), (1.0, 1.1), (np.inf, np.inf), (np.inf, -np.inf), (np.nan, np.nan), (0.0, 1e-9)]:
        for eq in (False, True):
            want = bool(np.isclose(a, b, equal_nan=eq))
            assert np.isclose(pytape.Var(a), b, equal_nan=eq) == want
            assert np.isclose(pytape.Var(a), pytape.Var(b), equal_nan=eq) == want
            assert np.allclose(a, pytape.Var(b), equal_nan=eq) == want
    xs, ys = [1.0, 2.0, np.nan], [1.0, 2.0 + 1e-7, np.nan]
    assert np.array_equal(pytape.isclose(objects(xs), objects(ys)), np.isclose(xs, ys))
    assert pytape.allclose(objects(xs), ys, equal_nan=True) and not pytape.allclose(objects(xs), ys)


# ---- np.conj, np.real, np.imag, np.angle; the scalar attributes numpy asks for

def test_complex_parts_of_real_vars():
    for v in (2.5, -2.5, 0.0):
        x = pytape.Var(v)
        assert np.conj(x) is x and np.conjugate(x) is x and np.real(x) is x and x.conj() is x
        assert np.imag(x) == 0.0
        a = np.angle(x)
        assert a.value == np.angle(v) and pytape.angle(x, deg=True).value == np.angle(v, deg=True)
        a.backward()
        assert x.grad == 0.0
    xs = np.array([1.5, -2.0])
    assert np.array_equal(values(np.conj(objects(xs))), xs) and np.array_equal(values(np.real(objects(xs))), xs)
    assert np.array_equal(values(pytape.angle(objects(xs))), np.angle(xs))
    assert np.array_equal(pytape.grad(lambda a: np.sum(np.conj(a) * np.real(a)), elementwise=True)(xs), 2 * xs)


def test_a_var_is_a_scalar_to_numpy():
    x = pytape.Var(0.3)
    assert (x.shape, x.ndim, x.size, x.dtype) == ((), 0, 1, np.dtype(object))
    assert (np.shape(x), np.ndim(x), np.size(x)) == ((), 0, 1)

def test_sinc():
    for v in (0.3, -2.5, 1.0):
        x = pytape.Var(v)
        s = np.sinc(x)
        assert math.isclose(s.value, np.sinc(v), rel_tol=1e-15, abs_tol=1e-17)
        s.backward()
        px = math.pi * v
        assert math.isclose(x.grad, (math.cos(px) * px - math.sin(px)) / (px * v), rel_tol=1e-13)
    assert np.sinc(pytape.Var(0.0)) == 1.0
    xs = np.array([0.0, 0.5, -1.5])
    assert np.allclose(values(pytape.sinc(objects(xs))), np.sinc(xs), rtol=1e-15)
    g = pytape.grad(lambda a: np.sum(pytape.sinc(a)), elementwise=True)(xs)
    assert g[0] == 0.0 and np.allclose(g, fd_grad(lambda a: np.sum(np.sinc(a)), xs), rtol=1e-7, atol=1e-10)


# ---- nan_to_num

def test_nan_to_num():
    xs = np.array([1.5, np.nan, np.inf, -np.inf, -2.0])
    big = np.finfo(float).max
    got = pytape.nan_to_num(objects(xs))
    assert np.array_equal(values(got), np.nan_to_num(xs))
    assert np.array_equal(values(pytape.nan_to_num(objects(xs), nan=-1.0, posinf=9.0, neginf=-9.0)),
                          np.nan_to_num(xs, nan=-1.0, posinf=9.0, neginf=-9.0))
    # derivative 1 where kept, 0 where replaced (torch.nan_to_num's)
    g = pytape.grad(lambda a: np.sum(pytape.nan_to_num(a * 2.0)))(xs)
    assert g.tolist() == [2.0, 0.0, 0.0, 0.0, 2.0]
    assert np.nan_to_num(pytape.Var(np.nan)) == 0.0 and np.nan_to_num(pytape.Var(np.inf)) == big
    assert np.nan_to_num(pytape.Var(3.0)).value == 3.0
    assert np.array_equal(pytape.nan_to_num(xs), np.nan_to_num(xs))  # float arrays: numpy's


def test_torch_nan_to_num_agrees():
    torch = pytest.importorskip("torch")
    xs = np.array([1.5, np.nan, np.inf, -2.0])
    t = torch.tensor(xs, requires_grad=True)
    torch.nan_to_num(t * 3.0).sum().backward()
    assert np.array_equal(pytape.grad(lambda a: np.sum(pytape.nan_to_num(a * 3.0)))(xs), t.grad.numpy())


# ---- float buffers: never a silently lost derivative (defect 7)

def test_np_gradient_of_a_transformations_array_is_differentiated():
    # the arrays pytape.grad and friends give f are VarArrays: np.gradient comes to pytape.gradient
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    for kwargs in ({}, {"edge_order": 2}):
        for spacing in ((), (0.5,)):
            J = pytape.jacobian(lambda a: np.gradient(a, *spacing, **kwargs), elementwise=True)(x)
            # np.gradient is linear: its Jacobian is np.gradient of the unit vectors, by numpy on floats
            expected = np.stack([np.gradient(e, *spacing, **kwargs) for e in np.eye(len(x))], axis=1)
            assert np.allclose(J, expected, rtol=1e-15, atol=1e-15)
    X = np.arange(12.0).reshape(3, 4) ** 2
    gy, gx = pytape.jacobian(lambda a: np.gradient(a), elementwise=True)(X)
    ey, ex = np.gradient(X)
    assert gy.shape == (3, 4, 3, 4)
    for k in range(12):  # column k of the Jacobian: np.gradient of the unit array k
        e = np.zeros(12)
        e[k] = 1.0
        uy, ux = np.gradient(e.reshape(3, 4))
        assert np.array_equal(gy.reshape(12, 12)[:, k], uy.ravel()) and np.array_equal(gx.reshape(12, 12)[:, k], ux.ravel())
    H = pytape.hessian(lambda a: np.sum(np.gradient(a) ** 2), elementwise=True)(x)
    D = np.stack([np.gradient(e) for e in np.eye(len(x))], axis=1)
    assert np.allclose(H, 2.0 * D.T @ D, rtol=1e-14)
    fn = pytape.trace(lambda a: np.sum(np.gradient(a) ** 2), x, elementwise=True)
    assert fn(x * 2.0) == pytest.approx(np.sum(np.gradient(x * 2.0) ** 2), rel=1e-14)
    with pytest.raises(TypeError, match="uniform spacings"):
        pytape.grad(lambda a: np.sum(np.gradient(a, np.array([0.0, 1.0, 3.0, 4.0, 8.0]))), elementwise=True)(x)


def test_np_gradient_of_a_plain_object_array_inside_a_differentiation_raises():
    # an object array the user made (not the transformation's VarArray): numpy's own code
    # would convert the Vars to floats; inside a differentiation that raises, never a zero derivative
    plain = lambda a: np.array(list(a), dtype=object)  # noqa: E731
    with pytest.raises(TypeError, match=r"numpy's gradient\(\).*derivative would be lost"):
        pytape.jacobian(lambda a: np.gradient(plain(a)))(np.array([1.0, 2.0, 4.0]))
    with pytest.raises(TypeError, match=r"gradient\(\)"):
        pytape.hessian(lambda a: np.sum(np.gradient(plain(a)) ** 2))(np.array([1.0, 2.0, 4.0]))
    with pytest.raises(TypeError, match=r"gradient\(\)"):
        pytape.trace(lambda a: np.sum(np.gradient(plain(a))), np.array([1.0, 2.0, 4.0]))


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # numpy's, as for floats: 0/0, log(0)
def test_functions_numpy_mishandles_on_a_transformations_array():
    x = np.array([0.0, 2.0, -1.0])
    # nan_to_num: numpy returns an object array unchanged, nans and all; here pytape's
    g = pytape.grad(lambda a: np.sum(np.nan_to_num(a / a)), elementwise=True)(x)
    assert g.tolist() == [0.0, 0.0, 0.0]
    got = pytape.jacobian(lambda a: np.nan_to_num(np.log(a)), elementwise=True)(np.array([0.0, 2.0]))
    assert got[0, 0] == 0.0 and got[1, 1] == 0.5
    # ufuncs numpy's object loop lacks: logaddexp, isfinite; and sign/floor recorded
    g = pytape.grad(lambda a: np.sum(np.logaddexp(a, 1.0)), elementwise=True)(x)
    assert np.allclose(g, 1.0 / (1.0 + np.exp(1.0 - x)), rtol=1e-15)
    assert pytape.grad(lambda a: np.sum(np.where(np.isfinite(np.log(a)), a, 0.0)), elementwise=True)(x).tolist() == [0.0, 1.0, 0.0]
    assert pytape.grad(lambda a: np.sum(np.sign(a) * a), elementwise=True)(x).tolist() == [0.0, 1.0, -1.0]
    def f(a):
        assert isinstance(a, np.ndarray) and type(a * 2.0) is type(a) and type(np.sin(a)) is type(a)
        return np.sum(np.floor(a) * a)
    assert pytape.grad(f, elementwise=True)(np.array([1.5, -0.5])).tolist() == [1.0, -1.0]


def test_explicit_conversions_inside_a_differentiation_are_allowed():
    def f(a):
        with pytape.no_grad():
            np.gradient(a)  # numbers only, asked for
        fixed = np.array(a, dtype=float)  # the user's own conversion: a constant
        return np.sum(a * fixed) + float(a[0]) + a.astype(float)[1]
    x = np.array([1.0, 2.0, 4.0])
    assert np.array_equal(pytape.grad(f, elementwise=True)(x), x)


def test_np_gradient_on_floats_and_outside_differentiations():
    assert np.array_equal(np.gradient(np.array([1.0, 2.0, 4.0])), [1.0, 1.5, 2.0])
    assert np.array_equal(np.gradient(objects([1.0, 2.0, 4.0])), [1.0, 1.5, 2.0])  # numbers, by numpy


# ---- comparisons broadcast (defect 3)

COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("cmp", COMPARISONS, ids=lambda c: c.__name__)
def test_comparisons_broadcast_both_ways(cmp):
    arr = np.array([[0.0, 0.5, 1.0], [2.0, 0.5, -1.0]])
    x = pytape.Var(0.5)
    for got, want in [(cmp(x, arr), cmp(0.5, arr)), (cmp(arr, x), cmp(arr, 0.5)),
                      (cmp(x * 1.0, arr), cmp(0.5, arr)),
                      (cmp(x, objects(arr)), cmp(0.5, arr)), (cmp(objects(arr), x), cmp(arr, 0.5)),
                      (cmp(objects(arr), arr), cmp(arr, arr)), (cmp(arr[0], objects(arr)), cmp(arr[0], arr))]:
        assert isinstance(got, np.ndarray) and got.dtype == bool and np.array_equal(got, want), (cmp, got, want)
    assert cmp(x, np.array(1.0)) == cmp(0.5, 1.0)
    if cmp in (operator.eq, operator.ne):
        assert cmp(x, "a") == (cmp is operator.ne)  # Python's default for unrelated types
    else:
        with pytest.raises(TypeError, match="not supported between"):
            cmp(x, "a")


def test_elementwise_comparisons_are_guarded_per_element_under_trace():
    thresholds = np.array([0.0, 1.0, 2.0])

    def f(v):
        above = v[0] > thresholds  # one guard per element
        return sum((2.0 if up else 3.0) * v[1] for up in above)

    def eager(x0, x1):
        return sum((2.0 if x0 > t else 3.0) * x1 for t in thresholds)

    fn = pytape.trace(f, np.array([1.5, 1.0]))  # above: T T F
    assert fn(np.array([1.7, 2.0])) == eager(1.7, 2.0) and fn.retraces == 0
    assert fn(np.array([0.5, 2.0])) == eager(0.5, 2.0) and fn.retraces == 1  # the second element flips
    assert fn.gradient(np.array([2.5, 1.0])).tolist() == [0.0, 6.0]


# ---- the new rows replay: pytape.trace, its compiled tape and saved bytes

def test_new_ops_replay_traced_and_saved():
    def f(v):
        a, b = v[0], v[1]
        return (a % b + np.fmod(a, b) * b + np.floor(a) * b + np.round(b * 3.0) * a + (a // b) * a
                + np.logaddexp(a, b) + np.logaddexp2(b, a) + np.sign(a - b) * b + np.trunc(a) + np.ceil(b) * a)

    def f_np(v):  # the same function of floats, numpy's
        a, b = v
        return (np.mod(a, b) + np.fmod(a, b) * b + np.floor(a) * b + np.rint(b * 3.0) * a + np.floor_divide(a, b) * a
                + np.logaddexp(a, b) + np.logaddexp2(b, a) + np.sign(a - b) * b + np.trunc(a) + np.ceil(b) * a)

    fn = pytape.trace(f, np.array([5.3, 1.7]))
    loaded = pytape.CompiledFunction.from_bytes(fn.to_bytes())
    for p in (np.array([5.3, 1.7]), np.array([-7.9, 2.2]), np.array([3.1, -0.45])):
        want = f_np(p)
        for g in (fn, loaded):
            assert math.isclose(g(p), want, rel_tol=1e-14)
            assert np.allclose(g.gradient(p), pytape.grad(f, elementwise=True)(p), rtol=1e-14)
            assert np.allclose(g.gradient(p), fd_grad(f_np, p), rtol=1e-6)
    assert fn.retraces == 0  # no guard: the rounding ops are recorded, replays recompute them


# ---- numpy's own code on object arrays of Vars (the README's first row)

NUMPY_CODE = {
    "sum": lambda a: np.sum(a ** 2), "mean": lambda a: np.mean(np.sin(a)), "dot": lambda a: np.dot(a, a[::-1]),
    "matmul": lambda a: a @ np.arange(1.0, 5.0), "cumsum": lambda a: np.sum(np.cumsum(a) ** 2),
    "diff": lambda a: np.sum(np.diff(a) ** 2), "linalg.norm": lambda a: np.linalg.norm(a),
    "sinc": lambda a: np.sum(np.sinc(a)), "var": lambda a: np.var(a), "std": lambda a: np.std(a, ddof=1),
}


@pytest.mark.parametrize("name", NUMPY_CODE)
def test_numpy_code_on_object_arrays(name):
    f = NUMPY_CODE[name]
    x = np.array([0.3, -1.2, 2.5, 0.9])
    assert math.isclose(f(objects(x)).value, f(x), rel_tol=1e-14)
    assert np.allclose(pytape.grad(f, elementwise=True)(x), fd_grad(f, x), rtol=1e-7, atol=1e-10)
