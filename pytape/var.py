"""``Var``: a number whose operations are recorded on a C tape.

A ``Var`` handle is two references: its tape and its slot.  Every operation
appends one instruction to the tape through one cffi call; nothing in Python
points from one result to another, so a graph keeps no Python object per node.

Three kinds of ``Var`` exist:

* intermediate results (class ``Var``): ``_t`` the tape, ``_i`` the slot;
* leaves (class ``Leaf``), made by ``pytape.Var(2.0)``: they own their value and
  a grad cell, and get a slot on whichever tape first uses them;
* constants (a ``Leaf`` with no grad cell), from ``detach()`` and ``no_grad``.

The binary operators and functions are built below from the op table.  Each
has a fast path (an intermediate with a float, int or intermediate of the same
tape) and one shared slow path for everything else: leaves, constants, numpy
scalars, grad mode off, and every error.
"""
import math
import numbers

import numpy as np

from . import anomaly
from ._native import BINARY, OPCODES, OP_NAMES, UNARY, check_owner, ffi, lib, raise_status
from .tape import _state, current_tape

__all__ = ["Var", "Leaf", "FUNCTIONS"]

_new = object.__new__
_NOWHERE = (0, -1)  # a leaf's home before it is on any tape (tape serials start at 1)
_CELL = ffi.typeof("double[1]")  # a leaf's grad cell


class Var:
    """A real number recorded on a tape; ``pytape.Var(2.0)`` makes a leaf.

    Arithmetic, comparisons and the functions of the ``pytape`` namespace work
    on it like on a float; ``backward()`` computes the derivatives of the
    result with respect to every leaf it depends on, in one C sweep.

    >>> import pytape
    >>> x1, x2 = pytape.Var(2.0), pytape.Var(5.0)
    >>> y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    >>> y.backward()
    >>> round(y.value, 3), round(x1.grad, 3), round(x2.grad, 3)
    (11.652, 5.5, 1.716)
    """

    __slots__ = ("_t", "_i")

    def __new__(cls, value=0.0, _children=(), _op="", label="", requires_grad=True):
        # micrograd's Value(data, _children, _op, label) signature is accepted;
        # the graph is on the tape, so _children and _op are not needed.
        return Leaf._make(_real(value, "pytape.Var()"), requires_grad)

    # ---- value and gradient -------------------------------------------------

    @property
    def value(self):
        """The number this Var holds (alias ``.data``); assignable on leaves."""
        return lib.pt_value(self._t._p, self._i)

    @value.setter
    def value(self, v):
        raise AttributeError(
            "only leaves have an assignable value: changing an intermediate "
            "result in place would make the recorded derivatives wrong. "
            "Make a new leaf with pytape.Var(v) instead."
        )

    data = value

    @property
    def grad(self):
        """d(output)/d(self) from the last ``backward()`` on this Var's tape.

        Leaves accumulate it across backward calls (as in PyTorch and
        micrograd) until ``zero_grad()`` or ``x.grad = 0``; intermediate
        results report the adjoint of the last sweep, 0.0 before any.
        """
        g = lib.pt_adjoint(self._t._p, self._i)
        if g != g:  # nan: also what another thread gets
            check_owner(self._t)
        return g

    @grad.setter
    def grad(self, g):
        g = _real(g, "grad")
        st = lib.pt_set_adjoint(self._t._p, self._i, g)
        if st == lib.PT_E_THREAD:
            raise_status(st, "record", self._t)
        if st and g != 0.0:
            raise AttributeError("this intermediate result has no adjoint yet; run backward() first")

    @property
    def tangent(self):
        """d(self) along the seeds of the last ``tape.tangent_sweep`` (0.0 before any)."""
        d = lib.pt_tangent(self._t._p, self._i)
        if d != d:
            check_owner(self._t)
        return d

    def zero_grad(self):
        """Set ``grad`` to 0.

        >>> import pytape
        >>> x = pytape.Var(3.0); (x * x).backward(); x.zero_grad(); x.grad
        0.0
        """
        self.grad = 0.0

    @property
    def requires_grad(self):
        """False for constants (``detach()``, results under ``no_grad``)."""
        return True

    @property
    def is_leaf(self):
        """True for leaves and constants, False for recorded results."""
        return False

    @property
    def tape(self):
        """The ``Tape`` this result was recorded on (None for leaves)."""
        return self._t

    def detach(self):
        """A constant with this Var's value: gradients stop there.

        >>> import pytape
        >>> x = pytape.Var(3.0)
        >>> y = x * x.detach()      # the second factor is a constant
        >>> y.backward(); x.grad
        3.0
        """
        return Leaf._make(self.value, False)

    def item(self):
        """The value as a Python float (like ``torch.Tensor.item``).

        >>> import pytape
        >>> pytape.Var(1.5).item()
        1.5
        """
        return float(self.value)

    def backward(self, gradient=1.0, retain_graph=False, inputs=None):
        """Reverse sweep: add d(self)/d(leaf) * gradient to every leaf's ``grad``.

        One C loop over the tape, from this Var's instruction down.  Unless
        ``retain_graph`` is true the tape is consumed: a second backward through
        it raises, and the next operation starts a fresh tape.  With ``inputs``
        (leaves), only their ``grad`` accumulate, as in PyTorch.

        >>> import pytape
        >>> x = pytape.Var(3.0)
        >>> y = x ** 2
        >>> y.backward(retain_graph=True); y.backward(); x.grad
        12.0
        """
        seed = _real(gradient, "gradient")
        if inputs is not None:
            return _backward_into(self, seed, retain_graph, inputs)
        t = self._t
        status = lib.pt_backward(t._p, self._i, seed, 1 if retain_graph else 0)
        if status == lib.PT_E_NONFINITE:
            raise anomaly.backward_error(t)
        if status:
            raise_status(status, "backward", t)
        if not retain_graph:
            t._consumed = True

    # ---- conversions and comparisons (on values) ---------------------------

    # While pytape.trace records a function, every comparison and conversion
    # that could steer control flow is recorded as a guard that replays re-check
    # (exact equality for float()/int()/round(): any change of value re-traces).

    def __float__(self):
        v = float(self.value)
        if _tracing[0]:
            _guard(self, v, lib.PT_EQ, True)
        return v

    def __int__(self):
        return int(self.__float__())

    def __bool__(self):
        r = self.value != 0.0
        if _tracing[0]:
            _guard(self, 0.0, lib.PT_NE, r)
        return r

    def __round__(self, ndigits=None):  # on the value, like float: not recorded
        return round(self.__float__(), ndigits)

    def __trunc__(self):
        return math.trunc(self.__float__())

    def __floor__(self):
        return math.floor(self.__float__())

    def __ceil__(self):
        return math.ceil(self.__float__())

    def __lt__(self, other):
        r = self.value < _num(other)
        if _tracing[0]:
            _guard(self, other, lib.PT_LT, r)
        return r

    def __le__(self, other):
        r = self.value <= _num(other)
        if _tracing[0]:
            _guard(self, other, lib.PT_LE, r)
        return r

    def __gt__(self, other):
        r = self.value > _num(other)
        if _tracing[0]:
            _guard(self, other, lib.PT_GT, r)
        return r

    def __ge__(self, other):
        r = self.value >= _num(other)
        if _tracing[0]:
            _guard(self, other, lib.PT_GE, r)
        return r

    def __eq__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = self.value == o
        if _tracing[0]:
            _guard(self, other, lib.PT_EQ, r)
        return r

    def __ne__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = self.value != o
        if _tracing[0]:
            _guard(self, other, lib.PT_NE, r)
        return r

    __hash__ = object.__hash__  # by identity: Vars live in sets and dicts

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy ufuncs on Vars: np.exp(x), np.float64(2) * x, array * x.

        Ufuncs on object arrays of Vars call the Vars' methods without coming
        here (np.sin(a) calls a[i].sin()); this handles a Var as an operand.
        """
        if method == "reduce" and len(inputs) == 1 and inputs[0] is self and ufunc in _REDUCE_SELF:
            return self  # np.sum(x), np.prod(x), np.max(x) of a scalar: x itself
        fn = _UFUNCS.get(ufunc)
        if method != "__call__" or kwargs or fn is None:
            return NotImplemented
        if any(isinstance(x, np.ndarray) for x in inputs):  # elementwise, into an object array
            return ufunc(*[_objects(x) for x in inputs])
        return fn(*[float(x) if isinstance(x, np.generic) else x for x in inputs])

    def __pos__(self):
        return self

    def __repr__(self):
        op = OP_NAMES[lib.pt_tape_op_at(self._t._p, self._i)]
        return f"Var({self.value!r}, grad={self.grad!r}, op={op!r})"

    def _repr_svg_(self):
        """The graph computing this Var as SVG, for Jupyter (None for leaves or without Graphviz)."""
        from .display import repr_svg
        return repr_svg(self)

    def __reduce__(self):
        raise TypeError(
            "a recorded Var cannot be pickled (it is a slot of a C tape); "
            "pickle its value (x.value) or a leaf made from it"
        )


class Leaf(Var):
    """A leaf (``pytape.Var(2.0)``) or a constant: owns its value and grad cell.

    ``_v`` is the value, ``_g`` a one-double C cell the reverse sweep adds the
    leaf's adjoint to (None for a constant), ``_home`` (tape serial, slot) the
    tape the leaf was last recorded on.  A leaf gets a LEAF instruction on each
    tape that uses it, so the same parameters serve many recordings.
    """

    __slots__ = ("_v", "_g", "_home")

    @classmethod
    def _make(cls, value, requires_grad=True):
        x = _new(cls)
        x._v = value
        x._g = ffi.new(_CELL) if requires_grad else None
        x._home = _NOWHERE
        return x

    @property
    def value(self):
        """The number this Var holds (alias ``.data``); assignable on leaves."""
        return self._v

    @value.setter
    def value(self, v):
        # tapes that recorded the old value keep it; the next use records the new one
        self._v = v if type(v) is float else _real(v, "value")
        self._home = _NOWHERE

    data = value

    @property
    def grad(self):
        """Accumulated d(output)/d(leaf) over backward calls; None for constants."""
        g = self._g
        return None if g is None else g[0]

    @grad.setter
    def grad(self, g):
        cell = self._g
        if cell is None:
            raise AttributeError("a constant has no gradient (requires_grad is False)")
        cell[0] = g if type(g) is float else _real(g, "grad")

    @property
    def requires_grad(self):
        """False for constants (``detach()``, results under ``no_grad``)."""
        return self._g is not None

    @property
    def is_leaf(self):
        """True for leaves and constants, False for recorded results."""
        return True

    @property
    def tape(self):
        """The ``Tape`` this result was recorded on (None for leaves)."""
        return None

    def detach(self):
        """A constant with this Var's value: gradients stop there."""
        return Leaf._make(self._v, False)

    def backward(self, gradient=1.0, retain_graph=False, inputs=None):
        """d(leaf)/d(leaf) = 1: adds ``gradient`` to the leaf's own grad."""
        if inputs is not None:
            return _backward_into(self, _real(gradient, "gradient"), retain_graph, inputs)
        if self._g is None:
            raise RuntimeError("backward() on a constant: it does not require grad")
        self._g[0] += _real(gradient, "gradient")

    def __repr__(self):
        if self._g is None:
            return f"Var({self._v!r}, constant)"
        return f"Var({self._v!r}, grad={self._g[0]!r})"

    def __reduce__(self):
        return (_unpickle_leaf, (self._v, self.grad))


_tracing = [0]  # > 0 while pytape.trace records a function (in any thread)


def _guard(x, other, cmp, outcome):
    """Record the comparison (x CMP other) -> outcome on a tracing tape."""
    t = x._t if type(x) is Var else current_tape()
    if not getattr(t, "_guards", False) or (type(x) is Leaf and x._g is None):
        return
    j = _slot(x, t)
    if isinstance(other, Var) and not (type(other) is Leaf and other._g is None):
        if type(other) is Var and other._t is not t:
            return
        k, c = _slot(other, t), 0.0
    else:
        k, c = -1, float(_num(other))
    if j < 0 or (isinstance(other, Var) and k < 0):
        return
    i = lib.pt_guard(t._p, j, k, c, cmp, 1 if outcome else 0)
    if i >= 0:
        if t._where is None:
            t._where = {}
        t._where[i] = anomaly._caller()


def _backward_into(y, seed, retain_graph, inputs):
    """backward(inputs=...): accumulate into the grad of the listed leaves only."""
    from .autograd import _as_tuple, grad

    leaves, _ = _as_tuple(inputs, "inputs")
    for x in leaves:
        if type(x) is not Leaf or x._g is None:
            raise TypeError("backward(inputs=...) takes leaves that require grad")
    for x, g in zip(leaves, grad(y, leaves, seed, retain_graph=retain_graph, allow_unused=True)):
        if g is not None:
            x._g[0] += g


def _unpickle_leaf(value, grad):
    x = Leaf._make(value, grad is not None)
    if grad is not None:
        x._g[0] = grad
    return x


# ---- operand helpers (slow path) ---------------------------------------------

_BAD = object()


def _real(v, what):
    """v as a float; TypeError unless it is a real number (or a Var's value)."""
    if type(v) is float:
        return v
    if isinstance(v, Var):
        return float(v.value)
    if isinstance(v, numbers.Real) or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "biuf"):
        return float(v)
    raise TypeError(f"{what} must be a real number, not {type(v).__name__}")


def _num_or_none(v):
    if isinstance(v, Var):
        return v.value
    if isinstance(v, numbers.Real):
        return float(v)
    return None


def _num(v):
    o = _num_or_none(v)
    if o is None:
        raise TypeError(f"cannot compare a pytape.Var with {type(v).__name__}")
    return o


def _const(x):
    """The float value of x if it is a constant operand, None if it is a Var
    that needs a slot, _BAD if it is not a number at all."""
    tx = type(x)
    if tx is Var:
        return None
    if tx is Leaf:
        return None if x._g is not None else x._v
    if tx is float or tx is int:
        return x
    if isinstance(x, (float, int, np.number)):  # numpy scalars, bool; cheaper than the ABC
        return float(x) if not isinstance(x, np.complexfloating) else _BAD
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "biuf":
        return float(x)
    return _BAD


def _value(x):
    return x.value if isinstance(x, Var) else float(x)


def _slot(x, tape):
    """Slot of operand x on tape (its own for results, a LEAF instruction
    for leaves, made on first use), or a negative status."""
    if type(x) is not Leaf:
        return x._i
    h = x._home
    if h[0] == tape._serial:
        return h[1]
    i = lib.pt_leaf(tape._p, x._v, x._g)
    if i >= 0:
        tape._cells.append(x._g)  # keeps the grad cell alive as long as the tape
        x._home = (tape._serial, i)
    return i


def _tape_for(a, b=None):
    """The tape an operation on a and b is recorded on: that of its
    intermediate operands, else the current tape."""
    ta = a._t if type(a) is Var else None
    tb = b._t if type(b) is Var else None
    if ta is None:
        return tb if tb is not None else current_tape()
    if tb is not None and tb is not ta:
        raise ValueError(
            "these two Vars were recorded on different tapes and cannot be "
            "combined; compute them on one tape, or pass a value across with "
            "x.detach() / pytape.Var(x.value)"
        )
    return ta


def _result(tape, i):
    v = _new(Var)
    v._t = tape
    v._i = i
    return v


class _Op:
    """A primitive's opcode, name and C recording entry points (tape.c)."""

    __slots__ = ("code", "name", "rec", "rec_vc", "rec_cv")

    def __init__(self, name):
        self.code = OPCODES[name]
        self.name = name
        entry = f"pt_rec_{name.upper()}"
        self.rec = getattr(lib, entry)
        self.rec_vc = getattr(lib, entry + "_VC", None)
        self.rec_cv = getattr(lib, entry + "_CV", None)


def _binary_slow(op, a, b):
    """Every binary case the fast path does not take: leaves, constants,
    numpy scalars, grad mode off, tapes that refuse, bad operands."""
    ca = _const(a)
    cb = _const(b)
    if ca is _BAD or cb is _BAD:
        other = a if ca is _BAD else b
        if isinstance(other, np.ndarray):  # elementwise, into an object array
            return _map(lambda u, v: _binary_slow(op, u, v), _objects(a), _objects(b))
        raise TypeError(
            f"unsupported operand for pytape.{op.name}: {type(other).__name__!r}; "
            f"a Var combines with Vars and real numbers (int, float, numpy scalars)"
        )
    if ca is None or cb is None:
        t = _tape_for(a, b)
        if ca is not None:
            j = k = _slot(b, t)
            rec, args = op.rec_cv, (t._p, ca, k)
        elif cb is not None:
            j = k = _slot(a, t)
            rec, args = op.rec_vc, (t._p, j, cb)
        else:
            j = _slot(a, t)
            k = _slot(b, t) if j >= 0 else j
            rec, args = op.rec, (t._p, j, k)
        i = rec(*args) if j >= 0 and k >= 0 else min(j, k)
        if i == lib.PT_E_ANOMALY:
            i = anomaly.record(t, op.name, rec, args, (_value(a), _value(b)))
        if i >= 0:
            return _result(t, i)
        if i != lib.PT_E_NOGRAD:
            raise_status(i, "record", t)
    # constants only, or recording is off: a constant result
    return Leaf._make(lib.pt_eval2(op.code, _value(a), _value(b)), False)


def _unary_slow(op, a):
    if isinstance(a, np.ndarray) and a.ndim > 0:
        return _elementwise(FUNCTIONS[op.name], a)
    c = _const(a)
    if c is _BAD:
        raise TypeError(f"pytape.{op.name}() takes a Var or a real number, not {type(a).__name__}")
    if c is None:
        t = _tape_for(a)
        j = _slot(a, t)
        i = op.rec(t._p, j) if j >= 0 else j
        if i == lib.PT_E_ANOMALY:
            i = anomaly.record(t, op.name, op.rec, (t._p, j), (_value(a),))
        if i >= 0:
            return _result(t, i)
        if i != lib.PT_E_NOGRAD:
            raise_status(i, "record", t)
    v = lib.pt_eval1(op.code, _value(a))
    return Leaf._make(v, False) if isinstance(a, Var) else v


def _objects(x):
    """x as a numpy operand: a Var goes into a 0-d object array (a bare Var
    refuses ufuncs, see Var.__array_ufunc__)."""
    if isinstance(x, Var):
        o = np.empty((), dtype=object)
        o[()] = x
        return o
    return x


def _map(f, *arrays):
    """f elementwise over numpy arrays (broadcast), into an object array.  The
    IEEE flags pytape's C raises on the way (sqrt(-1.0) is nan, as documented)
    are not turned into numpy warnings."""
    with np.errstate(all="ignore"):
        return np.frompyfunc(f, len(arrays), 1)(*arrays)


def _elementwise(f, arr, other=None):
    out = _map(f, arr) if other is None else _map(f, arr, other)
    return out if arr.dtype == object else out.astype(float)


# ---- the operators and functions, built from the op table ----------------------

def _unary(name):
    op = _Op(name)
    rec = op.rec
    new = _new
    V, L = Var, Leaf
    slot, current, state = _slot, current_tape, _state

    def f(a):
        ta = type(a)
        if ta is V:
            t = a._t
            i = rec(t._p, a._i)
        elif ta is L and a._g is not None:  # a leaf, on the current tape
            t = state.current()  # current_tape(), its common case inlined
            if t is None or t._consumed:
                t = current()
            h = a._home
            i = h[1] if h[0] == t._serial else slot(a, t)
            if i >= 0:
                i = rec(t._p, i)
        else:
            return _unary_slow(op, a)
        if i < 0:
            return _unary_slow(op, a)
        v = new(V)
        v._t = t
        v._i = i
        return v

    f.__name__ = f.__qualname__ = name
    return f


def _binary(name):
    """(a op b, b op a, module function) for the binary primitive `name`."""
    op = _Op(name)
    rec_vv, rec_vc, rec_cv = op.rec, op.rec_vc, op.rec_cv
    new = _new
    V, L = Var, Leaf
    slow, slot, current, state = _binary_slow, _slot, current_tape, _state

    def forward(a, b):  # a is an intermediate result
        tb = type(b)
        if tb is float or tb is int:
            t = a._t
            i = rec_vc(t._p, a._i, b)
        elif tb is V:
            t = a._t
            if b._t is not t:
                return slow(op, a, b)
            i = rec_vv(t._p, a._i, b._i)
        elif tb is L and b._g is not None:  # a leaf: its slot on this tape, made on first use
            t = a._t
            h = b._home
            j = h[1] if h[0] == t._serial else slot(b, t)
            if j < 0:
                return slow(op, a, b)
            i = rec_vv(t._p, a._i, j)
        elif isinstance(b, float):  # numpy.float64 and other float subclasses
            t = a._t
            i = rec_vc(t._p, a._i, b)
        else:
            return slow(op, a, b)
        if i < 0:
            return slow(op, a, b)  # no_grad, or an error to raise
        v = new(V)
        v._t = t
        v._i = i
        return v

    def leaf_forward(a, b):  # a is a leaf
        tb = type(b)
        if tb is V and a._g is not None:  # on b's tape: a's slot there, made on first use
            t = b._t
            h = a._home
            j = h[1] if h[0] == t._serial else slot(a, t)
            if j < 0:
                return slow(op, a, b)
            i = rec_vv(t._p, j, b._i)
        elif (tb is float or tb is int) and a._g is not None:  # on the current tape
            t = state.current()  # current_tape(), its common case inlined
            if t is None or t._consumed:
                t = current()
            h = a._home
            i = h[1] if h[0] == t._serial else slot(a, t)
            if i >= 0:
                i = rec_vc(t._p, i, b)
        else:
            return slow(op, a, b)
        if i < 0:
            return slow(op, a, b)
        v = new(V)
        v._t = t
        v._i = i
        return v

    def leaf_reflected(a, b):  # b op a, a a leaf, b not a Var
        tb = type(b)
        if (tb is float or tb is int) and a._g is not None:
            t = state.current()  # current_tape(), its common case inlined
            if t is None or t._consumed:
                t = current()
            h = a._home
            i = h[1] if h[0] == t._serial else slot(a, t)
            if i >= 0:
                i = rec_cv(t._p, b, i)
                if i >= 0:
                    v = new(V)
                    v._t = t
                    v._i = i
                    return v
        return slow(op, b, a)

    def reflected(a, b):  # b op a, b is not a Var
        tb = type(b)
        if tb is float or tb is int or isinstance(b, float):
            t = a._t
            i = rec_cv(t._p, b, a._i)
            if i >= 0:
                v = new(V)
                v._t = t
                v._i = i
                return v
        return slow(op, b, a)

    def function(a, b):
        if isinstance(a, np.ndarray) and a.ndim > 0 or isinstance(b, np.ndarray) and b.ndim > 0:
            return _map(function, _objects(a), _objects(b))
        ta = type(a)
        if ta is V:
            return forward(a, b)
        r = leaf_forward(a, b) if ta is L else slow(op, a, b)
        if r is NotImplemented:
            raise TypeError(
                f"pytape.{name}() takes Vars or real numbers, not {type(a).__name__} and {type(b).__name__}"
            )
        if not isinstance(a, Var) and not isinstance(b, Var):
            return r._v  # plain numbers in, plain float out
        return r

    function.__name__ = function.__qualname__ = name
    return forward, reflected, leaf_forward, leaf_reflected, function


#: every primitive as a function of Vars or numbers, by its op-table name
FUNCTIONS = {name: _unary(name) for name in UNARY}

_DUNDERS = {"add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "pow": "pow"}

for _name in BINARY:
    _fwd, _rev, _lfwd, _lrev, _fn = _binary(_name)
    FUNCTIONS[_name] = _fn
    if _name in _DUNDERS:
        d = _DUNDERS[_name]
        for _cls, _f, _r in ((Var, _fwd, _rev), (Leaf, _lfwd, _lrev)):
            _f.__name__, _r.__name__ = f"__{d}__", f"__r{d}__"
            setattr(_cls, f"__{d}__", _f)
            setattr(_cls, f"__r{d}__", _r)
    else:
        setattr(Var, _name, _fn)  # x.atan2(y), x.maximum(y), ...

Var.__neg__ = FUNCTIONS["neg"]
Var.__abs__ = FUNCTIONS["abs"]
for _name in UNARY:
    setattr(Var, _name, FUNCTIONS[_name])


# methods numpy calls on object arrays (np.arcsin(a) calls a.arcsin(), ...)
for _np_name, _name in {
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "absolute": "abs", "negative": "neg",
}.items():
    setattr(Var, _np_name, FUNCTIONS[_name])
Var.arctan2 = FUNCTIONS["atan2"]
Var.fabs = FUNCTIONS["abs"]
Var.deg2rad = Var.radians = lambda a: a * (math.pi / 180.0)
Var.rad2deg = Var.degrees = lambda a: a * (180.0 / math.pi)
Var.fmax = FUNCTIONS["maximum"]
Var.fmin = FUNCTIONS["minimum"]

_UFUNCS = {
    np.add: lambda a, b: a + b, np.subtract: lambda a, b: a - b, np.multiply: lambda a, b: a * b,
    np.true_divide: lambda a, b: a / b, np.power: lambda a, b: a ** b,
    np.negative: lambda a: -a, np.positive: lambda a: +a, np.absolute: lambda a: abs(a),
    np.square: lambda a: a * a, np.reciprocal: lambda a: 1.0 / a,
    np.less: lambda a, b: a < b, np.less_equal: lambda a, b: a <= b, np.greater: lambda a, b: a > b,
    np.greater_equal: lambda a, b: a >= b, np.equal: lambda a, b: a == b, np.not_equal: lambda a, b: a != b,
    np.fmax: FUNCTIONS["maximum"], np.fmin: FUNCTIONS["minimum"],
}
#: reductions of one scalar that give the scalar itself (np.sum(x) and friends)
_REDUCE_SELF = {np.add, np.multiply, np.maximum, np.minimum, np.fmax, np.fmin}
_UFUNCS[np.fabs] = FUNCTIONS["abs"]
_UFUNCS[np.deg2rad] = _UFUNCS[np.radians] = Var.deg2rad
_UFUNCS[np.rad2deg] = _UFUNCS[np.degrees] = Var.rad2deg

for _name in list(UNARY) + list(BINARY):
    _uf = getattr(np, {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
                       "acosh": "arccosh", "atanh": "arctanh", "atan2": "arctan2",
                       "abs": "absolute", "neg": "negative"}.get(_name, _name), None)
    if isinstance(_uf, np.ufunc) and _uf not in _UFUNCS:
        _UFUNCS[_uf] = FUNCTIONS[_name]  # np.sin, np.exp, np.maximum, np.hypot, ...

del _name, _np_name, _uf, _fwd, _rev, _lfwd, _lrev, _fn, _cls, _f, _r, d
