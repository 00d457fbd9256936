"""Record once, replay many: ``pytape.trace``.

``fn = pytape.trace(f, *example_args)`` records f once; ``fn(x)`` then
evaluates by replaying the tape in C (one forward loop, no Python per
operation), and ``fn.gradient(x)``, ``fn.jacobian(x)``, ``fn.hessian(x)``,
``fn.hvp(x, v)``, ``fn.jvp(x, v)``, ``fn.vjp(x, u)`` add the sweeps of
``pytape.functional`` on the replayed tape.

Branch safety: while f is traced, every comparison of a ``Var`` (and every
``float()``, ``int()``, ``bool()``, ``round()`` of one) is recorded as a guard
with its outcome.  A replay re-checks the guards; where one comes out
otherwise, the program would have taken another path, so pytape traces f again
at the new input (``on_branch_change="retrace"``, the default) or raises
``BranchChangedError`` naming the comparison's source line (``"raise"``).  A
replay never returns the derivative of the wrong branch.

>>> import pytape
>>> fn = pytape.trace(lambda x: x if x > 0 else -x, 2.0)
>>> fn(3.0), fn.gradient(3.0), fn.gradient(-3.0), fn.retraces
(3.0, 1.0, -1.0, 1)
"""
import numpy as np

from ._native import ffi, lib, raise_status
from .functional import _f64, _i64, _Recording, _as_float_array
from .var import _slot, _tracing

__all__ = ["trace", "CompiledFunction", "BranchChangedError"]


class BranchChangedError(RuntimeError):
    """A replay reached a comparison whose outcome differs from the trace."""


class CompiledFunction:
    """f recorded once on a tape; call it and its derivatives at new inputs.

    ``fn.num_ops`` (instructions), ``fn.nbytes``, ``fn.stats()``, ``fn.retraces``.

    >>> import numpy as np, pytape
    >>> fn = pytape.trace(lambda x: np.sum(x ** 2), np.zeros(3))
    >>> fn(np.array([1.0, 2.0, 3.0])), fn.gradient(np.array([1.0, 2.0, 3.0])).tolist()
    (14.0, [2.0, 4.0, 6.0])
    """

    def __init__(self, f, args, on_branch_change="retrace"):
        if on_branch_change not in ("retrace", "raise"):
            raise ValueError(f"on_branch_change must be 'retrace' or 'raise', not {on_branch_change!r}")
        self._f, self._policy = f, on_branch_change
        self.retraces = 0
        self._rec = None
        if args:
            self._trace(args)

    def _trace(self, args):
        _tracing[0] += 1
        try:
            argnums = 0 if len(args) == 1 else tuple(range(len(args)))
            rec = _Recording(self._f, args, argnums, guards=True)
        finally:
            _tracing[0] -= 1
        self._rec = rec
        # every input gets a slot, used or not, so replays can set them all
        self._in_slots = np.array([_slot(x, rec.tape) for leaves in rec.leaves for x in leaves], dtype=np.int64)
        rec.__dict__.pop("_in_slots_cache", None)
        rec.__dict__.pop("_all_in", None)
        self._arg_shapes = [np.shape(a) for a in args]

    def _replay(self, args):
        """Bring the tape to args: replay, or trace again where a guard fails."""
        if self._rec is None:  # the decorator form traces at the first call
            self._trace(args)
            return
        if len(args) != len(self._arg_shapes):
            raise TypeError(f"the traced function takes {len(self._arg_shapes)} arguments, got {len(args)}")
        flat = [_as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
        if [x.shape for x in flat] != [tuple(s) for s in self._arg_shapes]:
            raise ValueError(f"argument shapes {[x.shape for x in flat]} differ from the traced "
                             f"{[tuple(s) for s in self._arg_shapes]}; trace again for new shapes")
        values = np.concatenate([x.ravel() for x in flat]) if flat else np.zeros(0)
        tape = self._rec.tape
        where = ffi.new("int64_t[1]")
        st = lib.pt_replay(tape._p, len(values), _i64(self._in_slots), _f64(values), where)
        if st == lib.PT_E_GUARD:
            if self._policy == "raise":
                raise BranchChangedError(_branch_message(tape, where[0]))
            self.retraces += 1
            self._trace(args)
        elif st:
            raise_status(st, "record", tape)

    # ---- values and derivatives -------------------------------------------

    def __call__(self, *args):
        self._replay(args)
        rec = self._rec
        vals = np.array([lib.pt_value(rec.tape._p, s) if s >= 0 else np.nan for s in rec.out_slots])
        if np.any(np.array(rec.out_slots) < 0):  # constant outputs keep their traced values
            vals = np.where(np.array(rec.out_slots) < 0, np.ravel(rec.value), vals)
        return float(vals[0]) if rec.out_shape == () else vals.reshape(rec.out_shape)

    def value_and_grad(self, *args):
        """(f(*args), gradient): one replay and one reverse sweep.

        >>> import pytape
        >>> pytape.trace(lambda x, y: x * y, 1.0, 1.0).value_and_grad(3.0, 4.0)
        (12.0, (4.0, 3.0))
        """
        value = self(*args)
        rec = self._rec
        if len(rec.out_slots) != 1 or rec.out_shape not in ((), (1,)):
            raise TypeError(f"gradient needs a scalar output, f returns shape {rec.out_shape}; use jacobian")
        rows = rec.rows(np.ones((1, 1)))
        return value, rec.pack([rec.shaped_in(j, r[0]) for j, r in enumerate(rows)])

    def gradient(self, *args):
        """The gradient of a scalar f at args (a tuple for several arguments)."""
        return self.value_and_grad(*args)[1]

    def jacobian(self, *args, mode="auto"):
        """The Jacobian at args, shape out.shape + in.shape (per argument)."""
        self(*args)
        rec = self._rec
        m, n = len(rec.out_slots), sum(len(x) for x in rec.leaves)
        use = mode if mode != "auto" else ("fwd" if n < m else "rev")
        per_arg = rec.rows(np.eye(m)) if use == "rev" else [rec.columns(j, np.eye(len(x))) for j, x in enumerate(rec.leaves)]
        jacs = [np.asarray(J).reshape(rec.out_shape + rec.shapes[j]) for j, J in enumerate(per_arg)]
        return rec.pack([float(J) if J.ndim == 0 else J for J in jacs])

    def hessian(self, *args):
        """The Hessian of a scalar f of one argument at args."""
        self(*args)
        rec = self._rec
        n = len(rec.leaves[0])
        H = rec.hvps(np.eye(n))
        return float(H[0, 0]) if rec.shapes[0] == () else H.reshape(rec.shapes[0] + rec.shapes[0])

    def hvp(self, x, v):
        """H v of a scalar f of one argument at x: forward over reverse."""
        self(x)
        rec = self._rec
        v = _as_float_array(v, "v")
        return rec.shaped_in(0, rec.hvps(v.reshape(-1, 1))[:, 0])

    def jvp(self, x, v):
        """(f(x), J v) for a function of one argument."""
        value = self(x)
        rec = self._rec
        out = rec.columns(0, _as_float_array(v, "v").reshape(-1, 1))[:, 0]
        return value, float(out[0]) if rec.out_shape == () else out.reshape(rec.out_shape)

    def vjp(self, x, u):
        """(f(x), u J) for a function of one argument."""
        value = self(x)
        rec = self._rec
        rows = rec.rows(_as_float_array(u, "u").reshape(1, -1))
        return value, rec.shaped_in(0, rows[0][0])

    # ---- the tape ----------------------------------------------------------

    @property
    def num_ops(self):
        """Instructions on the traced tape (0 before the first trace)."""
        return len(self._rec.tape) if self._rec is not None else 0

    @property
    def nbytes(self):
        """Bytes held by the traced tape."""
        return self._rec.tape.nbytes

    def stats(self):
        """The traced tape's ``stats()`` (operations by type, bytes, leaves, ...)."""
        return self._rec.tape.stats()

    def __repr__(self):
        return f"<pytape.CompiledFunction of {getattr(self._f, '__name__', 'f')}: {self.num_ops} instructions>"


def _branch_message(tape, i):
    loc = tape._where.get(i) if tape._where else None
    where = f" at {loc[0]}:{loc[1]} in {loc[2]}()" if loc else ""
    return (f"a comparison recorded while tracing{where} comes out differently at these inputs, "
            f"so the traced tape does not compute f there; trace again (on_branch_change='retrace' "
            f"does it automatically) or use pytape.where for a branch-free conditional")


def trace(f=None, *example_args, on_branch_change="retrace"):
    """Record f once at example_args; return a :class:`CompiledFunction`.

    Without example arguments (also as a decorator, ``@pytape.trace``), f is
    traced at its first call.

    >>> import pytape
    >>> fn = pytape.trace(lambda x: pytape.sin(x) * x, 1.0)
    >>> round(fn(2.0), 6), round(fn.gradient(2.0), 6)
    (1.818595, 0.077004)
    >>> @pytape.trace
    ... def square(x):
    ...     return x * x
    >>> square(3.0), square.gradient(4.0)
    (9.0, 8.0)
    """
    if f is None:  # @pytape.trace(on_branch_change=...)
        return lambda g: CompiledFunction(g, (), on_branch_change)
    return CompiledFunction(f, example_args, on_branch_change)

