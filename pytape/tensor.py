"""``Tensor``: a float64 n-d array recorded on the tape, one instruction per
array operation (csrc/array.h).

A ``Tensor`` is to arrays what ``Var`` is to numbers, on the same tapes and in
the same recording context (``with pytape.Tape()``, ``no_grad``, threads):

* recorded results (class ``TensorResult``): ``_t`` the ``Tape``, ``_i`` the
  handle of their ARRAY slot, ``_shape`` their shape (read from C on first
  use).  Their values live in the tape's memory;
* leaves (class ``TensorLeaf``), made by ``pytape.Tensor(data)``: they own
  their value ``_v`` (a float64 array) and gradient ``_g`` (an array of the
  same shape that backward() adds to, or writes while the state cell ``_gs``
  says it is zero: ``zero_grad()`` costs no pass over memory, and the first
  backward() no zeroing and adding), and get an array LEAF instruction,
  holding a copy of the value, on each tape that uses them (``_hs``, ``_hh``:
  that tape's serial and the handle there, as for Var leaves);
* constants: a ``TensorLeaf`` with no gradient (``detach()``, ``no_grad``,
  ``requires_grad=False``).

Operands of an array operation may be Tensors, Vars (0-d operands: a Var
times a Tensor broadcasts), numbers and numpy arrays (constants, copied into
the tape).  This module holds the class, the primitives that append one
instruction each (``map1``, ``map2``, ``record``) and what a Tensor is and
does besides numpy's functions, which pytape/array_ops.py maps onto the
primitives.

>>> import numpy as np, pytape
>>> x = pytape.Tensor([1.0, 2.0, 3.0])
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
array([2., 4., 6.])
"""
import functools
import math
import numbers
import weakref

import numpy as np

from . import _native
from .anomaly import array_error, explain, note_array, unchecked
from .tape import Tape, current_tape, enable_grad, is_grad_enabled
from .var import ARGUMENTS, TRACING, Leaf as VarLeaf, Owned, Recorded, Result as VarResult, Rounding, Var, place as var_place

__all__ = ["Tensor", "TensorResult", "TensorLeaf", "array", "map1", "map2", "record", "as_tensor_operand"]

_B = _native.ID_BITS
_WATCH = _native.WATCH
_NOTE = _native.NOTE
_E_LARGE = _native.E_LARGE
_GRAD_HELD = _native.GRAD_HELD
_F64 = np.dtype(np.float64)
KIND = _native.ARRAY_KINDS
MAX_DIMS = _native.ARRAY_MAX_DIMS


def _as_float64(data, what):
    """data as a C-contiguous float64 array (a copy), or TypeError."""
    if isinstance(data, Tensor):
        return np.array(data.value, dtype=_F64)
    a = np.asarray(data)
    if a.dtype.kind not in "biuf":
        if a.dtype.kind == "O" and any(isinstance(v, Var) for v in a.flat):
            raise TypeError(f"{what}: an object array of Vars is not data; make the Tensor from numbers "
                            f"(np.vectorize(float)) or keep the Vars (pytape records them element by element)")
        raise TypeError(f"{what} takes real numbers (bool, int, float dtypes); got dtype {a.dtype}: "
                        f"complex, object, string and time arrays have no float64 value")
    if a.ndim > MAX_DIMS:
        raise ValueError(f"{what}: at most {MAX_DIMS} dimensions, got {a.ndim}")
    out = _native.arr_empty(a.shape, a.size)
    np.copyto(out, a, casting="unsafe")
    return out


class _TensorType(type):
    """``pytape.Tensor(data)`` makes a leaf (a copy of data as float64)."""

    def __call__(cls, data, requires_grad=True):
        return TensorLeaf._make(_as_float64(data, "pytape.Tensor()"), requires_grad)


class _MadeByPytape(_TensorType):
    __call__ = type.__call__


class Tensor(Rounding, metaclass=_TensorType):
    """A float64 n-d array whose operations are recorded on a tape, one
    instruction each; ``pytape.Tensor(data)`` (or ``pytape.array(data)``)
    makes a leaf from numbers, lists or numpy arrays (copied).

    numpy's functions and operators work on it (``np.exp(x)``, ``x @ w``,
    ``x.sum(axis=0)``); ``backward()`` runs the adjoint sweep in C and adds to
    the leaves' ``grad``.  Full reductions give 0-d Tensors, as numpy gives
    0-d values; ``float(t)`` and ``t.item()`` read a one-element Tensor.

    >>> import numpy as np, pytape
    >>> w = pytape.Tensor([0.5, -0.25])
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> loss = np.mean(np.log(1.0 + np.exp(-(X @ w))))
    >>> loss.backward()
    >>> np.round(w.grad, 4)
    array([-0.8163, -1.2551])
    """

    __slots__ = ()
    # numpy hands binary operators with an ndarray on the left to us
    __array_priority__ = 1000

    # ---- what a Tensor is -------------------------------------------------------

    @property
    def ndim(self):
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self):
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def dtype(self):
        """Always float64: the tape computes in doubles."""
        return _F64

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor")
        return self.shape[0]

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d Tensor")
        return (self[k] for k in range(self.shape[0]))

    def item(self):
        """The value of a one-element Tensor as a Python float.

        >>> import pytape
        >>> pytape.Tensor([[2.5]]).item()
        2.5
        """
        if self.size != 1:
            raise ValueError(f"only a one-element Tensor converts to a Python number; this one has shape "
                             f"{self.shape}")
        return float(self.value.reshape(()))

    def __float__(self):
        return self.item()

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.size != 1:
            raise ValueError("the truth value of a Tensor with more than one element is ambiguous. "
                             "Use np.any(t > 0) or np.all(t > 0) (comparisons give numpy bool arrays)")
        return bool(self.item())

    def tolist(self):
        """The value as nested Python lists (numpy's ``tolist``)."""
        return self.value.tolist()

    def numpy(self):
        """The value as a numpy array (a copy, like ``torch.Tensor.numpy().copy()``)."""
        return np.array(self.value)

    def __array__(self, dtype=None, copy=None):
        # np.asarray(t): the value (derivatives stop there, as for torch's .numpy())
        if ARGUMENTS[0] and self.requires_grad:  # a function transformation records f
            _refuse_numpy_value(self)
        v = self.value
        return v.astype(dtype) if dtype is not None else (np.array(v) if copy else v)

    def zero_grad(self):
        """Set ``grad`` to zeros (leaves).

        >>> import pytape
        >>> x = pytape.Tensor([1.0, 2.0]); (x * x).sum().backward(); x.zero_grad(); x.grad
        array([0., 0.])
        """
        self.grad = None

    def __repr__(self):
        body = np.array2string(self.value, separator=", ", prefix="Tensor(")
        return f"Tensor({body}{'' if self.requires_grad else ', constant'})"

    __hash__ = object.__hash__  # by identity, like Var


class TensorResult(Recorded, Tensor, metaclass=_MadeByPytape):
    """A recorded array: the handle ``_i`` of its slot on tape ``_t``."""

    # _w: for a large result, the weak reference whose callback tells the
    # tape this object died (its buffers may be recycled: _watch)
    __slots__ = ("_t", "_i", "_shape", "_w", "__weakref__")

    @property
    def shape(self):
        """The shape, a tuple of ints."""
        s = self._shape
        if s is None:
            s = self._shape = _call(self._t, _native.arr_shape, self._i)
        return s

    @property
    def value(self):
        """The array's value: a read-only numpy view of the tape's memory
        (alias ``.data``).  A recorded value never changes, and the view
        keeps this result (and its tape) alive: it stays valid as long as it
        is held."""
        v = _call(self._t, _native.arr_value, self, self._i, self.shape)  # the view holds self: no recycling
        v = v if v is not None else _empty(self.shape)
        return ESCAPE[0](self, v) if TRACING[0] else v

    data = value

    @property
    def grad(self):
        """d(output)/d(self) from the last ``backward()`` on this tape (a
        new array; zeros where the sweep did not reach it)."""
        c = self._t._c
        if not c.is_owner():
            _native.check(_native.THREAD, "read", c)
        g = _native.arr_adjoint(self._t, c, self._i >> _B, self.shape)
        return np.zeros(self.shape) if g is None else g

    @property
    def tangent(self):
        """d(self) along the seeds of the last tangent sweep (zeros where it did not reach)."""
        d = _native.arr_tangent(self._t, self._t._c, self._i >> _B, self.shape)
        return np.zeros(self.shape) if d is None else d

    @property
    def slot(self):
        """Its slot on the tape (its row in ``tape.table()``)."""
        return self._i >> _B

    def detach(self):
        """A constant with this array's value (a copy): gradients stop there.

        >>> import pytape
        >>> x = pytape.Tensor([3.0])
        >>> y = (x * (x * 1.0).detach()).sum(); y.backward(); x.grad
        array([3.])
        """
        return TensorLeaf._make(np.array(self.value), False)

    def backward(self, gradient=None, retain_graph=False):
        """Reverse sweep: add d(self)/d(leaf) . gradient to every leaf's ``grad``.

        A one-element output needs no ``gradient`` (it is 1); any other needs
        one of its shape, as in PyTorch.  Unless ``retain_graph``, the tape
        is consumed.

        >>> import pytape
        >>> x = pytape.Tensor([1.0, 2.0])
        >>> (x * 3.0).backward([1.0, 10.0]); x.grad
        array([ 3., 30.])
        """
        shape = self.shape
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(f"backward() of a Tensor of shape {shape} needs gradient= (an array of that "
                                   f"shape): only a one-element output has an implied gradient of 1")
            seed = None  # 1
        else:
            seed = _as_float64(gradient, "backward(gradient=)")
            if seed.shape != shape:
                raise ValueError(f"backward(gradient=): shape {seed.shape} does not match the output's "
                                 f"shape {shape}")
        t = self._t
        t._refuse_while_traced("backward()")
        with explain(t):  # anomaly mode: a nan names its operation, element and line
            _native.backward_array(t._c, self._i >> _B, seed, retain_graph)
        if not retain_graph:
            t._consumed = True

    def __reduce__(self):
        raise TypeError("a recorded Tensor cannot be pickled (it is a slot of a C tape); pickle its value "
                        "(t.value) or a leaf made from it")


class TensorLeaf(Owned, Tensor, metaclass=_MadeByPytape):
    """A leaf (``pytape.Tensor(data)``) or a constant: owns its value and gradient."""

    # _lent: _v is lent to a tape (placed without a copy): it is copied before
    # anyone may write to it (the value getter), so a tape's values never change;
    # _gs: the grad's state cell (C reads and sets it, pytape.h: pt_grad_state):
    # zero (_g's memory stale), held (_g holds it) or claimed (a sweep writes it)
    # _ro: None, or for an argument of a function being transformed (pytape.grad,
    # hessian, ...: program.TensorRecording) a read-only view of _v that .value
    # answers: reading it must not place the leaf again (the recording
    # differentiates with respect to its first placement)
    __slots__ = ("_v", "_g", "_gs", "_hs", "_hh", "_lent", "_args", "_ro")

    @classmethod
    def _make(cls, value, requires_grad=True):
        x = cls()
        x._v = value
        if requires_grad:
            x._g = _native.arr_empty(value.shape, value.size)
            x._gs = _native.new_grad_state()
        else:
            x._g = x._gs = None
        x._hs = 0
        x._lent = False
        x._args = None  # _place_leaf's C arguments for _v and _g (_native.leaf_arguments)
        x._ro = None
        return x

    def _seal(self):
        """Make .value a read-only view that never places the leaf again (an
        argument of a transformed function: pytape/program.py)."""
        ro = self._v.view()
        ro.flags.writeable = False
        self._ro = ro

    @property
    def shape(self):
        """The shape, a tuple of ints."""
        return self._v.shape

    @property
    def value(self):
        """The leaf's own array (alias ``.data``): writable; a change applies
        to the next recording that uses the leaf (tapes keep the values they
        recorded), so ``w.data -= lr * w.grad`` is a gradient step.  Inside a
        function that pytape.grad, hessian, ... transform, an array argument's
        value is a read-only view."""
        if self._ro is not None:
            return ESCAPE[0](self, self._ro) if TRACING[0] else self._ro
        if self._lent:  # tapes hold this array: they keep it, the leaf takes a copy to be written
            self._v = np.array(self._v)
            self._lent = False
        self._hs = 0  # it may be written through this array: the next use places it again
        return self._v

    @value.setter
    def value(self, v):
        if self._ro is not None:
            raise TypeError("pytape: an argument of a function being differentiated is read only: its value "
                            "cannot be set inside the function (compute a new Tensor from it instead)")
        v = _as_float64(v, "value")
        if v.shape != self._v.shape:
            raise ValueError(f"value: shape {v.shape} does not match the leaf's shape {self._v.shape}")
        self._v = v
        self._lent = False
        self._hs = 0

    data = value

    @property
    def grad(self):
        """Accumulated d(output)/d(leaf) over backward calls (an array of the
        leaf's shape, zeros before any, which backward() adds to in place);
        None for constants."""
        g = self._g
        if g is not None and self._gs[0] != _GRAD_HELD:  # zero, or a sweep is writing it: wait, read
            _native.arr_grad_set(g, self._gs)
        return g

    @grad.setter
    def grad(self, g):
        if self._g is None:
            raise AttributeError("a constant has no gradient (requires_grad is False)")
        if g is None:  # zero: the next backward writes instead of adding
            _native.arr_grad_set(self._g, self._gs, zero=True)
            return
        g = _as_float64(g, "grad")
        new = np.empty(self._v.shape)
        try:
            new[...] = g
        except ValueError:
            raise ValueError(f"grad: shape {g.shape} does not fit the leaf's shape {self._v.shape}") from None
        _native.arr_grad_set(self._g, self._gs, new)

    @property
    def tangent(self):
        """Zeros: a leaf's tangent is its seed (see pytape.jvp)."""
        return np.zeros(self._v.shape)

    def detach(self):
        """A constant with this leaf's value (a copy)."""
        return TensorLeaf._make(np.array(self._v), False)

    def backward(self, gradient=None, retain_graph=False):
        """d(leaf)/d(leaf) = identity: adds ``gradient`` (1 for one element) to ``grad``."""
        if self._g is None:
            raise RuntimeError("backward() on a constant: it does not require grad")
        if gradient is None:
            if self._v.size != 1:
                raise RuntimeError(f"backward() of a Tensor of shape {self.shape} needs gradient=")
            gradient = np.ones(self.shape)
        g = _as_float64(gradient, "backward(gradient=)")
        self.grad += g

    def __reduce__(self):
        return (_unpickle_leaf, (self._v, self.grad))


def _unpickle_leaf(value, grad):
    x = TensorLeaf._make(np.array(value, dtype=_F64), grad is not None)
    if grad is not None:
        x.grad = grad
    return x


def array(data, requires_grad=True):
    """A Tensor leaf from numbers, lists or numpy arrays (``pytape.Tensor(data)``).

    >>> import pytape
    >>> pytape.array([[1, 2], [3, 4]]).shape
    (2, 2)
    """
    return Tensor(data, requires_grad)


def _empty(shape):
    a = np.zeros(shape)
    a.flags.writeable = False
    return a


def _refuse_numpy_value(t):
    raise TypeError("numpy converted a recorded Tensor to a plain array inside a function that pytape "
                    "differentiates: its derivative would be lost. Use numpy's functions on the Tensor "
                    "itself (np.exp(x), x @ w), or pytape's (pytape.logsumexp, ...)")


# ---- where operands sit on a tape ---------------------------------------------------

def _place_leaf(x, tape):
    """The handle of Tensor leaf x on ``tape`` (an array LEAF made on first use)."""
    s = x._hs
    h = x._hh if s else -1
    if s == tape._serial and x._hs == s:  # read twice: no other thread re-placed it meanwhile (as var.place)
        return h
    v = x._v  # lent, not copied: the tape reads it as long as it lives, and the leaf copies before a write
    args = x._args
    if args is None or args[0] is not v:  # made for an array the leaf no longer has (value=, a copy before a write)
        args = x._args = _native.leaf_arguments(v, x._g)
    h = _native.arr_placed(tape._c, args, x._gs)
    if h >= 0:
        tape._lent.append(v)
        x._lent = True
        if x._g is not None:
            tape._cells += (x._g, x._gs)  # C writes them: alive as long as the tape
    if h >= 0:
        x._hs = 0
        x._hh = h
        x._hs = tape._serial
    return h


def _constant_array(a, tape):
    return _native.arr_const(tape._c, np.ascontiguousarray(a, dtype=_F64))


_NUMBER = (float, int)


def tape_of(xs):
    """The tape an operation on xs is recorded on: that of its recorded
    operands (Tensor or Var results), else the current tape."""
    t = None
    for x in xs:
        tx = type(x)
        if tx is TensorResult or tx is VarResult:
            if t is None:
                t = x._t
            elif x._t is not t:
                _native.check(_native.TAPES)
    return t if t is not None else current_tape()


def as_tensor_operand(x, tape):
    """Operand x of an array operation on ``tape``: (handle, None) for an
    operand with a slot, (None, float) for a scalar constant; TypeError for
    anything else."""
    tx = type(x)
    if tx is TensorResult or tx is VarResult:
        return x._i, None
    if tx is TensorLeaf:
        return _place_leaf(x, tape), None
    if tx is VarLeaf:
        return (None, x._v) if x._g is None else (var_place(x, tape), None)
    if getattr(tx, "_is_mask", False):  # a traced comparison (pytape/tensor_trace.py): its recorded 0/1 array
        return as_tensor_operand(x._t, tape)
    if tx in _NUMBER or isinstance(x, (numbers.Real, np.bool_)) and not isinstance(x, np.ndarray):
        if isinstance(x, np.generic) and x.dtype.kind not in "biuf":
            raise TypeError(f"pytape: an array operation takes real numbers, not {x.dtype}")
        return None, float(x)
    if isinstance(x, (np.ndarray, list, tuple)):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            if a.dtype.kind == "O":
                raise TypeError("pytape: an object array (of Vars?) cannot be an operand of a Tensor operation: "
                                "make it a Tensor (pytape.Tensor(values)) or keep the computation on Vars")
            raise TypeError(f"pytape: an array operation takes real arrays, not dtype {a.dtype}")
        if a.ndim == 0:
            return None, float(a)
        return _constant_array(a, tape), None
    raise TypeError(f"pytape: unsupported operand for an array operation: {tx.__name__!r}; Tensors combine "
                    f"with Tensors, Vars, real numbers and real numpy arrays")


def _result(tape, h):
    """The TensorResult of handle h that an array recording returned (with
    WATCH added: a large result, watched; in anomaly mode every result has
    WATCH and NOTE added: its source line is noted, and it is watched if
    large)."""
    r = TensorResult()
    r._t = tape
    r._shape = None
    if h >= _WATCH:
        h -= _WATCH
        if h >= _NOTE:
            h -= _NOTE
            r._i = h
            note_array(tape, h >> _B)
            if r.size < _native.RECYCLE_MIN:
                return r
        _watch(tape, r, h)
    r._i = h
    return r


def _watch(tape, r, h):
    """Tell ``tape`` when large result r dies: no instruction can read its
    slot again, so the tape recycles the slot's value (unless a sweep reads
    it) and, once swept, its adjoint (csrc/array.h: recycling).  The weak
    reference lives in r itself: it dies with r, its callback still runs.
    C says which results to watch by adding WATCH to their handles."""
    r._w = weakref.ref(r, functools.partial(_native.arr_drop, tape._c._p, h >> _B))


def _constant_inputs(xs):
    """xs with every recorded operand replaced by a constant of its value."""
    out = []
    for x in xs:
        if isinstance(x, Tensor):
            out.append(TensorLeaf._make(np.array(x.value), False))
        elif isinstance(x, Var):
            out.append(float(x.value))
        else:
            out.append(x)
    return out


def _no_grad(fn, xs):
    """fn on constants under no_grad: recorded on a scratch tape with grad on,
    the value kept (and not checked in anomaly mode: what no_grad computes is
    not recorded, as for Vars)."""
    with enable_grad(), Tape(), unchecked():
        r = fn(*_constant_inputs(xs))
    return TensorLeaf._make(np.array(r.value), False) if isinstance(r, Tensor) else r


def _shapes_message(xs):
    return " ".join(str(tuple(np.shape(x.value if isinstance(x, (Tensor, Var)) else x))) for x in xs)


def _finish(tape, h, fn, xs, what, broadcast=False):
    """The result of a recording that answered h (a handle or a status)."""
    if h >= 0:
        return _result(tape, h)
    if h == _native.NOGRAD:
        return _no_grad(fn, xs)
    if h == _native.E_SHAPE:
        raise ValueError(f"{what}: operands could not be broadcast together with shapes {_shapes_message(xs)}"
                         if broadcast else f"{what}: the shapes {_shapes_message(xs)} do not fit")
    if h == _native.NONFINITE:  # anomaly mode refused a nan or inf value: its operation, element and line
        raise array_error(tape, _values(xs)) from None
    _native.check(h, "record", tape._c)


def _values(xs):
    """The operands' values, read as they are (a leaf is not placed again)."""
    return [raw_value(x) if isinstance(x, Tensor) else x.value if isinstance(x, Var) else x for x in xs]


#: ESCAPE[0](x, v): Tensor x's value v reaches Python while pytape.trace
#: records f (pytape/tensor_trace.py: a guard that it stays v)
ESCAPE = [None]


def raw_value(x):
    """Tensor x's value for pytape's own use: a leaf's array as it is (not
    lent for writing, as .value would), no guard while f is traced."""
    if type(x) is TensorLeaf:
        return x._v
    v = _call(x._t, _native.arr_value, x, x._i, x.shape)
    return v if v is not None else _empty(x.shape)


# ---- the primitives: one instruction each --------------------------------------------

def _call(tape, fn, *args):
    """fn(*args), a C call taking handles of ``tape``'s instructions: on a tape
    that got no handle id (more tapes alive than ids), its handles have id 0
    and C is told which tape they name for the call."""
    return fn(*args) if tape._c.id else _native.on_unregistered(tape._c, fn, *args)


#: rows whose values numpy's SIMD loops compute 4-20x faster than the rows'
#: libm calls (measured on 10^5 elements, kernels only, in one process):
#: from NUMPY_VALUES_FROM elements on, their values come from numpy (equal to
#: numpy's bit for bit, within numpy's stated few ulps of the scalar rows);
#: their derivatives stay the rows' (in terms of the recorded value y)
NUMPY_VALUES = {_native.OPCODES[name]: f for name, f in (
    ("cbrt", np.cbrt), ("exp", np.exp), ("exp2", np.exp2), ("expm1", np.expm1), ("log", np.log), ("log2", np.log2),
    ("log10", np.log10), ("log1p", np.log1p), ("tan", np.tan), ("asin", np.arcsin), ("acos", np.arccos),
    ("atan", np.arctan), ("sinh", np.sinh), ("cosh", np.cosh), ("tanh", np.tanh), ("asinh", np.arcsinh),
    ("atanh", np.arctanh))}
NUMPY_VALUES_FROM = 512
#: elements from which row code's values come from numpy: C's pt_arr_map1
#: records smaller operands only (PT_E_LARGE otherwise)
NO_LIMIT = 2**62


def map1_limit(code):
    """The operand size from which row code's MAP1 takes numpy's values (pt_arr_map1's limit)."""
    return NUMPY_VALUES_FROM if code in NUMPY_VALUES else NO_LIMIT


def _numpy_values(t, code, fast, x, h):
    """MAP1 of row ``code`` on Tensor x (handle h on tape t), its values
    computed by numpy's loop ``fast``: the handle or a status."""
    v = x._v if type(x) is TensorLeaf else _call(t, _native.arr_value_now, x._i, x.shape, x.size)
    with np.errstate(all="ignore"):
        return _call(t, _native.arr_map1_given, code, h, np.ascontiguousarray(fast(v)))


def map1(code, x):
    """The unary op-table row ``code`` elementwise over x (a MAP1 instruction)."""
    fast = NUMPY_VALUES.get(code)
    if type(x) is TensorResult:
        h = _native.arr_map1(code, x._i, map1_limit(code))
        if h >= 0:
            return _result(x._t, h)
        if h == _E_LARGE:  # recording, and numpy computes the values
            h = _numpy_values(x._t, code, fast, x, x._i)
            if h >= 0:
                return _result(x._t, h)
    if not is_grad_enabled():
        return _no_grad(lambda a: map1(code, a), (x,))
    t = tape_of((x,))
    h, c = as_tensor_operand(x, t)
    if h is None:  # a number: the scalar op
        return _native.evaluate(code, c)
    if h < 0:
        _native.check(h, "record", t._c)
    if fast is not None and isinstance(x, Tensor) and x.size >= NUMPY_VALUES_FROM:
        r = _numpy_values(t, code, fast, x, h)
    else:
        r = _call(t, _native.arr_map1, code, h, NO_LIMIT)
    return _finish(t, r, lambda a: map1(code, a), (x,), f"pytape.{_native.OP_NAMES[code]}")


def map2(code, a, b):
    """The binary op-table row ``code`` (its var-var opcode) elementwise over
    a and b with numpy's broadcasting (a MAP2 instruction)."""
    if not is_grad_enabled():
        return _no_grad(lambda u, v: map2(code, u, v), (a, b))
    t = tape_of((a, b))
    ha, ca = as_tensor_operand(a, t)
    if ha is not None and ha < 0:
        _native.check(ha, "record", t._c)
    hb, cb = as_tensor_operand(b, t)
    if hb is not None and hb < 0:
        _native.check(hb, "record", t._c)
    if ha is not None and hb is not None:
        h = _call(t, _native.arr_map2, code, ha, hb)
    elif ha is not None:
        h = _call(t, _native.arr_map2_vc, code, ha, cb)
    elif hb is not None:
        h = _call(t, _native.arr_map2_cv, code, ca, hb)
    else:
        return _native.evaluate(code, ca, cb)
    return _finish(t, h, lambda u, v: map2(code, u, v), (a, b), f"pytape.{_native.OP_NAMES[code]}", True)


def record(kind, operands, shape=(), par=(), what="array operation"):
    """One instruction of ``kind`` (KIND[...]) on Tensor operands with output
    ``shape`` and integer parameters ``par`` (csrc/pytape.h lists them)."""
    if not is_grad_enabled():
        return _no_grad(lambda *xs: record(kind, xs, shape, par, what), operands)
    t = tape_of(operands)
    hs = []
    for x in operands:
        h, c = as_tensor_operand(x, t)
        if h is None:
            h = _constant_array(np.float64(c).reshape(()), t)
        if h < 0:
            _native.check(h, "record", t._c)
        hs.append(h)
    if len(shape) > MAX_DIMS:
        raise ValueError(f"{what}: at most {MAX_DIMS} dimensions")
    h = _call(t, _native.arr_record, kind, hs, shape, par)
    return _finish(t, h, lambda *xs: record(kind, xs, shape, par, what), operands, what)
