"""``Var``: a number whose operations are recorded on a C tape.

Nothing in Python points from one result to another: the graph is the tape.
There are three kinds of ``Var``:

* recorded results (class ``Result``): ``_t`` the ``Tape``, ``_i`` the handle
  of their slot on it (the slot and the tape's id in one integer, see
  pytape/_native.py);
* leaves (class ``Leaf``), made by ``pytape.Var(2.0)``: they own their value
  ``_v`` and a grad cell ``_g``, and get a slot on whichever tape first uses
  them (``_hs``, ``_hh``: that tape's serial and the handle there);
* constants: a ``Leaf`` with no grad cell, from ``detach()`` and ``no_grad``.

This module holds the types, what a ``Var`` is and does besides arithmetic
(value, gradient, ``backward()``, comparisons, which ``pytape.trace`` records
as guards), and where a leaf sits on a tape.  The operators and math methods
(``x + y``, ``x.relu()``) are installed on these classes from the op table by
pytape/recording.py; numpy's hooks (``np.sin(x)``) by pytape/ops.py.

>>> import pytape
>>> x = pytape.Var(2.0)
>>> y = x * 3.0
>>> type(x).__name__, type(y).__name__, isinstance(y, pytape.Var)
('Leaf', 'Result', True)
"""
import math
import numbers

import numpy as np

from . import _native
from .anomaly import caller, explain, note
from .errors import TapeConsumedError
from .tape import current_tape

__all__ = ["Var", "Result", "Leaf", "TRACING", "place", "slot_on", "result"]

_new = object.__new__
_B = _native.ID_BITS
handle_value, handle_adjoint, handle_tangent = _native.handle_value, _native.handle_adjoint, _native.handle_tangent
new_grad_cell = _native.new_grad_cell


class _VarType(type):
    """``pytape.Var(2.0)`` makes a leaf (micrograd's ``Value(data, _children,
    _op, label)`` signature is accepted; the graph is on the tape, so
    ``_children`` and ``_op`` are not needed)."""

    def __call__(cls, value=0.0, _children=(), _op="", label="", requires_grad=True):
        # Leaf._make written out: programs make a leaf per input (Rosenbrock:
        # one per 9 operations), and each call saved is ~5% of recording there
        x = Leaf()
        x._v = value if type(value) is float else _real(value, "pytape.Var()")
        x._g = new_grad_cell() if requires_grad else None
        x._hs = 0  # on no tape yet (tape serials start at 1)
        return x


class _MadeByPytape(_VarType):
    # type's own __call__ in the slot: Result() and Leaf() allocate without a
    # Python frame (CPython puts type_call itself in tp_call), about a third
    # cheaper than object.__new__(cls); every recorded operation makes one
    __call__ = type.__call__


class Var(metaclass=_VarType):
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

    __slots__ = ()

    def zero_grad(self):
        """Set ``grad`` to 0.

        >>> import pytape
        >>> x = pytape.Var(3.0); (x * x).backward(); x.zero_grad(); x.grad
        0.0
        """
        self.grad = 0.0

    def item(self):
        """The value as a Python float (like ``torch.Tensor.item``).

        >>> import pytape
        >>> pytape.Var(1.5).item()
        1.5
        """
        return float(self.value)

    # ---- conversions and comparisons (on values) ---------------------------

    # While pytape.trace records a function, every comparison and conversion
    # that could steer control flow is recorded as a guard that replays re-check
    # (exact equality for float()/int()/round(): any change of value re-traces).

    def __float__(self):
        v = float(self.value)
        if TRACING[0]:
            guard(self, v, _native.CMP_EQ, True)
        return v

    def __int__(self):
        return int(self.__float__())

    def __bool__(self):
        r = self.value != 0.0
        if TRACING[0]:
            guard(self, 0.0, _native.CMP_NE, r)
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
        if TRACING[0]:
            guard(self, other, _native.CMP_LT, r)
        return r

    def __le__(self, other):
        r = self.value <= _num(other)
        if TRACING[0]:
            guard(self, other, _native.CMP_LE, r)
        return r

    def __gt__(self, other):
        r = self.value > _num(other)
        if TRACING[0]:
            guard(self, other, _native.CMP_GT, r)
        return r

    def __ge__(self, other):
        r = self.value >= _num(other)
        if TRACING[0]:
            guard(self, other, _native.CMP_GE, r)
        return r

    def __eq__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = self.value == o
        if TRACING[0]:
            guard(self, other, _native.CMP_EQ, r)
        return r

    def __ne__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = self.value != o
        if TRACING[0]:
            guard(self, other, _native.CMP_NE, r)
        return r

    __hash__ = object.__hash__  # by identity: Vars live in sets and dicts

    def __pos__(self):
        return self


class Result(Var, metaclass=_MadeByPytape):
    """A recorded result: the handle ``_i`` of its slot on tape ``_t``."""

    __slots__ = ("_t", "_i")

    @property
    def value(self):
        """The number this Var holds (alias ``.data``); assignable on leaves."""
        v = handle_value(self._i)
        return v if v == v else self._t._c.value(self._i >> _B)  # nan: ask the tape

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
        g = handle_adjoint(self._i)
        if g == g:
            return g
        c = self._t._c  # nan: another thread asks, an unregistered tape, or a nan adjoint
        if not c.is_owner():
            _native.check(_native.THREAD, "read", c)
        return c.adjoint(self._i >> _B)

    @grad.setter
    def grad(self, g):
        g = _real(g, "grad")
        c = self._t._c
        st = c.set_adjoint(self._i >> _B, g)
        if st == _native.THREAD:
            _native.check(st, "record", c)
        if st and g != 0.0:
            raise AttributeError("this intermediate result has no adjoint yet; run backward() first")

    @property
    def tangent(self):
        """d(self) along the seeds of the last ``tape.tangent_sweep`` (0.0 before any)."""
        d = handle_tangent(self._i)
        if d == d:
            return d
        c = self._t._c
        if not c.is_owner():
            _native.check(_native.THREAD, "read", c)
        return c.tangent(self._i >> _B)

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

    @property
    def slot(self):
        """The slot of this result on its tape: its row ``v{slot}`` in
        ``tape.table()`` (None for leaves, which have a slot on each tape that
        uses them).

        >>> import pytape
        >>> with pytape.Tape() as t:
        ...     y = pytape.Var(2.0) * 3.0     # v0: the leaf, v1: y
        >>> y.slot
        1
        """
        return self._i >> _B

    def detach(self):
        """A constant with this Var's value: gradients stop there.

        >>> import pytape
        >>> x = pytape.Var(3.0)
        >>> y = x * x.detach()      # the second factor is a constant
        >>> y.backward(); x.grad
        3.0
        """
        return Leaf._make(self.value, False)

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
        with explain(t):  # anomaly mode: a nan names its operation and line
            t._c.backward(self._i >> _B, seed, retain_graph)
        if not retain_graph:
            t._consumed = True

    def __repr__(self):  # never raises: from another thread, the adjoint is not the caller's to read
        c = self._t._c
        op = _native.OP_NAMES[c.op_at(self._i >> _B)]
        grad = repr(self.grad) if c.is_owner() else "<on the tape of another thread>"
        return f"Var({self.value!r}, grad={grad}, op={op!r})"

    def __reduce__(self):
        raise TypeError(
            "a recorded Var cannot be pickled (it is a slot of a C tape); "
            "pickle its value (x.value) or a leaf made from it"
        )


class Leaf(Var, metaclass=_MadeByPytape):
    """A leaf (``pytape.Var(2.0)``) or a constant: owns its value and grad cell.

    ``_v`` is the value, ``_g`` a one-double C cell the reverse sweep adds the
    leaf's adjoint to (None for a constant), ``_hs`` the serial of the tape
    where the leaf was last placed (0: none) and ``_hh`` its handle there.  A
    leaf gets a LEAF instruction on each tape that uses it, so the same
    parameters serve many recordings.

    Two slots rather than one (serial, handle) tuple: a tuple per placement is
    one more object for the cyclic garbage collector to walk (5% of
    recording Rosenbrock, measured).  A thread reading the pair while another
    re-places the leaf (shared parameters) could see a serial and a handle of
    different tapes.  The recording fast path passes the handle to C, which
    refuses a handle of another thread's tape, and the slow path takes over;
    ``place`` writes serial 0, the handle, then the serial, and reads the
    serial on both sides of the handle.  Either way, never a wrong slot.
    """

    __slots__ = ("_v", "_g", "_hs", "_hh")

    @classmethod
    def _make(cls, value, requires_grad=True):
        x = cls()
        x._v = value
        x._g = new_grad_cell() if requires_grad else None
        x._hs = 0  # on no tape yet (tape serials start at 1)
        return x

    @property
    def value(self):
        """The number this Var holds (alias ``.data``); assignable on leaves."""
        return self._v

    @value.setter
    def value(self, v):
        # tapes that recorded the old value keep it; the next use records the new one
        self._v = v if type(v) is float else _real(v, "value")
        self._hs = 0

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

    @property
    def slot(self):
        """None: a leaf has a slot on each tape that uses it."""
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


def _unpickle_leaf(value, grad):
    x = Leaf._make(value, grad is not None)
    if grad is not None:
        x._g[0] = grad
    return x


# ---- where a Var sits on a tape ---------------------------------------------------

def place(x, tape):
    """The handle of operand x on ``tape``: a result's own, a LEAF instruction
    for a leaf (made on its first use there), or a negative status."""
    if type(x) is not Leaf:
        return x._i
    s = x._hs
    h = x._hh if s else -1
    if s == tape._serial and x._hs == s:  # read twice: no other thread re-placed it meanwhile
        return h
    i = tape._c.leaf(x._v, x._g)
    if i >= 0:
        tape._cells.append(x._g)  # keeps the grad cell alive as long as the tape
        x._hs = 0                 # the order readers rely on: invalidate, handle, serial
        x._hh = i
        x._hs = tape._serial
    return i


def slot_on(x, tape):
    """The slot of Var x on ``tape``, -1 if x is not there."""
    if type(x) is Result:
        return x._i >> _B if x._t is tape else -1
    return x._hh >> _B if getattr(x, "_hs", 0) == tape._serial else -1


def result(tape, slot):
    """A Var for ``slot`` of ``tape``."""
    v = Result()
    v._t = tape
    v._i = tape._c.handle(slot)
    return v


# ---- guards (pytape.trace) -------------------------------------------------------

TRACING = [0]  # > 0 while pytape.trace records a function (in any thread)


def guard(x, other, cmp, outcome):
    """Record the comparison (x CMP other) -> outcome on a tracing tape."""
    t = x._t if type(x) is Result else current_tape()
    if not t._guards or (type(x) is Leaf and x._g is None):
        return
    j = place(x, t)
    if isinstance(other, Var) and not (type(other) is Leaf and other._g is None):
        if type(other) is Result and other._t is not t:
            return
        k, c = place(other, t), 0.0
        if k < 0:
            return
        k >>= _B
    else:
        k, c = -1, float(_num(other))
    if j < 0:
        return
    i = t._c.guard(j >> _B, k, c, cmp, outcome)
    if i >= 0:
        note(t, i, caller())


# ---- backward(inputs=...) ----------------------------------------------------------

def _backward_into(y, seed, retain_graph, inputs):
    """backward(inputs=...): accumulate into the grad of the listed leaves only."""
    leaves = [inputs] if isinstance(inputs, Var) else list(np.ravel(inputs) if isinstance(inputs, np.ndarray)
                                                          else inputs)
    for x in leaves:
        if type(x) is not Leaf or x._g is None:
            raise TypeError("backward(inputs=...) takes leaves that require grad")
    if type(y) is Leaf:  # d(leaf)/d(leaf) = 1
        for x in leaves:
            if x is y:
                x._g[0] += seed
        return
    t = y._t
    if t._consumed:
        raise TapeConsumedError("backward() or autograd.grad() has already run through this tape and "
                                "released it; pass retain_graph=True to the earlier call")
    out = y._i >> _B
    reached = t._c.reach([out])
    slots = [slot_on(x, t) for x in leaves]
    used = [k for k, s in enumerate(slots) if 0 <= s <= out and reached[s]]
    if used:
        with explain(t):
            g = t._c.backward_block([out], [[seed]], [slots[k] for k in used])
        for k, gk in zip(used, g[:, 0]):
            leaves[k]._g[0] += float(gk)
    if not retain_graph:
        t._c.consume()
        t._consumed = True


# ---- operand helpers ------------------------------------------------------------------

def _real(v, what):
    """v as a float; TypeError unless it is a real number (or a Var's value)."""
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    if isinstance(v, Var):
        return float(v.value)
    if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0):
        if v.dtype.kind in "biuf":  # numpy's real scalars (numpy.bool_ too), not complex or times
            return float(v)
    elif isinstance(v, numbers.Real):
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
