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
from .var import Var, result

__all__ = ["adjoints", "HELPERS", "rule"]


def _v(x):
    return x.value if isinstance(x, Var) else x


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
    if s < _DBL_MIN:
        h = _F["hypot"](a * 2.0 ** 600, b * 2.0 ** 600)
        return 0.0 if _v(h) == 0 else n * 2.0 ** 600 / h * 2.0 ** 600 / h
    h = _F["hypot"](a, b)
    return n / h / h


def _hypot_d(n, a, b, y):
    if _v(y) >= _DBL_MIN:
        return n / y
    return 0.0 if _v(y) == 0 else n * 2.0 ** 600 / _F["hypot"](a * 2.0 ** 600, b * 2.0 ** 600)


def _tanh_d(a, y):
    if abs(_v(y)) < 0.999:
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


#: the helpers of csrc/rules.h that derivative columns call, on Vars; C's
#: (double)(a > b) becomes _float(a > b): a piecewise constant, no derivative.
#: Each takes the same branch as its C twin, decided on the values.
HELPERS = {
    "pt_sign": lambda a: float((_v(a) > 0) - (_v(a) < 0)),
    "pt_step": lambda a: 0.0 if _v(a) <= 0 else 1.0,
    "pt_sigmoid": FUNCTIONS["sigmoid"],
    "pt_tie": lambda w, l: 0.0 if _v(w) < _v(l) else (0.5 if _v(w) == _v(l) else 1.0),
    "pt_pow_da": lambda a, b: 2.0 * a if _v(b) == 2.0 else (0.0 if _v(b) == 0 else _pow_scaled(b, 1.0, a, b - 1.0)),
    "pt_pow_db": lambda a, b, y: 0.0 if _v(a) == 0 and _v(b) >= 0 else y * FUNCTIONS["log"](a),
    "pt_atan2_d": _atan2_d,
    "pt_hypot_d": _hypot_d,
    "pt_tanh_d": _tanh_d,
    "pt_sigmoid_d": lambda a, y: y * (1.0 - y) if _v(y) < 0.999 else y * _F["sigmoid"](-a),
    "pt_expm1_d": lambda a, y: _F["exp"](a) if _v(a) < -0.5 else y + 1.0,
    "pt_acosh_d": lambda a: 1.0 / a if _v(a) > 1e8 else 1.0 / _F["sqrt"]((a - 1.0) * (a + 1.0)),
    "pt_div_db": _div_db,
    "pt_floordiv": _floordiv,
    "pt_truncdiv": _truncdiv,
    "pt_lse_d": lambda a, b, k: 0.5 if _v(a) == _v(b) else _F["sigmoid"](k * (a - b)),
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


def adjoints(tape, outs, seeds, in_slots):
    """Adjoints (Vars or floats) of ``in_slots`` for seeds on output slots,
    every step recorded on ``tape``.  None where an input is not reached."""
    top = max(outs)
    rows = tape._c.rows(0, top + 1, ("op", "a", "b"))
    op, a, b = rows["op"], rows["a"], rows["b"]
    acc = {}
    for s, g in zip(outs, seeds):
        _add(acc, s, g)
    for i in range(top, -1, -1):
        g = acc.get(i)
        if g is None or (not isinstance(g, Var) and g == 0.0):
            continue
        code = int(op[i])
        if code == _native.OP_CUSTOM:  # a custom primitive: its vjp rule, called with Vars (pytape/custom.py)
            for slot, d in custom.recorded_vjps(tape, i, int(b[i]), g):
                if isinstance(d, Var) or d != 0.0:
                    _add(acc, slot, d)
            continue
        if _native.OP_KINDS[code] not in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC, _native.KIND_CV):
            continue  # LEAF, GUARD
        try:
            _apply(tape, acc, i, code, int(a[i]), int(b[i]), g)
        except FloatingPointError as exc:  # anomaly mode, in a recorded derivative rule
            loc = tape._where.get(i) if tape._where else None
            raise FloatingPointError(f"backward through {_native.OP_NAMES[code]} (create_graph=True), recorded "
                                     f"{where(loc)}: its derivative rule: {exc}") from None
    return [acc.get(s) if s >= 0 else None for s in in_slots]


def _apply(tape, acc, i, code, a, b, g):
    """The derivative rules of instruction i (operands a, b), recorded, added into acc.

    An operand that is a slot becomes a Var, a constant its number; the
    operand table (pytape/_native.py) says which is which."""
    da, db = _RULES[code]
    kind_a, kind_b = _native.OPERAND_A[code], _native.OPERAND_B[code]
    va = result(tape, a) if kind_a == _native.OPERAND_SLOT else tape._c.const(a)
    vb = (result(tape, b) if kind_b == _native.OPERAND_SLOT else
          tape._c.const(b) if kind_b == _native.OPERAND_CONST else None)
    y = result(tape, i)
    if kind_a == _native.OPERAND_SLOT:
        _chain(acc, a, da(va, vb, y), g)
    if kind_b == _native.OPERAND_SLOT:
        _chain(acc, b, db(va, vb, y), g)


def _chain(acc, slot, d, g):
    """acc[slot] += d * g; a derivative that is the number 0 passes nothing on
    (like pt_chain in the C sweeps: where's branch not taken gets exactly 0)."""
    if isinstance(d, Var) or d != 0.0:
        _add(acc, slot, d * g)
