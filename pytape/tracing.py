"""Record once, replay many: ``pytape.trace``.

``fn = pytape.trace(f, *example_args)`` records f once and compiles its tape;
``fn(x)`` then evaluates by replaying the tape in C (one forward loop, no
Python per operation), and ``fn.gradient(x)``, ``fn.jacobian(x)``,
``fn.hessian(x)``, ``fn.hvp(x, v)``, ``fn.jvp(x, v)``, ``fn.vjp(x, u)`` add the
sweeps of ``pytape.functional`` on the replayed tape.

Compiling (``csrc/tape_compile.c``): the traced tape is copied without the
instructions that reach no output, with constants folded (a ``Var`` that is
not an argument of f, such as a parameter f closes over, is a constant of the
compiled function: its value at trace time), and with a register plan, so a
replay of values needs memory for the live set of values only.

Batches: an argument with extra leading dimensions (``X`` of shape
``(batch, n)`` for f traced at shape ``(n,)``) evaluates ``fn(X)``,
``fn.gradient(X)`` and ``fn.value_and_grad(X)`` for every row in C,
the rows split over the machine's cores.

Branch safety: while f is traced, every comparison of a ``Var`` (and every
``float()``, ``int()``, ``bool()``, ``round()`` of one) is recorded as a guard
with its outcome.  A replay re-checks the guards; where one comes out
otherwise, the program would have taken another path, so pytape uses another
tape of f traced before that fits, or traces f again at the new input
(``on_branch_change="retrace"``, the default), or raises
``BranchChangedError`` naming the comparison's source line (``"raise"``).  A
replay never returns the derivative of the wrong branch.  ``pytape.where``
records a branch-free choice instead, valid at every input.

Serialisation: ``fn.to_bytes()`` / ``CompiledFunction.from_bytes(data)`` and
pickle, in a versioned format with a SHA-256 checksum (pytape/saved.py); bad
data raises ``TapeFormatError``.

Custom primitives (``pytape.primitive``, pytape/custom.py) stay one
instruction on the compiled tape: each replay calls the primitive (and, for
derivatives, its rules) back in Python, once per evaluation, so a batch of a
tape with one runs in the calling thread.

>>> import pytape
>>> fn = pytape.trace(lambda x: x if x > 0 else -x, 2.0)
>>> fn(3.0), fn.gradient(3.0), fn.gradient(-3.0), fn.retraces
(3.0, 1.0, -1.0, 1)
"""
import contextlib
import os
import pickle
import threading
import time

import numpy as np

from . import _native, saved
from ._native import ID_BITS, KIND_GUARD, KIND_LEAF, OP_KINDS, CTape, anomaly_enabled
from .anomaly import explain, replay_error
from .errors import BranchChangedError, TapeFormatError
from .functional import tensor_recording_or_none
from .program import Program, check_argnums, Recording, TensorRecording, as_float_array
from .sparse import SparseHessian, SparseJacobian
from .dask import is_dask
from .tape import Tape
from .var import place

__all__ = ["trace", "CompiledFunction"]

#: tapes of one function kept for inputs on different branches
MAX_TAPES = 8


def _alive():
    return {t.ident for t in threading.enumerate()}


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Compiled(Program):
    """One compiled tape of f: inputs in slots 0..n-1, a register plan, and
    the source lines of its guards."""

    def __init__(self, tape, shapes, scalar_in, single, out_shape, out_slots, out_values, where):
        self.tape = tape
        self.shapes, self.scalar_in, self.single = list(shapes), list(scalar_in), single
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        bounds = np.cumsum([0] + self.sizes)
        self._in_slots = [list(range(bounds[j], bounds[j + 1])) for j in range(len(self.sizes))]
        self.out_shape, self.out_slots = tuple(out_shape), list(out_slots)
        self.out_values = np.asarray(out_values, dtype=float)  # the constant outputs' values
        self.tape._where = where  # guard slot -> (file, line, function)
        self._var_outs = np.array([s for s in self.out_slots if s >= 0], dtype=np.int64)
        self.tape._c.plan_registers(self._var_outs)
        self._copies = {}  # thread id -> this tape's copy owned by that thread (local())
        self.origin = self  # the tape this one copies (local()): sparse plans are kept there

    def local(self):
        """This compiled tape, or a copy owned by the calling thread.

        Batch replays read a tape from any thread, but the sweeps that replay
        the tape itself (Jacobians, Hessians, hvp, jvp, vjp) write its values,
        which only the thread that owns it may do: another thread works on its
        own copy, made once."""
        if self.tape._c.is_owner():
            return self
        me = threading.get_ident()
        copy = self._copies.get(me)
        if copy is None or not copy.tape._c.is_owner():  # (a thread id is reused once its thread ends)
            c = self.tape._c
            cols = c.rows(0, len(c), ("op", "a", "b", "val"))
            ctape = CTape.load(cols["op"], cols["a"], cols["b"], cols["val"], c.consts(), c.custom_table())
            copy = _Compiled(Tape._adopt(ctape), self.shapes, self.scalar_in, self.single, self.out_shape,
                             self.out_slots, self.out_values, dict(self.tape._where or {}))
            copy.origin = self
            self._copies = {t: cp for t, cp in self._copies.items() if t in _alive()}
            self._copies[me] = copy
        return copy

    @classmethod
    def from_recording(cls, rec):
        """Compile the tape of a recording (``pytape.trace``)."""
        src = rec.tape
        # every input gets its slot, also one f did not use: input k is slot k of the compiled tape
        ins = [place(x, src) >> ID_BITS for leaves in rec.leaves for x in leaves]
        ctape, slot_map = src._c.compile(ins, [s for s in rec.out_slots if s >= 0])
        tape = Tape._adopt(ctape)
        # an output that depends on no input was folded (-2): a constant output (-1)
        out_slots = [max(-1, int(slot_map[s])) if s >= 0 else -1 for s in rec.out_slots]
        out_values = np.ravel(rec.value).astype(float)
        where = {int(slot_map[i]): loc for i, loc in (src._where or {}).items() if slot_map[i] >= 0}
        return cls(tape, rec.shapes, rec.scalar_in, rec.single, rec.out_shape, out_slots, out_values, where)

    @property
    def nin(self):
        return sum(self.sizes)

    def run(self, X, grad, threads):
        """Replay rows X (rows, nin): (Y (rows, nout), G (rows, nin) or None, fail (rows,))."""
        rows = X.shape[0]
        outs = self._var_outs
        G = None
        c = self.tape._c
        if grad and len(outs) == 1:
            Yv, G, fail = c.batch_gradients(X, int(outs[0]), threads)
        else:
            Yv, fail = c.batch_values(X, outs, threads)
            if grad:  # a constant output: gradient 0
                G = np.zeros((rows, self.nin))
        if len(outs) == len(self.out_slots):  # no constant output
            return Yv, G, fail
        Y = np.tile(self.out_values, (rows, 1))
        Y[:, np.array(self.out_slots) >= 0] = Yv
        return Y, G, fail

    def checked_sweep(self):
        """The reverse sweep of the replayed values under anomaly mode's checks."""
        with explain(self.tape):
            self.tape._c.backward_block([int(self._var_outs[0])], [[1.0]], list(range(self.nin)))

    def replay(self, x):
        """Bring the tape's own values to the point x (flat); the failing guard's slot or -1."""
        return self.tape._c.replay(np.arange(len(x)), x)

    def replayed_at(self, x):
        """This tape (or this thread's copy of it, ``local()``) with its values
        replayed at the point x, or None if a guard fails there."""
        if not self.tape._c.is_owner() and self.run(x[None], False, 1)[2][0] >= 0:
            return None  # checked without copying the tape
        mine = self.local()
        return mine if mine.replay(x) < 0 else None

    def branch_message(self, i):
        loc = (self.tape._where or {}).get(i)
        where = f" at {loc[0]}:{loc[1]} in {loc[2]}()" if loc else ""
        return (f"a comparison recorded while tracing{where} comes out differently at these inputs, "
                f"so the traced tape does not compute f there; trace again (on_branch_change='retrace' "
                f"does it automatically) or use pytape.where for a branch-free conditional")


class _ArrayCompiled(Program):
    """One traced Tensor program of f (its array arguments recorded as
    Tensors, one instruction per numpy operation): the recording's own tape,
    replayed in place (csrc/sweep_forward.c: pt_replay_arrays recomputes the
    instructions that depend on an input and reach the output or a guard);
    the derivatives are the recording's sweeps (program.TensorRecording) at
    the replayed values."""

    def __init__(self, rec, f, args, data=()):
        self.rec, self.tape = rec, rec.tape
        self._f, self._args, self._data = f, args, data  # to trace again in another thread (local())
        self.shapes, self.scalar_in, self.single = list(rec.shapes), list(rec.scalar_in), rec.single
        self.sizes = list(rec.sizes)
        self.out_shape, self.out_slots = tuple(rec.out_shape), list(rec.out_slots)
        self.out_values = np.ravel(rec.value).astype(float)
        c = self.tape._c
        self._ins = np.array(rec._slots, dtype=np.int64)
        self._offs = np.cumsum([0] + self.sizes[:-1]).astype(np.int64)
        c.replay_inputs(self._ins)
        roots = [rec._out] if rec._out >= 0 else []
        self._plan = c.replay_plan(self._ins, roots)
        self.shared_bytes = c.replay_share_values(self._plan, roots)  # a replay works in the live set
        self._var_outs = np.array([rec._out] if rec._out >= 0 else [], dtype=np.int64)
        self._copies = {}  # thread id -> this function traced again in that thread

    branch_message = _Compiled.branch_message

    @classmethod
    def from_tape(cls, tape, d, f, args=None, data=()):
        """A loaded tape (pytape/saved.py) with its description d."""
        ctape, arr = tape._c, d["arrays"]
        rec = TensorRecording.__new__(TensorRecording)
        rec.tape, rec.single = tape, d["single"]
        rec.shapes, rec.scalar_in = list(d["shapes"]), list(d["scalar_in"])
        rec.sizes = [int(np.prod(s, dtype=np.int64)) for s in rec.shapes]
        rec._is_array = [not s for s in rec.scalar_in]
        rec._slots, rec.kind, rec._out = list(arr["ins"]), arr["kind"], arr["out"]
        rec._data = [k in set(data) for k in range(len(rec.shapes))]
        rec.out_shape, rec.out_slots = tuple(d["out_shape"]), list(d["out_slots"])
        n = len(ctape)
        for s, shape, is_array in zip(rec._slots, rec.shapes, rec._is_array):
            ok = 0 <= s < n and (ctape.op_at(s) == _native.OP_ARRAY if is_array else
                                 OP_KINDS[ctape.op_at(s)] == KIND_LEAF)
            if not ok or (is_array and ctape.array_entry(s)[1] != tuple(shape)):
                raise TapeFormatError("not a pytape compiled function: its inputs do not match its instructions")
        out_ok = {"constant": rec._out == -1,
                  "scalar": 0 <= rec._out < n and ctape.op_at(rec._out) != _native.OP_ARRAY,
                  "array": 0 <= rec._out < n and ctape.op_at(rec._out) == _native.OP_ARRAY and
                  int(np.prod(ctape.array_entry(rec._out)[1], dtype=np.int64)) == len(rec.out_slots)}[rec.kind]
        if not out_ok or any(o != rec._out for o in rec.out_slots if rec.kind != "constant"):
            raise TapeFormatError("not a pytape compiled function: its output does not match its instructions")
        rec.value = np.array(d["out_values"]).reshape(rec.out_shape)
        tape._where = d["where"]
        return cls(rec, f, args, tuple(data))

    @property
    def nin(self):
        return sum(self.sizes)

    def rows(self, seeds):
        return self.rec.rows(seeds)

    def columns(self, j, seeds):
        return self.rec.columns(j, seeds)

    def hvps(self, seeds):
        return self.rec.hvps(seeds)

    def local(self):
        """This tape, or f traced again in the calling thread (a tape is
        replayed by the thread that recorded it)."""
        if self.tape._c.is_owner():
            return self
        me = threading.get_ident()
        copy = self._copies.get(me)
        if copy is None or not copy.tape._c.is_owner():
            copy = self._copy()
            self._copies = {t: cp for t, cp in self._copies.items() if t in _alive()}
            self._copies[me] = copy
        return copy

    def _copy(self):
        """This tape loaded again in the calling thread (as from its bytes), or,
        for a tape with custom array primitives (which are not saved), f traced
        again at the point it was traced at."""
        c = self.tape._c
        try:
            table = c.array_table()
        except ValueError:
            if self._f is None:
                raise RuntimeError("this compiled function holds a custom array primitive and was loaded "
                                   "without f: only the thread that loaded it can replay it") from None
            return _ArrayCompiled(_array_recording(self._f, self._args, self._data), self._f, self._args, self._data)
        cols = c.rows(0, len(c), ("op", "a", "b", "val"))
        ctape = CTape.load(cols["op"], cols["a"], cols["b"], cols["val"], c.consts(), c.custom_table(), table)
        rec = self.rec
        return _ArrayCompiled.from_tape(Tape._adopt(ctape), {
            "single": rec.single, "shapes": rec.shapes, "scalar_in": rec.scalar_in, "out_shape": rec.out_shape,
            "out_slots": rec.out_slots, "out_values": self.out_values, "where": dict(self.tape._where or {}),
            "arrays": {"ins": list(self._ins), "kind": rec.kind, "out": rec._out}}, self._f, self._args, self._data)

    def replay(self, x):
        """The tape's values at the flat point x: -1, or the failing guard's slot."""
        return self.tape._c.replay_arrays(self._ins, x, self._offs, self._plan)

    def checked_sweep(self):
        """The reverse sweep of the replayed values under anomaly mode's checks."""
        self._gradient()

    def replayed_at(self, x):
        mine = self.local()
        return mine if mine.replay(x) < 0 else None

    def value_and_grad_at(self, args, name):
        """(value, gradients per argument) at one point given as f's arguments,
        in one C call that lends the arrays to the tape (no copies in, one
        out); None where that path does not apply (a batch, another shape, a
        constant output) or a guard fails: the caller takes the general one."""
        if self.rec.kind == "constant" or len(args) != len(self.shapes):
            return None
        arrays = []
        for k, (a, shape) in enumerate(zip(args, self.shapes)):
            x = a if type(a) is np.ndarray and a.dtype == np.float64 else as_float_array(
                a, f"argument {k} of the traced function {name}")
            if x.shape != shape:
                return None
            arrays.append(x if x.flags.c_contiguous else np.ascontiguousarray(x))
        mine = self.local()
        grads = [_native.arr_empty(shape, size) for shape, size in zip(self.shapes, self.sizes)]  # warm memory
        value, fail = mine.tape._c.replay_gradient(mine._ins, arrays, mine._plan, mine.rec._out, grads)
        if fail >= 0:
            return None
        return value, [float(g) if s else g for g, s in zip(grads, self.scalar_in)]

    def _output(self):
        rec, c = self.rec, self.tape._c
        if rec.kind == "array":
            return c.array_value(rec._out, (len(self.out_slots),))
        if rec.kind == "scalar":
            return np.array([c.value(rec._out)])
        return self.out_values

    def _gradient(self):
        rec, c = self.rec, self.tape._c
        if rec.kind == "constant":
            return np.zeros(self.nin)
        with explain(self.tape):
            if rec.kind == "array":
                _native.backward_array(c, rec._out, None, True)
            else:
                c.backward(rec._out, 1.0, True)
        return np.concatenate([rec._adjoint(j) for j in range(len(self.sizes))]) if self.sizes else np.zeros(0)

    def run(self, X, grad, threads):
        """Replay rows X (rows, nin): (Y, G or None, fail).  Rows are split
        over up to ``threads`` threads (a pool kept for it, each replaying its
        own copy of the tape, local()): the C calls release the GIL."""
        rows = X.shape[0]
        Y = np.full((rows, len(self.out_slots)), np.nan)
        G = np.full((rows, self.nin), np.nan) if grad else None
        fail = np.full(rows, -1, dtype=np.int64)
        parts = min(threads, rows, _MAX_BATCH_THREADS) if self._copyable() else 1
        if parts <= 1 or rows * self.nin < _BATCH_MIN_ELEMENTS:
            self._rows(X, Y, G, fail, 0, rows)
            return Y, G, fail
        bounds = np.linspace(0, rows, parts + 1).astype(int)
        pool, cancel = _batch_pool(), threading.Event()
        with _one_blas_thread():
            jobs = [pool.submit(self._rows, X, Y, G, fail, a, b, cancel) for a, b in zip(bounds[:-1], bounds[1:])]
            try:
                for job in jobs:
                    job.result()  # a row's exception is raised here
            except BaseException:  # Ctrl-C (or a failing row): the other threads stop at their next chunk
                cancel.set()
                for job in jobs:  # the BLAS keeps one thread until none of them runs
                    if not job.cancel():
                        job.exception()
                raise
        return Y, G, fail

    def _copyable(self):
        """Can other threads load copies of this tape?  Not with scalar custom
        primitives (their calls hold the GIL: one thread is as fast) or array
        ones (not saved)."""
        if "_can_copy" not in self.__dict__:
            try:
                self.tape._c.array_table()
                self._can_copy = self.tape._c.ncustom == 0
            except ValueError:
                self._can_copy = False
        return self._can_copy

    def _rows(self, X, Y, G, fail, start, stop, cancel=None):
        """Rows start..stop of X into Y, G and fail, on this thread's tape;
        in C calls of about 0.05 s (Ctrl-C and ``cancel`` act between two)."""
        mine = self.local()
        if G is not None and self.rec.kind != "constant":  # rows lent as inputs, gradients into G: C loops
            r, chunk = start, 1
            while r < stop and not (cancel is not None and cancel.is_set()):
                b = min(stop, r + chunk)
                y = np.empty(b - r)
                t0 = time.perf_counter()
                with explain(mine.tape):  # anomaly mode: a nan in the reverse sweep names its operation
                    mine.tape._c.replay_gradient_rows(mine._ins, mine._offs, X[r:b], y, G[r:b], fail[r:b],
                                                      mine._plan, mine.rec._out)
                Y[r:b, 0] = y
                took = time.perf_counter() - t0
                chunk = max(1, min(2 * chunk, int(chunk * 0.05 / took) if took > 0 else 2 * chunk))
                r = b
            return
        for r in range(start, stop):
            if cancel is not None and cancel.is_set():
                return
            fail[r] = mine.replay(X[r])
            if fail[r] >= 0:
                continue
            Y[r] = mine._output()
            if G is not None:
                G[r] = mine._gradient()


#: threads a batch of an array tape is split over, at most, and the elements
#: (rows x inputs) below which it stays on the calling thread
_MAX_BATCH_THREADS = 8
_BATCH_MIN_ELEMENTS = 4096
_POOL = []


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]  # batches running, the BLAS's thread count before the first


@contextlib.contextmanager
def _one_blas_thread():
    """numpy's OpenBLAS (pytape's matrix products) on one thread while batches
    run on the pool: each of the pool's threads calling a BLAS that starts
    its own threads oversubscribes the cores (measured on this project's
    2-core machine: two threads' 128x784 @ 784x256 products 18x slower each
    with OpenBLAS on 2 threads than on 1).  The count before the first
    batch comes back when the last one ends."""
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = _native.blas_threads(1)
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0 and _BLAS_USERS[1] is not None:
                _native.blas_threads(_BLAS_USERS[1])


def _batch_pool():
    """The threads that replay batches of array tapes (made once: their
    copies of a tape are kept per thread, local())."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor
        _POOL.append(ThreadPoolExecutor(max_workers=min(_MAX_BATCH_THREADS, _cores()),
                                        thread_name_prefix="pytape-batch"))
    return _POOL[0]


def _array_recording(f, args, data=()):
    """f recorded on Tensors for pytape.trace (guards on); the array
    arguments at positions ``data`` as constants (replay inputs without
    derivatives)."""
    argnums = 0 if len(args) == 1 else tuple(range(len(args)))
    return TensorRecording(f, args, argnums, api="pytape.trace", guards=True, data=data)


class CompiledFunction:
    """f recorded once on a tape; call it and its derivatives at new inputs.

    ``fn.num_ops`` (instructions), ``fn.nbytes``, ``fn.stats()``, ``fn.retraces``
    (traces after the first), ``fn.threads`` (cores batches use).

    >>> import numpy as np, pytape
    >>> fn = pytape.trace(lambda x: np.sum(x ** 2), np.zeros(3))
    >>> fn(np.array([1.0, 2.0, 3.0])), fn.gradient(np.array([1.0, 2.0, 3.0])).tolist()
    (14.0, [2.0, 4.0, 6.0])
    >>> fn.gradient(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])).tolist()   # a batch of 2 points
    [[2.0, 0.0, 0.0], [0.0, 0.0, 6.0]]
    """

    def __init__(self, f, args, on_branch_change="retrace", elementwise=None, argnums=None):
        if on_branch_change not in ("retrace", "raise"):
            raise ValueError(f"on_branch_change must be 'retrace' or 'raise', not {on_branch_change!r}")
        if argnums is not None:
            check_argnums(argnums, "pytape.trace")
        self._f, self._policy, self._elementwise = f, on_branch_change, elementwise
        self._argnums = argnums  # None: every argument's derivatives
        self.retraces = 0
        self.threads = _cores()
        self._tapes = []  # compiled tapes of f, the most recently used first
        self._lock = threading.Lock()  # threads share the list: reorder it under this
        self._name = getattr(f, "__name__", "f")
        if args:
            self._trace(args)

    # ---- tracing ------------------------------------------------------------

    def _ks(self, n):
        """The positions, among n arguments, of those whose derivatives are returned."""
        if self._argnums is None:
            return list(range(n))
        _, ks = check_argnums(self._argnums, "pytape.trace", n)
        return [k % n for k in ks]

    def _pick(self, c, per_arg):
        """Per-argument derivatives as returned: all (c.pack), or those of argnums."""
        if self._argnums is None:
            return c.pack(per_arg)
        ks = self._ks(len(c.shapes))
        return per_arg[ks[0]] if isinstance(self._argnums, int) else tuple(per_arg[k] for k in ks)

    def _trace(self, args):
        if self._f is None:
            raise BranchChangedError("this compiled function was loaded without f, so it cannot trace "
                                     "f again; pass f to CompiledFunction.from_bytes to allow it")
        c = None
        if not self._elementwise and any(type(a) is not float and isinstance(a, np.ndarray) for a in args):
            # array arguments as Tensors: one instruction per numpy operation (as pytape.grad)
            data = () if self._argnums is None else tuple(
                k for k in range(len(args)) if k not in self._ks(len(args)))  # arrays without derivatives
            rec = tensor_recording_or_none(lambda: _array_recording(self._f, args, data), "pytape.trace")
            if rec is not None:
                c = _ArrayCompiled(rec, self._f, args, data)
        if c is None:
            argnums = 0 if len(args) == 1 else tuple(range(len(args)))
            rec = Recording(self._f, args, argnums, guards=True, api="pytape.trace")
            c = _Compiled.from_recording(rec)
        with self._lock:
            if self._tapes:
                self.retraces += 1
            self._tapes.insert(0, c)
            del self._tapes[MAX_TAPES:]
        return c

    def _first(self, c):
        """Compiled tape c fits the latest inputs: it goes first next time."""
        with self._lock:
            if c in self._tapes:
                self._tapes.remove(c)
                self._tapes.insert(0, c)

    @property
    def _main(self):
        if not self._tapes:
            raise RuntimeError("this function has not been traced yet: call it once")
        return self._tapes[0]

    # ---- inputs ---------------------------------------------------------------

    def _points(self, args):
        """args -> (X (rows, nin), batch shape or None for one point)."""
        if not self._tapes:  # the decorator form traces at the first call
            self._trace(args)
        c = self._tapes[0]
        if len(args) != len(c.shapes):
            raise TypeError(f"the traced function takes {len(c.shapes)} arguments, got {len(args)}")
        flat = [as_float_array(a, f"argument {k} of the traced function {self._name}") for k, a in enumerate(args)]
        batch = None
        for x, shape in zip(flat, c.shapes):
            lead = x.shape[:x.ndim - len(shape)]
            if x.ndim < len(shape) or x.shape[x.ndim - len(shape):] != tuple(shape) or (
                    lead and batch is not None and lead != batch):
                raise ValueError(f"argument shapes {[a.shape for a in flat]} differ from the traced "
                                 f"{[tuple(s) for s in c.shapes]} (a batch adds the same leading "
                                 f"dimensions to each argument); trace again for new shapes")
            if lead:
                batch = lead
        rows = int(np.prod(batch)) if batch is not None else 1
        X = np.concatenate([np.broadcast_to(x, (batch or ()) + tuple(s)).reshape(rows, size)
                            for x, s, size in zip(flat, c.shapes, c.sizes)], axis=1) if flat else np.zeros((rows, 0))
        return np.ascontiguousarray(X, dtype=float), batch

    def _args_of(self, x):
        """A flat point back into f's arguments."""
        c = self._tapes[0]
        parts = np.split(x, np.cumsum(c.sizes)[:-1])
        return tuple(float(p[0]) if s else p.reshape(shape)
                     for p, s, shape in zip(parts, c.scalar_in, c.shapes))

    def _run(self, X, grad, threads=None):
        """Replay every row of X on a tape of f whose guards hold there, tracing
        f again where none does (or raising, by the policy); on ``threads``
        (default: fn.threads)."""
        threads = self.threads if threads is None else threads
        tapes = list(self._tapes)  # this call's view: other threads may re-trace meanwhile
        rows, c = X.shape[0], tapes[0]
        Y = np.empty((rows, len(c.out_slots)))
        G = np.empty((rows, c.nin)) if grad else None
        pending = np.arange(rows)
        k = 0
        while len(pending):
            traced = k >= len(tapes)
            if not traced:
                c = tapes[k]
                k += 1
            else:  # no tape fits the first pending row: trace f there, or raise
                first = tapes[0]
                if self._policy == "raise" or self._f is None:
                    bad = int(first.run(X[pending[:1]], False, 1)[2][0])
                    hint = "" if self._f is not None else (
                        "; this copy was loaded without f, so it cannot trace f again")
                    raise BranchChangedError(first.branch_message(bad) + hint)
                c = self._trace(self._args_of(X[pending[0]]))
                tapes.append(c)
                k = len(tapes)
            whole = len(pending) == rows
            y, g, fail = c.run(X if whole else X[pending], grad, threads)
            ok = fail < 0
            if traced and not ok[0]:
                raise RuntimeError("pytape: a tape traced at a point fails its own guards there (please report)")
            if whole and ok.all():  # every row on this tape (the usual case): its arrays as they are, no copies
                Y, G = y, g
                if k > 1:
                    self._first(c)
                break
            Y[pending[ok]] = y[ok]
            if G is not None:
                G[pending[ok]] = g[ok]
            if ok.any() and not traced and k > 1:
                self._first(c)
            pending = pending[~ok]
        if anomaly_enabled():
            self._check_finite(X, Y, G)
        return Y, G

    def _check_finite(self, X, Y, G):
        """detect_anomaly(): a nan or inf in a replay's values or gradients
        raises FloatingPointError naming the operation (and its line, if f was
        traced inside detect_anomaly), as the eager sweeps do."""
        bad = ~np.isfinite(Y).all(axis=1)
        if G is not None:
            bad |= ~np.isfinite(G).all(axis=1)
        if not bad.any():
            return
        r = int(np.argmax(bad))
        c = self._at_point(X[r])
        self._explain(c, r if X.shape[0] > 1 else None)

    def _explain(self, c, row):
        """c replayed at a point where a value or a gradient is not finite: raise."""
        t = c.tape
        bad = t._c.first_nonfinite()  # an array instruction: its first bad element too
        at = f" (batch row {row})" if row is not None else ""
        if bad >= 0:
            raise replay_error(t, bad, f"replaying {self._name}{at}")
        if len(c._var_outs) == 1:  # finite values: the reverse sweep, checked
            c.checked_sweep()

    def _at(self, args):
        """The compiled tape whose values are replayed at one point (for the
        derivatives that sweep the tape itself)."""
        X, batch = self._points(args)
        if batch is not None:
            raise ValueError("this derivative takes one point, not a batch; loop over the rows")
        c = self._at_point(X[0])
        if anomaly_enabled():
            self._explain(c, None)
        return c

    def _at_point(self, x):
        """A tape of f (this thread's own or copy) replayed at the flat point x."""
        for attempt in range(2):
            for c in list(self._tapes):
                mine = c.replayed_at(x)
                if mine is not None:
                    self._first(c)
                    return mine
            if attempt == 0:
                self._run(x[None], False)  # no tape fits: trace f at x, or raise by the policy
        raise RuntimeError("pytape: a tape traced at a point fails its own guards there (please report)")

    # ---- values and derivatives -------------------------------------------

    def __call__(self, *args):
        if is_dask(args):  # a lazy dask array (pytape/dask.py)
            from .dask import map_value
            return map_value(self, *args)
        X, batch = self._points(args)
        Y, _ = self._run(X, False)
        c = self._tapes[0]
        if batch is None:
            return float(Y[0, 0]) if c.out_shape == () else Y[0].reshape(c.out_shape)
        return Y.reshape(batch + c.out_shape)

    def value_and_grad(self, *args):
        """(f(*args), gradient): one replay and one reverse sweep per point, in C.

        With a batch (extra leading dimensions on the arguments), every row in
        C; values and gradients then carry the batch dimensions.

        >>> import pytape
        >>> pytape.trace(lambda x, y: x * y, 1.0, 1.0).value_and_grad(3.0, 4.0)
        (12.0, (4.0, 3.0))
        """
        if is_dask(args):  # lazy dask arrays (pytape/dask.py)
            from .dask import map_value_and_grad
            return map_value_and_grad(self, *args)
        c = self._tapes[0] if self._tapes else None
        if type(c) is _ArrayCompiled and c.shapes and not anomaly_enabled():  # one point of an array program
            done = c.value_and_grad_at(args, self._name)
            if done is not None:
                return done[0], self._pick(c, done[1])
        X, batch = self._points(args)
        c = self._tapes[0]
        _has_inputs(c, "gradient")
        if len(c.out_slots) != 1 or c.out_shape not in ((), (1,)):
            raise TypeError(f"gradient needs a scalar output, f returns shape {c.out_shape}; use jacobian")
        Y, G = self._run(X, True)
        c = self._tapes[0]
        parts = np.split(G, np.cumsum(c.sizes)[:-1], axis=1)
        if batch is None:
            return float(Y[0, 0]), self._pick(c, [c.shaped_in(j, p[0]) for j, p in enumerate(parts)])
        grads = [p.reshape(batch + tuple(s)) for p, s in zip(parts, c.shapes)]
        return Y[:, 0].reshape(batch), self._pick(c, grads)

    def gradient(self, *args):
        """The gradient of a scalar f at args (a tuple for several arguments);
        for a batch of points, one gradient per row.

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: x ** 3, 1.0)
        >>> fn.gradient(2.0), fn.gradient(np.array([1.0, 2.0])).tolist()
        (12.0, [3.0, 12.0])
        """
        if is_dask(args):
            from .dask import map_gradient
            return map_gradient(self, *args)
        return self.value_and_grad(*args)[1]

    def jacobian(self, *args, mode="auto"):
        """The Jacobian at args, shape out.shape + in.shape (per argument)."""
        if mode not in ("auto", "fwd", "rev"):
            raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
        c = _has_inputs(self._at(args), "jacobian")
        J = c.jacobian(mode)
        return J if self._argnums is None else self._pick(c, [J] if c.single else list(J))

    def hessian(self, *args):
        """The Hessian of a scalar f at args, as ``pytape.hessian``: for a tuple
        of arguments, a nested tuple of blocks ``in_j.shape + in_k.shape``."""
        c = _has_inputs(self._at(args), "hessian")
        if self._argnums is None:
            return c.hessian()
        H = c.hessian_of(self._ks(len(c.shapes)))  # blocks of the arguments asked for only
        return H[0][0] if isinstance(self._argnums, int) else tuple(tuple(row) for row in H)

    def hvp(self, x, v):
        """H v of a scalar f of one argument at x: forward over reverse."""
        c = self._at((x,))
        v = _shaped(v, "v", c.shapes[0], "x")
        return c.shaped_in(0, c.hvps(v.reshape(-1, 1))[:, 0])

    def jvp(self, x, v):
        """(f(x), J v) for a function of one argument."""
        value = self(x)
        c = self._at((x,))
        v = _shaped(v, "v", c.shapes[0], "x")
        return value, c.shaped_out(c.columns(0, v.reshape(-1, 1))[:, 0])

    def vjp(self, x, u):
        """(f(x), u J) for a function of one argument."""
        value = self(x)
        c = self._at((x,))
        rows = c.rows(_shaped(u, "u", c.out_shape, "f(x)").reshape(1, -1))
        return value, c.shaped_in(0, rows[0][0])

    # ---- generated C (pytape/codegen.py) -----------------------------------

    def compile_c(self, directory=None, hvp=True):
        """The traced tape as generated C (straight-line code, compiled once
        and cached on disk): a :class:`pytape.codegen.GeneratedFunction` with
        this function's interface, whose calls, ``value_and_grad``,
        ``gradient``, ``hvp`` and ``sparse_hessian`` run the generated code
        (the same results as the replay's, bit for bit).  ``hvp=False``
        leaves out the Hessian-vector code (about half the text to compile).

        >>> import pytape
        >>> gen = pytape.trace(lambda x: pytape.sin(x) * x, 1.0).compile_c()
        >>> gen(2.0) == pytape.sin(2.0) * 2.0, gen.gradient(2.0) == pytape.trace(lambda x: pytape.sin(x) * x, 1.0).gradient(2.0)
        (True, True)
        """
        from .codegen import GeneratedFunction
        c = self._main
        if type(c) is _ArrayCompiled:  # generated from f recorded element by element (_elements)
            c = self._elements(c, "compile_c()")
        return GeneratedFunction(self, c, directory, hvp)

    # ---- array programs element by element (sparsity, generated C) --------

    def _elements(self, c, what):
        """For an array program c: f recorded element by element (object
        arrays of Vars, comparisons as guards) at the point c was traced at,
        compiled; made once per array tape.  Sparsity patterns and generated
        C need element-level instructions."""
        e = c.__dict__.get("_elements")
        if e is None:
            if self._f is None or c._args is None:
                raise RuntimeError(f"fn.{what} of an array program records f element by element, and this "
                                   f"compiled function was loaded without f: pass f to CompiledFunction.from_bytes")
            args = c._args
            try:
                rec = Recording(self._f, args, 0 if len(args) == 1 else tuple(range(len(args))), guards=True,
                                api="pytape.trace")
            except Exception as exc:
                raise NotImplementedError(
                    f"fn.{what} of an array program records f element by element (numpy on object arrays "
                    f"of Vars), which failed: {type(exc).__name__}: {exc}") from exc
            e = c._elements = _Compiled.from_recording(rec)
        return e

    def _element_twin(self):
        """f traced element by element as a compiled function of its own (guards and retraces included)."""
        with self._lock:
            if getattr(self, "_twin", None) is None:
                self._twin = CompiledFunction(self._f, (), self._policy, True, self._argnums)
            return self._twin

    # ---- sparse derivatives (pytape/sparse.py) -----------------------------

    def _sparse_plan(self, args, what, make):
        """The compiled tape replayed at args, and its sparsity plan (made once per tape).

        An array program's pattern comes from f recorded element by element
        (``_elements``); without element-level comparisons it holds wherever
        the array tape does, and the array tape's own sweeps evaluate it.  With
        them (np.max, a comparison selecting elements) the pattern holds only
        where they come out the same: the element-level tape then serves, as a
        compiled function with its guards (``_element_twin``)."""
        c = _has_inputs(self._at(args), what)
        if type(c) is not _ArrayCompiled:
            return c, self._sparse_plan_of(c, what, make)
        plans = c.__dict__.setdefault("_sparse_plans", {})
        if what not in plans:
            e = self._elements(c, what + "()")
            guarded = np.any(np.array(OP_KINDS)[e.tape._c.rows(0, len(e.tape._c), ("op",))["op"]] == KIND_GUARD)
            plans[what] = None if guarded else make(e, None if self._argnums is None else self._ks(len(c.shapes)))
        if plans[what] is None:
            return self._element_twin()._sparse_plan(args, what, make)
        return c, plans[what]

    def _sparse_plan_of(self, c, what, make):
        """The sparsity plan of compiled tape c (made once per tape)."""
        plans = c.origin.__dict__.setdefault("_sparse_plans", {})
        if what not in plans:  # the inputs: every argument's elements, or those of argnums
            plans[what] = make(c, None if self._argnums is None else self._ks(len(c.shapes)))
        return plans[what]

    def jacobian_sparsity(self, *args):
        """The Jacobian's pattern (``pytape.jacobian_sparsity``) of the tape
        traced for args: a scipy.sparse.csr_matrix of True, (outputs, inputs)
        flattened, the arguments' elements one after another (those of
        ``argnums`` only, when traced with argnums).

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: x[1:] - x[:-1], np.zeros(3), elementwise=True)
        >>> fn.jacobian_sparsity(np.zeros(3)).toarray().astype(int)
        array([[1, 1, 0],
               [0, 1, 1]])
        """
        return self._sparse_plan(args, "sparse_jacobian:auto", lambda c, ks: SparseJacobian(c, ks=ks))[1].pattern

    def hessian_sparsity(self, *args):
        """The Hessian's pattern (``pytape.hessian_sparsity``) of the tape traced for args."""
        return self._sparse_plan(args, "sparse_hessian", lambda c, ks: SparseHessian(c, ks))[1].pattern

    def sparse_jacobian(self, *args, mode="auto"):
        """The Jacobian at args as a scipy.sparse.csr_matrix (``pytape.sparse_jacobian``):
        the pattern and colouring found once per traced tape, then one replay and
        one sweep per colour each call.

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: x[1:] * x[:-1], np.ones(4), elementwise=True)
        >>> fn.sparse_jacobian(np.array([1.0, 2.0, 3.0, 4.0])).toarray()
        array([[2., 1., 0., 0.],
               [0., 3., 2., 0.],
               [0., 0., 4., 3.]])
        """
        if mode not in ("auto", "fwd", "rev"):
            raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
        c, plan = self._sparse_plan(args, f"sparse_jacobian:{mode}", lambda c, ks: SparseJacobian(c, mode, ks))
        return plan.evaluate(c)

    def sparse_hessian(self, *args):
        """The Hessian of a scalar f at args as a symmetric scipy.sparse.csr_matrix
        (``pytape.sparse_hessian``): the pattern and star colouring found once per
        traced tape, then one replay and a Hessian-vector product per colour.

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: np.sum((x[1:] - x[:-1]) ** 2), np.zeros(4), elementwise=True)
        >>> fn.sparse_hessian(np.zeros(4)).toarray()
        array([[ 2., -2.,  0.,  0.],
               [-2.,  4., -2.,  0.],
               [ 0., -2.,  4., -2.],
               [ 0.,  0., -2.,  2.]])
        """
        c, plan = self._sparse_plan(args, "sparse_hessian", lambda c, ks: SparseHessian(c, ks))
        return plan.evaluate(c)

    # ---- the tape ----------------------------------------------------------

    @property
    def num_ops(self):
        """Instructions on the compiled tape (0 before the first trace)."""
        return len(self._tapes[0].tape) if self._tapes else 0

    @property
    def nbytes(self):
        """Bytes held by the compiled tape (its register plan included)."""
        return self._main.tape.nbytes

    @property
    def num_registers(self):
        """Doubles a replay of values works in: the live set, at most ``num_ops``."""
        return self._main.tape._c.nregs

    def stats(self):
        """The compiled tape's ``stats()`` (operations by type, bytes, leaves,
        ...) plus ``registers`` and ``tapes`` (tapes kept for other branches)."""
        st = self._main.tape.stats()
        st.update(registers=self.num_registers, tapes=len(self._tapes))
        return st

    @property
    def tape(self):
        """The compiled ``Tape`` (see ``print(fn.tape)``)."""
        return self._main.tape

    def __repr__(self):
        return f"<pytape.CompiledFunction of {self._name}: {self.num_ops} instructions>"

    # ---- serialisation -------------------------------------------------------

    def to_bytes(self):
        """The compiled tape as bytes (format ``FORMAT_VERSION``, SHA-256
        checked): ``CompiledFunction.from_bytes`` loads it, in any process.

        >>> import pytape
        >>> fn = pytape.trace(lambda x: pytape.sin(x) * x, 1.0)
        >>> g = pytape.CompiledFunction.from_bytes(fn.to_bytes())
        >>> g(2.0) == fn(2.0), g.gradient(2.0) == fn.gradient(2.0)
        (True, True)
        """
        c = self._main
        where = c.tape._where or {}
        meta = {"name": self._name, "policy": self._policy, "shapes": [list(s) for s in c.shapes],
                "scalar_in": c.scalar_in, "single": c.single, "out_shape": list(c.out_shape),
                "out_slots": c.out_slots, "out_values": [float(v) for v in c.out_values],
                "guards": [[i, *loc] for i, loc in sorted(where.items())]}
        if isinstance(c, _ArrayCompiled):
            meta["arrays"] = {"ins": [int(k) for k in c._ins], "kind": c.rec.kind, "out": int(c.rec._out),
                              "data": [int(k) for k in c._data]}
        if self._argnums is not None:
            meta["argnums"] = self._argnums
        return saved.dump(c.tape._c, meta)

    @classmethod
    def from_bytes(cls, data, f=None, on_branch_change=None):
        """Load ``to_bytes()`` output.  Without f, a replay whose guards fail
        raises ``BranchChangedError``; with f, f is traced again there.
        Bytes that are not such output raise ``TapeFormatError``; anything
        but bytes (or a bytearray or memoryview of them) ``TypeError``."""
        ctape, d = saved.load(data)
        try:
            if "arrays" in d:
                c = _ArrayCompiled.from_tape(Tape._adopt(ctape), d, f, data=d["arrays"]["data"])
            else:
                c = _Compiled(Tape._adopt(ctape), d["shapes"], d["scalar_in"], d["single"], d["out_shape"],
                              d["out_slots"], d["out_values"], d["where"])
        except IndexError:
            raise TapeFormatError("not a pytape compiled function: its outputs are not on its tape") from None
        fn = cls(f, (), on_branch_change or d["policy"], argnums=d.get("argnums"))
        fn._tapes = [c]
        fn._name = d["name"]
        return fn

    def __reduce__(self):
        f = self._f
        try:  # f goes along when it pickles (a module-level function): the copy can retrace
            pickle.dumps(f)
        except Exception:
            f = None
        return (_unpickle, (self.to_bytes(), f, self._policy))


def _has_inputs(c, what):
    """c, or a TypeError if the traced function takes no arguments."""
    if not c.shapes:
        raise TypeError(f"fn.{what}() of a function traced with no arguments: there is nothing to "
                        f"differentiate; call fn() for its value, or trace f with the inputs to differentiate")
    return c


def _shaped(v, name, shape, of):
    """v as a float array of ``shape`` (that of ``of``); TypeError or ValueError otherwise."""
    v = as_float_array(v, name)
    if v.shape != tuple(shape):
        raise ValueError(f"{name} has shape {v.shape}, but {of} has shape {tuple(shape)}; "
                         f"give {name} the shape of {of}")
    return v


def _unpickle(data, f, policy):
    return CompiledFunction.from_bytes(data, f, policy)


def trace(f=None, *example_args, on_branch_change="retrace", elementwise=None, argnums=None):
    """Record f once at example_args; return a :class:`CompiledFunction`.

    Without example arguments (also as a decorator, ``@pytape.trace``), f is
    traced at its first call.  Array arguments are Tensors inside f (one
    instruction per numpy operation), or object arrays of Vars with
    ``elementwise=True``.  ``argnums`` (an int or a tuple) names the
    arguments whose derivatives ``gradient``, ``value_and_grad``,
    ``jacobian`` and ``hessian`` return; the others are inputs too (a batch
    of training data given at each call), recorded without derivatives.

    >>> import numpy as np, pytape
    >>> loss = pytape.trace(lambda w, X: np.mean((X @ w) ** 2), np.ones(2), np.ones((3, 2)), argnums=0)
    >>> loss.gradient(np.array([1.0, 0.0]), np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0]])).tolist()
    [6.666666666666667, 9.333333333333334]

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
        return lambda g: CompiledFunction(g, (), on_branch_change, elementwise, argnums)
    return CompiledFunction(f, example_args, on_branch_change, elementwise, argnums)
