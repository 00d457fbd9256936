"""Anomaly detection: ``with pytape.detect_anomaly():`` finds the operation,
and the line of your code, where a nan or inf first appears.

In this mode every operation is recorded with its Python source location, and
C checks every value at recording, every adjoint of the reverse sweeps
(``backward()``, ``autograd.grad``, ``grad``, ``jacrev``, ``vjp``) and every
tangent of the forward sweeps (``tangent_sweep``, ``jvp``, ``jacfwd``); the
first one that is not finite raises ``FloatingPointError``.  The second-order
sweeps (``hessian``, ``hvp``) are not checked.  Outside the mode
nothing of this happens: operations take their usual path and no location is
kept.

>>> import pytape
>>> x = pytape.Var(-3.0)
>>> with pytape.detect_anomaly():
...     y = pytape.log(x)           # doctest: +ELLIPSIS
Traceback (most recent call last):
FloatingPointError: log produced nan at ...:2 in <module>() (input -3.0)
"""
import functools
import os
import sys

from ._native import OP_KINDS, OP_NAMES, ffi, lib

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class detect_anomaly:
    """Context manager (and decorator) turning anomaly detection on in this thread.

    >>> import pytape
    >>> with pytape.detect_anomaly():
    ...     x = pytape.Var(0.0)
    ...     y = pytape.sqrt(x)          # fine: sqrt(0) = 0
    ...     y.backward()                # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FloatingPointError: backward through sqrt produced inf at ...:3 in <module>() (input 0.0)
    """

    def __enter__(self):
        self._prev = lib.pt_anomaly_enabled()
        lib.pt_set_anomaly(1)
        return self

    def __exit__(self, *exc):
        lib.pt_set_anomaly(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return fn(*args, **kwargs)

        return wrapper


def is_anomaly_enabled():
    """True inside ``detect_anomaly()`` in this thread.

    >>> import pytape
    >>> pytape.is_anomaly_enabled()
    False
    """
    return bool(lib.pt_anomaly_enabled())


def _caller():
    """(file, line, function) of the innermost frame outside pytape."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_HERE):
        f = f.f_back
    if f is None:
        return ("<unknown>", 0, "?")
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def _where(loc):
    if loc is None:
        return "at an operation recorded outside detect_anomaly()"
    file, line, func = loc
    return f"at {os.path.basename(file)}:{line} in {func}()"


def _inputs(values):
    vals = ", ".join(repr(v) for v in values)
    return f"(input{'s' if len(values) > 1 else ''} {vals})"


def record(tape, name, rec, args, inputs):
    """Record one operation in checked mode and note where it was written.

    Called by the slow paths of pytape/var.py when C answered PT_E_ANOMALY;
    ``rec(*args)`` is the C entry point and its arguments, ``inputs`` the
    operand values for the message.  Returns the new slot or a status.
    """
    loc = _caller()
    lib.pt_set_checked(1)
    try:
        i = rec(*args)
    finally:
        lib.pt_set_checked(0)
    if i == lib.PT_E_NONFINITE:
        code = OPCODES_BY_NAME[name]
        value = lib.pt_eval1(code, *inputs) if len(inputs) == 1 else lib.pt_eval2(code, *inputs)
        raise FloatingPointError(f"{name} produced {value!r} {_where(loc)} {_inputs(inputs)}")
    if i >= 0:
        if tape._where is None:
            tape._where = {}
        tape._where[i] = loc
    return i


OPCODES_BY_NAME = {n: i for i, n in enumerate(OP_NAMES)}


def _instruction(tape, i):
    """(op name, operand kind, a, b, operand values) of instruction i."""
    op = ffi.new("uint16_t[1]")
    a = ffi.new("int32_t[1]")
    b = ffi.new("int32_t[1]")
    lib.pt_tape_copy(tape._p, i, i + 1, op, a, b, ffi.NULL, ffi.NULL)
    kind = OP_KINDS[op[0]]
    name = OP_NAMES[op[0]].rsplit("_", 1)[0] if kind in (lib.PT_KIND_VC, lib.PT_KIND_CV) else OP_NAMES[op[0]]
    if kind == lib.PT_KIND_UNARY:
        inputs = [lib.pt_value(tape._p, a[0])]
    elif kind == lib.PT_KIND_VV:
        inputs = [lib.pt_value(tape._p, a[0]), lib.pt_value(tape._p, b[0])]
    elif kind == lib.PT_KIND_VC:
        inputs = [lib.pt_value(tape._p, a[0]), lib.pt_tape_const(tape._p, b[0])]
    elif kind == lib.PT_KIND_CV:
        inputs = [lib.pt_tape_const(tape._p, a[0]), lib.pt_value(tape._p, b[0])]
    else:  # a leaf
        inputs = [lib.pt_value(tape._p, i)]
    return name, kind, a[0], b[0], inputs


def tangent_error(tape):
    """The FloatingPointError for a checked tangent sweep (forward mode) that met a nan/inf."""
    i = lib.pt_tape_bad(tape._p)
    name, _, _, _, inputs = _instruction(tape, i)
    loc = tape._where.get(i) if tape._where else None
    return FloatingPointError(f"the tangent (forward mode) of {name} is not finite {_where(loc)} {_inputs(inputs)}")


def backward_error(tape):
    """The FloatingPointError for a checked backward() that stopped on a nan/inf."""
    i = lib.pt_tape_bad(tape._p)
    name, kind, a, b, inputs = _instruction(tape, i)
    adjoints = [lib.pt_adjoint(tape._p, a)] if kind != lib.PT_KIND_CV else []
    if kind == lib.PT_KIND_VV or kind == lib.PT_KIND_CV:
        adjoints.append(lib.pt_adjoint(tape._p, b))
    bad = next((g for g in adjoints if g != g or g in (float("inf"), float("-inf"))), float("nan"))
    loc = tape._where.get(i) if tape._where else None
    return FloatingPointError(f"backward through {name} produced {bad!r} {_where(loc)} {_inputs(inputs)}")
