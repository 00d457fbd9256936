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

from . import _native
from .anomaly import where
from .recording import FUNCTIONS
from .var import Var, result

__all__ = ["adjoints", "HELPERS", "rule"]


def _v(x):
    return x.value if isinstance(x, Var) else x


#: the helpers of csrc/rules.h that derivative columns call, on Vars; C's
#: (double)(a > b) becomes _float(a > b): a piecewise constant, no derivative
HELPERS = {
    "pt_sign": lambda a: float((_v(a) > 0) - (_v(a) < 0)),
    "pt_sigmoid": FUNCTIONS["sigmoid"],
    "pt_tie": lambda w, l: 1.0 if _v(w) > _v(l) else (0.5 if _v(w) == _v(l) else 0.0),
    "pt_safe_div": lambda n, d: 0.0 if _v(d) == 0 else n / d,
    "pt_pow_da": lambda a, b: 2.0 * a if _v(b) == 2.0 else (0.0 if _v(b) == 0 else b * a ** (b - 1.0)),
    "pt_pow_db": lambda a, b, y: 0.0 if _v(a) == 0 and _v(b) >= 0 else y * FUNCTIONS["log"](a),
    "PT_LN2": math.log(2.0),
    "PT_LN10": math.log(10.0),
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
