"""The boundary between pytape's Python and its C tape: the only module that
touches the compiled library (``lib``) and cffi (``ffi``).

What crosses it:

* the op table, read from C at import: ``OP_NAMES``, ``OP_KINDS``, the base
  ``OPCODES`` of the primitives, ``UNARY`` and ``BINARY``, ``OPERAND_A`` /
  ``OPERAND_B`` (which operands of an opcode are slots, constants or a leaf
  index), and ``RULES`` (the text of each first-derivative column);
* :class:`CTape`: one C tape, with numpy arrays in and out: rows, constants,
  reachability, the reverse, tangent, block and Hessian sweeps, replays,
  batches, compiling and loading;
* :func:`check`: every C status turned into its Python exception, here and
  nowhere else;
* the modes of the calling thread (grad, anomaly, checked recording);
* the callback of custom instructions (:func:`set_custom_handler`): C calls
  it when a sweep reaches a custom primitive (pytape/custom.py), and a
  failure comes back as the user's exception, raised by :func:`check`;
* the recording fast path's entry points and handle accessors
  (:func:`entry_points`, ``handle_value``, ``handle_adjoint``,
  ``handle_tangent``) and grad cells, handed to ``pytape/recording.py`` and
  ``pytape/var.py``, which call them directly: one C call per recorded
  operation, nothing in between.

Slots and handles: C names the entries of a tape by slot (0, 1, 2, ...).
Python's ``Var`` s hold *handles*, ``slot << ID_BITS | id``, where ``id`` is
the tape's index in C's registry of recording tapes (0 for tapes that are not
registered: compiled ones, or all ids taken).  Every :class:`CTape` method
takes and returns slots; :func:`slot_of_handle` and :meth:`CTape.handle`
convert.

>>> t = CTape(register=True)
>>> h = t.leaf(2.0, new_grad_cell())
>>> slot_of_handle(h), t.value(0), len(t)
(0, 2.0, 1)
"""
import contextlib
import functools
import math
import os
import threading
import time

import numpy as np

try:
    from ._tape_cffi import ffi, lib
except ImportError as exc:  # a source checkout that was never built
    raise ImportError(
        f"pytape's compiled module is missing from {os.path.dirname(os.path.abspath(__file__))}: "
        f"this looks like a source checkout without a build. Run `pip install -e .` (or "
        f"`python build_tape.py`) in the checkout, or run Python outside it to use an installed "
        f"pytape. ({exc})"
    ) from None

from .errors import MixedTapesError, TapeConsumedError, TapeFormatError, TapeThreadError

# ---- the op table ---------------------------------------------------------------

NUM_OPS = lib.pt_num_ops()
OP_NAMES = tuple(ffi.string(lib.pt_op_name(i)).decode() for i in range(NUM_OPS))
OP_KINDS = tuple(lib.pt_op_kind(i) for i in range(NUM_OPS))
KIND_LEAF, KIND_UNARY, KIND_VV, KIND_VC, KIND_CV, KIND_GUARD = (
    lib.PT_KIND_LEAF, lib.PT_KIND_UNARY, lib.PT_KIND_VV, lib.PT_KIND_VC, lib.PT_KIND_CV, lib.PT_KIND_GUARD)
#: base opcode of each primitive: unary ops and the (var, var) form of binary ops
OPCODES = {name: i for i, (name, kind) in enumerate(zip(OP_NAMES, OP_KINDS)) if kind in (KIND_UNARY, KIND_VV)}
UNARY = tuple(n for n, i in OPCODES.items() if OP_KINDS[i] == KIND_UNARY)
BINARY = tuple(n for n, i in OPCODES.items() if OP_KINDS[i] == KIND_VV)
#: the comparisons of guards (pytape.trace), as C numbers them
CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_EQ, CMP_NE = lib.PT_LT, lib.PT_LE, lib.PT_GT, lib.PT_GE, lib.PT_EQ, lib.PT_NE
#: the text of d(op)/d(a) and d(op)/d(b) of every opcode ("" where none), in
#: terms of a, b, y: pytape/higher_order.py records them as instructions
RULES = tuple((ffi.string(lib.pt_op_rule(op, 0)).decode(), ffi.string(lib.pt_op_rule(op, 1)).decode())
              for op in range(NUM_OPS))


#: the C text of every opcode's columns (value, d/da, d/db, d2/da2, d2/dadb, d2/db2;
#: "" where none): generated C (pytape/codegen.py) writes them out
OP_TEXTS = tuple(tuple(ffi.string(lib.pt_op_text(op, k)).decode() for k in range(6)) for op in range(NUM_OPS))


def rules_text():
    """The text of csrc/rules.h, as built into the module: the helpers those columns call."""
    return ffi.string(lib.pt_rules_text()).decode()


#: what an operand of an instruction is: nothing, a slot, a constant index,
#: a leaf index (LEAF), or a slot if >= 0 else constant -1 - b (a guard's b)
OPERAND_NONE, OPERAND_SLOT, OPERAND_CONST, OPERAND_LEAF, OPERAND_SLOT_OR_CONST = (
    lib.PT_OPERAND_NONE, lib.PT_OPERAND_SLOT, lib.PT_OPERAND_CONST, lib.PT_OPERAND_LEAF, lib.PT_OPERAND_SLOT_OR_CONST)
#: the operand kinds of operands a and b of every opcode (numpy uint8, by
#: opcode): C's own table (csrc/tape.c), which its sweeps, compiler and loader use
OPERAND_A = np.array([lib.pt_operand(op, 0) for op in range(NUM_OPS)], dtype=np.uint8)
OPERAND_B = np.array([lib.pt_operand(op, 1) for op in range(NUM_OPS)], dtype=np.uint8)


#: custom primitives (pytape/custom.py): their opcode, the kind and operand
#: kinds of custom instructions, the most operands one may have, and the modes
#: in which the callback is called
OP_CUSTOM, KIND_CUSTOM = lib.pt_custom_op(), lib.PT_KIND_CUSTOM
OPERAND_CUSTOM, OPERAND_PRIMITIVE = lib.PT_OPERAND_CUSTOM, lib.PT_OPERAND_PRIMITIVE
CUSTOM_MAX_ARGS = lib.PT_CUSTOM_MAX_ARGS
CUSTOM_VALUE, CUSTOM_VJP, CUSTOM_JVP, CUSTOM_HVP = (lib.PT_CUSTOM_VALUE, lib.PT_CUSTOM_VJP, lib.PT_CUSTOM_JVP,
                                                   lib.PT_CUSTOM_HVP)
#: array instructions (pytape/tensor.py): their opcode, kind and operand kinds
OP_ARRAY, KIND_ARRAY = lib.pt_array_op(), lib.PT_KIND_ARRAY
OPERAND_ARRAY, OPERAND_ARRAY_KIND = lib.PT_OPERAND_ARRAY, lib.PT_OPERAND_ARRAY_KIND
#: custom primitives' names by id (pytape/custom.py fills it), for tables and messages
CUSTOM_NAMES = {}


def custom_name(fn):
    """The name of the custom primitive with id ``fn`` (b of its instructions)."""
    return CUSTOM_NAMES.get(fn, f"custom#{fn}")


def operand_is_slot(kinds, values):
    """Which operands (their kinds and values, numpy arrays) are slots."""
    return (kinds == OPERAND_SLOT) | ((kinds == OPERAND_SLOT_OR_CONST) & (values >= 0))


def evaluate(code, *operands):
    """The value rule of opcode ``code`` (a base opcode) at plain numbers, nothing recorded."""
    return lib.pt_eval1(code, *operands) if len(operands) == 1 else lib.pt_eval2(code, *operands)


# ---- handles ------------------------------------------------------------------------

ID_BITS = lib.PT_ID_BITS


def slot_of_handle(h):
    """The slot a handle names."""
    return h >> ID_BITS


# ---- C status -> Python exception, in one place ------------------------------------

#: pt_tape_bad_sweep's answer after a second-order call -> NonFiniteError.sweep
_SECOND_ORDER_SWEEPS = {lib.PT_BAD_TANGENT: "tangent", lib.PT_BAD_ADJOINT: "second adjoint",
                        lib.PT_BAD_ADJOINT_TAN: "second tangent"}


class NonFiniteError(FloatingPointError):
    """Anomaly mode stopped a sweep at a nan or inf: ``instruction`` is where.
    The callers (who know the source lines) turn it into a FloatingPointError
    naming the operation and line: ``pytape.anomaly.explain``."""

    def __init__(self, instruction, sweep):
        what = {"backward": "an adjoint", "tangent": "a tangent", "second adjoint": "an adjoint (second order)",
                "second tangent": "the tangent of an adjoint (second order)"}[sweep]
        super().__init__(f"pytape: {what} is nan or inf at instruction {instruction} (anomaly mode)")
        self.instruction, self.sweep = instruction, sweep


_CONSUMED_HINTS = {
    "backward": (
        "backward() has already run through this tape and released it. "
        "To call backward() more than once on the same graph, pass "
        "retain_graph=True to every call but the last."
    ),
    "tangent": (
        "backward() has already run through this tape and released it, so no "
        "tangent sweep can run on it either. Pass retain_graph=True to backward() "
        "to keep the tape for tangent_sweep(), or run tangent_sweep() first."
    ),
    "record": (
        "this Var was computed on a tape that backward() has consumed, so it "
        "cannot take part in new operations. Keep the graph with "
        "backward(retain_graph=True), or start from its number: x.detach() "
        "(a constant) or pytape.Var(x.value) (a new leaf)."
    ),
}
_DIFFERENT_TAPES = (
    "these two Vars were recorded on different tapes and cannot be "
    "combined; compute them on one tape, or pass a value across with "
    "x.detach() / pytape.Var(x.value)"
)


class CustomRuleError(RuntimeError):
    """A custom primitive's rule raised while C called back into Python; the
    rule's own exception is re-raised instead when it is known (check)."""


def check(status, what="record", tape=None):
    """Raise the exception for a negative C status; return a non-negative one.

    ``what`` is the kind of call, for the message: ``"record"``,
    ``"backward"`` (a reverse sweep), ``"tangent"`` (a forward sweep),
    ``"read"`` (reading adjoints or tangents), ``"load"`` (a tape from
    arrays); ``tape`` the :class:`CTape` it concerned.

    >>> check(0)
    0
    >>> check(lib.PT_E_CONSUMED, "backward")
    Traceback (most recent call last):
    pytape.errors.TapeConsumedError: backward() has already run through this tape and released it. ...
    """
    if status >= 0:
        return status
    if status == lib.PT_E_CALLBACK:
        exc = getattr(_pending, "exc", None)
        _pending.exc = None
        if exc is None:
            raise CustomRuleError("pytape: a custom primitive's rule failed during a sweep")
        raise exc
    if status == lib.PT_E_BUSY:
        raise RuntimeError(
            "pytape: a custom primitive's rule used the tape whose sweep is calling it (recording on it, "
            "or a backward, tangent or replay of it); a rule computes numbers from its arguments only")
    if status == lib.PT_E_NOMEM:
        if what == "backward":
            raise MemoryError("pytape: out of memory allocating the adjoints for backward(); "
                              "the tape is unchanged and backward() can be retried")
        if what == "tangent":
            raise MemoryError("pytape: out of memory allocating the tangents for a forward (tangent) sweep; "
                              "the tape is unchanged and the sweep can be retried once memory is freed")
        if what == "hvp":
            raise MemoryError("pytape: out of memory allocating the buffers of a Hessian-vector product "
                              "(forward over reverse); the tape is unchanged and the sweep can be retried "
                              "once memory is freed")
        raise MemoryError("pytape: out of memory while growing the tape; the tape is unchanged")
    if status == lib.PT_E_FULL:
        raise MemoryError("pytape: the tape reached its maximum of 2**31 - 1 slots")
    if status == lib.PT_E_CONSUMED:
        raise TapeConsumedError(_CONSUMED_HINTS.get(what, _CONSUMED_HINTS["record"]))
    if status == lib.PT_E_THREAD:
        owner = f"thread {_thread_name(tape.owner)}" if tape is not None else "another thread"
        if what == "read":
            raise TapeThreadError(
                f"this tape is recorded by {owner}, and only that thread may read its adjoints "
                f"and tangents (tape.table(), to_dot(), render(), .grad and .tangent of its results): "
                f"its backward() may replace them meanwhile. Call them in that thread; values "
                f"(x.value) are readable from any thread."
            )
        raise TapeThreadError(
            f"this tape is recorded by {owner}; pytape records each "
            f"thread on its own tape and never shares one between threads. "
            f"Pass numbers (x.value) or detached copies (x.detach()) between "
            f"threads, and call backward() in the thread that recorded."
        )
    if status == lib.PT_E_TAPES:
        raise MixedTapesError(_DIFFERENT_TAPES)
    if status == lib.PT_E_SHAPE:
        raise ValueError("pytape: the operands' shapes or parameters do not fit this array operation "
                         "(the tape is unchanged)")
    if status == lib.PT_E_ARRAY:
        raise NotImplementedError(
            "pytape: this tape holds array operations (pytape.Tensor), which this sweep does not take yet: "
            "the 64-wide Jacobian and Hessian blocks, pytape.trace replays and batches, and saved tapes work "
            "on scalar tapes only. On array programs use backward(), pytape.grad, value_and_grad, vjp, jvp, "
            "jacobian, hessian and hvp; or record the program element by element on object arrays of Vars "
            "(pytape.ops.VarArray)")
    if status == lib.PT_E_DENSE:
        raise MemoryError(
            f"pytape: the {what} is too dense for sparsity detection: its index sets passed "
            f"{lib.PT_SPARSITY_LIMIT} entries. A derivative this dense is cheaper as a dense one "
            f"(pytape.jacobian, pytape.hessian)")
    if status == lib.PT_E_NONFINITE:
        if tape is not None and what in ("backward", "tangent"):
            raise NonFiniteError(tape.bad, what)
        if tape is not None and what == "hvp":  # which of forward over reverse's sweeps stopped
            raise NonFiniteError(tape.bad, _SECOND_ORDER_SWEEPS[lib.pt_tape_bad_sweep(tape._p)])
        raise FloatingPointError("pytape: a value is nan or inf (anomaly mode)")
    if status == lib.PT_E_ANOMALY:
        raise FloatingPointError("pytape: a value is nan or inf (anomaly mode)")
    if status == lib.PT_E_OP and what == "load":
        raise TapeFormatError("not a pytape compiled function: its instructions break the tape's invariants")
    if status == lib.PT_E_SLOT:
        raise IndexError("pytape: slot outside the tape (internal error, please report)")
    if status == lib.PT_E_OP:
        raise ValueError("pytape: opcode of the wrong kind (internal error, please report)")
    if status in (lib.PT_E_NOGRAD, lib.PT_E_HANDLE, lib.PT_E_GUARD, lib.PT_E_LARGE):
        raise RuntimeError(f"pytape: status {status} reached check() (internal error, please report)")
    raise RuntimeError(f"pytape: unexpected status {status}")


def _thread_name(ident):
    """A thread's id and, while it runs, its name: ``140... ('MainThread')``."""
    for th in threading.enumerate():
        if th.ident == ident:
            return f"{ident} ({th.name!r})"
    return f"{ident} (no longer running)"


#: statuses the recording layer looks at before calling check()
NOGRAD, ANOMALY, TAPES, NONFINITE, THREAD = (lib.PT_E_NOGRAD, lib.PT_E_ANOMALY, lib.PT_E_TAPES,
                                            lib.PT_E_NONFINITE, lib.PT_E_THREAD)

# ---- modes of the calling thread ------------------------------------------------------

set_grad_enabled = lib.pt_set_grad_enabled   # pytape.no_grad
set_anomaly = lib.pt_set_anomaly             # pytape.detect_anomaly


def grad_enabled():
    """True unless recording is off in this thread (``pytape.no_grad``)."""
    return bool(lib.pt_grad_enabled())


def anomaly_enabled():
    """True in anomaly mode in this thread."""
    return bool(lib.pt_anomaly_enabled())


@contextlib.contextmanager
def checked():
    """Record in checked mode: a value that is not finite answers NONFINITE."""
    lib.pt_set_checked(1)
    try:
        yield
    finally:
        lib.pt_set_checked(0)


# ---- custom primitives: the callback ----------------------------------------------------

#: the exception a custom rule raised in this thread, for check() to re-raise
_pending = threading.local()
_custom_handler = [None]


def set_custom_handler(handler):
    """``handler(mode, fn, i, xs, slots, y, lanes)`` answers C's calls for
    custom instructions (pytape/custom.py): ``mode`` CUSTOM_VALUE (return
    f(xs)), CUSTOM_VJP (``lanes`` the cotangents of y; return, per operand,
    a list of what each lane adds to its adjoint), CUSTOM_JVP (``lanes`` per
    operand, its tangents; return the tangents of y) or CUSTOM_HVP
    (``lanes`` = (g, tangents of g, per operand its tangents); return (per
    operand its adjoint's share, per operand the lanes of its adjoint's
    tangent)); ``fn`` the primitive's id, ``i`` the instruction, ``xs`` the
    operand values, ``slots[j]`` whether operand j is a slot (else a
    constant).  Pointers into C are read here, never by the handler."""
    _custom_handler[0] = handler


@ffi.def_extern()
def pt_py_custom(mode, fn, i, nargs, slots, x, y, lanes, inp, out):
    """C's call for a custom instruction (pytape.h: pt_custom_fn): 0, or -1
    with the exception kept for check() to raise in the caller."""
    try:
        xs = [x[j] for j in range(nargs)]
        mask = [bool(slots >> j & 1) for j in range(nargs)]
        handler = _custom_handler[0]
        if mode == CUSTOM_VALUE:
            out[0] = float(handler(mode, fn, i, xs, mask, y, None))
        elif mode == CUSTOM_VJP:
            res = handler(mode, fn, i, xs, mask, y, [inp[k] for k in range(lanes)])
            for j in range(nargs):
                for k in range(lanes):
                    out[j * lanes + k] = res[j][k]
        elif mode == CUSTOM_JVP:
            lanes_in = [[inp[j * lanes + k] for k in range(lanes)] for j in range(nargs)]
            res = handler(mode, fn, i, xs, mask, y, lanes_in)
            for k in range(lanes):
                out[k] = res[k]
        else:  # CUSTOM_HVP
            tangents = [[inp[1 + lanes + j * lanes + k] for k in range(lanes)] for j in range(nargs)]
            shares, lanes_out = handler(mode, fn, i, xs, mask, y, (inp[0], [inp[1 + k] for k in range(lanes)],
                                                                   tangents))
            for j in range(nargs):
                out[j] = shares[j]
                for k in range(lanes):
                    out[nargs + j * lanes + k] = lanes_out[j][k]
        return 0
    except BaseException as exc:  # noqa: B902  (KeyboardInterrupt too: raised again by check())
        _pending.exc = exc
        return -1


lib.pt_set_custom_callback(lib.pt_py_custom)

_custom_array_handler = [None]


def set_custom_array_handler(handler):
    """``handler(mode, key, call)`` answers C's calls for custom primitives on
    arrays (pytape/custom.py): ``mode`` CUSTOM_VJP, CUSTOM_JVP or CUSTOM_HVP,
    ``key`` Python's record of the call, ``call`` an :class:`ArrayCall`
    (numpy views of the operands, result, cotangent and output buffers)."""
    _custom_array_handler[0] = handler


class ArrayCall:
    """The buffers of one callback for a custom array instruction, as numpy
    views of shapes the handler knows (valid during the callback only): the
    operands' values ``val(j, shape)`` and tangents ``tan(j, shape)`` (None:
    zero), the result ``y(shape)``, the cotangent ``g(shape)``, and the
    writable outputs ``out(j, shape)`` (None: not needed), which the handler
    adds its answers to."""

    __slots__ = ("_vals", "_tans", "_y", "_g", "_outs")

    def __init__(self, vals, tans, y, g, outs):
        self._vals, self._tans, self._y, self._g, self._outs = vals, tans, y, g, outs

    @staticmethod
    def _at(p, shape, writable=False):
        if p == ffi.NULL:
            return None
        n = 1
        for d in shape:
            n *= d
        a = np.frombuffer(ffi.buffer(p, 8 * n), dtype=np.float64).reshape(shape)
        if not writable:
            a.flags.writeable = False
        return a

    def val(self, j, shape):
        return self._at(self._vals[j], shape)

    def tan(self, j, shape):
        return self._at(self._tans[j], shape)

    def y(self, shape):
        return self._at(self._y, shape)

    def g(self, shape):
        return self._at(self._g, shape)

    def out(self, j, shape):
        return self._at(self._outs[j], shape, True)


@ffi.def_extern()
def pt_py_custom_array(mode, key, nargs, vals, tans, y, g, outs):
    """C's call for a custom array instruction (pytape.h: pt_custom_array_fn):
    0, or -1 with the exception kept for check() to raise in the caller."""
    try:
        _custom_array_handler[0](mode, key, ArrayCall(vals, tans, y, g, outs))
        return 0
    except BaseException as exc:  # noqa: B902  (KeyboardInterrupt too: raised again by check())
        _pending.exc = exc
        return -1


lib.pt_set_custom_array_callback(lib.pt_py_custom_array)


def arr_custom(handles, value, key):
    """A custom array instruction on operand handles with value ``value`` (a
    float64 array, copied) and Python's record ``key``: its handle or a status."""
    v = np.ascontiguousarray(value, dtype=np.float64)
    return lib.pt_arr_custom(len(handles), ffi.new("int64_t[]", handles), v.ndim, _dims(v.shape),
                             _f64(v.reshape(-1)) if v.size else ffi.NULL, key)

# ---- the recording fast path's tools ---------------------------------------------------

#: new_grad_cell(): a leaf's grad cell, one double the reverse sweep adds
#: the leaf's adjoint to (a partial: no Python frame for every leaf made)
new_grad_cell = functools.partial(ffi.new, ffi.typeof("double[1]"))


#: set_grad(cell, g): a grad cell's new value, under the lock of the sweeps
#: that add to grad cells (another thread's backward() never loses it)
set_grad = lib.pt_grad_set


def add_grads(cells, g):
    """cells[k][0] += g[k] for every grad cell, under the sweeps' lock: adds
    to a leaf's gradient from any thread are never lost.

    >>> c = new_grad_cell(); add_grads([c, c], [1.0, 2.0]); c[0]
    3.0
    """
    n = len(cells)
    lib.pt_grad_add(n, ffi.new("double *[]", cells), ffi.new("double[]", [float(x) for x in g]))


def entry_points(name):
    """The C recording entry points of primitive ``name``: (rec, rec_vc,
    rec_cv), the last two None for a unary op.  They take and return handles."""
    entry = f"pt_rec_{name.upper()}"
    return getattr(lib, entry), getattr(lib, entry + "_VC", None), getattr(lib, entry + "_CV", None)


#: a slot's value, adjoint and tangent by handle; nan where a tape must be asked
handle_value = lib.pt_value_h
handle_adjoint = lib.pt_adjoint_h
handle_tangent = lib.pt_tangent_h


# ---- array instructions (pytape/tensor.py) ---------------------------------------------

#: the kinds of array instructions (csrc/pytape.h: enum pt_array_kind) by name
ARRAY_KINDS = {name: getattr(lib, "PT_A_" + name) for name in
               ("CONST", "LEAF", "MAP1", "MAP2", "SUM", "VIEW", "GATHER", "MATMUL", "MAX", "PROD", "CUMSUM",
                "CONCAT", "CUSTOM", "SCATTER")}
ARRAY_MAX_DIMS = lib.PT_ARRAY_MAX_DIMS
#: the kinds by number, in lower case (the names tables and messages give them)
ARRAY_KIND_NAMES = {number: name.lower() for name, number in ARRAY_KINDS.items()}
#: the columns of CTape.array_facts() and array_entry()'s facts (csrc/pytape.h: enum pt_arr_fact)
FACT_SLOT, FACT_KIND, FACT_OP, FACT_SIGN, FACT_NDIM, FACT_NARGS, FACT_SIZE = (
    lib.PT_FACT_SLOT, lib.PT_FACT_KIND, lib.PT_FACT_OP, lib.PT_FACT_SIGN, lib.PT_FACT_NDIM, lib.PT_FACT_NARGS,
    lib.PT_FACT_SIZE)
FACT_VALUE_BYTES, FACT_ADJOINT_BYTES, FACT_TANGENT_BYTES = (lib.PT_FACT_VALUE_BYTES, lib.PT_FACT_ADJOINT_BYTES,
                                                            lib.PT_FACT_TANGENT_BYTES)


def array_op_name(kind, op, sign=0):
    """The name of an array instruction's operation: its op-table row's for
    MAP1 / MAP2 (``exp``, ``mul``), ``min`` for a MAX of sign -1, else its
    kind's (``sum``, ``matmul``, ``view``, ``leaf``, ...).

    >>> array_op_name(ARRAY_KINDS["MAP1"], OPCODES["exp"]), array_op_name(ARRAY_KINDS["MAX"], -1, -1)
    ('exp', 'min')
    """
    if kind in (lib.PT_A_MAP1, lib.PT_A_MAP2):
        return OP_NAMES[op]
    if kind == lib.PT_A_MAX and sign < 0:
        return "min"
    return ARRAY_KIND_NAMES.get(kind, f"array#{kind}")


E_SHAPE = lib.PT_E_SHAPE
#: pt_arr_map1's answer for an operand whose values numpy computes (tensor.map1)
E_LARGE = lib.PT_E_LARGE
#: elements from which an array result is watched and its buffers recycled (csrc/array.h)
RECYCLE_MIN = lib.PT_RECYCLE_MIN
#: int64 facts per entry of a saved array table (csrc/pytape.h: pt_saved_arrays)
SAVED_N, SAVED_KIND, SAVED_NDIM = lib.PT_SAVED_N, lib.PT_SAVED_KIND, lib.PT_SAVED_NDIM
#: the elementwise entry points, handles in and out: (code, ha), (code, ha, hb),
#: (code, ha, double), (code, double, hb)
arr_map1, arr_map2, arr_map2_vc, arr_map2_cv = lib.pt_arr_map1, lib.pt_arr_map2, lib.pt_arr_map2_vc, lib.pt_arr_map2_cv
#: SUM of an array handle over all its axes: (ha)
arr_sum_all = lib.pt_arr_sum_all


def arr_map1_given(code, h, value):
    """A MAP1 instruction on handle h whose value is the float64 C-contiguous
    array ``value`` (of the operand's size), computed by the caller."""
    return lib.pt_arr_map1_given(code, h, _f64(value))


def on_unregistered(tape, fn, *args):
    """fn(*args) with handles of id 0 naming ``tape`` (a tape that got no id:
    more tapes are alive than ids) in this thread."""
    lib.pt_set_unregistered(tape._p)
    try:
        return fn(*args)
    finally:
        lib.pt_set_unregistered(ffi.NULL)


#: added to the handle an array recording returns when Python should watch
#: the result (csrc/pytape.h: PT_WATCH_SHIFT); the result's handle is h - WATCH
WATCH = 1 << lib.PT_WATCH_SHIFT
#: added too, in anomaly mode, to every recorded result's handle (not a
#: leaf's or a constant's): Python notes its source line (tensor._result)
NOTE = 1 << lib.PT_NOTE_SHIFT


def arr_drop(p, slot, _ref=None, _drop=lib.pt_arr_drop):
    """Tell C tape p that the result object of array ``slot`` died (a weak
    reference's callback: tensor.py _watch; the C function is bound here, so
    a result that dies while the interpreter shuts down still reaches it)."""
    _drop(p, slot)


def arr_shape(h):
    """The shape of the array instruction of handle h (() for a scalar slot)."""
    # a buffer per call: another thread may run between the call and the read
    buf = ffi.new("int64_t[]", lib.PT_ARRAY_MAX_DIMS)
    n = check(lib.pt_arr_shape(h, buf), "read")
    return tuple(buf[0:n]) if n > 0 else ()


def _dims(shape):
    return ffi.new("int64_t[]", tuple(shape) or (1,))


def arr_const(tape, a, borrow=False):
    """A CONST instruction holding float64 C-contiguous array a (a copy; with
    ``borrow``, a itself, which the caller keeps alive and unchanged as long
    as the tape): its handle or a status."""
    return lib.pt_arr_const(tape._p, a.ndim, _dims(a.shape), _f64(a), int(borrow))


def leaf_arguments(a, grad):
    """arr_placed's cffi arguments for a Tensor leaf's value a (float64,
    C-contiguous) and grad array (None: a constant), made once and reused
    while the leaf keeps these arrays: they cost more than the C call."""
    return a, _dims(a.shape), _f64(a), None if grad is None else ffi.cast("double *", _f64(grad))


def arr_placed(tape, args, state):
    """A Tensor leaf on ``tape`` without a copy (args: leaf_arguments): its
    array LEAF (grad state cell ``state``), or a CONST for a constant; its
    handle or a status.  The caller keeps the arrays alive and unchanged as
    long as the tape."""
    a, dims, value, grad = args
    if grad is None:
        return lib.pt_arr_const(tape._p, a.ndim, dims, value, 1)
    return lib.pt_arr_leaf(tape._p, a.ndim, dims, value, grad, state, 1)


#: new_grad_state(): an array leaf's grad state cell (pytape.h: enum
#: pt_grad_state): GRAD_ZERO = its grad is zero (the array's memory stale),
#: GRAD_HELD = the array holds it, GRAD_CLAIMED = a sweep is writing it
new_grad_state = functools.partial(ffi.new, ffi.typeof("int64_t[1]"))
GRAD_ZERO, GRAD_HELD = lib.PT_GRAD_ZERO, lib.PT_GRAD_HELD


def arr_grad_set(grad, state, src=None, zero=False):
    """Under backward's lock, once no sweep writes grad directly: grad = src
    (a float64 C-contiguous array of its size); zero=True: the grad is zero
    (the cell only); else the zeros a zero cell stands for written out."""
    lib.pt_arr_grad_set(ffi.cast("double *", _f64(grad)), -1 if zero else grad.size, state,
                        ffi.NULL if src is None else ffi.cast("double *", _f64(src)))


def arr_record(kind, handles, shape, par):
    """One array instruction of ``kind`` on operand handles: its handle or a status."""
    p = np.ascontiguousarray(par, dtype=np.int64)
    return lib.pt_arr_record(kind, len(handles), ffi.new("int64_t[]", handles), len(shape), _dims(shape),
                             p.size, _i64(p) if p.size else ffi.NULL)


class _Memory:
    """numpy's array interface over tape memory, holding the tape's owner alive."""

    __slots__ = ("__array_interface__", "_owner")

    def __init__(self, owner, pointer, shape):
        self._owner = owner
        self.__array_interface__ = {"shape": shape, "typestr": "<f8", "version": 3,
                                    "data": (int(ffi.cast("uintptr_t", pointer)), True)}


#: elements from which arrays come from the tapes' allocator (its cache
#: holds blocks of 8 KB and more, csrc/array.c; smaller arrays, down to
#: 8 KB, might gain too: not measured against the cost of the wrapper)
ALLOC_FROM = 16384


def arr_empty(shape, size):
    """An uninitialised float64 array of ``shape`` (``size`` elements): from
    the tapes' allocator from ALLOC_FROM elements on (a freed block is
    reused without page faults), else numpy's; MemoryError when there is none."""
    if size < ALLOC_FROM:
        return np.empty(shape)
    p = lib.pt_arr_alloc(size)
    if p == ffi.NULL:
        raise MemoryError(f"pytape: no memory for an array of {size} float64 elements")
    p = ffi.gc(p, lambda q, n=size: lib.pt_arr_release(q, n), size * 8)
    return np.frombuffer(ffi.buffer(p, size * 8), dtype=np.float64).reshape(shape)


def _tape_array(owner, pointer, shape, copy):
    if pointer == ffi.NULL:
        return None
    a = np.asarray(_Memory(owner, pointer, tuple(shape)))
    return np.array(a) if copy else a


def arr_value_now(h, shape, size):
    """The value of array handle h (``size`` elements, at least one) as a
    numpy view for immediate use: unlike arr_value it does not hold the
    result alive, so the caller reads it while it holds the result (a fifth
    of arr_value's cost: tensor.map1 hands it to numpy's loops)."""
    return np.frombuffer(ffi.buffer(lib.pt_arr_value(h), size * 8)).reshape(shape)


def arr_value(owner, h, shape):
    """The value of array handle h: a read-only view of the tape's memory
    that keeps ``owner`` alive (TensorResult.value passes the result
    itself: its slot is not recycled while the view lives)."""
    return _tape_array(owner, lib.pt_arr_value(h), shape, False)


def arr_adjoint(owner, tape, slot, shape):
    """A copy of the adjoint of array ``slot`` from the last reverse sweep, or None (zero)."""
    return _tape_array(owner, lib.pt_arr_adjoint(tape._p, slot), shape, True)


def arr_tangent(owner, tape, slot, shape):
    """A copy of the tangent of array ``slot`` from the last tangent sweep, or None (zero)."""
    return _tape_array(owner, lib.pt_arr_tangent(tape._p, slot), shape, True)


#: the seed of a one-element output's sweep: read only
_ONE = ffi.new("double[1]", [1.0])


def backward_array(tape, slot, seed, retain):
    """The reverse sweep from array ``slot`` seeded with float64 array ``seed``
    (None: 1, for a one-element output)."""
    check(lib.pt_backward_array(tape._p, slot, _ONE if seed is None else _f64(seed), int(bool(retain))),
          "backward", tape)


def backward_adjoints(tape, slot, seed):
    """The reverse sweep from ``slot`` (seed: a float for a scalar slot, a
    float64 array of an array slot's size) that leaves the leaves' grads
    alone and the tape retained: the adjoints stay on the tape."""
    if isinstance(seed, np.ndarray):
        st = lib.pt_backward_adjoints(tape._p, slot, 0.0, _f64(seed))
    else:
        st = lib.pt_backward_adjoints(tape._p, slot, float(seed), ffi.NULL)
    check(st, "backward", tape)


def tangent_sweep_arrays(tape, slots, seeds, aslots, aseeds):
    """The tangent sweep with seeds for scalar LEAF slots and array LEAF slots
    (aseeds: one float64 array per array slot)."""
    slots = np.ascontiguousarray(slots, dtype=np.int64)
    seeds = np.ascontiguousarray(seeds, dtype=np.float64)
    aslots = np.ascontiguousarray(aslots, dtype=np.int64)
    flat = np.concatenate([np.ravel(s) for s in aseeds]) if len(aseeds) else np.zeros(0)
    offs = np.cumsum([0] + [np.size(s) for s in aseeds[:-1]]).astype(np.int64) if len(aseeds) else np.zeros(0, np.int64)
    check(lib.pt_forward_tangent_arrays(tape._p, slots.size, _i64(slots), _f64(seeds), aslots.size, _i64(aslots),
                                        _i64(offs), _f64(np.ascontiguousarray(flat, dtype=np.float64))),
          "tangent", tape)


def hvp_arrays(tape, out, slots, seeds, aslots, sizes, aflat, ares):
    """H v on a tape with arrays: the tangent sweep seeded on scalar LEAF
    ``slots`` (``seeds``) and array leaves ``aslots`` (their seeds one after
    another in the float64 array ``aflat``, ``sizes`` elements each), then
    forward over reverse from ``out`` (a scalar slot or a one-element array
    slot).  Writes the arrays' H v into ``ares`` (laid out as ``aflat``) and
    returns the scalars'."""
    slots = np.ascontiguousarray(slots, dtype=np.int64)
    seeds = np.ascontiguousarray(seeds, dtype=np.float64)
    aslots = np.ascontiguousarray(aslots, dtype=np.int64)
    offs = np.cumsum([0] + list(sizes[:-1]), dtype=np.int64) if len(sizes) else np.zeros(0, np.int64)
    sres = np.zeros(slots.size)
    check(lib.pt_hvp_arrays(tape._p, out, slots.size, _i64(slots), _f64(seeds), aslots.size, _i64(aslots),
                            _i64(offs), _f64(np.ascontiguousarray(aflat, dtype=np.float64)), _f64(sres), _f64(ares)),
          "hvp", tape)
    return sres


def _numpy_openblas():
    """The paths of the OpenBLAS libraries numpy's wheels bundle (numpy.libs)."""
    import glob
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    return sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*")))


def _find_dgemm():
    """A BLAS dgemm already in this process, as (address, ilp64, where): the
    OpenBLAS that numpy's wheels bundle (numpy.libs, 64-bit integers, symbol
    scipy_dgemm_64_), else scipy's (scipy.linalg.cython_blas exports its
    function pointers as capsules), else None: pytape's own loops."""
    import ctypes
    for path in _numpy_openblas():
        for symbol, ilp64 in (("scipy_dgemm_64_", True), ("dgemm_64_", True)):
            try:
                f = getattr(ctypes.CDLL(path), symbol)
            except (OSError, AttributeError):
                continue
            return ctypes.cast(f, ctypes.c_void_p).value, ilp64, f"numpy's OpenBLAS ({os.path.basename(path)})"
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    capsule = cython_blas.__pyx_capi__.get("dgemm")
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return get(capsule, name(capsule)), False, "scipy.linalg.cython_blas"


def blas_threads(n):
    """Set the threads of numpy's bundled OpenBLAS (pytape's and numpy's matrix
    products) to n; the previous count, or None where that OpenBLAS is not
    found (the benchmarks run every engine on one thread)."""
    import ctypes
    for path in _numpy_openblas():
        try:
            so = ctypes.CDLL(path)
            get, put = so.scipy_openblas_get_num_threads64_, so.scipy_openblas_set_num_threads64_
        except (OSError, AttributeError):
            continue
        put.argtypes = [ctypes.c_int]
        old = get()
        put(n)
        return old
    return None


def use_blas(found):
    """Make matrix products call the BLAS dgemm ``found`` ((address, ilp64,
    where) as _find_dgemm gives, or None for pytape's own loops)."""
    global BLAS
    if found is None:
        lib.pt_set_dgemm(ffi.NULL, 0)
        BLAS = "pytape's own loops (no BLAS found)"
    else:
        lib.pt_set_dgemm(ffi.cast("void *", found[0]), int(found[1]))
        BLAS = found[2]


#: where matrix products go: a BLAS found in the process, or pytape's loops
BLAS = None
if os.environ.get("PYTAPE_BLAS", "") == "0":
    use_blas(None)
else:
    use_blas(_find_dgemm())


# ---- one C tape --------------------------------------------------------------------------

def _match_addresses(wanted, slots, addr):
    """For each address in ``wanted``, the slots (ascending) whose entry in
    ``addr`` is that address."""
    want = np.array(wanted, dtype=np.uint64)
    order = np.argsort(want, kind="stable")
    pos = np.searchsorted(want[order], addr)
    hit = pos < len(want)
    hit[hit] = want[order][pos[hit]] == addr[hit]
    out = [[] for _ in wanted]
    for k, s in zip(order[pos[hit]], slots[hit]):
        out[k].append(int(s))
    return out


def _i64(a):
    return ffi.from_buffer("int64_t[]", a)


def _f64(a):
    return ffi.from_buffer("double[]", a)


def _slots(xs):
    return np.ascontiguousarray(xs, dtype=np.int64)


def _doubles(xs):
    return np.ascontiguousarray(xs, dtype=np.float64)


#: a long batch replay runs as C calls of about this many seconds each, so that
#: a signal is handled between two: Ctrl-C (KeyboardInterrupt) takes effect
#: within about this time, not at the end of the batch
CHUNK_SECONDS = 0.1
#: rows x instructions per thread of one C call before the first is timed: a
#: batch up to this size is one call, as before (a few ms at most)
CHUNK_WORK = 1 << 21


def _row_chunks(n, threads, *arrays):
    """The arrays (rows first) of a batch replay on a tape of ``n``
    instructions, cut into row ranges, one C call each: whole when the batch
    is small, else ranges of about CHUNK_SECONDS, the rows of each set from
    the time of the last (growing at most 8-fold a call)."""
    rows = len(arrays[0])
    step = max(1, CHUNK_WORK * max(1, threads) // max(1, n))
    if step >= rows:
        yield arrays
        return
    r0 = 0
    while r0 < rows:
        r1 = min(rows, r0 + step)
        start = time.perf_counter()
        yield tuple(a[r0:r1] for a in arrays)
        took = time.perf_counter() - start
        step = max(1, min(8 * step, int(step * CHUNK_SECONDS / took) if took > 0 else 8 * step))
        r0 = r1


_COLUMNS = (("op", np.uint16, "uint16_t[]"), ("a", np.int32, "int32_t[]"), ("b", np.int32, "int32_t[]"),
            ("val", np.float64, "double[]"), ("adj", np.float64, "double[]"))


def colour_columns(csr, csc, skip_rows=None):
    """A greedy distance-2 colouring of the columns of a pattern (a
    scipy.sparse matrix given as CSR and CSC): columns sharing a row (other
    than those with skip_rows set) get different colours.  (colours, count).

    >>> import scipy.sparse as sp
    >>> J = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]))
    >>> colour_columns(J, J.tocsc())
    (array([0, 1, 0, 1]), 2)
    """
    n = csr.shape[1]
    colour = np.zeros(n, dtype=np.int64)
    skip = ffi.NULL if skip_rows is None else ffi.from_buffer("uint8_t[]", np.ascontiguousarray(skip_rows, np.uint8))
    count = check(lib.pt_colour_columns(n, *(_i64(_slots(a)) for a in (csr.indptr, csr.indices, csc.indptr,
                                                                         csc.indices)), skip, _i64(colour)))
    return colour, count


def colour_star(csr, skip=None):
    """A greedy star colouring of a symmetric pattern (CSR): vertices with
    ``skip`` set are left out (colour -1).  (colours, count).

    >>> import scipy.sparse as sp
    >>> H = sp.csr_matrix(np.eye(5) + np.eye(5, k=1) + np.eye(5, k=-1))   # tridiagonal
    >>> colour_star(H)
    (array([0, 1, 2, 0, 1]), 3)
    """
    n = csr.shape[0]
    colour = np.zeros(n, dtype=np.int64)
    sk = ffi.NULL if skip is None else ffi.from_buffer("uint8_t[]", np.ascontiguousarray(skip, np.uint8))
    count = check(lib.pt_colour_star(n, _i64(_slots(csr.indptr)), _i64(_slots(csr.indices)), sk, _i64(colour)))
    return colour, count


class CTape:
    """One C tape (``pt_tape``), freed with this object; numpy arrays in and out.

    Methods take and return slots.  A tape made with ``register=True`` gets an
    id for handles (:meth:`handle`); recording tapes do, compiled and loaded
    ones do not need one.

    >>> t = CTape(register=True)
    >>> x = slot_of_handle(t.leaf(3.0, new_grad_cell()))
    >>> y = slot_of_handle(t.record(OPCODES["mul"] + 1, x, 0, 2.0))   # mul_vc: v0 * 2.0
    >>> t.value(y), [OP_NAMES[op] for op in t.rows(0, 2)["op"]]
    (6.0, ['leaf', 'mul_vc'])
    >>> t.backward_block([y], [[1.0]], [x]).tolist()
    [[2.0]]
    """

    __slots__ = ("_p", "id", "leaf", "record")

    def __init__(self, register=False, _pointer=None):
        p = lib.pt_tape_new() if _pointer is None else _pointer
        if p == ffi.NULL:
            raise MemoryError("pytape: could not allocate a tape")
        self._p = ffi.gc(p, lib.pt_tape_free)
        self.id = lib.pt_tape_register(p) if register else 0
        # the recording slow path's two entry points, bound to this tape: no
        # Python frame between the caller and C (a leaf's first use of a tape,
        # an operation by the explicit path)
        #   leaf(value, cell): a LEAF with its grad cell; its handle or a negative status
        #   record(code, a, b, c): opcode code on slots a, b (c: the constant of
        #       a *_vc / *_cv form); its handle or a negative status
        self.leaf = functools.partial(lib.pt_leaf, self._p)
        self.record = functools.partial(lib.pt_record, self._p)

    def handle(self, slot):
        """The handle naming ``slot`` of this tape."""
        return slot << ID_BITS | self.id

    # ---- sizes and state ----------------------------------------------------------

    def __len__(self):
        return lib.pt_tape_len(self._p)

    @property
    def nleaves(self):
        return lib.pt_tape_nleaves(self._p)

    @property
    def nconsts(self):
        return lib.pt_tape_nconsts(self._p)

    def leaf_slots(self, cells):
        """For each grad cell in ``cells``, the ascending LEAF slots of its leaf
        on this tape ([] if it is not there): a leaf that came back to a tape
        after being used on another has two, and its gradient sums them."""
        n = self.nleaves
        slots, addr = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint64)
        lib.pt_tape_leaves(self._p, _i64(slots), ffi.cast("uintptr_t *", addr.ctypes.data))
        return _match_addresses([int(ffi.cast("uintptr_t", c)) for c in cells], slots, addr)

    def array_leaf_slots(self, grads):
        """For each Tensor leaf's grad array in ``grads``, the ascending array
        LEAF slots of that leaf on this tape ([] if none): a leaf placed again
        (its value handed out for writing in between) has several, and its
        gradient sums them."""
        n = lib.pt_tape_narrays(self._p)
        slots, addr = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint64)
        m = lib.pt_tape_array_leaves(self._p, _i64(slots), ffi.cast("uintptr_t *", addr.ctypes.data))
        return _match_addresses([int(ffi.cast("uintptr_t", _f64(g))) for g in grads], slots[:m], addr[:m])

    def nbytes(self, used=False):
        """Bytes of C memory allocated (or, ``used``, holding data)."""
        return lib.pt_tape_nbytes(self._p, 1 if used else 0)

    @property
    def consumed(self):
        return bool(lib.pt_tape_consumed(self._p))

    def consume(self):
        """Mark the tape consumed, as ``backward()`` without ``retain_graph`` does."""
        lib.pt_tape_consume(self._p)

    def is_owner(self):
        """True in the thread that records on this tape."""
        return bool(lib.pt_tape_is_owner(self._p))

    @property
    def owner(self):
        """The id of the thread that records on this tape (``threading.get_ident()``)."""
        return lib.pt_tape_owner(self._p)

    @property
    def bad(self):
        """The instruction where the last checked sweep stopped (-1: none)."""
        return lib.pt_tape_bad(self._p)

    @property
    def tangent_n(self):
        """Slots the last tangent sweep covered (0: none yet)."""
        return lib.pt_tape_tangent_n(self._p)

    @property
    def nregs(self):
        """Registers of the register plan (0: no plan)."""
        return lib.pt_tape_nregs(self._p)

    # ---- single entries ------------------------------------------------------------

    def value(self, slot):
        return lib.pt_value(self._p, slot)

    def adjoint(self, slot):
        """The adjoint of the last reverse sweep (nan from a thread that does not own the tape)."""
        return lib.pt_adjoint(self._p, slot)

    def set_adjoint(self, slot, g):
        """Set an adjoint; a negative status if the slot has none yet (or another thread asks)."""
        return lib.pt_set_adjoint(self._p, slot, g)

    def tangent(self, slot):
        return lib.pt_tangent(self._p, slot)

    def op_at(self, slot):
        return lib.pt_tape_op_at(self._p, slot)

    def const(self, k):
        return lib.pt_tape_const(self._p, k)

    # ---- recording (leaf and record: see __init__; the fast path uses entry_points)

    def record_custom(self, fn, args, consts, value):
        """Record custom primitive ``fn`` (its id) on operands ``args`` (a slot,
        or -1 for the constant at the same place of ``consts``) with value
        ``value``; its handle or a negative status."""
        n = len(args)
        return lib.pt_record_custom(self._p, fn, n, ffi.new("int64_t[]", args), ffi.new("double[]", consts),
                                    value)

    @property
    def ncustom(self):
        """Custom instructions on the tape."""
        return lib.pt_tape_ncustom(self._p)

    def custom_table(self):
        """(counts, args) of the custom table: operands per custom instruction,
        and all of them in order (a slot, or -1 - c for constant c)."""
        counts = np.empty(self.ncustom, dtype=np.int32)
        args = np.empty(lib.pt_tape_ncustom_args(self._p), dtype=np.int32)
        lib.pt_tape_custom_table(self._p, ffi.from_buffer("int32_t[]", counts), ffi.from_buffer("int32_t[]", args))
        return counts, args

    def custom_operands(self, i):
        """The operands of custom instruction i: a list of (is a slot, slot or constant value)."""
        return self.custom_entry(int(self.rows(i, i + 1, ("a",))["a"][0]))

    def custom_entry(self, k):
        """The operands of the k-th custom instruction (a[i] = k), as custom_operands."""
        args = ffi.new("int32_t[]", CUSTOM_MAX_ARGS)
        n = check(lib.pt_tape_custom_entry(self._p, k, args), "read", self)
        return [(True, args[j]) if args[j] >= 0 else (False, self.const(-1 - args[j])) for j in range(n)]

    def guard(self, a, b, c, cmp, outcome):
        """Record that (v[a] CMP rhs) came out ``outcome`` (rhs: slot b if b >= 0,
        else the constant c); its slot or a negative status."""
        return lib.pt_guard(self._p, a, b, c, cmp, 1 if outcome else 0)

    # ---- array instructions (inspection: pytape/display.py, anomaly.py) ----------------

    @property
    def narrays(self):
        """Array instructions on the tape."""
        return lib.pt_tape_narrays(self._p)

    def array_facts(self):
        """The facts of every array instruction in tape order: an int64 array
        (narrays, FACT_N), columns FACT_SLOT, FACT_KIND, ... (csrc/pytape.h).

        >>> t = CTape(register=True)
        >>> h = arr_const(t, np.arange(3.0))
        >>> y = arr_map2_vc(OPCODES["mul"], h, 2.0)
        >>> t.array_facts()[:, [FACT_SLOT, FACT_KIND, FACT_SIZE, FACT_VALUE_BYTES]].tolist()
        [[0, 1, 3, 24], [1, 4, 3, 24]]
        >>> t.array_args().tolist()   # mul's operands: slot 0 and constant 0 of the pool
        [0, -1]
        """
        facts = np.zeros((self.narrays, lib.PT_FACT_N), dtype=np.int64)
        if facts.size:
            lib.pt_tape_array_facts(self._p, _i64(facts))
        return facts

    def array_args(self):
        """The operands of all array instructions one after another (each
        entry's FACT_NARGS: a slot, or -1 - c for constant c)."""
        args = np.empty(lib.pt_tape_narray_args(self._p), dtype=np.int64)
        if args.size:
            lib.pt_tape_array_args(self._p, _i64(args))
        return args

    def array_entry(self, slot):
        """(facts, shape, operands) of the array instruction at ``slot``:
        facts as a row of array_facts(), operands as a list of (is a slot,
        slot or constant value); IndexError if the slot holds none.

        >>> t = CTape(register=True)
        >>> y = arr_map2_vc(OPCODES["mul"], arr_const(t, np.ones((2, 3))), 2.5)
        >>> facts, shape, operands = t.array_entry(1)
        >>> array_op_name(facts[FACT_KIND], facts[FACT_OP]), shape, operands
        ('mul', (2, 3), [(True, 0), (False, 2.5)])
        """
        facts = np.empty(lib.PT_FACT_N, dtype=np.int64)
        shape = ffi.new("int64_t[]", lib.PT_ARRAY_MAX_DIMS)
        args = ffi.new("int64_t[]", lib.PT_ARRAY_MAX_ARGS)
        if lib.pt_tape_array_entry(self._p, slot, _i64(facts), shape, args):
            raise IndexError(f"pytape: slot {slot} holds no array instruction")
        ops = [args[j] for j in range(int(facts[FACT_NARGS]))]
        return (facts, tuple(shape[0:int(facts[FACT_NDIM])]),
                [(True, x) if x >= 0 else (False, self.const(-1 - x)) for x in ops])

    def array_params(self, slot):
        """The integer parameters of the array instruction at ``slot`` (csrc/pytape.h
        lists them by kind), an int64 array; IndexError if the slot holds none.

        >>> t = CTape(register=True)
        >>> y = arr_record(ARRAY_KINDS["SUM"], [arr_const(t, np.ones((2, 3)))], (), [0, 1, 0])
        >>> t.array_params(1).tolist()
        [0, 1, 0]
        """
        n = lib.pt_tape_array_params(self._p, slot, ffi.NULL, 0)
        if n < 0:
            raise IndexError(f"pytape: slot {slot} holds no array instruction")
        par = np.empty(n, dtype=np.int64)
        lib.pt_tape_array_params(self._p, slot, _i64(par), n)
        return par

    def array_summary(self, slot, which="value"):
        """(first, min, max, non-finite count) of array ``slot``'s value,
        ``"adjoint"`` (last reverse sweep) or ``"tangent"``: min and max over
        its finite elements (nan: none); None when there is none (a zero
        adjoint or tangent, an empty array, a recycled value).

        >>> t = CTape(register=True)
        >>> h = arr_const(t, np.array([3.0, np.nan, -1.0]))
        >>> t.array_summary(0), t.array_summary(0, "adjoint")
        ((3.0, -1.0, 3.0, 1), None)
        """
        out = np.empty(4)
        st = lib.pt_tape_array_summary(self._p, slot, ("value", "adjoint", "tangent").index(which), _f64(out))
        if st == 1:
            return None
        check(st, "read", self)
        return float(out[0]), float(out[1]), float(out[2]), int(out[3])

    def array_value(self, slot, shape):
        """A copy of the value of array ``slot`` (None: recycled).

        >>> t = CTape(register=True)
        >>> h = arr_const(t, np.arange(4.0).reshape(2, 2))
        >>> t.array_value(0, (2, 2)).tolist()
        [[0.0, 1.0], [2.0, 3.0]]
        """
        if self.id:
            p = lib.pt_arr_value(self.handle(slot))
        else:
            p = on_unregistered(self, lib.pt_arr_value, self.handle(slot))
        return _tape_array(None, p, shape, True)

    def first_nonfinite(self):
        """The first instruction whose value holds a nan or inf (-1: none);
        for an array one, bad_array() then names the element."""
        return lib.pt_tape_first_nonfinite(self._p)

    def bad_array(self):
        """What anomaly mode's last check of an array found nan or inf on this
        tape: a dict (kind, op, sign, operand: -1 for a refused value, else
        the slot whose adjoint or tangent it is; element: a flat index;
        shape; value), or None (csrc/pytape.h: pt_tape_bad_array).

        >>> t = CTape(register=True)
        >>> h = arr_const(t, np.array([1.0, 0.0]))
        >>> set_anomaly(1)
        >>> arr_map2_cv(OPCODES["div"], 1.0, h) == NONFINITE   # refused: 1 / 0
        True
        >>> set_anomaly(0)
        >>> bad = t.bad_array()
        >>> array_op_name(bad["kind"], bad["op"]), bad["element"], bad["shape"], bad["value"]
        ('div', 1, (2,), inf)
        """
        facts = np.empty(lib.PT_BAD_N, dtype=np.int64)
        shape = ffi.new("int64_t[]", lib.PT_ARRAY_MAX_DIMS)
        value = ffi.new("double[1]")
        if lib.pt_tape_bad_array(self._p, _i64(facts), shape, value):
            return None
        return {"kind": int(facts[lib.PT_BAD_KIND]), "op": int(facts[lib.PT_BAD_OP]),
                "sign": int(facts[lib.PT_BAD_SIGN]), "operand": int(facts[lib.PT_BAD_OPERAND]),
                "element": int(facts[lib.PT_BAD_ELEMENT]), "shape": tuple(shape[0:int(facts[lib.PT_BAD_NDIM])]),
                "value": value[0]}

    # ---- copies ---------------------------------------------------------------------

    def rows(self, start, stop, columns=("op", "a", "b", "val", "adj")):
        """Instructions [start, stop) as numpy arrays by column (op, a, b, val,
        adj); one C copy.  Adjoints are the owner thread's to read."""
        start, stop = max(0, start), min(len(self), stop)
        m = max(0, stop - start)
        rows = {name: np.empty(m, dtype) for name, dtype, _ in _COLUMNS if name in columns}
        if m:
            check(lib.pt_tape_copy(self._p, start, stop, *[
                ffi.from_buffer(ctype, rows[name]) if name in rows else ffi.NULL for name, _, ctype in _COLUMNS
            ]), "read", self)
        return rows

    def consts(self):
        """The constant pool."""
        out = np.empty(self.nconsts)
        if len(out):
            lib.pt_tape_copy_consts(self._p, _f64(out))
        return out

    def op_counts(self):
        """Instructions per opcode (numpy, NUM_OPS entries)."""
        counts = np.zeros(NUM_OPS, dtype=np.int64)
        lib.pt_tape_op_counts(self._p, _i64(counts))
        return counts

    def reach(self, outs):
        """Which slots the slots ``outs`` depend on (themselves included): a
        bool array over [0, max(outs)]."""
        outs = [int(o) for o in outs]
        if not outs:
            return np.zeros(0, dtype=bool)
        top = max(outs)
        mark = np.zeros(top + 1, dtype=np.uint8)
        one = np.empty(top + 1, dtype=np.uint8)
        for o in outs:
            lib.pt_tape_reach(self._p, o, ffi.from_buffer("uint8_t[]", one))
            mark[:o + 1] |= one[:o + 1]
        return mark.astype(bool)

    # ---- sparsity (csrc/sparsity.c) ------------------------------------------------------

    def jacobian_pattern(self, ins, outs):
        """(rows, cols) of the entries of d(outs)/d(ins) that can be nonzero
        (int32 arrays, pairs may repeat); ins and outs are slots, -1 for an
        input f did not use or a constant output."""
        ins, outs = _slots(ins), _slots(outs)
        return self._pattern("Jacobian", lambda res: lib.pt_jacobian_pattern(
            self._p, len(ins), _i64(ins), len(outs), _i64(outs), res))

    def hessian_pattern(self, ins, out):
        """(rows, cols) of the Hessian of slot ``out`` w.r.t. ins that can be nonzero."""
        ins = _slots(ins)
        return self._pattern("Hessian", lambda res: lib.pt_hessian_pattern(self._p, len(ins), _i64(ins), out, res))

    def _pattern(self, what, call):
        res = ffi.new("pt_pattern *")
        try:
            check(call(res), what, self)
            n = res.nnz
            if n == 0:
                return np.zeros(0, np.int32), np.zeros(0, np.int32)
            return (np.frombuffer(ffi.buffer(res.row, 4 * n), np.int32).copy(),
                    np.frombuffer(ffi.buffer(res.col, 4 * n), np.int32).copy())
        finally:
            lib.pt_pattern_free(res)

    # ---- sweeps ---------------------------------------------------------------------------

    def backward(self, out, seed, retain):
        """The reverse sweep from slot ``out``: leaves' grad cells get their adjoints."""
        check(lib.pt_backward(self._p, out, seed, 1 if retain else 0), "backward", self)

    def backward_block(self, outs, seeds, ins):
        """q reverse sweeps in one pass: seeds (len(outs), q) on the output
        slots; returns (len(ins), q) adjoints of the slots ``ins``."""
        outs, ins, seeds = _slots(outs), _slots(ins), _doubles(seeds)
        q = seeds.shape[1]
        res = np.empty((len(ins), q))
        check(lib.pt_backward_block(self._p, len(outs), _i64(outs), q, _f64(seeds), len(ins), _i64(ins),
                                    _f64(res)), "backward", self)
        return res

    def tangent_block(self, ins, seeds, outs):
        """p tangent sweeps in one pass: seeds (len(ins), p) on LEAF slots;
        returns (len(outs), p) tangents of the slots ``outs``."""
        outs, ins, seeds = _slots(outs), _slots(ins), _doubles(seeds)
        p = seeds.shape[1]
        res = np.empty((len(outs), p))
        check(lib.pt_tangent_block(self._p, len(ins), _i64(ins), p, _f64(seeds), len(outs), _i64(outs),
                                   _f64(res)), "tangent", self)
        return res

    def hvp_block(self, out, ins, seeds):
        """Hessian-vector products of slot ``out`` for directions seeds
        (len(ins), p) over LEAF slots: returns (len(ins), p)."""
        ins, seeds = _slots(ins), _doubles(seeds)
        p = seeds.shape[1]
        res = np.empty((len(ins), p))
        check(lib.pt_hvp_block(self._p, out, len(ins), _i64(ins), p, _f64(seeds), ffi.NULL, _f64(res)),
              "hvp", self)
        return res

    def tangent_sweep(self, slots, seeds):
        """The tangent of every slot for seeds on LEAF slots (read them with tangent())."""
        slots, seeds = _slots(slots), _doubles(seeds)
        check(lib.pt_forward_tangent(self._p, len(slots), _i64(slots), _f64(seeds)), "tangent", self)

    # ---- replays (pytape.trace) ---------------------------------------------------------

    def compile(self, ins, roots):
        """The optimised copy computing slots ``roots`` from LEAF slots ``ins``
        (csrc/tape_compile.c): (new CTape, map of old slot -> new slot, -1
        dropped, -2 folded into a constant)."""
        ins, roots = _slots(ins), _slots(roots)
        slot_map = np.empty(len(self), dtype=np.int64)
        out = ffi.new("pt_tape **")
        check(lib.pt_tape_compile(self._p, len(ins), _i64(ins), len(roots), _i64(roots), _i64(slot_map), out),
              "record", self)
        return CTape(_pointer=out[0]), slot_map

    def plan_registers(self, outs):
        """The register plan of value-only replays, the slots ``outs`` kept to
        the end (csrc/tape_compile.c); False if the tape's inputs are not its
        first instructions (a plan needs that layout), else True."""
        outs = _slots(outs)
        st = lib.pt_tape_plan_registers(self._p, len(outs), _i64(outs))
        if st == lib.PT_E_OP:
            return False
        check(st, "record", self)
        return True

    def replay(self, slots, values):
        """New values for LEAF slots, then every instruction recomputed: -1, or
        the slot of the first guard whose outcome changed."""
        slots, values = _slots(slots), _doubles(values)
        where = ffi.new("int64_t[1]")
        st = lib.pt_replay(self._p, len(slots), _i64(slots), _f64(values), where)
        if st == lib.PT_E_GUARD:
            return int(where[0])
        check(st, "record", self)
        return -1

    def keep_values(self):
        """Record for replays in place: no array buffer is recycled (pytape.trace)."""
        lib.pt_tape_keep_values(self._p)

    def replay_inputs(self, ins):
        """Take slots ``ins`` (LEAF, array LEAF or CONST) over as a replay's
        inputs: their values in the tape's own memory, no grad cells."""
        ins = _slots(ins)
        check(lib.pt_replay_inputs(self._p, len(ins), _i64(ins)), "record", self)

    def replay_plan(self, ins, roots):
        """The slots a replay from inputs ``ins`` recomputes for ``roots``
        (csrc/sweep_forward.c), as an int64 array."""
        ins, roots = _slots(ins), _slots(roots)
        plan = np.empty(len(self), dtype=np.int64)
        n = lib.pt_replay_plan(self._p, len(ins), _i64(ins), len(roots), _i64(roots), _i64(plan))
        check(n, "record", self)
        return plan[:n].copy()

    def paths(self, ins, roots):
        """The slots on a path from one of ``ins`` to one of ``roots`` (both
        included; csrc/tape_compile.c), in tape order, as an int64 array.

        >>> t = CTape(register=True)
        >>> x, c = (slot_of_handle(t.leaf(v, new_grad_cell())) for v in (2.0, 3.0))
        >>> y = slot_of_handle(t.record(OPCODES["mul"], x, c, 0.0))
        >>> t.paths([x], [y]).tolist()
        [0, 2]
        """
        ins, roots = _slots(ins), _slots(roots)
        out = np.empty(len(self), dtype=np.int64)
        n = lib.pt_tape_paths(self._p, len(ins), _i64(ins), len(roots), _i64(roots), _i64(out))
        check(n, "read", self)
        return out[:n].copy()

    def replay_share_values(self, plan, roots):
        """Large values no sweep reads share buffers along the replay plan
        (csrc/array.h): the bytes saved."""
        plan, roots = _slots(plan), _slots(roots)
        return check(lib.pt_replay_share_values(self._p, len(plan), _i64(plan), len(roots), _i64(roots)), "record",
                     self)

    def replay_arrays(self, ins, data, offs, plan):
        """The inputs' new values (input k's at data[offs[k]:]: int64 and
        float64 arrays made once, as ``ins`` and ``plan``), then the plan
        recomputed: -1, or the slot of the first guard that came out otherwise."""
        where = ffi.new("int64_t[1]")
        st = lib.pt_replay_arrays(self._p, len(ins), _i64(ins), _f64(data), _i64(offs), len(plan), _i64(plan), where)
        if st == lib.PT_E_GUARD:
            return int(where[0])
        check(st, "backward", self)
        return -1

    def replay_gradient(self, ins, arrays, plan, out, grads):
        """One point: the inputs' values ``arrays`` (float64, C-contiguous, one
        per slot of ``ins``: lent for the call), the plan replayed, the reverse
        sweep from ``out``, each input's adjoint written into ``grads`` (arrays
        of their sizes).  (value, -1), or (nan, slot of the guard that came out
        otherwise)."""
        where = ffi.new("int64_t[1]")
        value = ffi.new("double[1]")
        bufs, gbufs = [_f64(a) for a in arrays], [_f64(g) for g in grads]  # alive through the call
        data, gp = ffi.new("double *[]", bufs), ffi.new("double *[]", gbufs)
        st = lib.pt_replay_gradient(self._p, len(ins), _i64(ins), data, len(plan), _i64(plan), out, value, gp, where)
        if st == lib.PT_E_GUARD:
            return math.nan, int(where[0])
        check(st, "backward", self)
        return value[0], -1

    def replay_gradient_rows(self, ins, offs, X, Y, G, fail, plan, out):
        """replay_gradient for every row of X (rows, width), in one C call:
        values into Y (rows,), gradients into G (laid out as X), fail[r] the
        slot of the guard row r failed, else -1."""
        check(lib.pt_replay_gradient_rows(self._p, len(ins), _i64(ins), _i64(offs), X.shape[0], X.shape[1], _f64(X),
                                          _f64(Y), _f64(G), _i64(fail), len(plan), _i64(plan), out), "backward", self)

    def batch_values(self, X, outs, threads):
        """Rows of leaf values X (rows, nleaves) -> (values (rows, len(outs)),
        fail (rows,): the failing guard's slot, or -1).  A long batch is
        several C calls (_row_chunks), so Ctrl-C stops it within about 0.1 s."""
        X, outs = _doubles(X), _slots(outs)
        fail = np.empty(X.shape[0], dtype=np.int64)
        Y = np.empty((X.shape[0], len(outs)))
        for x, y, f in ((X, Y, fail),) if len(X) < 2 else _row_chunks(len(self), threads, X, Y, fail):
            check(lib.pt_batch_values(self._p, len(x), _f64(x), len(outs), _i64(outs), _f64(y), _i64(f), threads),
                  "backward", self)
        return Y, fail

    def batch_gradients(self, X, out, threads):
        """Rows of leaf values X -> (values (rows, 1), gradients (rows, nleaves), fail);
        in C calls of about 0.1 s, as batch_values."""
        X = _doubles(X)
        rows = X.shape[0]
        fail = np.empty(rows, dtype=np.int64)
        Y, G = np.empty((rows, 1)), np.empty((rows, X.shape[1]))
        for x, y, g, f in ((X, Y, G, fail),) if rows < 2 else _row_chunks(len(self), threads, X, Y, G, fail):
            check(lib.pt_batch_gradients(self._p, len(x), _f64(x), out, _f64(y), _f64(g), _i64(f), threads),
                  "backward", self)
        return Y, G, fail

    def array_table(self):
        """The array table as saved (csrc/pytape.h: pt_saved_arrays): a dict
        of int64 arrays facts (rows of SAVED_N), dims, args, pars and float64
        data; ValueError if it holds a custom array instruction."""
        sizes = np.zeros(5, dtype=np.int64)
        lib.pt_tape_array_table_sizes(self._p, _i64(sizes))
        nar, ndims, nargs, npars, ndata = (int(k) for k in sizes)
        table = {"facts": np.zeros((nar, lib.PT_SAVED_N), dtype=np.int64), "dims": np.zeros(ndims, dtype=np.int64),
                 "args": np.zeros(nargs, dtype=np.int64), "pars": np.zeros(npars, dtype=np.int64),
                 "data": np.zeros(ndata)}
        st = lib.pt_tape_array_table(self._p, *(_i64(table[k]) if k != "data" else _f64(table[k])
                                                for k in ("facts", "dims", "args", "pars", "data")))
        if st == lib.PT_E_OP:
            raise ValueError("this tape holds a custom array primitive (pytape.primitive(arrays=True), "
                             "pytape.checkpoint): its function is Python's and cannot be saved with the tape")
        check(st, "read", self)
        return table

    @staticmethod
    def load(op, a, b, val, consts, custom=((), ()), arrays=None):
        """A tape from arrays, every instruction checked in C first
        (csrc/tape_load.c); TapeFormatError for arrays that break its
        invariants.  ``custom``: the custom table, as custom_table() gives it;
        ``arrays``: the array table, as array_table() gives it."""
        op = np.ascontiguousarray(op, dtype=np.uint16)
        a, b = np.ascontiguousarray(a, dtype=np.int32), np.ascontiguousarray(b, dtype=np.int32)
        val, consts = _doubles(val), _doubles(consts)
        counts, args = (np.ascontiguousarray(x, dtype=np.int32) for x in custom)
        out = ffi.new("pt_tape **")
        saved, keep = ffi.NULL, None
        if arrays is not None:
            keep = {k: np.ascontiguousarray(arrays[k], dtype=np.float64 if k == "data" else np.int64)
                    for k in ("facts", "dims", "args", "pars", "data")}
            if keep["facts"].size % lib.PT_SAVED_N:
                raise TapeFormatError("not a pytape compiled function: its array table is cut short")
            saved = ffi.new("struct pt_saved_arrays *", {
                "nar": keep["facts"].size // lib.PT_SAVED_N, "ndims": keep["dims"].size, "nargs": keep["args"].size,
                "npars": keep["pars"].size, "ndata": keep["data"].size, "facts": _i64(keep["facts"]),
                "dims": _i64(keep["dims"]), "args": _i64(keep["args"]), "pars": _i64(keep["pars"]),
                "data": _f64(keep["data"])})
        check(lib.pt_tape_load(len(op), ffi.from_buffer("uint16_t[]", op), ffi.from_buffer("int32_t[]", a),
                               ffi.from_buffer("int32_t[]", b), _f64(val), len(consts), _f64(consts),
                               len(counts), ffi.from_buffer("int32_t[]", counts), len(args),
                               ffi.from_buffer("int32_t[]", args), saved, out), "load")
        return CTape(_pointer=out[0])
