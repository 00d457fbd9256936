"""``create_graph=True``: the reverse sweep recorded as ordinary instructions.

The first-derivative columns of the op table (read from the C library as text,
e.g. ``cos(a)``, ``-y / b``, ``pt_pow_da(a, b)``) are turned once into Python
functions of ``Var`` s; a reverse sweep in Python then applies them to the
operands of every instruction that reaches the outputs, so each adjoint is a
``Var`` on the same tape and can be differentiated again, to any order.  This
path runs Python per instruction (like PyTorch's double backward runs its
graph); the plain ``backward()`` stays one C loop.

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

import numpy as np

from ._native import OP_KINDS, OP_NAMES, ffi, lib
from .var import FUNCTIONS, Var, _new

__all__ = ["adjoints"]


def _v(x):
    return x.value if isinstance(x, Var) else x


def _float(x):  # C's (double)(a > b): a piecewise constant, no derivative
    return float(x)


# the helpers of csrc/rules.h that derivative columns call, on Vars
_HELPERS = {
    "pt_sign": lambda a: float((_v(a) > 0) - (_v(a) < 0)),
    "pt_sigmoid": FUNCTIONS["sigmoid"],
    "pt_tie": lambda w, l: 1.0 if _v(w) > _v(l) else (0.5 if _v(w) == _v(l) else 0.0),
    "pt_safe_div": lambda n, d: 0.0 if _v(d) == 0 else n / d,
    "pt_pow_da": lambda a, b: 2.0 * a if _v(b) == 2.0 else (0.0 if _v(b) == 0 else b * a ** (b - 1.0)),
    "pt_pow_db": lambda a, b, y: 0.0 if _v(a) == 0 and _v(b) >= 0 else y * FUNCTIONS["log"](a),
    "PT_LN2": math.log(2.0),
    "PT_LN10": math.log(10.0),
    "PT_2_SQRTPI": 2.0 / math.sqrt(math.pi),
    "_float": _float,
}
_NAMESPACE = dict(FUNCTIONS, pow=FUNCTIONS["pow"], fabs=FUNCTIONS["abs"], **_HELPERS)


def _compile(text):
    """A C derivative column as a Python function of (a, b, y)."""
    if not text:
        return None
    src = re.sub(r"\(double\)", "_float", text)
    # compiled under a file name inside the package, so that anomaly mode names
    # the user's line, not this rule, as where an operation was written
    code = compile(f"lambda a, b, y: {src}", os.path.join(os.path.dirname(__file__), "ops.def"), "eval")
    return eval(code, dict(_NAMESPACE))  # text of our own op table


_RULES = [(_compile(ffi.string(lib.pt_op_rule(op, 0)).decode()),
           _compile(ffi.string(lib.pt_op_rule(op, 1)).decode())) for op in range(len(OP_NAMES))]


def _handle(tape, slot):
    v = _new(Var)
    v._t = tape
    v._i = slot
    return v


def _add(acc, slot, term):
    old = acc.get(slot)
    acc[slot] = term if old is None else old + term


def adjoints(tape, outs, seeds, in_slots):
    """Adjoints (Vars or floats) of ``in_slots`` for seeds on output slots,
    every step recorded on ``tape``.  None where an input is not reached."""
    top = max(outs)
    m = top + 1
    op = np.empty(m, dtype=np.uint16)
    a = np.empty(m, dtype=np.int32)
    b = np.empty(m, dtype=np.int32)
    lib.pt_tape_copy(tape._p, 0, m, ffi.from_buffer("uint16_t[]", op), ffi.from_buffer("int32_t[]", a),
                     ffi.from_buffer("int32_t[]", b), ffi.NULL, ffi.NULL)
    acc = {}
    for s, g in zip(outs, seeds):
        _add(acc, s, g)
    for i in range(top, -1, -1):
        g = acc.get(i)
        if g is None or (not isinstance(g, Var) and g == 0.0):
            continue
        code = int(op[i])
        kind = OP_KINDS[code]
        if kind not in (lib.PT_KIND_UNARY, lib.PT_KIND_VV, lib.PT_KIND_VC, lib.PT_KIND_CV):
            continue  # LEAF, GUARD
        try:
            _apply(tape, acc, i, code, kind, a, b, g)
        except FloatingPointError as exc:  # anomaly mode, in a recorded derivative rule
            from .anomaly import _where
            loc = tape._where.get(i) if tape._where else None
            raise FloatingPointError(f"backward through {OP_NAMES[code]} (create_graph=True), recorded "
                                     f"{_where(loc)}: its derivative rule: {exc}") from None
    return [acc.get(s) if s >= 0 else None for s in in_slots]


def _apply(tape, acc, i, code, kind, a, b, g):
    """The derivative rules of instruction i, recorded, added into acc."""
    da, db = _RULES[code]
    y = _handle(tape, i)
    if kind == lib.PT_KIND_UNARY:
        _chain(acc, int(a[i]), da(_handle(tape, int(a[i])), None, y), g)
    elif kind == lib.PT_KIND_VV:
        A, B = _handle(tape, int(a[i])), _handle(tape, int(b[i]))
        _chain(acc, int(a[i]), da(A, B, y), g)
        _chain(acc, int(b[i]), db(A, B, y), g)
    elif kind == lib.PT_KIND_VC:
        _chain(acc, int(a[i]), da(_handle(tape, int(a[i])), lib.pt_tape_const(tape._p, int(b[i])), y), g)
    else:  # CV
        _chain(acc, int(b[i]), db(lib.pt_tape_const(tape._p, int(a[i])), _handle(tape, int(b[i])), y), g)


def _chain(acc, slot, d, g):
    """acc[slot] += d * g; a derivative that is the number 0 passes nothing on
    (like pt_chain in the C sweeps: where's branch not taken gets exactly 0)."""
    if isinstance(d, Var) or d != 0.0:
        _add(acc, slot, d * g)
