"""``create_graph=True``: the reverse sweep recorded as ordinary instructions,
so that derivatives can be differentiated again, to any order.

The first-derivative columns of the op table (read from the C library as text,
e.g. ``cos(a)``, ``-y / b``, ``pt_pow_da(a, b)``) are turned once into Python
functions of ``Var`` s; a reverse sweep in Python then applies them to the
operands of every instruction that reaches the outputs, so each adjoint is a
``Var`` on the same tape.  This path runs Python per instruction (like
PyTorch's double backward runs its graph); the plain ``backward()`` stays one
C loop.  The helpers of ``csrc/rules.h`` that the columns call have Python
twins here (``HELPERS``); tests/test_higher_order.py checks every one against
C, rule by rule, at many points.

Every gradient of an input the outputs reach is a ``Var`` that depends on
every reached input, at every point; each chain-rule term is recorded as the
``chain`` primitive (a product with the sweeps' zero-factor rule), so that
differentiating again gives the second derivatives of the Hessian sweep,
edge points included (tests/test_second_order.py).

>>> import pytape
>>> x = pytape.Var(0.7)
>>> (d1,) = pytape.autograd.grad(pytape.sin(x), x, create_graph=True)     # cos x
>>> (d2,) = pytape.autograd.grad(d1, x, create_graph=True)                # -sin x
>>> (d3,) = pytape.autograd.grad(d2, x)                                   # -cos x
>>> import math; d3 == -math.cos(0.7)
True
"""
import math
import os
import re

from . import _native, custom
from .anomaly import where
from .recording import FUNCTIONS
from .var import Leaf, Var, result

__all__ = ["adjoints", "HELPERS", "rule", "zero_of"]


def _v(x):
    return x.value if isinstance(x, Var) else x


def _constant(c):
    """A constant operand as a Var without a gradient: arithmetic on it is
    pytape's (IEEE, evaluated in C: 1.0 / 0.0 is inf), never Python's
    (ZeroDivisionError), and it records nothing."""
    return Leaf._make(float(c), False)


def _is_constant(x):
    return not isinstance(x, Var) or (type(x) is Leaf and x._g is None)


_F = FUNCTIONS
_DBL_MIN, _DBL_MAX = 2.2250738585072014e-308, 1.7976931348623157e+308


def _pow_scaled(c1, c2, a, e):
    """pt_pow_scaled: c1 * c2 * a**e, through logarithms where a**e alone
    overflows or underflows (the same branch as C's)."""
    p = _F["pow"](_v(a), _v(e))
    m, av = abs(p), abs(_v(a))
    if (_DBL_MIN <= m <= _DBL_MAX) or p != p or _v(c1) == 0 or _v(c2) == 0 or not 0.0 < av <= _DBL_MAX:
        return c1 * (c2 * _F["pow"](a, e))
    lg = _F["log"](_F["abs"](c1)) + _F["log"](_F["abs"](c2)) + e * _F["log"](_F["abs"](a))
    sign = math.copysign(1.0, _v(c1)) * math.copysign(1.0, _v(c2)) * math.copysign(1.0, p)
    if _v(lg) != _v(lg) and _v(c1) == _v(c1) and _v(c2) == _v(c2):
        return sign * 0.0  # inf - inf: see pt_pow_scaled
    return sign * _F["exp"](lg)


def _atan2_d(n, a, b):
    av, bv = _v(a), _v(b)
    s = av * av + bv * bv
    if _DBL_MIN <= s <= _DBL_MAX:
        return n / (a * a + b * b)
    h = _F["hypot"](a, b)
    if s < _DBL_MIN and _v(h) < _DBL_MIN:  # C scales h up by 2**600 (the same value)
        h = _F["hypot"](a * 2.0 ** 600, b * 2.0 ** 600)
        return 0.0 if _v(h) == 0 else n * 2.0 ** 600 / h * 2.0 ** 600 / h
    return n / h / h  # where a*a + b*b underflows but h does not, its slope does not overflow early


def _hypot_d(n, a, b, y):
    if _v(y) >= _DBL_MIN:
        return n / y
    return 0.0 if _v(y) == 0 else n * 2.0 ** 600 / _F["hypot"](a * 2.0 ** 600, b * 2.0 ** 600)


def _tanh_d(a, y):
    if abs(_v(y)) < 0.999 or _v(y) != _v(y):  # nan: the same value, and a slope nan, not abs'(nan) = 0
        return (1.0 - y) * (1.0 + y)
    e = _F["exp"](-2.0 * _F["abs"](a))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _div_db(a, b, y):
    if abs(_v(y)) >= _DBL_MIN or not abs(_v(a)) < 1.0:
        return -y / b
    return -(a * 2.0 ** 600 / b) / b * 2.0 ** -600


def _floordiv(a, b):
    """pt_floordiv: Python's a // b on the values (a piecewise constant), IEEE a / b at b == 0."""
    a, b = _v(a), _v(b)
    return _F["div"](a, b) if b == 0 else a // b


def _truncdiv(a, b):
    """pt_truncdiv: the integer n of fmod(a, b) = a - n b, on the values."""
    a, b = _v(a), _v(b)
    if b == 0:
        return _F["div"](a, b)
    if math.isinf(a) or a != a or b != b:
        return math.nan
    q = (a - math.fmod(a, b)) / b
    if q == 0:
        return math.copysign(0.0, a / b)
    return float(round(q)) if math.isfinite(q) else q

def _times(d, g):
    """d * g with the sweeps' zero-factor rule (pt_chain): 0 where either is
    0, even times inf or nan; recorded as the ``chain`` primitive, whose
    derivatives are those of a product (so d(0 * g)/d(d) is g, inf or not)."""
    if isinstance(d, Var) or isinstance(g, Var):
        return _F["chain"](d, g)
    return 0.0 if d == 0.0 or g == 0.0 else d * g


def _nan_slope(x):
    """chain(x, nan): 0 where x is 0 (where it is used), with slope nan in x."""
    return _F["chain"](x, math.nan)


def _pow_da(a, b):
    """pt_pow_da: b a**(b-1).  Its C twin's shortcuts (2 a at b == 2; 0 at
    b == 0) hold the value but not the derivative with respect to a Var
    exponent, d/db (b a**(b-1)) = a**(b-1) (1 + b ln a), 1/a at b == 0; so
    here they are taken only where b is a constant.  At b == 0 the product
    is 0 by the zero-factor rule, also where a**-1 is inf (a == 0)."""
    if _is_constant(b):
        if _v(b) == 2.0:
            return 2.0 * a
        if _v(b) == 0.0:
            return 0.0
    if _v(b) == 0.0:
        return _times(b, _F["pow"](a, b - 1.0))
    if _v(b) == 1.0 and _v(a) == 0.0:
        # a**(b-1) is 0**0 there, whose d/db is 0 by convention; the slope of
        # b a**(b-1) in b is 1 + ln a = -inf (pt_pow_dab): add (b - 1) ln a, 0 by the zero-factor rule
        return _pow_scaled(b, 1.0, a, b - 1.0) + _times(b - 1.0, _F["log"](a))
    return _pow_scaled(b, 1.0, a, b - 1.0)


def _pow_db(a, b, y):
    """pt_pow_db: a**b ln a, 0 at a == 0 and b >= 0, with the second
    derivatives of pt_pow_dab, pt_pow_dbb there."""
    av, bv = _v(a), _v(b)
    if av == 0 and bv < 0 and not _is_constant(a):
        # ln |a|: the same value, but no slope y/a at a == 0 (inf / -0.0 would
        # make it nan at a == -0.0, where pt_pow_dab keeps its limit)
        return y * _F["log"](_F["abs"](a))
    if av == 0 and bv >= 0:
        if _is_constant(a):
            return 0.0
        if bv == 0.0:  # 0 ** 0: d/da of this is pt_pow_dab(0, 0) = 1/a, d/db 0
            return _times(a, math.copysign(math.inf, av))  # a**-1
        # y == 0: the zero factor keeps ln a's inf out of the value, not out of the slope
        d = _times(y, _F["log"](a))
        return d + _nan_slope(a) if bv < 1.0 else d  # pt_pow_dab: nan for 0 < b < 1
    return y * _F["log"](a)


#: the helpers of csrc/rules.h that derivative columns call, on Vars; C's
#: (double)(a > b) becomes _float(a > b): a piecewise constant, no derivative.
#: Each gives its C twin's value, by the same branch decided on the values,
#: except where the twin's branch holds the value but not the slope (pow's).
HELPERS = {
    "pt_sign": lambda a: float((_v(a) > 0) - (_v(a) < 0)),
    "pt_step": lambda a: 0.0 if _v(a) <= 0 else 1.0,
    "pt_sigmoid": FUNCTIONS["sigmoid"],
    "pt_tie": lambda w, l: 0.0 if _v(w) < _v(l) else (0.5 if _v(w) == _v(l) else 1.0),
    "pt_pow_da": _pow_da,
    "pt_pow_db": _pow_db,
    "pt_atan2_d": _atan2_d,
    "pt_hypot_d": _hypot_d,
    "pt_tanh_d": _tanh_d,
    "pt_sigmoid_d": lambda a, y: y * (1.0 - y) if _v(y) < 0.999 else y * _F["sigmoid"](-a),
    "pt_expm1_d": lambda a, y: _F["exp"](a) if _v(a) < -0.5 else y + 1.0,
    "pt_acosh_d": lambda a: 1.0 / a if _v(a) > 1e8 else 1.0 / _F["sqrt"]((a - 1.0) * (a + 1.0)),
    "pt_div_db": _div_db,
    "pt_floordiv": _floordiv,
    "pt_truncdiv": _truncdiv,
    # at a tie sigmoid(0) is 0.5, with the slope k/4 of pt_lse_dd; a tie of infinities: 0.5, slope 0
    "pt_lse_d": lambda a, b, k: 0.5 if _v(a) == _v(b) and math.isinf(_v(a)) else _F["sigmoid"](k * (a - b)),
    "PT_LN2": math.log(2.0),
    "PT_LOG2E": float("1.442695040888963407359924681001892137"),
    "PT_LOG10E": float("0.434294481903251827651128918916605082"),
    "PT_2_SQRTPI": 2.0 / math.sqrt(math.pi),
    "_float": float,
}
_NAMESPACE = dict(FUNCTIONS, pow=FUNCTIONS["pow"], fabs=FUNCTIONS["abs"], **HELPERS)


def rule(text):
    """A C derivative column as a Python function of (a, b, y); None for ""."""
    if not text:
        return None
    src = re.sub(r"\(double\)", "_float", text)
    # compiled under a file name inside the package, so that anomaly mode names
    # the user's line, not this rule, as where an operation was written
    code = compile(f"lambda a, b, y: {src}", os.path.join(os.path.dirname(__file__), "ops.def"), "eval")
    return eval(code, dict(_NAMESPACE))  # text of our own op table


_RULES = [(rule(da), rule(db)) for da, db in _native.RULES]


def _add(acc, slot, term):
    old = acc.get(slot)
    acc[slot] = term if old is None else old + term


def zero_of(x):
    """-0.0 recorded as depending on x (where_t(0, x), derivative 0): adding it
    changes no value (-0.0 is the neutral element of +), but makes a result
    reach x, so that differentiating it with respect to x gives 0, not
    'input not used'.

    >>> import pytape
    >>> x = pytape.Var(2.0)
    >>> z = 3.0 + zero_of(x)
    >>> z.value, pytape.autograd.grad(z, x)
    (3.0, (0.0,))
    """
    return _F["where_t"](0.0, x)


def adjoints(tape, outs, seeds, in_slots):
    """Adjoints of ``in_slots`` for seeds on output slots, every step
    recorded on ``tape``: a Var for each input slot the outputs reach, None
    for one they do not reach.

    Each Var depends on every reached input slot (through a -0.0 that depends
    on it, where its derivative does not), so it can be differentiated again
    with respect to any of them: 0 where the derivative does not depend on
    that input, never an "input not used" error.  A local derivative that is
    0 at this point but not constant around it (d(a**b)/da at b == 0) stays
    in the graph with its slope."""
    top = max(outs)
    # below the lowest input nothing changes an input's adjoint: a nested
    # transformation on a long tape sweeps its own part only
    bottom = min([s for s in in_slots if s >= 0], default=top + 1)
    rows = tape._c.rows(bottom, top + 1, ("op", "a", "b")) if bottom <= top else None
    acc = {}
    for s, g in zip(outs, seeds):
        _add(acc, s, g)
    for i in range(top, bottom - 1, -1):
        g = acc.get(i)
        if g is None or (_is_constant(g) and _v(g) == 0.0):
            continue
        k = i - bottom
        code = int(rows["op"][k])
        if code == _native.OP_CUSTOM:  # a custom primitive: its vjp rule, called with Vars (pytape/custom.py)
            for slot, d in custom.recorded_vjps(tape, i, int(rows["b"][k]), g):
                if isinstance(d, Var) or d != 0.0:
                    _add(acc, slot, d)
            continue
        if _native.OP_KINDS[code] not in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC, _native.KIND_CV):
            continue  # LEAF, GUARD
        try:
            _apply(tape, acc, i, code, int(rows["a"][k]), int(rows["b"][k]), g)
        except FloatingPointError as exc:  # anomaly mode, in a recorded derivative rule
            loc = tape._where.get(i) if tape._where else None
            raise FloatingPointError(f"backward through {_native.OP_NAMES[code]} (create_graph=True), recorded "
                                     f"{where(loc)}: its derivative rule: {exc}") from None
    mark = tape._c.reach(list(outs))
    reached = [0 <= s < len(mark) and bool(mark[s]) for s in in_slots]
    zero = None
    for s, r in zip(in_slots, reached):
        if r:
            z = zero_of(result(tape, s))
            zero = z if zero is None else zero + z
    return [(acc.get(s, 0.0) + zero) if r else None for s, r in zip(in_slots, reached)]


def _apply(tape, acc, i, code, a, b, g):
    """The derivative rules of instruction i (operands a, b), recorded, added into acc.

    An operand that is a slot becomes a Var, a constant a Var without a
    gradient (so that the rules compute on it as the C sweeps do: IEEE); the
    operand table (pytape/_native.py) says which is which."""
    da, db = _RULES[code]
    kind_a, kind_b = _native.OPERAND_A[code], _native.OPERAND_B[code]
    va = result(tape, a) if kind_a == _native.OPERAND_SLOT else _constant(tape._c.const(a))
    vb = (result(tape, b) if kind_b == _native.OPERAND_SLOT else
          _constant(tape._c.const(b)) if kind_b == _native.OPERAND_CONST else None)
    y = result(tape, i)
    if kind_a == _native.OPERAND_SLOT:
        _chain(acc, a, da(va, vb, y), g)
    if kind_b == _native.OPERAND_SLOT:
        _chain(acc, b, db(va, vb, y), g)


def _chain(acc, slot, d, g):
    """acc[slot] += d * g by the zero-factor rule of the C sweeps (pt_chain).
    A derivative that is a number 0 (a piecewise constant: where's branch not
    taken, relu below 0) passes nothing on; one that is a Var is recorded even
    where its value is 0, as its slope may not be."""
    if _is_constant(d):
        d = _v(d)
        if d == 0.0:
            return
    _add(acc, slot, _times(d, g))
