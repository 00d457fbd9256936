"""Tapes and the recording context: ``Tape``, the current tape, ``no_grad``.

Each thread (and each asyncio task, which runs in a copy of its creator's
context) records on its own tape.  Unless a ``with pytape.Tape():`` block is
active, operations go to the default tape, created on demand and held only
weakly: it lives as long as some ``Var`` computed on it does, and after
``backward()`` consumes it the next operation starts a fresh one.

The current tape is kept in ``contextvars``: reading it is one call
(``current_ref()()``), a third of what a ``threading.local`` costs, and the
recording fast path reads it for every operation of a leaf with a number.
"""
import contextvars
import functools
import itertools
import warnings
import weakref

from . import _native
from ._native import CTape
from .anomaly import explain

__all__ = ["Tape", "current_tape", "no_grad", "enable_grad", "is_grad_enabled"]

_serials = itertools.count(1)


class Tape:
    """A flat Wengert tape in C arrays: one instruction per recorded operation.

    Use it as a context manager to scope a recording explicitly; otherwise a
    default tape is used.  ``print(tape)``, ``table()``, ``stats()``,
    ``to_dot()`` and ``render()`` show it (they come from pytape/display.py).

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> len(t)          # leaf x, x*x, +1.0
    3
    >>> y.backward(); x.grad
    6.0
    """

    # _c: the C tape; _cells: grad cells of the leaves on it (C points into
    # them); _serial: unique per tape, leaves remember where they sit by it;
    # _consumed: mirrors the C flag (Var.backward sets it); _where: slot ->
    # (file, line, function) of operations recorded in anomaly mode and of
    # guards; _guards: pytape.trace records comparisons as guards; _sealed: a
    # function transformation records f here and a Var from outside f must
    # not become a constant (pytape/var.py place raises OuterVar); _transforming:
    # how many function transformations record f here now (var.py arguments);
    # _lent: the arrays of Tensor leaves the tape reads in place (tensor.py)
    __slots__ = ("_c", "_cells", "_serial", "_consumed", "_where", "_guards", "_sealed", "_transforming",
                 "_lent", "__weakref__")

    def __init__(self):
        self._c = CTape(register=True)
        self._cells, self._serial, self._consumed, self._where, self._guards = [], next(_serials), False, None, False
        self._sealed, self._transforming, self._lent = False, 0, []
        if not self._c.id:
            _warn_no_id()

    @classmethod
    def _adopt(cls, ctape):
        """A Tape for a tape made in C (compiled or loaded by pytape.trace)."""
        t = object.__new__(cls)
        t._c = ctape
        t._cells, t._serial, t._consumed, t._where, t._guards = [], next(_serials), False, None, False
        t._sealed, t._transforming, t._lent = False, 0, []
        return t

    def __enter__(self):
        stack = _STACK.get() + (self,)
        _STACK.set(stack)
        _CURRENT.set(weakref.ref(self))
        return self

    def __exit__(self, *exc):
        # Blocks may exit out of order (generators, coroutines sharing a
        # thread): each exit removes its own block's entry wherever it is, and
        # the innermost block still open is current again.
        stack = _STACK.get()
        for k in range(len(stack) - 1, -1, -1):
            if stack[k] is self:
                stack = stack[:k] + stack[k + 1:]
                _STACK.set(stack)
                _CURRENT.set(weakref.ref(stack[-1]) if stack else _DEFAULT.get())
                break
        return False

    def __len__(self):
        return len(self._c)

    @property
    def consumed(self):
        """True once ``backward()`` without ``retain_graph`` ran on this tape."""
        return self._c.consumed

    @property
    def nbytes(self):
        """Bytes of C memory allocated by the tape (instructions, values, constants,
        leaves, adjoints), spare capacity of the doubling arrays included."""
        return self._c.nbytes()

    @property
    def used_nbytes(self):
        """Bytes of the tape's arrays that hold data (``nbytes`` less spare capacity)."""
        return self._c.nbytes(used=True)

    @property
    def num_leaves(self):
        """Number of leaf instructions on the tape."""
        return self._c.nleaves

    def _refuse_while_traced(self, what):
        """A sweep's numbers would leave a tape that pytape.trace, or a
        function transformation (grad, jacobian, ...), is recording."""
        if self._transforming and not self._guards:
            raise RuntimeError(
                f"{what} ran inside f on the tape that a function transformation (pytape.grad, jacobian, "
                f"...) records f on: the numbers it leaves in .grad would be constants to that "
                f"transformation, and its derivative wrong. Inside f use pytape.grad or "
                f"pytape.autograd.grad, which record their sweeps there")
        if self._guards:
            raise RuntimeError(
                f"{what} ran on the tape pytape.trace is recording: the numbers it gives would be baked "
                f"into the compiled function and be wrong at other inputs. Inside a traced function use "
                f"pytape.autograd.grad(..., create_graph=True), which records the derivative; or trace f "
                f"and call fn.gradient / fn.jacobian")

    def tangent_sweep(self, seeds):
        """Forward-mode sweep: the tangent of every slot for the leaf tangents ``seeds``.

        ``seeds`` maps leaves recorded on this tape to their tangents (others
        get 0); afterwards ``y.tangent`` is the directional derivative of y.
        One C loop over the tape, from the same derivative rules as backward().

        >>> import pytape
        >>> with pytape.Tape() as t:
        ...     x1, x2 = pytape.Var(2.0), pytape.Var(5.0)
        ...     y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
        >>> t.tangent_sweep({x1: 1.0}); y.tangent       # dy/dx1
        5.5
        """
        self._refuse_while_traced("tangent_sweep()")
        slots, values = [], []
        cells = [getattr(leaf, "_g", None) for leaf in seeds]
        found = self._c.leaf_slots([c for c in cells if c is not None])
        for (leaf, seed), cell in zip(seeds.items(), cells):
            mine = found.pop(0) if cell is not None else []  # (a leaf that came back to this tape has two)
            if not mine:
                raise ValueError(f"{leaf!r} is not a leaf recorded on this tape; seed the leaves it was recorded with")
            slots.extend(mine)
            values.extend([float(seed)] * len(mine))
        with explain(self):  # anomaly mode: a nan names its operation and line
            self._c.tangent_sweep(slots, values)

    def __repr__(self):
        state = "consumed" if self.consumed else "live"
        return f"<pytape.Tape #{self._serial}: {len(self)} instructions, {self.nbytes} bytes, {state}>"

    def __reduce__(self):
        raise TypeError("a pytape.Tape cannot be pickled: it is C memory of this process, with pointers into "
                        "its leaves' gradients. Pickle numbers (x.value) or leaves (pytape.Var pickles), or "
                        "a compiled function, which has a file format: pickle pytape.trace(f, x), or save "
                        "fn.to_bytes()")


_warned = []


def _warn_no_id():
    """Once per process: a tape without a handle id records 3-5x slower."""
    if not _warned:
        _warned.append(True)
        warnings.warn(
            f"pytape: {2 ** _native.ID_BITS - 1} tapes are alive, so this one records through the slow "
            f"path (3-5x slower per operation, still correct). A tape lives while a Var computed on it "
            f"does: keep numbers (loss.item()) rather than results of past steps, or detach() them.",
            RuntimeWarning, stacklevel=3)


def _NO_TAPE():
    return None  # stands for a dead weakref


#: a weakref to the current tape (the innermost `with` block's, else the default)
_CURRENT = contextvars.ContextVar("pytape_current_tape", default=_NO_TAPE)
#: the tapes of the active `with pytape.Tape()` blocks, innermost last
_STACK = contextvars.ContextVar("pytape_tape_blocks", default=())
#: a weakref to the default tape
_DEFAULT = contextvars.ContextVar("pytape_default_tape", default=_NO_TAPE)

#: current_ref()() is the current tape, or None: the recording fast path's lookup
current_ref = _CURRENT.get


def current_tape():
    """The tape new operations on leaves are recorded on, in this thread.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     pytape.current_tape() is t
    True
    """
    t = _CURRENT.get()()
    if t is not None and not t._consumed:
        return t
    stack = _STACK.get()
    if stack:  # a consumed `with` tape stays current: recording on it raises
        return stack[-1]
    t = Tape()  # the default tape, held weakly: it lives while its Vars do
    ref = weakref.ref(t)
    _DEFAULT.set(ref)
    _CURRENT.set(ref)
    return t


class no_grad:
    """Context manager (and decorator) that stops recording in this thread.

    Inside it, operations on ``Var`` s compute their values only and return
    constants, like ``torch.no_grad``.

    >>> import pytape
    >>> x = pytape.Var(2.0)
    >>> with pytape.no_grad():
    ...     y = x * 3
    >>> y.requires_grad, y.value
    (False, 6.0)
    """

    _enable = 0

    def __enter__(self):
        self._prev = _native.grad_enabled()
        _native.set_grad_enabled(self._enable)
        return self

    def __exit__(self, *exc):
        _native.set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Re-enable recording inside a ``no_grad`` block (like ``torch.enable_grad``).

    >>> import pytape
    >>> with pytape.no_grad():
    ...     with pytape.enable_grad():
    ...         pytape.is_grad_enabled()
    True
    """

    _enable = 1


def is_grad_enabled():
    """True when operations are being recorded in this thread.

    >>> import pytape
    >>> pytape.is_grad_enabled()
    True
    """
    return _native.grad_enabled()
