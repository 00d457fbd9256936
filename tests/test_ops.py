"""Per-primitive oracle tests of pytape's op table (csrc/ops.def).

Every row of ops.def must have an entry in ORACLES below: an independent value
function (math / numpy, never pytape), the exact derivative formula(s) written
out here, and a generator of sample points in the op's domain.  For every op,
at 50 points (a fixed list with the domain edges plus seeded random points),
through every recorded form (unary; binary var-var, var-constant,
constant-var) and both kinds of operand (a leaf, which takes the slow path, and
an intermediate result, which takes the fast path), the tests check

* the value against the oracle (rtol 1e-13),
* the derivative against the exact formula (rtol 1e-12),
* the derivative against a central finite difference of the oracle value
  function (h = 1e-6 * max(1, |x|), rtol 1e-5), except near kinks, poles
  and domain edges where central differences are not accurate,

plus the conventions at non-differentiable points (PyTorch's), the IEEE
behaviour outside the domains, agreement with the pure-Python reference engine
``pytape.reference``, and CppAD-style composition identities.
"""
import functools
import math
import operator
import zlib
from fractions import Fraction
from typing import Callable, NamedTuple

import numpy as np
import pytest

import pytape
from pytape import reference as R
from pytape._native import BINARY, UNARY
from pytape.recording import FUNCTIONS

inf, nan = math.inf, math.nan
EPS = np.finfo(float).eps
N_POINTS = 50

VALUE_RTOL = 1e-13
DERIV_RTOL = 1e-12
FD_RTOL = 1e-5
#: central differences are skipped within FD_MARGIN * h of a kink, pole or
#: domain edge: their truncation error grows like (h / distance)**2 there
FD_MARGIN = 1000.0


# =============================================================================
# independent oracles
# =============================================================================

LN2 = math.log(2.0)
LN10 = math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _sigmoid(x):
    """Logistic function via log1p, accurate in both tails (not pytape's formula)."""
    if x >= 0:
        return math.exp(-math.log1p(math.exp(-x)))
    return math.exp(x - math.log1p(math.exp(x)))


def _dsigmoid(x):
    e = math.exp(-abs(x))
    return e / ((1.0 + e) * (1.0 + e))


def _pow(a, b):
    try:
        return math.pow(a, b)
    except OverflowError:
        return inf
    except ValueError:
        return nan


def _np(f):
    def g(*args):
        with np.errstate(all="ignore"):
            return float(f(*args))
    return g


def _dist_to_tan_pole(x):
    return abs(math.remainder(x - math.pi / 2, math.pi))


def _near(x, h, *edges):
    """True if x is within FD_MARGIN * h of one of the edges."""
    return any(abs(x - e) < FD_MARGIN * h for e in edges)


# ---- sample points ------------------------------------------------------------

def uni(lo, hi):
    return lambda rng: rng.uniform(lo, hi)


def logu(lo, hi, signed=False):
    """log-uniform magnitude in [lo, hi], random sign if signed."""
    def s(rng):
        m = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        return -m if signed and rng.random() < 0.5 else m
    return s


def pts1(fixed, sampler):
    def gen(rng):
        out = [float(x) for x in fixed]
        while len(out) < N_POINTS:
            out.append(float(sampler(rng)))
        return out
    return gen


def pts2(fixed, sa, sb):
    def gen(rng):
        out = [(float(a), float(b)) for a, b in fixed]
        while len(out) < N_POINTS:
            out.append((float(sa(rng)), float(sb(rng))))
        return out
    return gen


class U(NamedTuple):
    """Oracle of a unary op: value f(x), exact derivative d(x), sample points,
    fd_skip(x, h): True where central differences are not meaningful."""
    f: Callable
    d: Callable
    points: Callable
    fd_skip: Callable = lambda x, h: False
    #: absolute slack on the derivative, only for rules written through the
    #: result y (1 - y*y, y*(1-y), y + 1): as y saturates they keep an absolute
    #: error of ~eps while the relative error grows (PyTorch uses the same rules)
    d_atol: float = 0.0


class B(NamedTuple):
    """Oracle of a binary op: value f(a, b), exact da(a, b) and db(a, b),
    sample points, fd_skip(a, b, ha, hb) -> (skip d/da, skip d/db)."""
    f: Callable
    da: Callable
    db: Callable
    points: Callable
    fd_skip: Callable = lambda a, b, ha, hb: (False, False)


def _sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def _pow_da(a, b):
    return 0.0 if b == 0 else b * _pow(a, b - 1.0)


def _pow_db(a, b):
    if a == 0 and b >= 0:
        return 0.0
    return _pow(a, b) * math.log(a) if a > 0 else nan


def _pow_skip(a, b, ha, hb):
    b_is_int = b == math.floor(b)
    skip_a = (a <= 0 or _near(a, ha, 0.0)) and not b_is_int
    skip_b = a <= 0 or _near(a, ha, 0.0)
    return skip_a, skip_b


def _tie_da(a, b):  # maximum: share of a
    return 1.0 if a > b else (0.0 if a < b else 0.5)


def _kink_ab(a, b, ha, hb):
    s = abs(a - b) < FD_MARGIN * max(ha, hb)
    return s, s


def _atan2_skip(a, b, ha, hb):
    h = max(ha, hb)
    s = math.hypot(a, b) < FD_MARGIN * h or (b < 0 and abs(a) < FD_MARGIN * h)
    return s, s


def _hypot_skip(a, b, ha, hb):
    s = math.hypot(a, b) < FD_MARGIN * max(ha, hb)
    return s, s


def _step_skip(a, b, ha, hb):
    """comparisons: steps where a == b"""
    s = abs(a - b) < FD_MARGIN * max(ha, hb)
    return s, s


def _cond_skip(c, v, hc, hv):
    """where's halves: a step in the condition c at 0"""
    return _near(c, hc, 0.0), False


def _cond_points(rng):
    return 0.0 if rng.random() < 0.4 else rng.uniform(-3, 3)


def _near_integer(x, h):
    """the rounding ops: steps at the integers (round: at the halves)"""
    return abs(x - round(x)) < FD_MARGIN * h or abs(abs(x - math.floor(x)) - 0.5) < FD_MARGIN * h


def _exact_quotient(rounding):
    """n = rounding(a / b) of the exact quotient, as rationals (d/db of a - n b is -n)"""
    def n(a, b):
        return float(rounding(Fraction(a) / Fraction(b)))
    return n


_floor_q, _trunc_q = _exact_quotient(math.floor), _exact_quotient(math.trunc)


def _remainder_skip(rounding):
    """a - n b jumps where a / b crosses an integer: skip both partials within
    FD_MARGIN steps of a jump (a step in b moves a - n b by about n hb)"""
    def skip(a, b, ha, hb):
        r = float(Fraction(a) - rounding(Fraction(a) / Fraction(b)) * Fraction(b))
        s = min(abs(r), abs(abs(b) - abs(r))) < FD_MARGIN * (ha + hb * (abs(a / b) + 1.0))
        return s, s
    return skip


def _share(base):
    """d/da of log_base(base**a + base**b) = base**(a - y), y from numpy (not pytape's formula)"""
    lse = {math.e: np.logaddexp, 2.0: np.logaddexp2}[base]
    return lambda a, b: base ** (a - float(lse(a, b)))


REMAINDER_POINTS = [(5.5, 2.0), (-5.5, 2.0), (5.5, -2.0), (-5.5, -2.0), (1.0, 0.1), (-1.0, 0.1), (0.0, 3.0),
                    (7.25, 0.5 + 1e-9), (1e10 + 0.3, 3.0), (1e-300, 1.0), (-1e-300, 1.0), (3.0, 1e10)]
LSE_POINTS = [(0.0, 0.0), (1000.0, 1000.0), (-1000.0, -1000.0), (700.0, -700.0), (1e-300, 0.0), (3.0, 3.5),
              (-745.0, 0.0), (40.0, 0.0), (1e300, 1.0)]

COMPARISON_POINTS = [(1.0, 1.0), (0.0, -0.0), (1.0, 2.0), (2.0, 1.0), (-1e300, 1e300), (-3.5, -3.5)]
CONDITION_POINTS = [(0.0, 2.5), (1.0, 2.5), (-0.0, 3.0), (1.0, -0.0), (0.0, -0.0), (-2.0, 1e300), (1.0, -7.0)]

ORACLES = {
    # ---- unary: value, exact derivative, points, fd skip, derivative atol
    "neg": U(lambda x: -x, lambda x: -1.0,
             pts1([-1e300, -1.5, -1e-300, 0.0, 1e-300, 2.5, 1e300], uni(-1e3, 1e3))),
    "abs": U(abs, _sign,
             pts1([-1e300, -1.5, -1e-300, 0.0, -0.0, 1e-300, 2.5, 1e300], uni(-1e3, 1e3)),
             lambda x, h: _near(x, h, 0.0)),
    "sqrt": U(math.sqrt, lambda x: 0.5 * x ** -0.5,
              pts1([1e-300, 1e-100, 1e-20, 1e-10, 1e-6, 0.25, 1.0, 2.0, 1e10, 1e300], logu(1e-3, 1e3)),
              lambda x, h: _near(x, h, 0.0)),
    "cbrt": U(_np(np.cbrt), lambda x: 1.0 / (3.0 * abs(x) ** (2.0 / 3.0)),
              pts1([-1e300, -27.0, -8.0, -1e-10, 1e-300, 1e-10, 1e-3, 8.0, 27.0, 1e300],
                   logu(1e-3, 1e3, signed=True)),
              lambda x, h: _near(x, h, 0.0)),
    "exp": U(math.exp, math.exp,
             pts1([-745.0, -700.0, -300.0, -20.0, -1e-10, 0.0, 1e-10, 1.0, 20.0, 300.0, 709.0], uni(-30, 30))),
    "exp2": U(lambda x: 2.0 ** x, lambda x: 2.0 ** x * LN2,
              pts1([-1020.0, -1000.0, -10.0, -1e-10, 0.0, 0.5, 10.0, 1000.0, 1023.0], uni(-40, 40))),
    "expm1": U(math.expm1, math.exp,
               pts1([-50.0, -20.0, -1.0, -1e-10, -1e-300, 0.0, 1e-300, 1e-10, 1.0, 20.0, 700.0], uni(-10, 10)),
               d_atol=1e-15),
    "log": U(math.log, lambda x: 1.0 / x,
             pts1([1e-300, 1e-100, 1e-10, 1e-6, 0.5, 1.0, 2.0, 1e10, 1e300], logu(1e-3, 1e3)),
             lambda x, h: _near(x, h, 0.0)),
    "log2": U(math.log2, lambda x: 1.0 / x / LN2,
              pts1([1e-300, 1e-10, 0.5, 1.0, 2.0, 1024.0, 1e300], logu(1e-3, 1e3)),
              lambda x, h: _near(x, h, 0.0)),
    "log10": U(math.log10, lambda x: 1.0 / x / LN10,
               pts1([1e-300, 1e-10, 0.5, 1.0, 10.0, 1e5, 1e300], logu(1e-3, 1e3)),
               lambda x, h: _near(x, h, 0.0)),
    "log1p": U(math.log1p, lambda x: 1.0 / (1.0 + x),
               pts1([-1.0 + 1e-10, -0.999999, -0.5, -1e-10, 0.0, 1e-12, 1.0, 1e10, 1e300], uni(-0.99, 10)),
               lambda x, h: _near(x, h, -1.0)),
    "sin": U(math.sin, math.cos,
             pts1([0.0, 1e-10, math.pi / 2, math.pi, -3.0, 10.0], uni(-10, 10))),
    "cos": U(math.cos, lambda x: -math.sin(x),
             pts1([0.0, 1e-10, math.pi / 2, math.pi, -3.0, 10.0], uni(-10, 10))),
    "tan": U(math.tan, lambda x: 1.0 / (math.cos(x) * math.cos(x)),
             pts1([0.0, 1e-10, 1.5, -1.57, 1.5707963, 3.0, -4.0], uni(-1.5, 1.5)),
             lambda x, h: _dist_to_tan_pole(x) < FD_MARGIN * h),
    "asin": U(math.asin, lambda x: 1.0 / (math.sqrt(1.0 - x) * math.sqrt(1.0 + x)),
              pts1([-1 + 1e-12, 1 - 1e-12, -1 + 1e-6, 1 - 1e-6, -0.999, 0.999, 0.0, 1e-10], uni(-1, 1)),
              lambda x, h: _near(x, h, -1.0, 1.0)),
    "acos": U(math.acos, lambda x: -1.0 / (math.sqrt(1.0 - x) * math.sqrt(1.0 + x)),
              pts1([-1 + 1e-12, 1 - 1e-12, -1 + 1e-6, 1 - 1e-6, -0.999, 0.999, 0.0, 1e-10], uni(-1, 1)),
              lambda x, h: _near(x, h, -1.0, 1.0)),
    "atan": U(math.atan, lambda x: 1.0 / (1.0 + x * x),
              pts1([-1e300, -1e10, -1.0, 0.0, 1e-10, 1.0, 1e10, 1e300], uni(-20, 20))),
    "sinh": U(math.sinh, math.cosh,
              pts1([-709.0, -300.0, -1e-10, 0.0, 1e-10, 300.0, 709.0], uni(-20, 20))),
    "cosh": U(math.cosh, math.sinh,
              pts1([-709.0, -300.0, -1e-10, 0.0, 1e-10, 300.0, 709.0], uni(-20, 20))),
    "tanh": U(math.tanh, lambda x: 1.0 / (math.cosh(x) ** 2) if abs(x) < 350 else 0.0,
              pts1([-400.0, -20.0, -1e-10, 0.0, 1e-10, 0.5, 20.0, 400.0], uni(-5, 5)),
              d_atol=1e-15),
    "asinh": U(math.asinh, lambda x: 1.0 / math.sqrt(1.0 + x * x),
               pts1([-1e100, -1e10, -1e-10, 0.0, 1e-10, 1e10, 1e100], uni(-20, 20))),
    "acosh": U(math.acosh, lambda x: 1.0 / (math.sqrt(x - 1.0) * math.sqrt(x + 1.0)),
               pts1([1 + 1e-12, 1 + 1e-6, 1.001, 2.0, 1e10, 1e100], uni(1, 20)),
               lambda x, h: _near(x, h, 1.0)),
    "atanh": U(math.atanh, lambda x: 1.0 / ((1.0 - x) * (1.0 + x)),
               pts1([-1 + 1e-12, 1 - 1e-12, -1 + 1e-6, 1 - 1e-6, -0.999, 0.999, 0.0, 1e-10], uni(-1, 1)),
               lambda x, h: _near(x, h, -1.0, 1.0)),
    "sigmoid": U(_sigmoid, _dsigmoid,
                 pts1([-700.0, -100.0, -40.0, -20.0, 0.0, 1e-10, 20.0, 40.0, 100.0, 700.0], uni(-10, 10)),
                 d_atol=1e-15),
    "relu": U(lambda x: x if x > 0 else 0.0, lambda x: 1.0 if x > 0 else 0.0,
              pts1([-1e300, -1.0, -1e-300, 0.0, 1e-300, 1.0, 1e300], uni(-10, 10)),
              lambda x, h: _near(x, h, 0.0)),
    "softplus": U(_np(lambda x: np.logaddexp(0.0, x)), lambda x: _sigmoid(x),
                  pts1([-700.0, -40.0, -20.0, -1e-10, 0.0, 1e-10, 20.0, 40.0, 700.0], uni(-10, 10))),
    "erf": U(math.erf, lambda x: TWO_OVER_SQRT_PI * math.exp(-x * x),
             pts1([-30.0, -6.0, -3.0, -1e-10, 0.0, 1e-10, 0.5, 3.0, 6.0, 30.0], uni(-4, 4))),
    "erfc": U(math.erfc, lambda x: -TWO_OVER_SQRT_PI * math.exp(-x * x),
              pts1([-30.0, -6.0, -1e-10, 0.0, 1e-10, 3.0, 6.0, 10.0, 26.0], uni(-4, 4))),
    # ---- binary: value, d/da, d/db, points, fd skip
    "add": B(lambda a, b: a + b, lambda a, b: 1.0, lambda a, b: 1.0,
             pts2([(0.0, 0.0), (1e300, 1e300), (-1e300, 1e300), (1e-300, -1e-300), (3.0, -3.0)],
                  uni(-10, 10), uni(-10, 10))),
    "sub": B(lambda a, b: a - b, lambda a, b: 1.0, lambda a, b: -1.0,
             pts2([(0.0, 0.0), (1e300, -1e300), (1e-300, 1e-300), (3.0, 3.0)],
                  uni(-10, 10), uni(-10, 10))),
    "mul": B(lambda a, b: a * b, lambda a, b: b, lambda a, b: a,
             pts2([(0.0, 5.0), (-2.0, 0.0), (1e150, 1e150), (-1e-150, 1e-150), (-2.0, 3.0)],
                  uni(-10, 10), uni(-10, 10))),
    "div": B(lambda a, b: a / b, lambda a, b: 1.0 / b, lambda a, b: -a / (b * b),
             pts2([(0.0, 3.0), (1.0, 3.0), (5.0, -1e-10), (-1e-300, 7.0), (1e300, 1e10), (1e-100, 1e100)],
                  uni(-10, 10), logu(0.1, 10, signed=True)),
             lambda a, b, ha, hb: (False, _near(b, hb, 0.0))),
    "pow": B(_pow, _pow_da, _pow_db,
             pts2([(2.0, 3.0), (2.0, -1.0), (2.0, 0.5), (4.0, 0.0), (10.0, 300.0), (1.0, 7.5), (0.5, 100.0),
                   (-2.0, 3.0), (-2.0, 2.0), (-1.5, -3.0), (0.0, 2.0), (0.0, 3.5), (1e-10, 0.5)],
                  logu(1e-3, 1e3), uni(-4, 4)),
             _pow_skip),
    "atan2": B(math.atan2, lambda a, b: b / (a * a + b * b), lambda a, b: -a / (a * a + b * b),
               pts2([(1.0, 1.0), (0.0, 1.0), (0.0, -1.0), (1e-10, 1.0), (1e10, 1.0), (-3.0, -4.0),
                     (1e150, 1e150), (-1.0, -1e-10)],
                    uni(-10, 10), uni(-10, 10)),
               _atan2_skip),
    "hypot": B(math.hypot, lambda a, b: a / math.hypot(a, b), lambda a, b: b / math.hypot(a, b),
               pts2([(3.0, 4.0), (0.0, 5.0), (-5.0, 0.0), (1e200, 1e200), (1e-200, 1e-200), (-3.0, -4.0)],
                    uni(-10, 10), uni(-10, 10)),
               _hypot_skip),
    "minimum": B(min, lambda a, b: _tie_da(b, a), lambda a, b: _tie_da(a, b),
                 pts2([(1.0, 1.0), (-2.0, -2.0), (0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (-1e300, 1e300)],
                      uni(-10, 10), uni(-10, 10)),
                 _kink_ab),
    "maximum": B(max, lambda a, b: _tie_da(a, b), lambda a, b: _tie_da(b, a),
                 pts2([(1.0, 1.0), (-2.0, -2.0), (0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (-1e300, 1e300)],
                      uni(-10, 10), uni(-10, 10)),
                 _kink_ab),
    "clamp_min": B(lambda x, lo: max(x, lo), lambda x, lo: 1.0 if x >= lo else 0.0,
                   lambda x, lo: 1.0 if x < lo else 0.0,
                   pts2([(1.0, 1.0), (0.0, 0.0), (-1.0, 0.0), (2.0, 0.0), (-1e300, 1e300)],
                        uni(-10, 10), uni(-10, 10)),
                   _kink_ab),
    "clamp_max": B(lambda x, hi: min(x, hi), lambda x, hi: 1.0 if x <= hi else 0.0,
                   lambda x, hi: 1.0 if x > hi else 0.0,
                   pts2([(1.0, 1.0), (0.0, 0.0), (-1.0, 0.0), (2.0, 0.0), (1e300, -1e300)],
                        uni(-10, 10), uni(-10, 10)),
                   _kink_ab),
    # comparisons as values and where's halves: piecewise constant in the condition
    "less": B(lambda a, b: float(a < b), lambda a, b: 0.0, lambda a, b: 0.0,
              pts2(COMPARISON_POINTS, uni(-3, 3), uni(-3, 3)), _step_skip),
    "less_equal": B(lambda a, b: float(a <= b), lambda a, b: 0.0, lambda a, b: 0.0,
                    pts2(COMPARISON_POINTS, uni(-3, 3), uni(-3, 3)), _step_skip),
    "equal": B(lambda a, b: float(a == b), lambda a, b: 0.0, lambda a, b: 0.0,
               pts2(COMPARISON_POINTS, uni(-3, 3), uni(-3, 3)), _step_skip),
    "not_equal": B(lambda a, b: float(a != b), lambda a, b: 0.0, lambda a, b: 0.0,
                   pts2(COMPARISON_POINTS, uni(-3, 3), uni(-3, 3)), _step_skip),
    "where_t": B(lambda c, v: v if c != 0 else -0.0, lambda c, v: 0.0, lambda c, v: 1.0 if c != 0 else 0.0,
                 pts2(CONDITION_POINTS, _cond_points, uni(-10, 10)), _cond_skip),
    "where_f": B(lambda c, v: -0.0 if c != 0 else v, lambda c, v: 0.0, lambda c, v: 0.0 if c != 0 else 1.0,
                 pts2(CONDITION_POINTS, _cond_points, uni(-10, 10)), _cond_skip),
    # numpy's rounding: piecewise constant, derivative 0
    "sign": U(_np(np.sign), lambda x: 0.0,
              pts1([-1e300, -1.5, -1e-300, -0.0, 0.0, 1e-300, 2.5, 1e300], uni(-10, 10)),
              lambda x, h: _near(x, h, 0.0)),
    "floor": U(lambda x: float(math.floor(x)), lambda x: 0.0,
               pts1([-1e300, -2.5, -2.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, 1e300], uni(-10, 10)), _near_integer),
    "ceil": U(lambda x: float(math.ceil(x)), lambda x: 0.0,
              pts1([-1e300, -2.5, -2.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, 1e300], uni(-10, 10)), _near_integer),
    "round": U(_np(np.rint), lambda x: 0.0,
               pts1([-1e300, -2.5, -1.5, -0.5, -0.4, 0.0, 0.5, 1.5, 2.5, 3.5, 2.4999999, 1e300], uni(-10, 10)),
               _near_integer),
    "trunc": U(lambda x: float(math.trunc(x)), lambda x: 0.0,
               pts1([-1e300, -2.5, -2.0, -0.5, 0.0, 0.5, 1.0, 2.5, 1e300], uni(-10, 10)), _near_integer),
    # remainders: a - n b, n = floor (mod) or trunc (fmod) of the exact quotient
    "mod": B(_np(np.remainder), lambda a, b: 1.0, lambda a, b: -_floor_q(a, b),
             pts2(REMAINDER_POINTS, uni(-10, 10), logu(0.1, 10, signed=True)), _remainder_skip(math.floor)),
    "fmod": B(_np(np.fmod), lambda a, b: 1.0, lambda a, b: -_trunc_q(a, b),
              pts2(REMAINDER_POINTS, uni(-10, 10), logu(0.1, 10, signed=True)), _remainder_skip(math.trunc)),
    "floor_divide": B(_np(np.floor_divide), lambda a, b: 0.0, lambda a, b: 0.0,
                      pts2(REMAINDER_POINTS, uni(-10, 10), logu(0.1, 10, signed=True)),
                      _remainder_skip(math.floor)),
    "logaddexp": B(_np(np.logaddexp), _share(math.e), lambda a, b: _share(math.e)(b, a),
                   pts2(LSE_POINTS, uni(-20, 20), uni(-20, 20))),
    "logaddexp2": B(_np(np.logaddexp2), _share(2.0), lambda a, b: _share(2.0)(b, a),
                    pts2(LSE_POINTS, uni(-20, 20), uni(-20, 20))),
}

OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
             "div": operator.truediv, "pow": operator.pow, "mod": operator.mod, "floor_divide": operator.floordiv}


@functools.lru_cache(maxsize=None)
def points(name):
    """The sample points of op `name`, from a RNG seeded by the name (order independent)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return tuple(ORACLES[name].points(rng))


# =============================================================================
# helpers
# =============================================================================

def close(got, want, rtol, atol=0.0):
    """got ~= want; nan only matches nan, infinities must match exactly."""
    return bool(np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True))


def step(x):
    return 1e-6 * max(1.0, abs(x))


def central_difference(f, x):
    """(derivative estimate, tolerance for its rounding error) of f at x."""
    h = step(x)
    xp, xm = x + h, x - h
    fp, fm = f(xp), f(xm)
    width = xp - xm
    return (fp - fm) / width, 16 * EPS * (abs(fp) + abs(fm)) / width


def fd_agrees(d, f, x):
    est, roundoff = central_difference(f, x)
    if not (math.isfinite(est) and math.isfinite(d)):
        return False
    return abs(est - d) <= FD_RTOL * abs(d) + roundoff + 1e-300


def report(failures):
    if failures:
        head = "\n".join(failures[:15])
        more = f"\n... and {len(failures) - 15} more" if len(failures) > 15 else ""
        pytest.fail(f"{len(failures)} mismatches:\n{head}{more}")


def operand(x, kind):
    """(leaf, operand): the operand is the leaf itself or an intermediate x*1.0."""
    leaf = pytape.Var(x)
    if kind == "leaf":
        return leaf, leaf
    u = leaf * 1.0
    assert type(u) is pytape.var.Result and not u.is_leaf  # an intermediate: fast path
    return leaf, u


def unary_run(name, x, kind):
    leaf, u = operand(x, kind)
    y = FUNCTIONS[name](u)
    assert isinstance(y, pytape.Var) and not y.is_leaf
    v = y.value
    y.backward()
    return v, leaf.grad


BINARY_FORMS = [("VV", "leaf", "leaf"), ("VV", "inter", "inter"), ("VV", "leaf", "inter"),
                ("VV", "inter", "leaf"), ("VC", "leaf", None), ("VC", "inter", None),
                ("CV", None, "leaf"), ("CV", None, "inter")]


def binary_run(fn, a, b, form, ka, kb):
    """Value of fn in the given form and operand kinds, and (d/da, d/db) as
    seen by the leaves (None for the constant side)."""
    la = lb = None
    if form == "VV":
        la, A = operand(a, ka)
        lb, B_ = operand(b, kb)
        y = fn(A, B_)
    elif form == "VC":
        la, A = operand(a, ka)
        y = fn(A, b)
    else:
        lb, B_ = operand(b, kb)
        y = fn(a, B_)
    assert isinstance(y, pytape.Var) and not y.is_leaf
    v = y.value
    y.backward()
    return v, (la.grad if la is not None else None), (lb.grad if lb is not None else None)


# =============================================================================
# 1. every op has an oracle
# =============================================================================

def test_every_op_has_an_oracle():
    assert set(ORACLES) == set(UNARY) | set(BINARY)
    for name in UNARY:
        assert isinstance(ORACLES[name], U), name
    for name in BINARY:
        assert isinstance(ORACLES[name], B), name


def test_op_tables_are_consistent():
    assert not set(UNARY) & set(BINARY)
    assert set(FUNCTIONS) == set(UNARY) | set(BINARY)
    for name in FUNCTIONS:
        # where's halves live in pytape.ops only; pytape.where combines them
        home = pytape.ops if name in ("where_t", "where_f") else pytape
        assert getattr(home, name) is FUNCTIONS[name], name


def test_points_are_in_domain_and_many():
    for name in ORACLES:
        pts = points(name)
        assert len(pts) >= N_POINTS, name
        for p in pts:
            want = ORACLES[name].f(*p) if name in BINARY else ORACLES[name].f(p)
            assert not math.isnan(want), (name, p)


# =============================================================================
# 2. unary ops: value, exact derivative, finite differences
# =============================================================================

@pytest.mark.parametrize("kind", ["leaf", "inter"])
@pytest.mark.parametrize("name", UNARY)
def test_unary(name, kind):
    o = ORACLES[name]
    failures = []
    n_fd = 0
    for x in points(name):
        v, g = unary_run(name, x, kind)
        want = o.f(x)
        if not close(v, want, VALUE_RTOL, 1e-300):
            failures.append(f"{name}({x!r}) = {v!r}, oracle {want!r}")
        d = o.d(x)
        if not close(g, d, DERIV_RTOL, o.d_atol):
            failures.append(f"{name}'({x!r}) = {g!r}, exact {d!r}")
        if not o.fd_skip(x, step(x)):
            n_fd += 1
            if not fd_agrees(g, o.f, x):
                est, _ = central_difference(o.f, x)
                failures.append(f"{name}'({x!r}) = {g!r}, finite difference {est!r}")
    report(failures)
    assert n_fd >= N_POINTS // 2, "too few points checked by finite differences"


@pytest.mark.parametrize("name", UNARY)
def test_unary_plain_numbers_and_no_grad(name):
    """The value rule without recording: plain floats in, plain floats out;
    under no_grad a Var gives a constant with the same value."""
    f, o = FUNCTIONS[name], ORACLES[name]
    failures = []
    for x in points(name):
        r = f(x)
        if type(r) is not float or not close(r, o.f(x), VALUE_RTOL, 1e-300):
            failures.append(f"{name}({x!r}) = {r!r} ({type(r).__name__}), oracle {o.f(x)!r}")
        with pytape.no_grad():
            c = f(pytape.Var(x))
        if c.requires_grad or not close(c.value, o.f(x), VALUE_RTOL, 1e-300):
            failures.append(f"no_grad {name}({x!r}) = {c!r}")
    report(failures)


# =============================================================================
# 2 + 3. binary ops: every form, every operand kind
# =============================================================================

BINARY_CASES = [
    pytest.param(name, style, form, ka, kb, id=f"{name}-{style}-{form}-{ka or 'const'}-{kb or 'const'}")
    for name in BINARY
    for style in (("func", "op") if name in OPERATORS else ("func",))
    for form, ka, kb in BINARY_FORMS
]


@pytest.mark.parametrize("name,style,form,ka,kb", BINARY_CASES)
def test_binary(name, style, form, ka, kb):
    o = ORACLES[name]
    fn = OPERATORS[name] if style == "op" else FUNCTIONS[name]
    failures = []
    n_fd = 0
    for a, b in points(name):
        v, ga, gb = binary_run(fn, a, b, form, ka, kb)
        want = o.f(a, b)
        if not close(v, want, VALUE_RTOL, 1e-300):
            failures.append(f"{name}({a!r}, {b!r}) = {v!r}, oracle {want!r}")
        skip_a, skip_b = o.fd_skip(a, b, step(a), step(b))
        for g, exact, skip, f1, at, wrt in (
            (ga, o.da, skip_a, lambda t: o.f(t, b), a, "a"),
            (gb, o.db, skip_b, lambda t: o.f(a, t), b, "b"),
        ):
            if g is None:
                continue
            d = exact(a, b)
            if not close(g, d, DERIV_RTOL):
                failures.append(f"d{name}/d{wrt}({a!r}, {b!r}) = {g!r}, exact {d!r}")
            if not skip:
                n_fd += 1
                if not fd_agrees(g, f1, at):
                    est, _ = central_difference(f1, at)
                    failures.append(f"d{name}/d{wrt}({a!r}, {b!r}) = {g!r}, finite difference {est!r}")
    report(failures)
    assert n_fd >= N_POINTS // 2, "too few points checked by finite differences"


@pytest.mark.parametrize("name", BINARY)
def test_binary_plain_numbers_and_no_grad(name):
    f, o = FUNCTIONS[name], ORACLES[name]
    failures = []
    for a, b in points(name):
        want = o.f(a, b)
        r = f(a, b)
        if type(r) is not float or not close(r, want, VALUE_RTOL, 1e-300):
            failures.append(f"{name}({a!r}, {b!r}) = {r!r} ({type(r).__name__}), oracle {want!r}")
        with pytape.no_grad():
            for c in (f(pytape.Var(a), pytape.Var(b)), f(pytape.Var(a), b), f(a, pytape.Var(b))):
                if c.requires_grad or not close(c.value, want, VALUE_RTOL, 1e-300):
                    failures.append(f"no_grad {name}({a!r}, {b!r}) = {c!r}")
    report(failures)


CONSTANT_TYPES = {
    "int": int, "float": float, "np.float64": np.float64, "np.float32": np.float32,
    "np.int64": np.int64, "detached": lambda c: pytape.Var(c).detach(),
}


@pytest.mark.parametrize("ctype", CONSTANT_TYPES)
@pytest.mark.parametrize("name", BINARY)
def test_binary_constant_types(name, ctype):
    """Constants of every real type record the VC / CV forms (ints and floats
    on the fast path, numpy scalars and detached Vars on the slow path)."""
    o, make = ORACLES[name], CONSTANT_TYPES[ctype]
    fns = [FUNCTIONS[name]] + ([OPERATORS[name]] if name in OPERATORS else [])
    failures = []
    for c in (2, 3):  # exactly representable in every constant type
        for x in (0.75, 1.5, 2.0, 3.0):
            for fn in fns:
                for kind in ("leaf", "inter"):
                    for form in ("VC", "CV"):
                        leaf, u = operand(x, kind)
                        a, b = (x, float(c)) if form == "VC" else (float(c), x)
                        y = fn(u, make(c)) if form == "VC" else fn(make(c), u)
                        y.backward()
                        d = o.da(a, b) if form == "VC" else o.db(a, b)
                        if not (close(y.value, o.f(a, b), VALUE_RTOL) and close(leaf.grad, d, DERIV_RTOL)):
                            failures.append(f"{fn.__name__} {form} {kind} {ctype}({c}) at {x}: "
                                            f"{y.value!r}, {leaf.grad!r}; want {o.f(a, b)!r}, {d!r}")
    report(failures)


SAME_VAR_POINTS = [-2.5, -0.7, 0.3, 1.0, 1.7, 4.2]


@pytest.mark.parametrize("kind", ["leaf", "inter"])
@pytest.mark.parametrize("name", BINARY)
def test_binary_same_var_both_sides(name, kind):
    """f(x, x): the two adjoints add up (x*x -> 2x, x-x -> 0, x/x -> 0,
    maximum(x, x) -> 0.5 + 0.5 = 1, ...)."""
    o = ORACLES[name]
    fns = [FUNCTIONS[name]] + ([OPERATORS[name]] if name in OPERATORS else [])
    failures = []
    for x in SAME_VAR_POINTS:
        if name == "pow" and x <= 0:
            continue
        for fn in fns:
            leaf, u = operand(x, kind)
            y = fn(u, u)
            y.backward()
            want_v = o.f(x, x)
            d = o.da(x, x) + o.db(x, x)
            est, roundoff = central_difference(lambda t: o.f(t, t), x)
            if not close(y.value, want_v, VALUE_RTOL):
                failures.append(f"{name}(x, x) at {x}: {y.value!r}, oracle {want_v!r}")
            if not close(leaf.grad, d, DERIV_RTOL, 1e-15):
                failures.append(f"d{name}(x, x)/dx at {x}: {leaf.grad!r}, exact {d!r}")
            if abs(est - leaf.grad) > FD_RTOL * abs(d) + roundoff + 1e-9:
                failures.append(f"d{name}(x, x)/dx at {x}: {leaf.grad!r}, finite difference {est!r}")
    report(failures)


def test_same_var_textbook_values():
    cases = [
        (lambda x: x * x, 3.0, 9.0, 6.0),
        (lambda x: x - x, 3.0, 0.0, 0.0),
        (lambda x: x + x, 3.0, 6.0, 2.0),
        (lambda x: x / x, 3.0, 1.0, 0.0),
        (lambda x: x ** x, 2.0, 4.0, 4.0 * (1.0 + math.log(2.0))),
        (lambda x: pytape.hypot(x, x), 3.0, 3.0 * math.sqrt(2.0), math.sqrt(2.0)),
        (lambda x: pytape.maximum(x, x), 3.0, 3.0, 1.0),
        (lambda x: pytape.minimum(x, x), 3.0, 3.0, 1.0),
        (lambda x: pytape.clamp_min(x, x), 3.0, 3.0, 1.0),
        (lambda x: pytape.clamp_max(x, x), 3.0, 3.0, 1.0),
        (lambda x: pytape.atan2(x, x), 3.0, math.pi / 4, 0.0),
    ]
    for i, (f, x0, v, d) in enumerate(cases):
        for kind in ("leaf", "inter"):
            leaf, u = operand(x0, kind)
            y = f(u)
            y.backward()
            assert math.isclose(y.value, v, rel_tol=1e-15), (i, kind, y.value)
            assert math.isclose(leaf.grad, d, rel_tol=1e-14, abs_tol=1e-15), (i, kind, leaf.grad)


# =============================================================================
# 4. conventions at non-differentiable points (PyTorch's)
# =============================================================================

def grad_of(f, *xs, kind="leaf"):
    """(value, grads of the leaves) of f applied to operands made from xs."""
    made = [operand(x, kind) for x in xs]
    y = f(*(u for _, u in made))
    y.backward()
    return y.value, tuple(leaf.grad for leaf, _ in made)


@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_unary_kink_conventions(kind):
    assert grad_of(pytape.relu, 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(pytape.relu, -0.0, kind=kind)[1] == (0.0,)
    # relu(-0.0) is +0.0, as in the reference engine: the sign of a zero
    # reaches values later (atan2(relu(-0.0), -1) is pi, not -pi)
    assert math.copysign(1.0, grad_of(pytape.relu, -0.0, kind=kind)[0]) == 1.0
    assert math.copysign(1.0, pytape.relu(-0.0)) == 1.0
    assert grad_of(lambda u: pytape.atan2(pytape.relu(u), -1.0), -0.0, kind=kind)[0] == math.pi
    assert grad_of(pytape.abs, 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(pytape.abs, -0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(abs, 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(pytape.sqrt, 0.0, kind=kind) == (0.0, (inf,))
    assert grad_of(pytape.cbrt, 0.0, kind=kind) == (0.0, (inf,))
    # one step away from the kink the ordinary derivative applies
    assert grad_of(pytape.relu, 1e-300, kind=kind)[1] == (1.0,)
    assert grad_of(pytape.relu, -1e-300, kind=kind)[1] == (0.0,)
    assert grad_of(pytape.abs, -1e-300, kind=kind)[1] == (-1.0,)


@pytest.mark.parametrize("kind", ["leaf", "inter"])
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_tie_splits_gradient(name, kind):
    f = FUNCTIONS[name]
    for t in (-2.0, 0.0, 3.5):
        assert grad_of(f, t, t, kind=kind) == (t, (0.5, 0.5))
        assert grad_of(lambda x: f(x, t), t, kind=kind) == (t, (0.5,))
        assert grad_of(lambda x: f(t, x), t, kind=kind) == (t, (0.5,))
    big = "maximum" == name
    assert grad_of(f, 1.0, 2.0, kind=kind) == (2.0 if big else 1.0, (0.0, 1.0) if big else (1.0, 0.0))


@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_clip_passes_gradient_on_closed_interval(kind):
    lo, hi = -1.0, 2.0
    for x, v, g in [(-3.0, lo, 0.0), (lo, lo, 1.0), (0.5, 0.5, 1.0), (hi, hi, 1.0), (5.0, hi, 0.0)]:
        assert grad_of(lambda u: pytape.clip(u, lo, hi), x, kind=kind) == (v, (g,)), x
    # Var bounds get gradient 1 where x is beyond them, 0 at and inside
    for x, v, gs in [(-3.0, lo, (0.0, 1.0, 0.0)), (lo, lo, (1.0, 0.0, 0.0)), (0.5, 0.5, (1.0, 0.0, 0.0)),
                     (hi, hi, (1.0, 0.0, 0.0)), (5.0, hi, (0.0, 0.0, 1.0))]:
        assert grad_of(pytape.clip, x, lo, hi, kind=kind) == (v, gs), x
    # one-sided clips
    assert grad_of(lambda u: pytape.clip(u, lo, None), -5.0, kind=kind) == (lo, (0.0,))
    assert grad_of(lambda u: pytape.clip(u, None, hi), -5.0, kind=kind) == (-5.0, (1.0,))
    assert grad_of(lambda u: pytape.clip(u, None, hi), hi, kind=kind) == (hi, (1.0,))
    # the primitive rows at their bounds
    assert grad_of(pytape.clamp_min, 1.0, 1.0, kind=kind) == (1.0, (1.0, 0.0))
    assert grad_of(pytape.clamp_max, 1.0, 1.0, kind=kind) == (1.0, (1.0, 0.0))
    assert grad_of(pytape.clamp_min, 0.0, 1.0, kind=kind) == (1.0, (0.0, 1.0))
    assert grad_of(pytape.clamp_max, 2.0, 1.0, kind=kind) == (1.0, (0.0, 1.0))


def test_clip_on_numbers():
    assert pytape.clip(5.0, 0.0, 1.0) == 1.0 and type(pytape.clip(5.0, 0.0, 1.0)) is float
    assert pytape.clip(-5.0, 0.0, None) == 0.0
    assert pytape.clip(0.5, None, 1.0) == 0.5
    assert type(pytape.clip(np.float64(0.5), 0.0, 1.0)) is float


@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_hypot_at_origin(kind):
    assert grad_of(pytape.hypot, 0.0, 0.0, kind=kind) == (0.0, (0.0, 0.0))
    assert grad_of(lambda x: pytape.hypot(x, 0.0), 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(lambda x: pytape.hypot(0.0, x), 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(lambda x: pytape.hypot(x, x), 0.0, kind=kind) == (0.0, (0.0,))


@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_atan2_at_origin_like_torch(kind):
    assert grad_of(pytape.atan2, 0.0, 0.0, kind=kind) == (0.0, (0.0, 0.0))
    assert grad_of(lambda x: pytape.atan2(x, x), 0.0, kind=kind) == (0.0, (0.0,))
    assert pytape.hessian(lambda v: pytape.atan2(v[0], v[1]))(np.zeros(2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    # next to the origin the usual formula
    assert grad_of(pytape.atan2, 0.0, 2.0, kind=kind)[1] == (0.5, 0.0)


@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_pow_conventions(kind):
    p = pytape.pow
    assert grad_of(p, 0.0, 0.0, kind=kind) == (1.0, (0.0, 0.0))    # 0 ** 0
    assert grad_of(lambda x: x ** x, 0.0, kind=kind) == (1.0, (0.0,))
    assert grad_of(p, 2.0, 0.0, kind=kind) == (1.0, (0.0, math.log(2.0)))
    assert grad_of(p, -2.0, 0.0, kind=kind)[1][0] == 0.0          # b == 0: d/da = 0
    assert grad_of(p, 0.0, 2.0, kind=kind) == (0.0, (0.0, 0.0))     # a == 0, b >= 0: d/db = 0
    assert grad_of(p, 0.0, 0.5, kind=kind) == (0.0, (inf, 0.0))
    assert grad_of(p, 0.0, 1.0, kind=kind) == (0.0, (1.0, 0.0))
    assert grad_of(lambda x: x ** 0.0, 0.0, kind=kind) == (1.0, (0.0,))
    assert grad_of(lambda x: 0.0 ** x, 0.0, kind=kind) == (1.0, (0.0,))
    assert grad_of(lambda x: 0.0 ** x, 3.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(lambda x: x ** 2, 0.0, kind=kind) == (0.0, (0.0,))
    assert grad_of(lambda x: x ** 3.0, -2.0, kind=kind) == (-8.0, (12.0,))


# =============================================================================
# 5. IEEE behaviour outside the domains: no exceptions
# =============================================================================

@pytest.mark.parametrize("kind", ["leaf", "inter"])
def test_ieee_domain_results(kind):
    cases = [
        (pytape.log, -1.0, nan), (pytape.log, 0.0, -inf), (pytape.sqrt, -1.0, nan),
        (pytape.exp, 1000.0, inf), (pytape.asin, 2.0, nan), (pytape.acosh, 0.5, nan),
        (pytape.atanh, 1.0, inf), (pytape.log1p, -1.0, -inf), (pytape.log2, -2.0, nan),
        (pytape.exp, -1000.0, 0.0), (pytape.sinh, -1000.0, -inf), (pytape.sigmoid, -1000.0, 0.0),
        (pytape.softplus, 1000.0, 1000.0), (pytape.tanh, 1000.0, 1.0),
        (lambda x: 1 / x, 0.0, inf), (lambda x: 1.0 / x, -0.0, -inf), (lambda x: x / 0.0, 1.0, inf),
        (lambda x: pytape.pow(0.0, x), -1.0, inf),
    ]
    for f, x, want in cases:
        v, (g,) = grad_of(f, x, kind=kind)   # value and backward never raise
        assert close(v, want, 0.0), (f, x, v)
        assert isinstance(g, float)
    v, grads = grad_of(lambda a, b: a / b, 0.0, 0.0, kind=kind)
    assert math.isnan(v) and all(isinstance(g, float) for g in grads)
    v, grads = grad_of(pytape.div, 1.0, 0.0, kind=kind)
    assert v == inf and grads[0] == inf
    # known derivative values at the edges
    assert grad_of(pytape.log, 0.0, kind=kind)[1] == (inf,)
    assert grad_of(pytape.exp, 1000.0, kind=kind)[1] == (inf,)
    assert math.isnan(grad_of(pytape.sqrt, -1.0, kind=kind)[1][0])


def test_ieee_plain_numbers_return_floats():
    cases = [
        (pytape.log(-1.0), nan), (pytape.log(0.0), -inf), (pytape.sqrt(-1.0), nan),
        (pytape.exp(1000.0), inf), (pytape.atanh(-1.0), -inf), (pytape.div(1.0, 0.0), inf),
        (pytape.div(0.0, 0.0), nan), (pytape.pow(0.0, -1.0), inf), (pytape.pow(-8.0, 1.0 / 3.0), nan),
        (pytape.log(0), -inf), (pytape.acos(np.float64(2.0)), nan),
    ]
    for got, want in cases:
        assert type(got) is float and close(got, want, 0.0), (got, want)


@pytest.mark.parametrize("name", UNARY)
def test_numpy_scalars_and_ints_give_float(name):
    f, o = FUNCTIONS[name], ORACLES[name]
    x = {"acosh": 2.0, "asin": 0.5, "acos": 0.5, "atanh": 0.5}.get(name, 1.0)
    for arg in (np.float64(x), np.float32(x), int(x) if x == int(x) else x, np.int64(int(x)) if x == int(x) else x):
        r = f(arg)
        assert type(r) is float, (name, type(arg), type(r))
        assert close(r, o.f(float(arg)), VALUE_RTOL), (name, arg, r)
    assert type(pytape.sin(np.float64(1.0))) is float and pytape.sin(np.float64(1.0)) == math.sin(1.0)


@pytest.mark.parametrize("name", BINARY)
def test_binary_numpy_scalars_give_float(name):
    f, o = FUNCTIONS[name], ORACLES[name]
    for a, b in ((np.float64(1.5), 2), (2, np.float64(1.5)), (np.float32(1.5), np.int64(2))):
        r = f(a, b)
        assert type(r) is float, (name, a, b, type(r))
        assert close(r, o.f(float(a), float(b)), VALUE_RTOL), (name, a, b, r)


# nan propagation of the comparison ops: numpy, torch (>= 1.12, pytorch#77306)
# and pytape.reference return nan when either operand (or bound) is nan
NAN_CASES = [
    pytest.param(name, a, b, id=f"{name}({a},{b})")
    for name in ("minimum", "maximum", "clamp_min", "clamp_max")
    for a, b in ((nan, 1.0), (1.0, nan), (nan, nan))
]


@pytest.mark.parametrize("name,a,b", NAN_CASES)
def test_nan_propagation(name, a, b):
    f = FUNCTIONS[name]
    ref = {"clamp_min": lambda x, y: R.clip(x, y, None), "clamp_max": lambda x, y: R.clip(x, None, y)}.get(
        name, getattr(R, name, None))
    assert math.isnan(ref(a, b))
    got = [f(a, b)]
    for form, ka, kb in BINARY_FORMS:
        got.append(binary_run(f, a, b, form, ka, kb)[0])
    assert all(math.isnan(v) for v in got), got


# =============================================================================
# 6. agreement with the pure-Python reference engine
# =============================================================================

REF_FUNCTIONS = {
    "neg": operator.neg, "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "div": operator.truediv, "pow": operator.pow,
    "clamp_min": lambda a, b: R.clip(a, b, None), "clamp_max": lambda a, b: R.clip(a, None, b),
}
REF_TOL = 1e-12


def ref_fn(name):
    return REF_FUNCTIONS.get(name) or getattr(R, name)


def ref_points(name):
    """A few points per op: the fixed ones (edges included) and some random ones."""
    pts = points(name)
    return pts[:12] + pts[-4:]


@pytest.mark.parametrize("name", UNARY)
def test_unary_matches_reference_engine(name):
    failures = []
    for x in ref_points(name):
        rv = R.Value(x)
        ry = ref_fn(name)(rv)
        ry.backward()
        for kind in ("leaf", "inter"):
            v, g = unary_run(name, x, kind)
            if not (close(v, ry.data, REF_TOL) and close(g, rv.grad, REF_TOL)):
                failures.append(f"{name}({x!r}) {kind}: pytape {v!r}, {g!r}; reference {ry.data!r}, {rv.grad!r}")
    report(failures)


@pytest.mark.parametrize("name", BINARY)
def test_binary_matches_reference_engine(name):
    failures = []
    for a, b in ref_points(name):
        for form, ka, kb in BINARY_FORMS:
            ra, rb = R.Value(a), R.Value(b)
            ry = ref_fn(name)(ra if form != "CV" else a, rb if form != "VC" else b)
            ry.backward()
            v, ga, gb = binary_run(FUNCTIONS[name], a, b, form, ka, kb)
            ok = close(v, ry.data, REF_TOL)
            ok &= ga is None or close(ga, ra.grad, REF_TOL)
            ok &= gb is None or close(gb, rb.grad, REF_TOL)
            if not ok:
                failures.append(f"{name}({a!r}, {b!r}) {form} {ka}/{kb}: pytape {v!r}, {ga!r}, {gb!r}; "
                                f"reference {ry.data!r}, {ra.grad!r}, {rb.grad!r}")
    report(failures)


# =============================================================================
# 7. CppAD-style composition identities: d/dx f^-1(f(x)) == 1
# =============================================================================

COMPOSITIONS = {
    "expm1(log1p(x))": (lambda x: pytape.expm1(pytape.log1p(x)), [-0.9, -0.5, -1e-8, 0.0, 1e-8, 0.3, 2.0, 50.0], 1e-15),
    "log(exp(x))": (lambda x: pytape.log(pytape.exp(x)), [-20.0, -1.0, 0.0, 0.5, 3.0, 20.0], 1e-15),
    "tan(atan(x))": (lambda x: pytape.tan(pytape.atan(x)), [-5.0, -1.0, 0.0, 0.3, 2.0, 5.0], 1e-15),
    "asinh(sinh(x))": (lambda x: pytape.asinh(pytape.sinh(x)), [-3.0, -1.0, 0.0, 0.5, 2.0, 3.0], 1e-15),
    "atanh(tanh(x))": (lambda x: pytape.atanh(pytape.tanh(x)), [-1.0, -0.5, 0.0, 0.3, 0.8, 1.0], 1e-14),
    "log2(exp2(x))": (lambda x: pytape.log2(pytape.exp2(x)), [-10.0, 0.0, 0.7, 10.0], 1e-15),
    "sqrt(x)**2": (lambda x: pytape.sqrt(x) ** 2.0, [0.1, 1.0, 2.0, 7.0], 1e-15),
}


@pytest.mark.parametrize("kind", ["leaf", "inter"])
@pytest.mark.parametrize("comp", COMPOSITIONS)
def test_composition_identity(comp, kind):
    f, xs, tol = COMPOSITIONS[comp]
    for x in xs:
        v, (g,) = grad_of(f, x, kind=kind)
        assert math.isclose(v, x, rel_tol=1e-13, abs_tol=1e-15), (comp, x, v)
        assert abs(g - 1.0) <= tol, (comp, x, g)
