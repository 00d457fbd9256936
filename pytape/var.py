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
import contextvars
import math
import numbers
import sys
from contextlib import contextmanager

import numpy as np

from . import _native
from .anomaly import caller, explain, note
from .errors import OuterVar, TapeConsumedError

__all__ = ["Var", "Result", "Leaf", "Recorded", "Owned", "TRACING", "place", "slot_on", "leaf_slots", "result", "value_of", "arguments"]

_new = object.__new__
_B = _native.ID_BITS
handle_value, handle_adjoint, handle_tangent = _native.handle_value, _native.handle_adjoint, _native.handle_tangent
new_grad_cell, set_grad, add_grads = _native.new_grad_cell, _native.set_grad, _native.add_grads


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


class Rounding:
    """``round()``, ``math.trunc``, ``math.floor``, ``math.ceil`` of a
    number-like object: of ``float(self)``, as a float's, not recorded
    (Var, and one-element Tensors).

    >>> import math, pytape
    >>> round(pytape.Var(2.56), 1), math.floor(pytape.Tensor([2.56]))
    (2.6, 2)
    """

    __slots__ = ()

    def __round__(self, ndigits=None):
        return round(float(self), ndigits)

    def __trunc__(self):
        return math.trunc(float(self))

    def __floor__(self):
        return math.floor(float(self))

    def __ceil__(self):
        return math.ceil(float(self))


class Var(Rounding, metaclass=_VarType):
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
        return self.__float__()

    # ---- conversions and comparisons (on values) ---------------------------

    # While pytape.trace records a function, every way a Var's number reaches
    # Python is recorded as a guard that replays re-check: a comparison as
    # itself, a conversion (float(), int(), round(), .value, .data, .item(),
    # str(), repr(), detach(), a no_grad result) as exact equality, so any
    # change of that value traces f again.

    def __float__(self):
        v = float(value_of(self))
        if TRACING[0]:
            escaped(self, v)
        if ARGUMENTS[0]:  # a function transformation records f: numpy's float buffers would drop derivatives
            _refuse_numpy_buffer(self)
        return v

    def __int__(self):
        return int(self.__float__())

    def __bool__(self):
        r = value_of(self) != 0.0
        if TRACING[0]:
            guard(self, 0.0, _native.CMP_NE, r)
        return r

    def __lt__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented  # an ndarray compares elementwise (its reflected comparison), others raise
        r = value_of(self) < o
        if TRACING[0]:
            guard(self, other, _native.CMP_LT, r)
        return r

    def __le__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = value_of(self) <= o
        if TRACING[0]:
            guard(self, other, _native.CMP_LE, r)
        return r

    def __gt__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = value_of(self) > o
        if TRACING[0]:
            guard(self, other, _native.CMP_GT, r)
        return r

    def __ge__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = value_of(self) >= o
        if TRACING[0]:
            guard(self, other, _native.CMP_GE, r)
        return r

    def __eq__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = value_of(self) == o
        if TRACING[0]:
            guard(self, other, _native.CMP_EQ, r)
        return r

    def __ne__(self, other):
        o = _num_or_none(other)
        if o is None:
            return NotImplemented
        r = value_of(self) != o
        if TRACING[0]:
            guard(self, other, _native.CMP_NE, r)
        return r

    __hash__ = object.__hash__  # by identity: Vars live in sets and dicts

    def __pos__(self):
        return self


class Recorded:
    """What a recorded result is, a Var's or a Tensor's (pytape/tensor.py):
    it has a slot on tape ``_t`` (handle ``_i``) and requires grad."""

    __slots__ = ()

    @property
    def requires_grad(self):
        """True for recorded results (False for constants: ``detach()``, ``no_grad``)."""
        return True

    @property
    def is_leaf(self):
        """False for recorded results (True for leaves and constants)."""
        return False

    @property
    def tape(self):
        """The ``Tape`` this result was recorded on (None for leaves)."""
        return self._t


class Owned:
    """What a leaf or constant is, a Var's or a Tensor's (pytape/tensor.py):
    it owns its value and grad ``_g`` (None for a constant) and gets a slot
    on each tape that uses it."""

    __slots__ = ()

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
        """None: a leaf has a slot on each tape that uses it."""
        return None


class Result(Recorded, Var, metaclass=_MadeByPytape):
    """A recorded result: the handle ``_i`` of its slot on tape ``_t``."""

    __slots__ = ("_t", "_i")

    @property
    def value(self):
        """The number this Var holds (alias ``.data``); assignable on leaves."""
        v = handle_value(self._i)
        if v != v:  # nan: ask the tape
            v = self._t._c.value(self._i >> _B)
        if TRACING[0]:
            escaped(self, v)
        return v

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
        t._refuse_while_traced("backward()")
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


class Leaf(Owned, Var, metaclass=_MadeByPytape):
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
        if TRACING[0] and self._g is not None:
            escaped(self, self._v)
        return self._v

    @value.setter
    def value(self, v):
        # tapes that recorded the old value keep it; the next use records the new one
        if ARGUMENTS[0] and any(id(self) in args for _, args in _ARGS.get()):
            raise ValueError("f assigned the value of its own argument while pytape recorded f (trace, grad, "
                             "jacobian, ...): its derivatives could not follow that. Compute a new Var instead")
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
        set_grad(cell, g if type(g) is float else _real(g, "grad"))

    @property
    def slot(self):
        """None: a leaf has a slot on each tape that uses it."""
        return None

    def detach(self):
        """A constant with this Var's value: gradients stop there."""
        return Leaf._make(self.value, False)

    def backward(self, gradient=1.0, retain_graph=False, inputs=None):
        """d(leaf)/d(leaf) = 1: adds ``gradient`` to the leaf's own grad."""
        if inputs is not None:
            return _backward_into(self, _real(gradient, "gradient"), retain_graph, inputs)
        if self._g is None:
            raise RuntimeError("backward() on a constant: it does not require grad")
        add_grads([self._g], [_real(gradient, "gradient")])

    def __repr__(self):
        if self._g is None:
            return f"Var({self._v!r}, constant)"
        return f"Var({self.value!r}, grad={self._g[0]!r})"

    def __reduce__(self):
        return (_unpickle_leaf, (self.value, self.grad))


def _unpickle_leaf(value, grad):
    x = Leaf._make(value, grad is not None)
    if grad is not None:
        x._g[0] = grad
    return x


# ---- where a Var sits on a tape ---------------------------------------------------

def place(x, tape):
    """The handle of operand x on ``tape``: a result's own, a LEAF instruction
    for a leaf (made on its first use there), or a negative status.  While
    pytape.trace records f, an argument's number going to another tape is
    guarded on the traced tape."""
    if type(x) is not Leaf:
        return x._i
    s = x._hs
    h = x._hh if s else -1
    if s == tape._serial and x._hs == s:  # read twice: no other thread re-placed it meanwhile
        return h
    recording_f = ARGUMENTS[0]  # a function transformation records f, in some thread
    if recording_f and (h := _argument_handle(x, tape)) is not None:  # an argument of f has one slot there
        x._hs = 0
        x._hh = h
        x._hs = tape._serial
        return h
    if recording_f and tape._guards and x._g is not None and _transformed(x, tape):
        raise RuntimeError("pytape.trace records a function that uses an argument of an outer function "
                           "transformation (pytape.grad, ...): the compiled function would hold it as a "
                           "constant, and the outer derivative would be wrong. Call the function directly "
                           "inside the transformation, or pass that argument to the traced function")
    if recording_f and tape._sealed and x._g is not None:  # f closes over a leaf: not a constant
        tape._sealed = 2  # seen, even if f catches the exception
        raise OuterVar("f uses a Var that is not one of its arguments")
    i = tape._c.leaf(x._v, x._g)
    if i >= 0:
        tape._cells.append(x._g)  # keeps the grad cell alive as long as the tape
        x._hs = 0                 # the order readers rely on: invalidate, handle, serial
        x._hh = i
        x._hs = tape._serial
        if recording_f and TRACING[0] and x._g is not None:  # its number goes to another tape: guard it
            escaped(x, x._v, tape)
    return i


def slot_on(x, tape):
    """The slot of Var x on ``tape``, -1 if x is not there."""
    if type(x) is Result:
        return x._i >> _B if x._t is tape else -1
    return x._hh >> _B if getattr(x, "_hs", 0) == tape._serial else -1


def leaf_slots(xs, tape):
    """For each Var in xs, every slot of it on ``tape`` ([] if it is not
    there): a leaf that came back to a tape after being used on another has
    two, and its gradient sums their adjoints."""
    leaves = [k for k, x in enumerate(xs) if type(x) is Leaf and x._g is not None]
    out = [[s] if (s := slot_on(x, tape)) >= 0 else [] for x in xs]
    if leaves:
        for k, slots in zip(leaves, tape._c.leaf_slots([xs[k]._g for k in leaves])):
            out[k] = slots
    return out


def result(tape, slot):
    """A Var for ``slot`` of ``tape``."""
    v = Result()
    v._t = tape
    v._i = tape._c.handle(slot)
    return v


# ---- guards (pytape.trace) -------------------------------------------------------

TRACING = [0]  # > 0 while pytape.trace records a function (in any thread)
ARGUMENTS = [0]  # > 0 while any function transformation records f (in any thread)

#: (tape, {id of an argument leaf: its handle there}) of every recording of a
#: function (pytape.trace, grad, jacobian, ...) in this context, innermost last
_ARGS = contextvars.ContextVar("pytape_arguments", default=())

_FLIP = {_native.CMP_LT: _native.CMP_GT, _native.CMP_GT: _native.CMP_LT, _native.CMP_LE: _native.CMP_GE,
         _native.CMP_GE: _native.CMP_LE, _native.CMP_EQ: _native.CMP_EQ, _native.CMP_NE: _native.CMP_NE}


@contextmanager
def arguments(tape, leaves, guards=False):
    """While f is recorded on ``tape`` with argument leaves ``leaves``: each
    argument has one slot there, made now (a leaf otherwise remembers one
    placement only, and one used on another tape meanwhile would come back as
    a second slot); with ``guards`` (pytape.trace), comparisons and
    conversions of Vars are recorded there as guards."""
    entry = (tape, {id(x): _native.check(place(x, tape), "record", tape._c) for x in leaves})
    _ARGS.set(_ARGS.get() + (entry,))
    ARGUMENTS[0] += 1
    tape._transforming += 1
    if guards:
        tape._guards = True
        TRACING[0] += 1
    try:
        yield
    finally:
        if guards:
            TRACING[0] -= 1
            tape._guards = False
        ARGUMENTS[0] -= 1
        tape._transforming -= 1
        _ARGS.set(tuple(e for e in _ARGS.get() if e is not entry))


def value_of(x):
    """The number of Var x, recording no guard (for pytape's own use)."""
    if type(x) is Leaf:
        return x._v
    v = handle_value(x._i)
    return v if v == v else x._t._c.value(x._i >> _B)


def _guarding_tapes(*xs):
    """The tapes being traced that a comparison of xs must be guarded on: a
    result's own tape, and for a leaf each traced tape it is an argument of
    (any other leaf is a constant of the trace)."""
    tapes = []
    for x in xs:
        if type(x) is Result:
            if x._t._guards and x._t not in tapes:
                tapes.append(x._t)
        elif type(x) is Leaf and x._g is not None:
            tapes.extend(t for t, args in _ARGS.get() if t._guards and id(x) in args and t not in tapes)
    return tapes


def _operand(x, t):
    """The handle of x on tape t if it varies with t's inputs, else None (a
    number, a constant, a result of another tape: fixed while f is traced, or
    computed from leaves whose numbers were guarded when they went there)."""
    if type(x) is Result:
        return x._i if x._t is t else None
    if type(x) is Leaf:
        return _argument_handle(x, t)
    return None


def _transformed(x, tape):
    """True if leaf x is an argument of a function transformation (not a
    trace) recording on another tape than ``tape``."""
    return any(t is not tape and not t._guards and id(x) in args for t, args in _ARGS.get())


def _argument_handle(x, tape):
    """The handle of leaf x on ``tape`` if x is an argument of a function
    recorded there (``arguments``), else None."""
    if x._g is not None:
        for t, args in _ARGS.get():
            if t is tape and id(x) in args:
                return args[id(x)]
    return None


def guard(x, other, cmp, outcome):
    """Record the comparison (x CMP other) -> outcome on the tapes being traced."""
    with _recording_guards():
        _guard(x, other, cmp, outcome)


@contextmanager
def _recording_guards():
    """Guards are recorded under no_grad too: a value read there steers f as well."""
    on = _native.grad_enabled()
    if not on:
        _native.set_grad_enabled(True)
    try:
        yield
    finally:
        if not on:
            _native.set_grad_enabled(False)


def _guard(x, other, cmp, outcome):
    for t in _guarding_tapes(x, other):
        a, b = _operand(x, t), _operand(other, t)
        if a is None:
            if b is None:
                continue
            a, b, x, other, cmp = b, a, other, x, _FLIP[cmp]
        if b is not None:
            k, c = b >> _B, 0.0
        else:
            k, c = -1, float(value_of(other) if isinstance(other, Var) else _num(other))
        i = t._c.guard(a >> _B, k, c, cmp, outcome)
        if i >= 0:
            note(t, i, caller())


def escaped(x, v, placed_on=None):
    """The number v of Var x reaches Python (or tape ``placed_on``) while f is
    traced: record x == v, so a replay at inputs where x differs traces again."""
    with _recording_guards():
        _escaped(x, v, placed_on)


def _escaped(x, v, placed_on):
    for t in _guarding_tapes(x):
        h = _operand(x, t) if t is not placed_on else None
        if h is None:
            continue
        s = h >> _B
        if v == v:
            i = t._c.guard(s, -1, v, _native.CMP_EQ, True)
        else:  # nan: x != x holds exactly where x is nan
            i = t._c.guard(s, s, 0.0, _native.CMP_NE, True)
        if i >= 0:
            note(t, i, caller())


def _refuse_numpy_buffer(x):
    """float(x) called by numpy's own code (assigning Vars into a float64
    buffer, as np.gradient does) while a function transformation records f in
    this context: raise rather than let x's derivative be lost.  Only this
    rare path looks at the caller's frame (~100 ns): float() outside
    transformations stays as fast."""
    if (type(x) is Leaf and x._g is None) or not _ARGS.get():
        return
    frame = sys._getframe(2)  # the caller of __float__
    module = frame.f_globals.get("__name__", "")
    if module != "numpy" and not module.startswith("numpy."):
        return
    if not _native.grad_enabled():
        return
    name = frame.f_code.co_name
    raise TypeError(
        f"numpy's {name}() (in {module}) converted a Var to a float while pytape differentiates a function of it: "
        f"numpy stores the number in a float64 buffer, and its derivative would be lost. {name}() does not "
        f"support Vars; README.md, 'numpy functions on Vars', lists those that do. Write the computation with "
        f"Var arithmetic (or pytape's functions: pytape.nan_to_num, ...), or, to use only the number, convert "
        f"explicitly in your own code (x.value, np.array(a, dtype=float))")


# ---- backward(inputs=...) ----------------------------------------------------------

def _backward_into(y, seed, retain_graph, inputs):
    """backward(inputs=...): accumulate into the grad of the listed leaves only."""
    leaves = [inputs] if isinstance(inputs, Var) else list(np.ravel(inputs) if isinstance(inputs, np.ndarray)
                                                          else inputs)
    for x in leaves:
        if type(x) is not Leaf or x._g is None:
            raise TypeError("backward(inputs=...) takes leaves that require grad")
    if type(y) is Leaf:  # d(leaf)/d(leaf) = 1
        add_grads([x._g for x in leaves if x is y], [seed] * sum(x is y for x in leaves))
        return
    t = y._t
    t._refuse_while_traced("backward()")
    if t._consumed:
        raise TapeConsumedError("backward() or autograd.grad() has already run through this tape and "
                                "released it; pass retain_graph=True to the earlier call")
    out = y._i >> _B
    reached = t._c.reach([out])
    # (leaf, slot) for every slot of each leaf the output depends on
    pairs = [(x, s) for x, slots in zip(leaves, leaf_slots(leaves, t)) for s in slots if s <= out and reached[s]]
    if pairs:
        with explain(t):
            g = t._c.backward_block([out], [[seed]], [s for _, s in pairs])
        add_grads([x._g for x, _ in pairs], g[:, 0])
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
        return value_of(v)  # the comparison's own guard covers it
    if isinstance(v, numbers.Real):
        return float(v)
    return None


def _num(v):
    o = _num_or_none(v)
    if o is None:
        raise TypeError(f"cannot compare a pytape.Var with {type(v).__name__}")
    return o
