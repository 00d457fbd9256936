"""Every op of the op table at extreme arguments, against mpmath.

For every primitive of csrc/ops.def (iterated from the table, so a row added
later is covered or this file fails), at points drawn from +-1e+-300,
+-1e+-160, the subnormals 5e-324 and 1e-310, +-0 where the op is defined, and
points near its domain edges, the value, the first derivatives (reverse sweep
and forward tangent sweep), the second derivatives (``pytape.hessian``,
forward over reverse), the Python twins of the derivative columns
(``autograd.grad(create_graph=True)``, pytape/higher_order.py) and the
pure-Python reference engine are compared with the exact derivatives written
out below and evaluated by mpmath at 50 digits.  Where the exact number is a
finite double, pytape must be within 1e-12 relative of it; where it overflows,
pytape must give the infinity of the right sign (not nan); where it underflows
below the smallest normal double, 0 or a subnormal.

Also: the numbers of issue 9 defect 7 (hypot and atan2 at 1e+-200), and
defect 8, a nan operand getting PyTorch's gradient (against torch when it is
installed, and against the behaviour of torch 2.13 written out here).
"""
import math

import numpy as np
import pytest

import pytape
from pytape import reference as R
from pytape._native import BINARY, OPCODES, UNARY
from pytape.autograd import grad as ag_grad
from pytape.recording import FUNCTIONS

mpmath = pytest.importorskip("mpmath")
mp = mpmath.mp
mpf = mpmath.mpf

DBL_MAX = 1.7976931348623157e308
DBL_MIN = 2.2250738585072014e-308
RTOL = 1e-12
nan, inf = math.nan, math.inf

MAGNITUDES = [1e-300, 1e-160, 1e160, 1e300, 5e-324, 1e-310]
EXTREMES = [s * m for m in MAGNITUDES for s in (1.0, -1.0)]
ULP1 = 2.0 ** -53  # 1 - ULP1 is the double below 1


# =============================================================================
# exact derivatives: (value, [d/dx_i], [[d2/dx_i dx_j]]) of mpf arguments
# =============================================================================

def _sgn(x):
    return mpf((x > 0) - (x < 0))


def _cbrt(x):
    return _sgn(x) * mpmath.cbrt(abs(x))


def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


def _erfc(x):
    """mpmath's erfc, which overflows internally at huge |x|: erfc(x) < 1e-400
    from x = 30 on (0 as a double), and 2 - that below -30"""
    if abs(x) > 30:
        return mpf("1e-400") if x > 0 else 2 - mpf("1e-400")
    return mpmath.erfc(x)


def _u(v, d1, d2):
    return v, [d1], [[d2]]


UNARY_EXACT = {
    "neg": lambda x: _u(-x, -1, 0),
    "abs": lambda x: _u(abs(x), _sgn(x), 0),  # abs'(0) = 0, like PyTorch
    "sqrt": lambda x: _u(mpmath.sqrt(x), 1 / (2 * mpmath.sqrt(x)), -1 / (4 * x * mpmath.sqrt(x))),
    "cbrt": lambda x: _u(_cbrt(x), 1 / (3 * _cbrt(x) ** 2), -2 / (9 * _cbrt(x) ** 5)),
    "exp": lambda x: _u(mpmath.exp(x), mpmath.exp(x), mpmath.exp(x)),
    "exp2": lambda x: _u(2 ** x, 2 ** x * mpmath.ln2, 2 ** x * mpmath.ln2 ** 2),
    "expm1": lambda x: _u(mpmath.expm1(x), mpmath.exp(x), mpmath.exp(x)),
    "log": lambda x: _u(mpmath.log(x), 1 / x, -1 / x ** 2),
    "log2": lambda x: _u(mpmath.log(x, 2), 1 / (x * mpmath.ln2), -1 / (x ** 2 * mpmath.ln2)),
    "log10": lambda x: _u(mpmath.log10(x), 1 / (x * mpmath.ln10), -1 / (x ** 2 * mpmath.ln10)),
    "log1p": lambda x: _u(mpmath.log1p(x), 1 / (1 + x), -1 / (1 + x) ** 2),
    "sin": lambda x: _u(mpmath.sin(x), mpmath.cos(x), -mpmath.sin(x)),
    "cos": lambda x: _u(mpmath.cos(x), -mpmath.sin(x), -mpmath.cos(x)),
    "tan": lambda x: _u(mpmath.tan(x), 1 + mpmath.tan(x) ** 2, 2 * mpmath.tan(x) * (1 + mpmath.tan(x) ** 2)),
    "asin": lambda x: _u(mpmath.asin(x), 1 / mpmath.sqrt(1 - x * x), x / (1 - x * x) ** mpf(1.5)),
    "acos": lambda x: _u(mpmath.acos(x), -1 / mpmath.sqrt(1 - x * x), -x / (1 - x * x) ** mpf(1.5)),
    "atan": lambda x: _u(mpmath.atan(x), 1 / (1 + x * x), -2 * x / (1 + x * x) ** 2),
    "sinh": lambda x: _u(mpmath.sinh(x), mpmath.cosh(x), mpmath.sinh(x)),
    "cosh": lambda x: _u(mpmath.cosh(x), mpmath.sinh(x), mpmath.cosh(x)),
    "tanh": lambda x: _u(mpmath.tanh(x), mpmath.sech(x) ** 2, -2 * mpmath.tanh(x) * mpmath.sech(x) ** 2),
    "asinh": lambda x: _u(mpmath.asinh(x), 1 / mpmath.sqrt(x * x + 1), -x / (x * x + 1) ** mpf(1.5)),
    "acosh": lambda x: _u(mpmath.acosh(x), 1 / mpmath.sqrt(x * x - 1), -x / (x * x - 1) ** mpf(1.5)),
    "atanh": lambda x: _u(mpmath.atanh(x), 1 / (1 - x * x), 2 * x / (1 - x * x) ** 2),
    # sigmoid(-x) - sigmoid(x) = -tanh(x/2), which does not cancel at tiny x
    "sigmoid": lambda x: _u(_sig(x), _sig(x) * _sig(-x), -_sig(x) * _sig(-x) * mpmath.tanh(x / 2)),
    "relu": lambda x: _u(max(x, mpf(0)), mpf(x > 0), 0),  # relu'(0) = 0, like PyTorch
    "softplus": lambda x: _u(mpmath.log1p(mpmath.exp(x)), _sig(x), _sig(x) * _sig(-x)),
    "erf": lambda x: _u(mpmath.erf(x), 2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x),
                        -4 * x / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x)),
    "erfc": lambda x: _u(_erfc(x), -2 / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x),
                         4 * x / mpmath.sqrt(mpmath.pi) * mpmath.exp(-x * x)),
    # the rounding ops: exact integers of the exact argument, derivative 0
    "sign": lambda x: _u(_sgn(x), 0, 0),
    "floor": lambda x: _u(mpmath.floor(x), 0, 0),
    "ceil": lambda x: _u(mpmath.ceil(x), 0, 0),
    "round": lambda x: _u(_half_even(x), 0, 0),
    "trunc": lambda x: _u(mpmath.floor(x) if x >= 0 else mpmath.ceil(x), 0, 0),
}


def _half_even(x):
    """the nearest integer to x, halves to the even one"""
    f = mpmath.floor(x)
    d = x - f
    return f + 1 if d > 0.5 or (d == 0.5 and int(f) % 2) else f


def _fraction(x):
    """the exact rational number of an mpf that holds a double"""
    from fractions import Fraction
    return Fraction(float(x))


def _remainder(a, b, rounding):
    """(a - n b, n) exactly, n = rounding(a / b) of the exact quotient (as rationals:
    at a / b = 1e600 no fixed precision would do)"""
    fa, fb = _fraction(a), _fraction(b)
    if fb == 0:
        raise ZeroDivisionError
    n = rounding(fa / fb)
    r = fa - n * fb
    return mpf(r.numerator) / r.denominator, mpf(n)


def _mod(a, b):
    r, n = _remainder(a, b, math.floor)
    return _b(r, 1, -n, 0, 0, 0)


def _fmod(a, b):
    r, n = _remainder(a, b, math.trunc)
    return _b(r, 1, -n, 0, 0, 0)


def _floor_divide(a, b):
    return _b(_remainder(a, b, math.floor)[1], 0, 0, 0, 0, 0)


def _logaddexp(a, b, base):
    """log_base(base**a + base**b): the shares s of a and 1 - s of b, and k s (1 - s), k = ln base"""
    k = mpmath.log(base)
    s = 1 / (1 + mpmath.power(base, b - a))
    t = 1 / (1 + mpmath.power(base, a - b))
    # written around the larger operand: at 50 digits log(e**1e-300 + e**-1e160) would be 0
    v = max(a, b) + mpmath.log1p(mpmath.power(base, -abs(a - b))) / k
    return _b(v, s, t, k * s * t, -k * s * t, k * s * t)


def _b(v, da, db, daa, dab, dbb):
    return v, [da, db], [[daa, dab], [dab, dbb]]


def _tie(w, lose):
    """maximum's share for w (PyTorch's): 1 if it wins, 0.5 on a tie"""
    return mpf(1) if w > lose else (mpf(0.5) if w == lose else mpf(0))


def _pow(a, b):
    y, l = a ** b, mpmath.log(a)
    return _b(y, b * a ** (b - 1), y * l, b * (b - 1) * a ** (b - 2), a ** (b - 1) * (1 + b * l), y * l * l)


def _atan2(a, b):
    r2 = a * a + b * b
    return _b(mpmath.atan2(a, b), b / r2, -a / r2, -2 * a * b / r2 ** 2, (a * a - b * b) / r2 ** 2, 2 * a * b / r2 ** 2)


def _hypot(a, b):
    h = mpmath.sqrt(a * a + b * b)
    return _b(h, a / h, b / h, b * b / h ** 3, -a * b / h ** 3, a * a / h ** 3)


BINARY_EXACT = {
    "add": lambda a, b: _b(a + b, 1, 1, 0, 0, 0),
    "sub": lambda a, b: _b(a - b, 1, -1, 0, 0, 0),
    "mul": lambda a, b: _b(a * b, b, a, 0, 1, 0),
    "div": lambda a, b: _b(a / b, 1 / b, -a / b ** 2, 0, -1 / b ** 2, 2 * a / b ** 3),
    "pow": _pow,
    "atan2": _atan2,
    "hypot": _hypot,
    "minimum": lambda a, b: _b(min(a, b), _tie(b, a), _tie(a, b), 0, 0, 0),
    "maximum": lambda a, b: _b(max(a, b), _tie(a, b), _tie(b, a), 0, 0, 0),
    "clamp_min": lambda a, b: _b(max(a, b), mpf(a >= b), mpf(a < b), 0, 0, 0),
    "clamp_max": lambda a, b: _b(min(a, b), mpf(a <= b), mpf(a > b), 0, 0, 0),
    "less": lambda a, b: _b(mpf(a < b), 0, 0, 0, 0, 0),
    "less_equal": lambda a, b: _b(mpf(a <= b), 0, 0, 0, 0, 0),
    "equal": lambda a, b: _b(mpf(a == b), 0, 0, 0, 0, 0),
    "not_equal": lambda a, b: _b(mpf(a != b), 0, 0, 0, 0, 0),
    # where_t(c, v) = v where c != 0, else -0.0 (no derivative to the condition)
    "where_t": lambda c, v: _b(v if c != 0 else mpf(0), 0, mpf(c != 0), 0, 0, 0),
    "where_f": lambda c, v: _b(v if c == 0 else mpf(0), 0, mpf(c == 0), 0, 0, 0),
    "mod": _mod,
    "fmod": _fmod,
    "floor_divide": _floor_divide,
    "logaddexp": lambda a, b: _logaddexp(a, b, mpf(math.e)),
    "logaddexp2": lambda a, b: _logaddexp(a, b, mpf(2)),
}

#: ops left out, each with its reason (none: every op has extreme points)
SKIPPED = {}


# =============================================================================
# points: the extremes, +-0 where defined, and the domain edges
# =============================================================================

def _near_one():
    return [1.0 - ULP1, -(1.0 - ULP1), 1.0 - 1e-10, -(1.0 - 1e-10), 0.5, -0.5]


#: per op, the points beyond EXTREMES and +-0 (domain edges, and where a
#: textbook formula cancels: the saturated tails of tanh and sigmoid)
EDGES = {
    "log": [1.0 + 2 * ULP1, 1.0 - ULP1], "log2": [1.0 + 2 * ULP1], "log10": [1.0 + 2 * ULP1],
    "log1p": [-1.0 + ULP1, -1.0 + 1e-10, -0.5, 1.0],
    "asin": _near_one(), "acos": _near_one(), "atanh": _near_one(),
    "acosh": [1.0 + 2 * ULP1, 1.0 + 1e-10, 2.0, 1e8, 1e9, 1.5e154],
    "asinh": [1e154, 1.5e154], "atan": [1e100, 1.5e154],
    "tanh": [20.0, -20.0, 40.0, -4.0, 0.5], "sigmoid": [40.0, -40.0, 20.0, -745.0, 0.5],
    "softplus": [40.0, -40.0, 745.0, -745.0], "expm1": [-40.0, -20.0, -0.7, -0.3, 700.0],
    "exp": [709.7, -745.0], "exp2": [1023.5, -1074.0], "erf": [26.0, -26.0, 27.0], "erfc": [26.0, -27.0],
    "sinh": [710.0, -710.0], "cosh": [710.0, -710.0],
    "tan": [1.5707963267948966, -1.5707963267948966],
    "sqrt": [2.2250738585072014e-308, 1e-206, 3e-206], "cbrt": [1e-185, -1e-185, 1e-186],
}


def unary_points(name):
    return EXTREMES + [0.0, -0.0] + EDGES.get(name, [])


BINARY_VALUES = [0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 1e-160, -1e-160, 1e160, -1e160, 1e300, -1e300,
                 5e-324, -5e-324, 1e-310]
#: extra pairs: defect 7's points, and where a formula's intermediate over- or underflows
BINARY_EDGES = {
    "hypot": [(1e-200, 1e-200), (1e200, 1e200), (3e-170, 4e-170), (1e154, 1e-154)],
    "atan2": [(1e-200, 1e-200), (1e200, 1e200), (1e-160, 1e-160), (1e308, 1e308), (1e308, -1e308),
              (1e154, 1e154), (1.0, 1.0 + 1e-10)],
    "div": [(1e-310, 0.5), (5e-324, 1e-10), (1e300, 1e160), (1e300, 1e-10)],
    "pow": [(5e-324, 1e-300), (1e-310, 1e-160), (1e-100, 3.5), (0.5, 1070.0), (2.0, -1074.0), (1e300, 1.02),
            (7.0, 0.5), (1e-300, 1.03), (4.7e-310, 5.8e307), (1.0 + 2 ** -52, 1e17), (1.0 - 2 ** -53, -1e18)],
}


def binary_points(name):
    pts = [(a, b) for a in BINARY_VALUES for b in BINARY_VALUES]
    if name == "pow":  # pow of a negative or zero base: IEEE values and PyTorch's conventions (test_ops.py)
        pts = [(a, b) for a, b in pts if a > 0]
    return pts + BINARY_EDGES.get(name, [])


# =============================================================================
# comparison with the exact number
# =============================================================================

def _exact(name, args):
    """(value, grads, hessian) as mpf, or None where the op is not defined
    or not differentiable there (a pole, the origin of atan2/hypot: their
    conventions are tested in test_ops.py)."""
    f = UNARY_EXACT[name] if name in UNARY else BINARY_EXACT[name]
    with mpmath.workdps(50):
        try:
            out = f(*[mpf(x) for x in args])
        except (ZeroDivisionError, ValueError):
            return None
        v, g, h = out
        if name == "atan2" and args[0] == 0 and math.copysign(1.0, args[0]) < 0:
            v = -v  # atan2(-0.0, b): IEEE's sign of zero, which mpmath has not
        nums = [v] + list(g) + [x for row in h for x in row]
        if any(isinstance(mpmath.mpmathify(x), mpmath.mpc) for x in nums):
            return None
        return mpf(v), [mpf(x) for x in g], [[mpf(x) for x in row] for row in h]


def agrees(got, want):
    """got (a double) against want (exact): within RTOL where want is a
    finite normal double, the right infinity where it overflows, 0 or a
    subnormal where it underflows."""
    assert not mpmath.isnan(want), "the oracle is undefined here: leave the point out"
    if abs(want) > DBL_MAX * (1 + 2.0 ** -54):
        return got == (inf if want > 0 else -inf)
    if math.isnan(got) or math.isinf(got):
        return False
    w = float(want)
    if abs(want) < DBL_MIN:
        return abs(got) < DBL_MIN and (got == 0 or w == 0 or (got > 0) == (w > 0))
    return abs(got - w) <= RTOL * abs(w)


def _check(failures, what, name, args, got, want):
    if not agrees(got, want):
        failures.append(f"{name}{tuple(args)!r} {what}: pytape {got!r}, exact {mpmath.nstr(want, 17)}")


def _value_and_derivatives(f, args):
    """value, reverse-sweep gradient, forward tangents and create_graph
    gradient (the Python twins) of f at args."""
    with pytape.Tape() as t:
        xs = [pytape.Var(x) for x in args]
        y = f(*xs)
        tangents = []
        for x in xs:
            t.tangent_sweep({x: 1.0})
            tangents.append(y.tangent)
        twins = ag_grad(y, xs, create_graph=True, retain_graph=True, allow_unused=True)
        twins = [0.0 if g is None else (g.value if isinstance(g, pytape.Var) else float(g)) for g in twins]
        y.backward()
        return y.value, [x.grad for x in xs], tangents, twins


def _reference(name, args):
    """value and gradient from the pure-Python reference engine"""
    fn = {"neg": lambda a: -a, "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
          "clamp_min": lambda a, b: R.clip(a, b, None), "clamp_max": lambda a, b: R.clip(a, None, b)}.get(
        name) or getattr(R, name)
    xs = [R.Value(x) for x in args]
    y = fn(*xs)
    y.backward()
    return y.data, [x.grad for x in xs]


def check_op(name, points):
    f = FUNCTIONS[name]
    failures, checked = [], 0
    for args in points:
        args = tuple(args) if isinstance(args, tuple) else (args,)
        exact = _exact(name, args)
        if exact is None:
            continue
        v_want, g_want, h_want = exact
        if not math.isfinite(float(v_want)) or abs(v_want) > DBL_MAX:
            continue  # the value itself is not a finite double: nothing is promised
        checked += 1
        value, grads, tangents, twins = _value_and_derivatives(f, args)
        _check(failures, "value", name, args, value, v_want)
        for i, want in enumerate(g_want):
            _check(failures, f"d/dx{i} reverse", name, args, grads[i], want)
            _check(failures, f"d/dx{i} tangent", name, args, tangents[i], want)
            _check(failures, f"d/dx{i} create_graph", name, args, twins[i], want)
        H = np.atleast_2d(pytape.hessian(lambda v: f(*v))(np.array(args, dtype=float)))
        for i, row in enumerate(h_want):
            for j, want in enumerate(row):
                _check(failures, f"d2/dx{i}dx{j} hessian", name, args, float(H[i, j]), want)
        rv, rg = _reference(name, args)
        _check(failures, "value reference", name, args, rv, v_want)
        for i, want in enumerate(g_want):
            _check(failures, f"d/dx{i} reference", name, args, rg[i], want)
    return failures, checked


def report(failures):
    if failures:
        more = f"\n... and {len(failures) - 25} more" if len(failures) > 25 else ""
        pytest.fail(f"{len(failures)} mismatches:\n" + "\n".join(failures[:25]) + more)


# =============================================================================
# the tests
# =============================================================================

def test_every_op_has_an_exact_oracle_or_a_stated_reason():
    covered = set(UNARY_EXACT) | set(BINARY_EXACT) | set(SKIPPED)
    assert set(OPCODES) <= covered, f"ops of ops.def without an exact oracle here: {set(OPCODES) - covered}"
    assert covered <= set(OPCODES), f"oracles of ops that are gone: {covered - set(OPCODES)}"
    assert all(SKIPPED.values())


@pytest.mark.parametrize("name", [n for n in UNARY if n not in SKIPPED])
def test_unary_at_extremes_against_mpmath(name):
    failures, checked = check_op(name, unary_points(name))
    report(failures)
    assert checked >= 5, f"only {checked} points of {name} checked"


@pytest.mark.parametrize("name", [n for n in BINARY if n not in SKIPPED])
def test_binary_at_extremes_against_mpmath(name):
    failures, checked = check_op(name, binary_points(name))
    report(failures)
    assert checked >= 20, f"only {checked} points of {name} checked"


def _random_magnitudes(rng, n):
    """n doubles of random sign, log-uniform over the whole range, subnormals included"""
    return [float(rng.choice((1.0, -1.0)) * 10.0 ** rng.uniform(-323.3, 308.2)) for _ in range(n)]


@pytest.mark.parametrize("name", [n for n in UNARY if n not in SKIPPED])
def test_unary_at_random_magnitudes_against_mpmath(name):
    # between the fixed points: the promise holds at every magnitude
    rng = np.random.default_rng(sum(map(ord, name)))  # seeded: the same points every run
    pts = _random_magnitudes(rng, 16) + [float(x) for x in rng.uniform(-40.0, 40.0, 8)]
    failures, _ = check_op(name, pts)
    report(failures)


@pytest.mark.parametrize("name", [n for n in BINARY if n not in SKIPPED])
def test_binary_at_random_magnitudes_against_mpmath(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    pts = list(zip(_random_magnitudes(rng, 24), _random_magnitudes(rng, 24)))
    if name == "pow":
        pts = [(abs(a), b) for a, b in pts]
    failures, _ = check_op(name, pts)
    report(failures)


@pytest.mark.parametrize("name", [n for n in BINARY if n not in SKIPPED])
def test_binary_constant_forms_at_extremes(name):
    # var op constant and constant op var (the _VC / _CV opcodes)
    f = FUNCTIONS[name]
    failures = []
    for a, b in binary_points(name)[::3]:
        exact = _exact(name, (a, b))
        if exact is None or not abs(exact[0]) <= DBL_MAX:
            continue
        _, g_want, _ = exact
        x = pytape.Var(a)
        f(x, b).backward()
        _check(failures, "d/da (var, const)", name, (a, b), x.grad, g_want[0])
        x = pytape.Var(b)
        f(a, x).backward()
        _check(failures, "d/db (const, var)", name, (a, b), x.grad, g_want[1])
    report(failures)


# ---- issue 9, defect 7: the numbers of the report --------------------------------------

def test_hypot_and_atan2_second_derivatives_at_1e200():
    s = math.sqrt(0.5) / 2  # b^2 / h^3 at a = b: h = sqrt(2) a
    H = pytape.hessian(lambda v: pytape.hypot(v[0], v[1]))
    want = np.array([[1.0, -1.0], [-1.0, 1.0]]) * s
    np.testing.assert_allclose(H(np.array([1e-200, 1e-200])), want * 1e200, rtol=1e-14)   # was all 0
    np.testing.assert_allclose(H(np.array([1e200, 1e200])), want * 1e-200, rtol=1e-14)    # was nan
    A = pytape.hessian(lambda v: pytape.atan2(v[0], v[1]))
    # -2ab/r^4 = -1/(2 a^2), (a^2 - b^2)/r^4 = 0
    np.testing.assert_allclose(A(np.array([1e200, 1e200])), [[-0.5e-400, 0.0], [0.0, 0.5e-400]], atol=0)  # was nan
    np.testing.assert_allclose(A(np.array([1e-100, 1e-100])), [[-0.5e200, 0.0], [0.0, 0.5e200]], rtol=1e-14)
    assert pytape.grad(lambda a: pytape.atan2(a, 1e-160))(1e-160) == pytest.approx(5e159, rel=1e-15)  # was 5.00005566e159
    assert pytape.grad(lambda b: pytape.atan2(1e-160, b))(1e-160) == pytest.approx(-5e159, rel=1e-15)


def test_defect_7_against_torch():
    torch = pytest.importorskip("torch")
    from torch.autograd.functional import hessian as thessian

    for fn, tfn in [(pytape.hypot, torch.hypot), (pytape.atan2, torch.atan2)]:
        for p in [(1e-200, 1e-200), (1e200, 1e200), (1e-100, 3e-100), (2e150, -1e150)]:
            want = thessian(lambda a, b: tfn(a, b), tuple(torch.tensor(v, dtype=torch.float64) for v in p))
            want = np.array([[float(want[i][j]) for j in range(2)] for i in range(2)])
            got = pytape.hessian(lambda v: fn(v[0], v[1]))(np.array(p))
            assert not np.any(np.isnan(got)), (fn.__name__, p, got)
            finite = np.isfinite(want)  # where torch's own formula does not overflow
            np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-300, err_msg=f"{fn.__name__}{p}")


# ---- issue 9, defect 8: a nan operand gets PyTorch's gradient --------------------------

#: (function, args, gradient) as torch 2.13 gives it (torch.relu, torch.abs,
#: torch.maximum / minimum, torch.clamp with tensor bounds, torch.pow,
#: torch.atan2, torch.hypot, each on float64 tensors); checked against torch
#: itself below when it is installed.  Every op whose rule branches on a
#: comparison is here; the comparisons (less, ...) and where's halves have no
#: differentiable torch counterpart (torch.where takes a bool condition) and
#: give 0 to a condition, nan or not (below)
NAN_GRADIENTS = [
    ("relu", (nan,), (1.0,)),
    ("abs", (nan,), (0.0,)),
    ("maximum", (nan, 1.0), (1.0, 1.0)),
    ("maximum", (1.0, nan), (1.0, 1.0)),
    ("maximum", (nan, nan), (1.0, 1.0)),
    ("minimum", (nan, 1.0), (1.0, 1.0)),
    ("minimum", (1.0, nan), (1.0, 1.0)),
    ("minimum", (nan, nan), (1.0, 1.0)),
    ("clamp_min", (nan, 1.0), (0.0, 0.0)),
    ("clamp_min", (1.0, nan), (0.0, 0.0)),
    ("clamp_max", (nan, 1.0), (0.0, 0.0)),
    ("clamp_max", (1.0, nan), (0.0, 0.0)),
    ("pow", (nan, 0.0), (0.0, nan)),
    ("pow", (nan, 1.0), (1.0, nan)),
    ("pow", (1.0, nan), (nan, 0.0)),
    ("pow", (0.0, nan), (nan, nan)),
    ("pow", (nan, 2.0), (nan, nan)),
    ("pow", (nan, 3.0), (nan, nan)),
    ("atan2", (nan, 1.0), (nan, nan)),
    ("atan2", (1.0, nan), (nan, nan)),
    ("hypot", (nan, 1.0), (nan, nan)),
    ("hypot", (1.0, nan), (nan, nan)),
    ("sqrt", (nan,), (nan,)),
    ("sigmoid", (nan,), (nan,)),
    ("softplus", (nan,), (nan,)),
    ("tanh", (nan,), (nan,)),
    ("neg", (nan,), (-1.0,)),
    ("mul", (nan, 1.0), (1.0, nan)),
    ("div", (nan, 1.0), (1.0, nan)),
]


def _same(got, want):
    return (math.isnan(got) and math.isnan(want)) or got == want


def _pytape_grads(name, args):
    """gradients from every path: reverse, tangent, create_graph, and the
    reverse sweep of each constant form"""
    f = FUNCTIONS[name]
    _, grads, tangents, twins = _value_and_derivatives(f, args)
    paths = {"reverse": grads, "tangent": tangents, "create_graph": twins}
    if len(args) == 2:
        x = pytape.Var(args[0])
        f(x, args[1]).backward()
        y = pytape.Var(args[1])
        f(args[0], y).backward()
        paths["constant forms"] = [x.grad, y.grad]
    if name in ("relu", "abs", "sqrt", "sigmoid", "softplus", "tanh", "maximum", "minimum", "atan2", "hypot"):
        xs = [R.Value(v) for v in args]
        getattr(R, name)(*xs).backward()
        paths["reference"] = [x.grad for x in xs]
    return paths


@pytest.mark.parametrize("name,args,want", NAN_GRADIENTS, ids=[f"{n}{a}" for n, a, _ in NAN_GRADIENTS])
def test_nan_operand_gets_pytorchs_gradient(name, args, want):
    for path, got in _pytape_grads(name, args).items():
        assert all(_same(g, w) for g, w in zip(got, want)), (name, args, path, got, want)


@pytest.mark.parametrize("name,args,want", NAN_GRADIENTS, ids=[f"{n}{a}" for n, a, _ in NAN_GRADIENTS])
def test_nan_gradients_are_torchs(name, args, want):
    torch = pytest.importorskip("torch")
    fn = {"relu": torch.relu, "abs": torch.abs, "maximum": torch.maximum, "minimum": torch.minimum,
          "clamp_min": lambda a, b: torch.clamp(a, min=b), "clamp_max": lambda a, b: torch.clamp(a, max=b),
          "pow": torch.pow, "atan2": torch.atan2, "hypot": torch.hypot, "sqrt": torch.sqrt,
          "sigmoid": torch.sigmoid, "softplus": torch.nn.functional.softplus, "tanh": torch.tanh,
          "neg": torch.neg, "mul": torch.mul, "div": torch.div}[name]
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in args]
    fn(*ts).backward()
    got = tuple(float(t.grad) for t in ts)
    assert all(_same(g, w) for g, w in zip(got, want)), (name, args, got, want)


def test_clip_with_nan_like_torch_clamp():
    # x nan: no gradient to x (torch.clamp: 0); a nan bound: nan value, no gradient
    for x, lo, hi in [(nan, 0.0, 1.0), (0.5, nan, 1.0), (0.5, 0.0, nan)]:
        v = pytape.Var(x)
        y = pytape.clip(v, lo, hi)
        y.backward()
        assert math.isnan(y.value) and v.grad == 0.0, (x, lo, hi, v.grad)


def test_where_with_a_nan_condition():
    # a nan condition counts as true (nonzero, like numpy.where), gets no
    # gradient, and the branch it picks gets all of it
    c, a, b = pytape.Var(nan), pytape.Var(2.0), pytape.Var(3.0)
    y = pytape.where(c, a * 1.0, b * 1.0)
    y.backward()
    assert y.value == 2.0 and (c.grad, a.grad, b.grad) == (0.0, 1.0, 0.0)
    for name in ("less", "less_equal", "equal", "not_equal"):
        _, grads, tangents, twins = _value_and_derivatives(FUNCTIONS[name], (nan, 1.0))
        assert grads == tangents == twins == [0.0, 0.0], name
