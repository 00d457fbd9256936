"""Anomaly detection: ``with pytape.detect_anomaly():`` finds the operation,
and the line of your code, where a nan or inf first appears.

In this mode every operation is recorded with its Python source location, and
C checks every value at recording, every adjoint of the reverse sweeps
(``backward()``, ``autograd.grad``, ``grad``, ``jacrev``, ``vjp``) and every
tangent of the forward sweeps (``tangent_sweep``, ``jvp``, ``jacfwd``), and
both sweeps of second order (``hessian``, ``hvp``: the tangents, then every
adjoint and tangent of an adjoint); the first one that is not finite raises
``FloatingPointError``.  Outside the mode
nothing of this happens: operations take their usual path and no location is
kept.

Array instructions (``pytape.Tensor``) are checked likewise, element by
element, in C: a value when it is recorded (the operation is refused, not
recorded), the adjoints an array instruction's rule writes into its
operands, and array tangents; the message adds the index of the first bad
element, a numpy index into the array it is in (the result for a value or
tangent, the operand for an adjoint).  Array leaves and constants are data,
not checked, as Var leaves: a nan there is reported at the first operation
that produces one from it.

The errors are built here, by the callers of the C sweeps (``explain``), from
the instruction C stopped at and the source lines noted while recording.

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
from contextlib import contextmanager

import numpy as np

from . import _native
from ._native import (OP_ARRAY, OP_KINDS, OP_NAMES, OPERAND_A, OPERAND_B, OPERAND_CONST, OPERAND_SLOT,
                      NonFiniteError, array_op_name)

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: numpy's own Python frames (np.mean -> Tensor.__array_function__ may pass
#: through them): skipped too when an array operation's line is looked for
_NUMPY = os.path.dirname(os.path.abspath(np.__file__)) + os.sep
_ELEMENTWISE = (_native.ARRAY_KINDS["MAP1"], _native.ARRAY_KINDS["MAP2"])


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
        self._prev = _native.anomaly_enabled()
        _native.set_anomaly(1)
        return self

    def __exit__(self, *exc):
        _native.set_anomaly(self._prev)
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
    return _native.anomaly_enabled()


def caller(numpy_too=False):
    """(file, line, function) of the innermost frame outside pytape (and,
    ``numpy_too``, outside numpy: an array operation's)."""
    skip = (_HERE, _NUMPY) if numpy_too else _HERE
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(skip):
        f = f.f_back
    if f is None:
        return ("<unknown>", 0, "?")
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def where(loc):
    """``loc`` (from caller()) as words: 'at file.py:12 in f()'."""
    if loc is None:
        return "at an operation recorded outside detect_anomaly()"
    file, line, func = loc
    return f"at {os.path.basename(file)}:{line} in {func}()"


def _inputs(values):
    vals = ", ".join(repr(v) for v in values)
    return f"(input{'s' if len(values) > 1 else ''} {vals})"


@contextmanager
def unchecked():
    """Anomaly mode off in this thread for a while (pytape/tensor.py: a value
    computed under no_grad on a scratch tape, which anomaly mode does not
    check, as it does not check what no_grad computes on Vars).

    >>> import pytape
    >>> with pytape.detect_anomaly():
    ...     with unchecked():
    ...         print(pytape.is_anomaly_enabled())
    ...     print(pytape.is_anomaly_enabled())
    False
    True
    """
    prev = _native.anomaly_enabled()
    if prev:
        _native.set_anomaly(0)
    try:
        yield
    finally:
        if prev:
            _native.set_anomaly(1)


def note(tape, slot, loc):
    """Remember that ``slot`` of ``tape`` was recorded at ``loc``."""
    if tape._where is None:
        tape._where = {}
    tape._where[slot] = loc


def note_array(tape, slot):
    """Remember where array instruction ``slot`` of ``tape`` was recorded
    (anomaly mode: C flags its handle, pytape/tensor.py ``_result`` calls this).

    >>> import numpy as np, pytape
    >>> with pytape.detect_anomaly(), pytape.Tape() as t:
    ...     y = pytape.Tensor([1.0, 2.0]) * 2.0
    >>> t._where[y.slot][1:]     # noted by note_array: the line and function
    (2, '<module>')
    """
    note(tape, slot, caller(numpy_too=True))


def _index(element, shape):
    """Flat index ``element`` as numpy's index tuple into ``shape``."""
    return tuple(int(k) for k in np.unravel_index(element, shape)) if shape else ()


def _at(idx, shape, what):
    """'at index (1, 0) of its result (shape (2, 3))'."""
    return f"at index {idx} of {what} (shape {shape})"


def _array_inputs(kind, values, shape, idx, shapes=None):
    """The inputs of an array operation for a message: of an elementwise one
    the operands' elements that made element ``idx`` of its ``shape`` result
    (broadcast as numpy does), of any other the operands' shapes (``shapes``,
    or the values')."""
    if kind in _ELEMENTWISE and all(v is not None for v in values):
        try:
            return _inputs([float(np.broadcast_to(np.asarray(v, dtype=np.float64), shape)[idx]) for v in values])
        except (ValueError, TypeError, IndexError):
            pass  # shapes that do not broadcast to the result's: say the shapes
    shapes = ", ".join(str(tuple(s)) for s in (shapes if shapes is not None else map(np.shape, values)))
    return f"(input{'s' if len(values) > 1 else ''} of shape{'s' if len(values) > 1 else ''} {shapes})"


def array_error(tape, inputs):
    """The FloatingPointError for an array operation that anomaly mode
    refused to record on ``tape`` (C answered NONFINITE and noted the first
    nan or inf of its value: ``CTape.bad_array``), at the caller's line;
    ``inputs`` the operands' values (arrays or numbers) for the message.

    >>> import numpy as np, pytape
    >>> x = pytape.Tensor([0.25, 1.0])
    >>> with pytape.detect_anomaly():
    ...     y = np.log(x - 0.5)          # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FloatingPointError: log produced nan at index (0,) of its result (shape (2,)) at ...:2 in <module>() (input -0.25)
    """
    bad = tape._c.bad_array()
    if bad is None or bad["operand"] != -1:
        return FloatingPointError("pytape: an array operation produced nan or inf (anomaly mode)")
    name = array_op_name(bad["kind"], bad["op"], bad["sign"])
    shape = bad["shape"]
    idx = _index(bad["element"], shape)
    return FloatingPointError(f"{name} produced {bad['value']!r} {_at(idx, shape, 'its result')} "
                              f"{where(caller(numpy_too=True))} {_array_inputs(bad['kind'], inputs, shape, idx)}")


def _operand_values(c, operands):
    """(values, shapes) of an array instruction's operands (CTape.array_entry's
    list); a value is None where recycling gave it back (no sweep reads it)."""
    values, shapes = [], []
    for is_slot, x in operands:
        if is_slot and c.op_at(x) == OP_ARRAY:
            shape = c.array_entry(x)[1]
            values.append(c.array_value(x, shape))
            shapes.append(shape)
        else:  # a constant, or a scalar slot: a 0-d operand
            values.append(c.value(x) if is_slot else x)
            shapes.append(())
    return values, shapes


#: how the errors of forward over reverse's reverse sweep begin
_SECOND_ORDER = "second order (hessian, hvp): "


def _array_sweep_error(tape, exc, loc):
    """sweep_error's message for array instruction ``exc.instruction``."""
    c, i = tape._c, exc.instruction
    facts, shape, operands = c.array_entry(i)
    kind = int(facts[_native.FACT_KIND])
    name = array_op_name(kind, int(facts[_native.FACT_OP]), int(facts[_native.FACT_SIGN]))
    bad = c.bad_array()
    values, shapes = _operand_values(c, operands)
    prefix = _SECOND_ORDER if exc.sweep.startswith("second") else ""
    if bad is None:
        return FloatingPointError(f"{prefix}{'the tangent of' if exc.sweep == 'tangent' else 'backward through'} "
                                  f"{name}: nan or inf {where(loc)}")
    idx = _index(bad["element"], bad["shape"])
    if exc.sweep == "tangent":
        return FloatingPointError(f"the tangent (forward mode) of {name} is not finite ({bad['value']!r}) "
                                  f"{_at(idx, bad['shape'], 'its tangent')} {where(loc)} "
                                  f"{_array_inputs(kind, values, shape, idx, shapes)}")
    # the bad element is in an operand's adjoint (or its tangent), indexed in that operand's shape:
    # the elements of the operands that made it are named where that is the result's shape
    inputs = _array_inputs(kind if bad["shape"] == shape else -1, values, shape, idx, shapes)
    of = ("the tangent of the gradient of v" if exc.sweep == "second tangent" else "the gradient of v") \
        + str(bad["operand"])
    return FloatingPointError(f"{prefix}backward through {name} produced {bad['value']!r} "
                              f"{_at(idx, bad['shape'], of)} {where(loc)} {inputs}")


def record(tape, code, a, b, c, inputs):
    """Record one operation in checked mode and note where it was written.

    Called by the recording slow path when C answered ANOMALY: ``code`` the
    opcode, ``a``, ``b``, ``c`` its slots and constant (``Tape._c.record``),
    ``inputs`` the operand values for the message.  Returns the new handle or
    a status.
    """
    loc = caller()
    with _native.checked():
        h = tape._c.record(code, a, b, c)
    if h == _native.NONFINITE:
        base = code - {_native.KIND_VC: 1, _native.KIND_CV: 2}.get(OP_KINDS[code], 0)  # NAME_VC = NAME + 1
        value = _native.evaluate(base, *inputs)
        raise FloatingPointError(f"{OP_NAMES[base]} produced {value!r} {where(loc)} {_inputs(inputs)}")
    if h >= 0:
        note(tape, _native.slot_of_handle(h), loc)
    return h


def _instruction(tape, i):
    """(op name, operand kinds, a, b, operand values) of instruction i."""
    c = tape._c
    r = c.rows(i, i + 1, ("op", "a", "b"))
    op, a, b = int(r["op"][0]), int(r["a"][0]), int(r["b"][0])
    kinds = (OPERAND_A[op], OPERAND_B[op])
    name = OP_NAMES[op].rsplit("_", 1)[0] if OP_KINDS[op] in (_native.KIND_VC, _native.KIND_CV) else OP_NAMES[op]
    if OP_KINDS[op] == _native.KIND_LEAF:
        inputs = [c.value(i)]
    elif OP_KINDS[op] == _native.KIND_CUSTOM:  # a custom primitive: its own name and operands
        name = _native.custom_name(b)
        inputs = [c.value(x) if is_slot else x for is_slot, x in c.custom_operands(i)]
    else:
        inputs = [c.value(x) if k == OPERAND_SLOT else c.const(x) for x, k in zip((a, b), kinds)
                  if k in (OPERAND_SLOT, OPERAND_CONST)]
    return name, kinds, a, b, inputs


def sweep_error(tape, exc):
    """The FloatingPointError for a checked sweep that met a nan/inf (a
    ``NonFiniteError`` from the boundary), naming the operation and line."""
    i = exc.instruction
    loc = tape._where.get(i) if tape._where else None
    if tape._c.op_at(i) == OP_ARRAY:
        return _array_sweep_error(tape, exc, loc)
    name, kinds, a, b, inputs = _instruction(tape, i)
    if exc.sweep == "tangent":
        return FloatingPointError(f"the tangent (forward mode) of {name} is not finite {where(loc)} {_inputs(inputs)}")
    if exc.sweep.startswith("second"):  # the sweep's adjoints are its scratch, not the tape's: no value to read
        what = "the tangent of an adjoint" if exc.sweep == "second tangent" else "an adjoint"
        return FloatingPointError(f"{_SECOND_ORDER}backward through {name} made {what} nan or inf {where(loc)} "
                                  f"{_inputs(inputs)}")
    if OP_KINDS[tape._c.op_at(i)] == _native.KIND_CUSTOM:
        adjoints = [tape._c.adjoint(x) for is_slot, x in tape._c.custom_operands(i) if is_slot]
    else:
        adjoints = [tape._c.adjoint(x) for x, k in zip((a, b), kinds) if k == OPERAND_SLOT]
    bad = next((g for g in adjoints if g != g or g in (float("inf"), float("-inf"))), float("nan"))
    return FloatingPointError(f"backward through {name} produced {bad!r} {where(loc)} {_inputs(inputs)}")


def replay_error(tape, i, what):
    """The FloatingPointError for instruction i of ``tape``, not finite after
    a replay (pytape.trace); ``what`` says which replay."""
    loc = tape._where.get(i) if tape._where else None
    at = where(loc) if loc else "(trace f inside detect_anomaly() to have its line named)"
    c = tape._c
    bad = c.bad_array() if c.op_at(i) == OP_ARRAY else None
    if bad is not None:  # the element CTape.first_nonfinite found
        facts, shape, operands = c.array_entry(i)
        kind = int(facts[_native.FACT_KIND])
        name = array_op_name(kind, int(facts[_native.FACT_OP]), int(facts[_native.FACT_SIGN]))
        values, shapes = _operand_values(c, operands)
        idx = _index(bad["element"], shape)
        return FloatingPointError(f"{what}: {name} produced {bad['value']!r} {_at(idx, shape, 'its result')} {at} "
                                  f"{_array_inputs(kind, values, shape, idx, shapes)}")
    name, _, _, _, inputs = _instruction(tape, i)
    return FloatingPointError(f"{what}: {name} produced {c.value(i)!r} {at} {_inputs(inputs)}")


@contextmanager
def explain(tape):
    """Around a C sweep of ``tape``: a nan or inf that anomaly mode stopped it
    at raises FloatingPointError naming its operation and source line."""
    try:
        yield
    except NonFiniteError as exc:
        raise sweep_error(tape, exc) from None
