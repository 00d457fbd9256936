"""What a Tensor's values do while ``pytape.trace`` records f: nothing
computed from them reaches Python unguarded.

A traced tape is replayed at new inputs without running f (pytape/tracing.py),
so every value f reads while it is recorded must either be recomputed by the
replay or be checked by it:

* a comparison of Tensors (``x > 0``, ``np.less(x, y)``) gives a :class:`Mask`:
  a recorded 0/1 array (the op table's comparison rows), which the replay
  recomputes.  ``np.where(mask, a, b)``, ``mask * y``, ``~mask``,
  ``mask & other``, ``mask.sum()`` stay recorded: a traced ``relu`` written
  with ``np.where`` is right at every input, with no guard;
* a Mask reduced to a Python boolean (``if np.all(x > 0)``, ``mask.any()``,
  ``bool(mask)``) is a guard on that boolean;
* any other way a value reaches Python (``.value``, ``np.asarray``,
  ``float()``, ``.item()``, ``tolist()``, a mask as an index ``x[x > 0]``,
  ``np.argmax(x)``, ``detach()``) is a guard that the whole array is equal
  at the replay's inputs, so a replay where it differs traces f again.

Outside a trace, comparisons give numpy bool arrays and nothing is guarded.

>>> import numpy as np, pytape
>>> fn = pytape.trace(lambda x: np.sum(np.where(x > 0, x, 0.1 * x)), np.array([1.0, -2.0]))
>>> fn(np.array([-1.0, 3.0])), fn.retraces          # the mask is recomputed: no retrace
(2.9, 0)
>>> fn = pytape.trace(lambda x: np.sum(x) if np.all(x > 0) else -np.sum(x), np.array([1.0, 2.0]))
>>> fn(np.array([-1.0, -2.0])), fn.retraces         # the boolean changed: traced again
(3.0, 1)
"""
from contextlib import contextmanager

import numpy as np

from . import _native
from . import array_ops as _ops
from . import tensor as _tensor_module
from .tensor import Tensor, TensorLeaf, TensorResult
from .var import TRACING, _recording_guards, note
from .anomaly import caller

__all__ = ["Mask", "traced_arguments", "traced_tape", "escape"]

_B = _native.ID_BITS

#: (tape, {id of an argument Tensor leaf}) of every Tensor program being traced
_TRACED = []


@contextmanager
def traced_arguments(tape, ids, guards):
    """While f is traced on ``tape`` (``guards``), the Tensor leaves whose ids
    are ``ids`` are its array arguments: reading their values is guarded."""
    if not guards:
        yield
        return
    entry = (tape, ids)
    _TRACED.append(entry)
    try:
        yield
    finally:
        _TRACED.remove(entry)


def traced_tape(x):
    """The tape being traced on which Tensor x varies (a result there, or
    one of its array arguments), else None (a constant of the trace)."""
    if type(x) is TensorResult:
        return x._t if x._t._guards else None
    if type(x) is TensorLeaf:
        for t, ids in _TRACED:
            if id(x) in ids:
                return t
    return None


def _guard_scalar(t, s, cmp, c, outcome):
    """Guard on tape t: (0-d array s CMP c) came out ``outcome``."""
    with _recording_guards():
        i = t._c.guard(s._i >> _B, -1, float(c), cmp, outcome)
    _native.check(i, "record", t._c)
    note(t, i, caller())


def escape(x, v):
    """Array value v of Tensor x reaches Python while f is traced: guard that
    x equals v at a replay's inputs, element by element, a nan of v matching
    only a nan (the count of elements that differ is 0)."""
    t = traced_tape(x)
    if t is None or not TRACING[0]:
        return v
    a = np.array(v, dtype=np.float64)
    nan = a != a
    with _recording_guards(), t:
        differ = _ops.ROWS["not_equal"](x, np.where(nan, 0.0, a))
        if nan.any():  # where v is nan: x must be nan too (x == x is 0 exactly there)
            differ = differ * (~nan).astype(np.float64) + _ops.ROWS["equal"](x, x) * nan.astype(np.float64)
        count = _ops.sum(differ)
    _guard_scalar(t, count, _native.CMP_EQ, 0.0, True)
    return v


def _tensor(x):
    """x (a Mask, or anything else) as a Tensor operand: a Mask's 0/1 array."""
    return x._t if type(x) is Mask else x


def _bools(x):
    return x._v if type(x) is Mask else np.asarray(x, dtype=bool)


_COMPARE = {np.less: ("less", False), np.less_equal: ("less_equal", False), np.greater: ("less", True),
            np.greater_equal: ("less_equal", True), np.equal: ("equal", False), np.not_equal: ("not_equal", False)}


def compare(ufunc, a, b):
    """a ufunc b (a comparison) of Tensors while f is traced: a recorded Mask
    if an operand varies with the trace's inputs, else numpy's bool array."""
    v = ufunc(*_ops._values(a, b))
    if not any(traced_tape(x) is not None for x in (a, b)):
        return v
    name, swap = _COMPARE[ufunc]
    t = _ops.ROWS[name](*((b, a) if swap else (a, b)))
    return Mask(t, np.asarray(v, dtype=bool))


class Mask:
    """A comparison of Tensors while ``pytape.trace`` records f (see the
    module's text): a recorded 0/1 array ``_t`` with the numpy bool array
    ``_v`` it had when f was traced.  It behaves as that bool array; what
    reduces it to Python booleans or numbers is guarded."""

    __slots__ = ("_t", "_v")
    __array_priority__ = 2000  # numpy hands binary operators with an ndarray to us
    _is_mask = True

    def __init__(self, t, v):
        self._t, self._v = t, v

    shape = property(lambda self: self._v.shape)
    ndim = property(lambda self: self._v.ndim)
    size = property(lambda self: self._v.size)
    dtype = property(lambda self: self._v.dtype)

    def __len__(self):
        return len(self._v)

    def __repr__(self):
        return f"Mask({self._v!r}, traced)"

    # ---- what reaches Python: guarded ------------------------------------------

    def __array__(self, dtype=None, copy=None):
        escape(self._t, self._v.astype(np.float64))
        return self._v.astype(dtype) if dtype is not None else (np.array(self._v) if copy else self._v)

    def _reduced(self, reduction, axis, keepdims, outcome):
        """all / any over axis: a Mask; over everything, a guarded bool."""
        if axis is not None or keepdims:
            r = (_ops.min if reduction == "all" else _ops.max)(self._t, axis, keepdims=keepdims)
            return Mask(r, getattr(self._v, reduction)(axis=axis, keepdims=keepdims))
        t = traced_tape(self._t)
        if t is not None and self.size:
            r = (_ops.min if reduction == "all" else _ops.max)(self._t)
            _guard_scalar(t, r, _native.CMP_GT, 0.5, outcome)
        return np.bool_(outcome)

    def all(self, axis=None, keepdims=False):
        return self._reduced("all", axis, keepdims, bool(self._v.all()))

    def any(self, axis=None, keepdims=False):
        return self._reduced("any", axis, keepdims, bool(self._v.any()))

    def __bool__(self):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self.all())

    def tolist(self):
        return np.asarray(self).tolist()

    def item(self):
        return bool(self)

    # ---- what stays recorded ------------------------------------------------------

    def __getitem__(self, key):
        return Mask(_ops.getitem(self._t, key), self._v[key])

    def __invert__(self):
        return Mask(1.0 - self._t, ~self._v)

    def _logical(self, other, name):
        rows = {"and": lambda a, b: a * b, "or": _ops.ROWS["maximum"], "xor": _ops.ROWS["not_equal"]}
        o = other if type(other) is Mask else np.asarray(other, dtype=bool)
        ov = _bools(o)
        t = rows[name](self._t, o._t if type(o) is Mask else ov.astype(np.float64))
        return Mask(t, {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}[name](self._v, ov))

    __and__ = __rand__ = lambda self, o: self._logical(o, "and")
    __or__ = __ror__ = lambda self, o: self._logical(o, "or")
    __xor__ = __rxor__ = lambda self, o: self._logical(o, "xor")

    def __eq__(self, other):
        return ~(self ^ other)

    def __ne__(self, other):
        return self ^ other

    __hash__ = object.__hash__

    def astype(self, dtype):
        """``astype(float)``: the recorded 0/1 Tensor; ``astype(bool)``: the mask."""
        return self if np.dtype(dtype) == np.bool_ else self._t

    def sum(self, axis=None, keepdims=False):
        return _ops.sum(self._t, axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.mean(self._t, axis, keepdims=keepdims)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__" and not kwargs:
            if ufunc is np.logical_not:
                return ~inputs[0]
            for uf, name in ((np.logical_and, "and"), (np.logical_or, "or"), (np.logical_xor, "xor")):
                if ufunc is uf:
                    a, b = inputs
                    return (a if type(a) is Mask else b)._logical(b if type(a) is Mask else a, name)
            if ufunc in _COMPARE:
                return compare(ufunc, *(_tensor(x) for x in inputs))
        # arithmetic: the 0/1 array (numpy's bool arithmetic gives numbers too)
        return getattr(ufunc, method)(*(_tensor(x) for x in inputs), **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where and len(args) == 3:
            return _ops.where(*args)
        if func in (np.all, np.any):
            return getattr(args[0], func.__name__)(*args[1:], **kwargs)
        if func in (np.sum, np.mean):
            return getattr(args[0] if type(args[0]) is Mask else Mask, func.__name__)(*args, **kwargs)
        if func is np.count_nonzero:
            return _ops.sum(_tensor(args[0]), kwargs.get("axis"))
        # anything else takes the mask's values: guarded
        conv = [np.asarray(a) if type(a) is Mask else a for a in args]
        return func(*conv, **kwargs)


def _arith(name):
    def op(self, other):
        return getattr(self._t, name)(_tensor(other))
    return op


for _n in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "matmul", "rmatmul"):
    setattr(Mask, f"__{_n}__", _arith(f"__{_n}__"))



def on_values(np_fn, xs, kw):
    """A numpy function without derivatives (a predicate, argmax, ...) of
    Tensors while f is traced: a comparison gives a Mask, anything else reads
    the values, guarded."""
    if np_fn in _COMPARE and len(xs) == 2 and not kw:
        return compare(np_fn, *xs)
    vals = _ops._values(*xs)
    for x, v in zip(xs, vals):
        if isinstance(x, Tensor):
            escape(x, v)
    return np_fn(*vals, **kw)


_ops.TRACE_HOOKS.update(compare=compare, on_values=on_values)
_tensor_module.ESCAPE[0] = escape
