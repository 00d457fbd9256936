"""Tapes and the recording context: ``Tape``, the current tape, ``no_grad``.

Each thread records on its own tape.  Unless a ``with pytape.Tape():`` block is
active, operations go to the thread's default tape, created on demand and held
only weakly: it lives as long as some ``Var`` computed on it does, and after
``backward()`` consumes it the next operation starts a fresh one.
"""
import functools
import itertools
import threading
import weakref

from ._native import ffi, lib, raise_status

__all__ = ["Tape", "current_tape", "no_grad", "enable_grad", "is_grad_enabled"]

_serials = itertools.count(1)


class Tape:
    """A flat Wengert tape in C arrays: one instruction per recorded operation.

    Use it as a context manager to scope a recording explicitly; otherwise a
    thread-local default tape is used.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> len(t)          # leaf x, x*x, +1.0
    3
    >>> y.backward(); x.grad
    6.0
    """

    __slots__ = ("_p", "_cells", "_serial", "_consumed", "_where", "_guards", "__weakref__")

    def __init__(self):
        p = lib.pt_tape_new()
        if p == ffi.NULL:
            raise MemoryError("pytape: could not allocate a tape")
        self._p = ffi.gc(p, lib.pt_tape_free)
        self._cells = []  # grad cells of the leaves on this tape; C points into them
        self._serial = next(_serials)
        self._consumed = False  # mirrors the C flag; set by Var.backward
        self._where = None  # slot -> (file, line, function), in anomaly mode only
        self._guards = False  # pytape.trace: record comparisons as guards

    @classmethod
    def _adopt(cls, p):
        """A Tape for a tape made in C (compiled or loaded by pytape.trace)."""
        if p == ffi.NULL:
            raise MemoryError("pytape: could not allocate a tape")
        t = object.__new__(cls)
        t._p = ffi.gc(p, lib.pt_tape_free)
        t._cells, t._serial, t._consumed, t._where, t._guards = [], next(_serials), False, None, False
        return t

    def __enter__(self):
        st = _state
        st.stack.append(self)
        st.current = weakref.ref(self)
        return self

    def __exit__(self, *exc):
        st = _state
        if st.stack and st.stack[-1] is self:
            st.stack.pop()
            st.current = weakref.ref(st.stack[-1]) if st.stack else st.default
        return False

    def __len__(self):
        return lib.pt_tape_len(self._p)

    @property
    def consumed(self):
        """True once ``backward()`` without ``retain_graph`` ran on this tape."""
        return bool(lib.pt_tape_consumed(self._p))

    @property
    def nbytes(self):
        """Bytes of C memory allocated by the tape (instructions, values, constants,
        leaves, adjoints), spare capacity of the doubling arrays included."""
        return lib.pt_tape_nbytes(self._p, 0)

    @property
    def used_nbytes(self):
        """Bytes of the tape's arrays that hold data (``nbytes`` less spare capacity)."""
        return lib.pt_tape_nbytes(self._p, 1)

    @property
    def num_leaves(self):
        """Number of leaf instructions on the tape."""
        return lib.pt_tape_nleaves(self._p)

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
        slots, values = [], []
        for leaf, seed in seeds.items():
            home = getattr(leaf, "_home", None)
            if home is None or home[0] != self._serial:
                raise ValueError(f"{leaf!r} is not a leaf recorded on this tape; seed the leaves it was recorded with")
            slots.append(home[1])
            values.append(float(seed))
        status = lib.pt_forward_tangent(self._p, len(slots), ffi.new("int64_t[]", slots), ffi.new("double[]", values))
        if status:
            raise_status(status, "tangent", self)

    # ---- seeing the tape (pytape/display.py) ----------------------------------

    def table(self, max_rows=40):
        """The evaluation trace: one row per instruction (slot ``v{i}``, op,
        operands, value; adjoint and tangent once swept); a summary with the
        head and tail rows beyond ``max_rows`` instructions (None: all rows).
        ``print(tape)`` prints it.

        >>> import pytape
        >>> with pytape.Tape() as t:
        ...     x = pytape.Var(3.0)
        ...     y = pytape.sin(x) * 2.0
        >>> print(t.table())
        slot  op      operands    value
          v0  leaf    x0              3  input
          v1  sin     v0        0.14112
          v2  mul_vc  v1, 2     0.28224  output
        """
        from . import display
        return display.table(self, max_rows)

    def stats(self):
        """A dict: ``instructions``, ``leaves``, ``outputs``, ``constants``,
        ``ops`` (op name -> count), ``nbytes``, ``used_nbytes`` (see
        ``pytape.display.stats``).

        >>> import pytape
        >>> with pytape.Tape() as t:
        ...     x = pytape.Var(3.0)
        ...     y = pytape.sin(x) * 2.0
        >>> t.stats()["ops"]
        {'leaf': 1, 'sin': 1, 'mul_vc': 1}
        """
        from . import display
        return display.stats(self)

    def to_dot(self, output=None, max_nodes=200):
        """Graphviz DOT text of the graph computing ``output`` (a result recorded
        on this tape), or of the whole tape (see ``pytape.to_dot``).

        >>> import pytape
        >>> with pytape.Tape() as t:
        ...     x = pytape.Var(3.0)
        ...     y = pytape.sin(x) * 2.0
        >>> t.to_dot(y).splitlines()[0]
        'digraph pytape {'
        """
        from . import display
        if output is not None and getattr(output, "tape", None) is not self:
            raise ValueError("output must be a result recorded on this tape")
        return display.to_dot(self if output is None else output, max_nodes)

    def render(self, filename, output=None, max_nodes=200):
        """Draw ``to_dot(output)`` to ``filename`` (.svg, .png, .pdf) with Graphviz
        (see ``pytape.render``); returns the file name."""
        from . import display
        if output is not None and getattr(output, "tape", None) is not self:
            raise ValueError("output must be a result recorded on this tape")
        return display.render(self if output is None else output, filename, max_nodes)

    def __str__(self):
        return self.table()

    def _repr_svg_(self):
        """The tape's graph as SVG for Jupyter (None without Graphviz)."""
        from . import display
        return display.repr_svg(self)

    def __repr__(self):
        state = "consumed" if self.consumed else "live"
        return f"<pytape.Tape #{self._serial}: {len(self)} instructions, {self.nbytes} bytes, {state}>"


def _NO_TAPE():
    return None  # stands for a dead weakref


class _State(threading.local):
    def __init__(self):
        self.stack = []            # explicit `with Tape()` blocks (strong refs), innermost last
        self.default = _NO_TAPE    # weakref to this thread's default tape
        self.current = _NO_TAPE    # weakref to the innermost block's tape, else the default


_state = _State()


def current_tape():
    """The tape new operations on leaves are recorded on, in this thread.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     pytape.current_tape() is t
    True
    """
    st = _state
    t = st.current()  # one thread-local lookup on the common path (~70 ns less)
    if t is not None and not t._consumed:
        return t
    if st.stack:  # a consumed `with` tape stays current: recording on it raises
        return st.stack[-1]
    t = Tape()  # the default tape, held weakly: it lives while its Vars do
    st.default = st.current = weakref.ref(t)
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
        self._prev = lib.pt_grad_enabled()
        lib.pt_set_grad_enabled(self._enable)
        return self

    def __exit__(self, *exc):
        lib.pt_set_grad_enabled(self._prev)
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
    return bool(lib.pt_grad_enabled())
