"""Tests for pytape.reference, the pure-Python oracle engine."""

import ast
import doctest
import importlib.util
import math
import sys
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

try:
    from hypothesis import given, settings, strategies as st
    HAVE_HYPOTHESIS = True
except ImportError:  # pragma: no cover
    HAVE_HYPOTHESIS = False

_FILE = Path(__file__).resolve().parents[1] / "pytape" / "reference.py"


def _load_reference():
    """pytape.reference, or the file itself if the package does not import (C extension not built)."""
    try:
        from pytape import reference
        if Path(reference.__file__).resolve() == _FILE:
            return reference
    except Exception:
        pass
    spec = importlib.util.spec_from_file_location("pytape_reference_standalone", _FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


R = _load_reference()
Value = R.Value
inf, nan = math.inf, math.nan


def same(got, want, rtol=1e-12, atol=0.0):
    """got == want with nan == nan, infinities exact, finite values within tolerance."""
    got, want = float(got), float(want)
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    return math.isclose(got, want, rel_tol=rtol, abs_tol=atol)


def fd(f, x):
    """Central finite difference of the float function f at x."""
    h = 1e-6 * max(1.0, abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)


def np_(f):
    """Evaluate a numpy expression on a float64 scalar without warnings, as a float."""
    def g(x):
        with np.errstate(all="ignore"):
            return float(f(np.float64(x)))
    return g


def np_array_call(f, *args):
    """f on 1-element float64 arrays (numpy's scalar path gets e.g. power(-inf, 0.5) wrong: nan)."""
    with np.errstate(all="ignore"):
        return float(f(*(np.array([a], dtype=np.float64) for a in args))[0])


def _sigmoid_np(x):
    return 1.0 / (1.0 + np.exp(-x))


# name: (reference value, exact derivative (independent formula), interior points away from kinks)
UNARY = {
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), [0.3, 2.5, 100.0]),
    "cbrt": (np.cbrt, lambda x: 1 / (3 * np.cbrt(x) ** 2), [-2.7, 0.4, 5.0]),
    "exp": (np.exp, np.exp, [-1.3, 0.0, 0.7]),
    "exp2": (np.exp2, lambda x: np.exp2(x) * np.log(2), [-1.1, 2.3]),
    "expm1": (np.expm1, np.exp, [-0.4, 1e-3, 1.2]),
    "log": (np.log, lambda x: 1 / x, [0.3, 4.2]),
    "log2": (np.log2, lambda x: 1 / (x * np.log(2)), [0.3, 4.2]),
    "log10": (np.log10, lambda x: 1 / (x * np.log(10)), [0.3, 4.2]),
    "log1p": (np.log1p, lambda x: 1 / (1 + x), [-0.5, 0.2, 3.0]),
    "sin": (np.sin, np.cos, [-1.1, 0.3, 2.0]),
    "cos": (np.cos, lambda x: -np.sin(x), [-1.1, 0.3, 2.0]),
    "tan": (np.tan, lambda x: 1 / np.cos(x) ** 2, [-1.1, 0.3, 1.2]),
    "asin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), [-0.7, 0.2, 0.9]),
    "acos": (np.arccos, lambda x: -1 / np.sqrt(1 - x * x), [-0.7, 0.2, 0.9]),
    "atan": (np.arctan, lambda x: 1 / (1 + x * x), [-3.0, 0.5]),
    "sinh": (np.sinh, np.cosh, [-1.5, 0.2, 2.0]),
    "cosh": (np.cosh, np.sinh, [-1.5, 0.2, 2.0]),
    "tanh": (np.tanh, lambda x: 1 / np.cosh(x) ** 2, [-1.5, 0.2, 2.0]),
    "asinh": (np.arcsinh, lambda x: 1 / np.sqrt(x * x + 1), [-2.0, 0.5]),
    "acosh": (np.arccosh, lambda x: 1 / np.sqrt(x * x - 1), [1.2, 3.0]),
    "atanh": (np.arctanh, lambda x: 1 / (1 - x * x), [-0.8, 0.3]),
    "sigmoid": (_sigmoid_np, lambda x: _sigmoid_np(x) * _sigmoid_np(-x), [-3.0, 0.0, 2.5]),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: np.float64(x > 0), [-1.3, 0.7]),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid_np, [-3.0, 0.4, 25.0]),
    # no erf in numpy: reference values are math.erf here, checked against tables below
    "erf": (np.vectorize(math.erf), lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x), [-1.2, 0.3, 2.0]),
    "erfc": (np.vectorize(math.erfc), lambda x: -2 / np.sqrt(np.pi) * np.exp(-x * x), [-1.2, 0.3, 2.0]),
    "abs": (np.abs, np.sign, [-2.5, 1.5]),
    # numpy's rounding: piecewise constant (points away from the steps)
    "sign": (np.sign, lambda x: 0.0 * x, [-2.5, 1.5]),
    "floor": (np.floor, lambda x: 0.0 * x, [-2.5, 1.3]),
    "ceil": (np.ceil, lambda x: 0.0 * x, [-2.5, 1.3]),
    "round": (np.rint, lambda x: 0.0 * x, [-2.2, 1.3, 3.7]),
    "trunc": (np.trunc, lambda x: 0.0 * x, [-2.5, 1.3]),
}
UNARY_POINTS = [(name, x) for name, (_, _, xs) in UNARY.items() for x in xs]
EDGES = [-inf, -1000.0, -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.0, 1000.0, 5000.0, inf, nan]


def unary_grad(name, x, use_method):
    v = Value(x)
    y = getattr(v, name)() if use_method else getattr(R, name)(v)
    y.backward()
    return y, v.grad


# ---------------------------------------------------------------- module hygiene

def test_imports_only_standard_library():
    tree = ast.parse(_FILE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in reference.py"
            imported.add(node.module.split(".")[0])
    assert imported <= {"builtins", "functools", "math", "numbers"}, imported


def test_public_names_exist():
    names = set(UNARY) | {"atan2", "hypot", "minimum", "maximum", "clip", "less", "less_equal", "equal", "not_equal",
                          "mod", "fmod", "floor_divide", "logaddexp", "logaddexp2"}
    functions_only = {"greater", "greater_equal", "where"}
    assert set(R.__all__) == names | functions_only | {"Value"}
    for name in names | functions_only:
        assert callable(getattr(R, name)), name
    for name in names:
        assert callable(getattr(Value, name)), name


def test_docstring_examples():
    result = doctest.testmod(R, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 40
    assert result.failed == 0


# ---------------------------------------------------------------- unary ops

@pytest.mark.parametrize("name,x", UNARY_POINTS)
def test_unary_value_and_derivative(name, x):
    ref, dref, _ = UNARY[name]
    for use_method in (False, True):
        y, g = unary_grad(name, x, use_method)
        assert isinstance(y, Value) and y._op == name
        assert same(y.data, np_(ref)(x)), (name, x, y.data)
        assert same(g, np_(dref)(x)), (name, x, g)
        assert same(g, fd(getattr(R, name), x), rtol=1e-6, atol=1e-9), (name, x, g)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_domain_edges_match_numpy(name):
    ref = np_(UNARY[name][0])
    for x in EDGES:
        got = getattr(R, name)(x)
        assert type(got) is float
        assert same(got, ref(x)), (name, x, got, ref(x))
        y, g = unary_grad(name, x, use_method=True)  # never raises, even where nan/inf
        assert same(y.data, got)
        assert isinstance(g, float)


def test_module_functions_on_numbers_return_float():
    for arg in (2, 2.0, np.float32(2.0), np.float64(2.0), np.int64(2), Fraction(2), True):
        got = R.exp(arg)
        assert type(got) is float and got == math.exp(float(arg))
    assert type(R.atan2(np.float64(1.0), 2)) is float
    assert type(R.hypot(3, 4)) is float and R.hypot(3, 4) == 5.0
    assert type(R.maximum(1, 2)) is float and R.maximum(1, 2) == 2.0
    assert type(R.minimum(np.int32(1), 2)) is float and R.minimum(np.int32(1), 2) == 1.0
    assert R.clip(np.int64(5), 0, 3) == 3.0 and type(R.clip(np.int64(5), 0, 3)) is float
    assert R.abs(-2) == 2.0 and type(R.abs(-2)) is float


def test_erf_erfc_table_values():
    table = {0.5: 0.5204998778130465, 1.0: 0.8427007929497149, 2.0: 0.9953222650189527}
    for x, want in table.items():
        assert same(R.erf(x), want, rtol=1e-15)
        assert same(R.erf(-x), -want, rtol=1e-15)
    assert same(R.erfc(1.0), 0.15729920705028513, rtol=1e-15)
    assert same(R.erfc(3.0), 2.209049699858544e-05, rtol=1e-14)


def test_ieee_domain_results():
    cases = [
        (R.log, -1.0, nan), (R.log, 0.0, -inf), (R.sqrt, -1.0, nan), (R.asin, 2.0, nan),
        (R.acos, -1.5, nan), (R.acosh, 0.5, nan), (R.atanh, 1.0, inf), (R.atanh, -1.0, -inf),
        (R.atanh, 1.5, nan), (R.exp, 1000.0, inf), (R.exp2, 5000.0, inf), (R.expm1, 1000.0, inf),
        (R.sinh, 1000.0, inf), (R.sinh, -1000.0, -inf), (R.cosh, -1000.0, inf),
        (R.log1p, -1.0, -inf), (R.log1p, -3.0, nan), (R.log2, 0.0, -inf), (R.log10, -1.0, nan),
        (R.sin, inf, nan), (R.cos, -inf, nan), (R.tan, inf, nan), (R.cbrt, -8.0, -2.0),
        (R.cbrt, -27.0, -3.0), (R.sigmoid, -1000.0, 0.0), (R.softplus, 1000.0, 1000.0),
        (R.relu, nan, nan), (R.relu, -0.5, 0.0),
    ]
    for f, x, want in cases:
        assert same(f(x), want), (f.__name__, x)
        assert same(f(Value(x)).data, want), (f.__name__, x)
    assert (Value(1.0) / 0.0).data == inf
    assert (Value(-1.0) / 0.0).data == -inf
    assert (Value(1.0) / -0.0).data == -inf
    assert math.isnan((Value(0.0) / 0).data)
    assert (1 / Value(0.0)).data == inf
    assert (Value(1e308) / 1e-10).data == inf


def test_gradients_at_domain_edges_follow_the_formula():
    cases = [
        ("sqrt", 0.0, inf), ("cbrt", 0.0, inf), ("log", 0.0, inf), ("log1p", -1.0, inf),
        ("asin", 1.0, inf), ("acos", 1.0, -inf), ("acosh", 1.0, inf), ("atanh", 1.0, inf),
        ("atanh", -1.0, inf), ("exp", 1000.0, inf), ("sigmoid", 1000.0, 0.0),
        ("sigmoid", -1000.0, 0.0), ("tanh", 1000.0, 0.0), ("softplus", 0.0, 0.5),
        ("erf", inf, 0.0), ("sqrt", -1.0, nan), ("log", -2.0, -0.5),
        ("relu", 0.0, 0.0), ("relu", -0.0, 0.0), ("relu", 1e-300, 1.0), ("relu", -1e-300, 0.0),
        ("abs", 0.0, 0.0), ("abs", -0.0, 0.0), ("abs", -2.0, -1.0), ("abs", 3.0, 1.0),
    ]
    for name, x, want in cases:
        _, g = unary_grad(name, x, use_method=False)
        assert same(g, want), (name, x, g)


def test_abs_builtin_method_and_function_agree():
    for f in (abs, R.abs, lambda v: v.abs()):
        x = Value(-1.5)
        y = f(x)
        y.backward()
        assert y.data == 1.5 and x.grad == -1.0


def test_zero_adjoint_contributes_nothing_but_nan_propagates():
    # a zero upstream gradient is skipped, so 0 * sqrt'(0) = 0 * inf is not nan
    x = Value(0.0)
    (R.sqrt(x) * 0.0).backward()
    assert x.grad == 0.0
    x = Value(0.0)
    (R.log(x) * 0.0 + x).backward()
    assert x.grad == 1.0
    # a nonzero adjoint through an infinite derivative is inf, and nan propagates
    x = Value(0.0)
    R.sqrt(x).backward()
    assert x.grad == math.inf
    x = Value(-1.0)
    (R.sqrt(x) * 2.0).backward()  # sqrt'(-1) is nan
    assert math.isnan(x.grad)


# ---------------------------------------------------------------- binary ops

BINARY = {
    # name: (op on Values/numbers, float value, exact (d/da, d/db))
    "add": (lambda a, b: a + b, lambda a, b: a + b, lambda a, b: (1.0, 1.0)),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, lambda a, b: (1.0, -1.0)),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, lambda a, b: (b, a)),
    "div": (lambda a, b: a / b, lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2)),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b,
            lambda a, b: (b * a ** (b - 1), a ** b * math.log(a))),
    "atan2": (R.atan2, math.atan2, lambda a, b: (b / (a * a + b * b), -a / (a * a + b * b))),
    "hypot": (R.hypot, np.hypot, lambda a, b: (a / np.hypot(a, b), b / np.hypot(a, b))),
    "minimum": (R.minimum, min, lambda a, b: (1.0, 0.0) if a < b else (0.0, 1.0)),
    "maximum": (R.maximum, max, lambda a, b: (1.0, 0.0) if a > b else (0.0, 1.0)),
    "mod": (R.mod, np.remainder, lambda a, b: (1.0, -math.floor(a / b))),
    "fmod": (R.fmod, math.fmod, lambda a, b: (1.0, -math.trunc(a / b))),
    "floor_divide": (R.floor_divide, np.floor_divide, lambda a, b: (0.0, 0.0)),
    "logaddexp": (R.logaddexp, np.logaddexp, lambda a, b: (1 / (1 + math.exp(b - a)), 1 / (1 + math.exp(a - b)))),
    "logaddexp2": (R.logaddexp2, np.logaddexp2, lambda a, b: (1 / (1 + 2 ** (b - a)), 1 / (1 + 2 ** (a - b)))),
}
BINARY_POINTS = [(1.7, -0.6), (0.4, 2.3), (-1.2, 0.9), (3.1, 2.5)]
BINARY_CASES = [(n, a, b) for n in BINARY for a, b in BINARY_POINTS if not (n == "pow" and a < 0)]


@pytest.mark.parametrize("name,a,b", BINARY_CASES)
def test_binary_value_and_derivatives(name, a, b):
    op, ref, dref = BINARY[name]
    want, (wa, wb) = ref(a, b), dref(a, b)
    # Value op Value
    va, vb = Value(a), Value(b)
    y = op(va, vb)
    y.backward()
    assert len(y._prev) == 2 and y._prev[0] is va and y._prev[1] is vb
    assert same(y.data, want) and same(va.grad, wa) and same(vb.grad, wb), (y, va.grad, vb.grad)
    # central differences
    assert same(va.grad, fd(lambda t: float(op(Value(t), b).data), a), rtol=1e-6, atol=1e-9)
    assert same(vb.grad, fd(lambda t: float(op(a, Value(t)).data), b), rtol=1e-6, atol=1e-9)
    # Value op number and number op Value (reflected operators / either argument position)
    va = Value(a)
    y = op(va, b)
    y.backward()
    assert isinstance(y, Value) and same(y.data, want) and same(va.grad, wa)
    vb = Value(b)
    y = op(a, vb)
    y.backward()
    assert isinstance(y, Value) and same(y.data, want) and same(vb.grad, wb)


@pytest.mark.parametrize("name", ["atan2", "hypot", "minimum", "maximum"])
def test_binary_method_forms(name):
    a, b = Value(0.8), Value(-1.9)
    y = getattr(a, name)(b)
    y.backward()
    z = getattr(R, name)(Value(0.8), Value(-1.9))
    assert y.data == z.data == getattr(R, name)(0.8, -1.9)
    wa, wb = BINARY[name][2](0.8, -1.9)
    assert same(a.grad, wa) and same(b.grad, wb)


def test_division_and_pow_match_numpy_on_edge_grid():
    pts = [-inf, -1000.0, -3.0, -2.0, -1.0, -0.5, -0.0, 0.0, 1e-300, 0.5, 1.0, 2.0, 3.0, 1000.0, inf, nan]
    for a in pts:
        for b in pts:
            assert same((Value(a) / Value(b)).data, np_array_call(np.divide, a, b)), (a, b)
            assert same((Value(a) ** Value(b)).data, np_array_call(np.power, a, b)), (a, b)
            assert same((a ** Value(b)).data, np_array_call(np.power, a, b)), (a, b)
            assert same(R.atan2(a, b), np_array_call(np.arctan2, a, b)), (a, b)
            assert same(R.hypot(a, b), np_array_call(np.hypot, a, b)), (a, b)
            assert same(R.maximum(a, b), np_array_call(np.maximum, a, b)), (a, b)
            assert same(R.minimum(a, b), np_array_call(np.minimum, a, b)), (a, b)
    assert (Value(-inf) ** 0.5).data == inf   # IEEE 754 pow(-inf, y > 0, y not an odd integer)


def test_pow_special_values():
    assert (Value(0.0) ** -1).data == inf
    assert (Value(-0.0) ** -1).data == -inf
    assert (Value(-0.0) ** -2).data == inf
    assert math.isnan((Value(-8.0) ** (1 / 3)).data)
    assert (Value(10.0) ** 400).data == inf
    assert (Value(-10.0) ** 401).data == -inf
    assert (2 ** Value(5000.0)).data == inf
    assert (Value(-2.0) ** 3).data == -8.0


@pytest.mark.parametrize("a,b,y,da,db", [
    (0.0, 0.0, 1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, 1.0, 0.0),
    (0.0, 2.0, 0.0, 0.0, 0.0),
    (0.0, 0.5, 0.0, inf, 0.0),
    (0.0, -1.0, inf, -inf, -inf),
    (2.0, 0.0, 1.0, 0.0, math.log(2.0)),
    (-2.0, 0.0, 1.0, 0.0, nan),
    (-2.0, 2.0, 4.0, -4.0, nan),
    (-2.0, 3.0, -8.0, 12.0, nan),
    (-8.0, 1 / 3, nan, nan, nan),
])
def test_pow_convention(a, b, y, da, db):
    va, vb = Value(a), Value(b)
    out = va ** vb
    out.backward()
    assert same(out.data, y) and same(va.grad, da) and same(vb.grad, db), (out, va.grad, vb.grad)


def test_division_by_zero_gradients():
    a, b = Value(1.0), Value(0.0)
    y = a / b
    y.backward()
    assert (y.data, a.grad, b.grad) == (inf, inf, -inf)
    a, b = Value(0.0), Value(0.0)
    (a / b).backward()
    assert a.grad == inf                                   # 1/0
    assert math.isnan(b.grad)                              # -0/0


def test_atan2_gradient_at_origin_is_zero_like_torch():
    a, b = Value(0.0), Value(0.0)
    y = R.atan2(a, b)
    y.backward()
    assert y.data == 0.0 and a.grad == 0.0 and b.grad == 0.0


# ---------------------------------------------------------------- kink conventions

@pytest.mark.parametrize("f", [R.maximum, R.minimum, lambda a, b: a.maximum(b), lambda a, b: a.minimum(b)])
def test_min_max_ties_split_gradient(f):
    a, b = Value(2.0), Value(2.0)
    y = f(a, b)
    y.backward()
    assert y.data == 2.0 and (a.grad, b.grad) == (0.5, 0.5)
    a = Value(-1.0)
    f(a, -1.0).backward()
    assert a.grad == 0.5


def test_min_max_pick_one_side():
    a, b = Value(3.0), Value(2.0)
    R.maximum(a, b).backward()
    assert (a.grad, b.grad) == (1.0, 0.0)
    a, b = Value(3.0), Value(2.0)
    R.minimum(a, b).backward()
    assert (a.grad, b.grad) == (0.0, 1.0)


@pytest.mark.parametrize("x,lo,hi,y,dx,dlo,dhi", [
    (0.5, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0),     # boundary included
    (1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0),     # boundary included
    (-0.5, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0),
    (1.5, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0),
    (0.5, 2.0, 1.0, 1.0, 0.0, 0.0, 1.0),     # lo > hi: clamp_min then clamp_max gives hi
])
def test_clip_convention(x, lo, hi, y, dx, dlo, dhi):
    vx, vlo, vhi = Value(x), Value(lo), Value(hi)
    out = R.clip(vx, vlo, vhi)
    out.backward()
    assert (out.data, vx.grad, vlo.grad, vhi.grad) == (y, dx, dlo, dhi)
    vx = Value(x)
    out = vx.clip(lo, hi)          # number bounds, method form
    out.backward()
    assert (out.data, vx.grad) == (y, dx)
    assert R.clip(x, lo, hi) == y  # float path


def test_clip_with_none_bounds():
    x = Value(-3.0)
    y = R.clip(x, None, 1.0)
    y.backward()
    assert (y.data, x.grad) == (-3.0, 1.0)
    x = Value(3.0)
    y = R.clip(x, None, 1.0)
    y.backward()
    assert (y.data, x.grad) == (1.0, 0.0)
    x = Value(-1.0)
    y = R.clip(x, 0.0, None)
    y.backward()
    assert (y.data, x.grad) == (0.0, 0.0)
    x = Value(0.25)
    y = R.clip(x)
    y.backward()
    assert (y.data, x.grad) == (0.25, 1.0)
    lo = Value(2.0)
    y = R.clip(1.0, lo, None)      # number x with a Value bound gives a Value
    y.backward()
    assert isinstance(y, Value) and (y.data, lo.grad) == (2.0, 1.0)
    assert R.clip(5.0, None, None) == 5.0
    assert math.isnan(R.clip(nan, 0.0, 1.0))


def test_hypot_convention():
    a, b = Value(0.0), Value(0.0)
    y = R.hypot(a, b)
    y.backward()
    assert (y.data, a.grad, b.grad) == (0.0, 0.0, 0.0)
    a, b = Value(3.0), Value(4.0)
    y = R.hypot(a, b)
    y.backward()
    assert (y.data, a.grad, b.grad) == (5.0, 0.6, 0.8)
    a = Value(-3.0)
    R.hypot(a, 0.0).backward()
    assert a.grad == -1.0


# ---------------------------------------------------------------- graph and backward semantics

def test_worked_example():
    x1, x2 = Value(2.0), Value(5.0)
    y = R.log(x1) + x1 * x2 - R.sin(x2)
    y.backward()
    assert round(y.data, 3) == 11.652
    assert round(x1.grad, 3) == 5.5
    assert round(x2.grad, 3) == 1.716


def test_leaf_used_1000_times_accumulates():
    x = Value(1.5)
    y = sum(x * k for k in range(1000))
    y.backward()
    assert x.grad == sum(range(1000)) == 499500
    assert y.data == 1.5 * 499500


def test_backward_twice_accumulates_leaves_exactly():
    x = Value(3.0)
    h = x * x
    z = 4.0 * h
    z.backward()
    assert x.grad == 24.0
    z.backward()
    assert x.grad == 48.0                 # interior nodes are reset, leaves accumulate
    assert h.grad == 4.0 and z.grad == 1.0  # interior grad = d z / d node for the last call


def test_two_outputs_sharing_interior_node():
    x = Value(2.0)
    h = x * x
    z1, z2 = h * 3.0, R.sin(h)
    z1.backward()
    z2.backward()
    assert same(x.grad, 3.0 * 4.0 + math.cos(4.0) * 4.0)


def test_backward_gradient_argument_and_leaf_output():
    x = Value(2.0)
    y = x ** 3
    y.backward(gradient=0.5)
    assert y.grad == 0.5 and x.grad == 6.0
    y.backward(np.float64(2.0))
    assert x.grad == 30.0
    x = Value(1.0)
    x.backward()
    x.backward(2.0)
    assert x.grad == 3.0


def test_deep_chain_has_no_recursion_limit():
    n = 200_000
    assert sys.getrecursionlimit() < n  # a recursive topological sort would fail here
    x = Value(1.0)
    y = x
    for _ in range(n):
        y = y + x
    y.backward()
    assert y.data == n + 1 and x.grad == n + 1


def test_topological_order_is_micrograd_order():
    # micrograd: build_topo(v) visits v._prev in order, appends v; backward runs reversed(topo)
    a, b, c = Value(1.0, label="a"), Value(2.0, label="b"), Value(3.0, label="c")
    m = a * b
    e = m + c + a
    order = []
    for node in (a, b, c, m, e, e._prev[0]):
        node._backward = (lambda node=node, fn=node._backward: (order.append(node), fn()))
    e.backward()
    assert [n.label or n._op for n in order] == ["+", "+", "c", "*", "b", "a"]
    assert (a.grad, b.grad, c.grad) == (3.0, 1.0, 1.0)


# ---------------------------------------------------------------- Value object protocol

def test_value_structure_and_slots():
    x, y = Value(2.0, label="x"), Value(3.0)
    z = x * y
    assert z._op == "*" and z._prev[0] is x and z._prev[1] is y
    assert x._prev == () and x._op == "" and x.label == "x" and callable(x._backward)
    assert not hasattr(x, "__dict__")
    with pytest.raises(AttributeError):
        x.something = 1
    assert weakref.ref(x)() is x
    x.data, x.grad = 5.0, 7.0
    assert (x.data, x.grad) == (5.0, 7.0)
    assert type(Value(np.float32(1.5)).data) is float and Value(3).data == 3.0


def test_repr_float_bool():
    x = Value(2.0)
    assert repr(x) == "Value(data=2.0, grad=0.0)"
    x.grad = -1.5
    assert repr(x) == "Value(data=2.0, grad=-1.5)"
    assert float(Value(2.5)) == 2.5 and type(float(Value(2.5))) is float
    assert bool(Value(0.0)) is False and bool(Value(-0.0)) is False and bool(Value(-2.0)) is True


def test_comparisons_return_bool_on_data():
    a, b = Value(1.0), Value(2.0)
    results = [a < b, a <= b, a > b, a >= b, a == b, a != b, a < 1.5, 1.5 < a, a == 1, 1 == a,
               Value(2.0) == Value(2.0), a >= np.float64(1.0), np.float64(3.0) > b]
    assert results == [True, True, False, False, False, True, True, False, True, True, True, True, True]
    assert all(type(r) is bool for r in results)
    assert (a == "1.0") is False and (a != None) is True  # noqa: E711
    a.data = np.float64(1.0)            # data is assignable to any real; results stay bool
    assert all(type(r) is bool for r in (a < 2, a <= 2, a > 2, a >= 2, a == 1, a != 1, a == b))


def test_hash_is_identity():
    a, b = Value(1.0), Value(1.0)
    assert a == b                      # equal data ...
    assert hash(a) == object.__hash__(a) and hash(b) == object.__hash__(b)
    assert len({a, b}) == 2            # ... but distinct keys
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"


def test_unary_plus_minus():
    x = Value(1.5)
    y = -x + (+x) * 2
    y.backward()
    assert y.data == 1.5 and x.grad == 1.0
    assert (-Value(2.0))._op == "neg" and (+Value(2.0))._op == "pos"


@pytest.mark.parametrize("scalar", [np.float64(2.0), np.float32(2.0), np.int64(2), np.int32(2),
                                    Fraction(2), 2, True])
def test_numpy_and_other_real_scalars_are_constants(scalar):
    s = float(scalar)
    for make, value, grad in [
        (lambda x: x * scalar, 3.0 * s, s),
        (lambda x: scalar * x, 3.0 * s, s),
        (lambda x: scalar - x, s - 3.0, -1.0),
        (lambda x: x + scalar, 3.0 + s, 1.0),
        (lambda x: scalar / x, s / 3.0, -s / 9.0),
        (lambda x: x / scalar, 3.0 / s, 1.0 / s),
        (lambda x: scalar ** x, s ** 3.0, s ** 3.0 * math.log(s) if s > 0 else 0.0),
        (lambda x: x ** scalar, 3.0 ** s, s * 3.0 ** (s - 1)),
        (lambda x: R.atan2(x, scalar), math.atan2(3.0, s), s / (9.0 + s * s)),
    ]:
        x = Value(3.0)
        y = make(x)
        assert isinstance(y, Value), (scalar, y)
        y.backward()
        assert same(y.data, value) and same(x.grad, grad), (scalar, y, x.grad)


BAD = ["a", None, [1.0], 1j, {}]


@pytest.mark.parametrize("bad", BAD, ids=[type(b).__name__ for b in BAD])
def test_non_numeric_operands_raise_type_error(bad):
    x = Value(1.0)
    attempts = [
        lambda: x + bad, lambda: bad + x, lambda: x - bad, lambda: bad - x,
        lambda: x * bad, lambda: bad * x, lambda: x / bad, lambda: bad / x,
        lambda: x ** bad, lambda: bad ** x, lambda: x < bad, lambda: bad >= x,
        lambda: R.exp(bad), lambda: R.atan2(x, bad), lambda: R.atan2(bad, x),
        lambda: R.hypot(bad, 1.0), lambda: x.maximum(bad), lambda: R.clip(bad, 0.0, 1.0),
        lambda: Value(bad), lambda: x.backward(bad),
    ]
    if bad is not None:  # None is a valid clip bound (no bound)
        attempts += [lambda: R.clip(x, bad, None), lambda: R.clip(x, None, bad)]
    for i, attempt in enumerate(attempts):
        with pytest.raises(TypeError):
            attempt()
            pytest.fail(f"attempt {i} did not raise")


def test_type_error_message_is_clear():
    with pytest.raises(TypeError, match="real number.*str"):
        R.sqrt("4")
    with pytest.raises(TypeError, match="unsupported operand"):
        Value(1.0) + "a"


# ---------------------------------------------------------------- properties

if HAVE_HYPOTHESIS:
    any_float = st.floats(allow_nan=True, allow_infinity=True)

    @pytest.mark.parametrize("name", sorted(UNARY))
    @settings(max_examples=60, deadline=None, database=None)
    @given(x=any_float)
    def test_property_unary_matches_numpy_and_never_raises(name, x):
        ref = np_(UNARY[name][0])
        y, g = unary_grad(name, x, use_method=False)
        assert same(y.data, ref(x), rtol=1e-12, atol=1e-300), (name, x, y.data, ref(x))
        assert isinstance(g, float)

    @pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "atan2", "hypot",
                                      "minimum", "maximum", "mod", "fmod", "floor_divide", "logaddexp",
                                      "logaddexp2"])
    @settings(max_examples=60, deadline=None, database=None)
    @given(a=any_float, b=any_float)
    def test_property_binary_matches_numpy_and_never_raises(name, a, b):
        np_ref = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                  "pow": np.power, "atan2": np.arctan2, "hypot": np.hypot,
                  "minimum": np.minimum, "maximum": np.maximum, "mod": np.remainder, "fmod": np.fmod,
                  "floor_divide": np.floor_divide, "logaddexp": np.logaddexp, "logaddexp2": np.logaddexp2}[name]
        va, vb = Value(a), Value(b)
        y = BINARY[name][0](va, vb)
        y.backward()
        want = np_array_call(np_ref, a, b)
        assert same(y.data, want, rtol=1e-15), (name, a, b, y.data, want)
        assert isinstance(va.grad, float) and isinstance(vb.grad, float)

    @settings(max_examples=100, deadline=None, database=None)
    @given(a=st.floats(-5, 5), b=st.floats(0.1, 5))
    def test_property_composite_gradient_matches_formula(a, b):
        va, vb = Value(a), Value(b)
        y = va * vb + va / vb - R.tanh(va) * R.exp(-vb) + R.log(vb) * va ** 2
        y.backward()
        da = b + 1 / b - (1 - math.tanh(a) ** 2) * math.exp(-b) + 2 * a * math.log(b)
        db = a - a / b**2 + math.tanh(a) * math.exp(-b) + a * a / b
        assert same(va.grad, da, rtol=1e-9, atol=1e-10) and same(vb.grad, db, rtol=1e-9, atol=1e-10)
