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
``fn.gradient(X)`` and ``fn.value_and_grad(X)`` for every row in one C call,
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
pickle, in a versioned format with a SHA-256 checksum; bad data raises
``TapeFormatError``.

>>> import pytape
>>> fn = pytape.trace(lambda x: x if x > 0 else -x, 2.0)
>>> fn(3.0), fn.gradient(3.0), fn.gradient(-3.0), fn.retraces
(3.0, 1.0, -1.0, 1)
"""
import hashlib
import json
import os
import pickle
import struct

import numpy as np

from ._native import OP_KINDS, ffi, lib, raise_status
from .functional import _f64, _i64, _Program, _Recording, _as_float_array
from .tape import Tape
from .var import _slot, _tracing

__all__ = ["trace", "CompiledFunction", "BranchChangedError", "TapeFormatError"]

#: tapes of one function kept for inputs on different branches
MAX_TAPES = 8


class BranchChangedError(RuntimeError):
    """A replay reached a comparison whose outcome differs from the trace."""


class TapeFormatError(ValueError):
    """Bytes that are not a compiled function pytape can load (truncated,
    corrupted, another format or a newer version)."""


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Compiled(_Program):
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
        st = lib.pt_tape_plan_registers(tape._p, len(self._var_outs), _i64(self._var_outs))
        if st:
            raise_status(st, "record", tape)

    @classmethod
    def from_recording(cls, rec):
        """Compile the tape of a recording (``pytape.trace``)."""
        src = rec.tape
        ins = np.array([_slot(x, src) for leaves in rec.leaves for x in leaves], dtype=np.int64)
        roots = np.array([s for s in rec.out_slots if s >= 0], dtype=np.int64)
        slot_map = np.empty(len(src), dtype=np.int64)
        out = ffi.new("pt_tape **")
        st = lib.pt_tape_compile(src._p, len(ins), _i64(ins), len(roots), _i64(roots), _i64(slot_map), out)
        if st:
            raise_status(st, "record", src)
        tape = Tape._adopt(out[0])
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
        fail = np.empty(rows, dtype=np.int64)
        outs = self._var_outs
        Yv = np.empty((rows, len(outs)))
        G = None
        p = self.tape._p
        if grad and len(outs) == 1:
            G = np.empty((rows, self.nin))
            st = lib.pt_batch_gradients(p, rows, _f64(X), int(outs[0]), _f64(Yv), _f64(G), _i64(fail), threads)
        else:
            st = lib.pt_batch_values(p, rows, _f64(X), len(outs), _i64(outs), _f64(Yv), _i64(fail), threads)
            if grad:  # a constant output: gradient 0
                G = np.zeros((rows, self.nin))
        if st:
            raise_status(st, "backward", self.tape)
        Y = np.tile(self.out_values, (rows, 1))
        Y[:, np.array(self.out_slots) >= 0] = Yv
        return Y, G, fail

    def replay(self, x):
        """Bring the tape's own values to the point x (flat); the failing guard's slot or -1."""
        where = ffi.new("int64_t[1]")
        slots = np.arange(len(x), dtype=np.int64)
        st = lib.pt_replay(self.tape._p, len(x), _i64(slots), _f64(x), where)
        if st == lib.PT_E_GUARD:
            return int(where[0])
        if st:
            raise_status(st, "record", self.tape)
        return -1

    def branch_message(self, i):
        loc = (self.tape._where or {}).get(i)
        where = f" at {loc[0]}:{loc[1]} in {loc[2]}()" if loc else ""
        return (f"a comparison recorded while tracing{where} comes out differently at these inputs, "
                f"so the traced tape does not compute f there; trace again (on_branch_change='retrace' "
                f"does it automatically) or use pytape.where for a branch-free conditional")


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

    def __init__(self, f, args, on_branch_change="retrace"):
        if on_branch_change not in ("retrace", "raise"):
            raise ValueError(f"on_branch_change must be 'retrace' or 'raise', not {on_branch_change!r}")
        self._f, self._policy = f, on_branch_change
        self.retraces = 0
        self.threads = _cores()
        self._tapes = []  # compiled tapes of f, the most recently used first
        self._name = getattr(f, "__name__", "f")
        if args:
            self._trace(args)

    # ---- tracing ------------------------------------------------------------

    def _trace(self, args):
        if self._f is None:
            raise BranchChangedError("this compiled function was loaded without f, so it cannot trace "
                                     "f again; pass f to CompiledFunction.from_bytes to allow it")
        _tracing[0] += 1
        try:
            argnums = 0 if len(args) == 1 else tuple(range(len(args)))
            rec = _Recording(self._f, args, argnums, guards=True)
        finally:
            _tracing[0] -= 1
        if self._tapes:
            self.retraces += 1
        self._tapes.insert(0, _Compiled.from_recording(rec))
        del self._tapes[MAX_TAPES:]
        return self._tapes[0]

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
        flat = [_as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
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

    def _run(self, X, grad):
        """Replay every row of X on a tape of f whose guards hold there, tracing
        f again where none does (or raising, by the policy)."""
        rows, c = X.shape[0], self._tapes[0]
        Y = np.empty((rows, len(c.out_slots)))
        G = np.empty((rows, c.nin)) if grad else None
        pending = np.arange(rows)
        k = 0
        while len(pending):
            traced = k >= len(self._tapes)
            if not traced:
                c = self._tapes[k]
                k += 1
            else:  # no tape fits the first pending row: trace f there, or raise
                first = self._tapes[0]
                if self._policy == "raise" or self._f is None:
                    bad = int(first.run(X[pending[:1]], False, 1)[2][0])
                    hint = "" if self._f is not None else (
                        "; this copy was loaded without f, so it cannot trace f again")
                    raise BranchChangedError(first.branch_message(bad) + hint)
                c = self._trace(self._args_of(X[pending[0]]))
                k = len(self._tapes)
            y, g, fail = c.run(X[pending], grad, self.threads)
            ok = fail < 0
            if traced and not ok[0]:
                raise RuntimeError("pytape: a tape traced at a point fails its own guards there (please report)")
            Y[pending[ok]] = y[ok]
            if G is not None:
                G[pending[ok]] = g[ok]
            if ok.any() and not traced and k > 1:  # the tape that fits goes first next time
                self._tapes.insert(0, self._tapes.pop(k - 1))
            pending = pending[~ok]
        return Y, G

    def _at(self, args):
        """The compiled tape whose values are replayed at one point (for the
        derivatives that sweep the tape itself)."""
        X, batch = self._points(args)
        if batch is not None:
            raise ValueError("this derivative takes one point, not a batch; loop over the rows")
        x = X[0]
        for k, c in enumerate(self._tapes):
            if c.replay(x) < 0:
                self._tapes.insert(0, self._tapes.pop(k))
                return c
        self._run(X, False)  # traces f at x, or raises by the policy
        c = self._tapes[0]
        c.replay(x)
        return c

    # ---- values and derivatives -------------------------------------------

    def __call__(self, *args):
        X, batch = self._points(args)
        Y, _ = self._run(X, False)
        c = self._tapes[0]
        if batch is None:
            return float(Y[0, 0]) if c.out_shape == () else Y[0].reshape(c.out_shape)
        return Y.reshape(batch + c.out_shape)

    def value_and_grad(self, *args):
        """(f(*args), gradient): one replay and one reverse sweep per point, in C.

        With a batch (extra leading dimensions on the arguments), every row in
        one C call; values and gradients then carry the batch dimensions.

        >>> import pytape
        >>> pytape.trace(lambda x, y: x * y, 1.0, 1.0).value_and_grad(3.0, 4.0)
        (12.0, (4.0, 3.0))
        """
        X, batch = self._points(args)
        c = self._tapes[0]
        if len(c.out_slots) != 1 or c.out_shape not in ((), (1,)):
            raise TypeError(f"gradient needs a scalar output, f returns shape {c.out_shape}; use jacobian")
        Y, G = self._run(X, True)
        c = self._tapes[0]
        parts = np.split(G, np.cumsum(c.sizes)[:-1], axis=1)
        if batch is None:
            return float(Y[0, 0]), c.pack([c.shaped_in(j, p[0]) for j, p in enumerate(parts)])
        grads = [p.reshape(batch + tuple(s)) for p, s in zip(parts, c.shapes)]
        return Y[:, 0].reshape(batch), c.pack(grads)

    def gradient(self, *args):
        """The gradient of a scalar f at args (a tuple for several arguments);
        for a batch of points, one gradient per row.

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: x ** 3, 1.0)
        >>> fn.gradient(2.0), fn.gradient(np.array([1.0, 2.0])).tolist()
        (12.0, [3.0, 12.0])
        """
        return self.value_and_grad(*args)[1]

    def jacobian(self, *args, mode="auto"):
        """The Jacobian at args, shape out.shape + in.shape (per argument)."""
        c = self._at(args)
        m, n = len(c.out_slots), sum(c.sizes)
        use = mode if mode != "auto" else ("fwd" if n < m else "rev")
        per_arg = c.rows(np.eye(m)) if use == "rev" else [c.columns(j, np.eye(s)) for j, s in enumerate(c.sizes)]
        jacs = [np.asarray(J).reshape(c.out_shape + c.shapes[j]) for j, J in enumerate(per_arg)]
        return c.pack([float(J) if J.ndim == 0 else J for J in jacs])

    def hessian(self, *args):
        """The Hessian of a scalar f of one argument at args."""
        c = self._at(args)
        H = c.hvps(np.eye(c.sizes[0]))
        return float(H[0, 0]) if c.shapes[0] == () else H.reshape(c.shapes[0] + c.shapes[0])

    def hvp(self, x, v):
        """H v of a scalar f of one argument at x: forward over reverse."""
        c = self._at((x,))
        v = _as_float_array(v, "v")
        return c.shaped_in(0, c.hvps(v.reshape(-1, 1))[:, 0])

    def jvp(self, x, v):
        """(f(x), J v) for a function of one argument."""
        value = self(x)
        c = self._at((x,))
        out = c.columns(0, _as_float_array(v, "v").reshape(-1, 1))[:, 0]
        return value, float(out[0]) if c.out_shape == () else out.reshape(c.out_shape)

    def vjp(self, x, u):
        """(f(x), u J) for a function of one argument."""
        value = self(x)
        c = self._at((x,))
        rows = c.rows(_as_float_array(u, "u").reshape(1, -1))
        return value, c.shaped_in(0, rows[0][0])

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
        return lib.pt_tape_nregs(self._main.tape._p)

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
        return _dump(self._main, self._name, self._policy)

    @classmethod
    def from_bytes(cls, data, f=None, on_branch_change=None):
        """Load ``to_bytes()`` output.  Without f, a replay whose guards fail
        raises ``BranchChangedError``; with f, f is traced again there.
        Bytes that are not such output raise ``TapeFormatError``."""
        c, name, policy = _load(data)
        fn = cls(f, (), on_branch_change or policy)
        fn._tapes = [c]
        fn._name = name
        return fn

    def __reduce__(self):
        f = self._f
        try:  # f goes along when it pickles (a module-level function): the copy can retrace
            pickle.dumps(f)
        except Exception:
            f = None
        return (_unpickle, (self.to_bytes(), f, self._policy))


def _unpickle(data, f, policy):
    return CompiledFunction.from_bytes(data, f, policy)


# ---- the serialised format ----------------------------------------------------
#
#   magic      b"PYTAPE-FN\n"                 10 bytes
#   header     version, meta bytes, n, nconst  <IIqq (little-endian)
#   meta       JSON: argument shapes, outputs, guard lines, name
#   arrays     op <u2[n], a <i4[n], b <i4[n], val <f8[n] (guard codes; 0 for
#              the rest), consts <f8[nconst]
#   checksum   SHA-256 of everything before    32 bytes
#
# The C loader (csrc/tape_load.c) checks every instruction again, so bytes
# with a valid checksum that were made by hand still cannot crash a sweep.

MAGIC = b"PYTAPE-FN\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<IIqq")
_ARRAYS = (("op", "<u2"), ("a", "<i4"), ("b", "<i4"), ("val", "<f8"))
_KINDS = np.array(OP_KINDS, dtype=np.uint8)


def _dump(c, name, policy):
    t = c.tape
    n, nconst = len(t), lib.pt_tape_nconsts(t._p)
    cols = {"op": np.empty(n, np.uint16), "a": np.empty(n, np.int32), "b": np.empty(n, np.int32),
            "val": np.empty(n, np.float64)}
    lib.pt_tape_copy(t._p, 0, n, ffi.from_buffer("uint16_t[]", cols["op"]), ffi.from_buffer("int32_t[]", cols["a"]),
                     ffi.from_buffer("int32_t[]", cols["b"]), _f64(cols["val"]), ffi.NULL)
    # values are not part of a compiled function (every use replays first),
    # except the guards' comparison codes: the same f gives the same bytes
    cols["val"][_KINDS[cols["op"]] != lib.PT_KIND_GUARD] = 0.0
    consts = np.empty(nconst, np.float64)
    lib.pt_tape_copy_consts(t._p, _f64(consts))
    meta = {"name": name, "policy": policy, "shapes": [list(s) for s in c.shapes], "scalar_in": c.scalar_in,
            "single": c.single, "out_shape": list(c.out_shape), "out_slots": c.out_slots,
            "out_values": [float(v) for v in c.out_values],
            "guards": [[i, *loc] for i, loc in sorted((t._where or {}).items())]}
    meta_b = json.dumps(meta).encode()
    body = b"".join([MAGIC, _HEADER.pack(FORMAT_VERSION, len(meta_b), n, nconst), meta_b]
                    + [cols[k].astype(dt).tobytes() for k, dt in _ARRAYS] + [consts.astype("<f8").tobytes()])
    return body + hashlib.sha256(body).digest()


def _bad(why):
    return TapeFormatError(f"not a pytape compiled function: {why}")


def _load(data):
    try:
        data = bytes(data)
    except TypeError:
        raise TypeError(f"from_bytes takes bytes, not {type(data).__name__}") from None
    head = len(MAGIC) + _HEADER.size
    if len(data) < head + 32 or not data.startswith(MAGIC):
        raise _bad("the data does not start with pytape's header (wrong file, or truncated)")
    version, meta_len, n, nconst = _HEADER.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise _bad(f"format version {version}; this pytape reads version {FORMAT_VERSION}")
    if not (0 <= meta_len and 0 <= n < 2 ** 31 and 0 <= nconst < 2 ** 31):
        raise _bad("impossible sizes in the header (corrupted)")
    size = head + meta_len + n * (2 + 4 + 4 + 8) + nconst * 8
    if len(data) != size + 32:
        raise _bad(f"{len(data)} bytes where the header announces {size + 32} (truncated or corrupted)")
    if hashlib.sha256(data[:size]).digest() != data[size:]:
        raise _bad("the SHA-256 checksum does not match (corrupted)")
    try:
        meta = json.loads(data[head:head + meta_len].decode())
        shapes = [tuple(int(d) for d in s) for s in meta["shapes"]]
        scalar_in = [bool(s) for s in meta["scalar_in"]]
        out_shape = tuple(int(d) for d in meta["out_shape"])
        out_slots = [int(s) for s in meta["out_slots"]]
        out_values = [float(v) for v in meta["out_values"]]
        where = {int(g[0]): (str(g[1]), int(g[2]), str(g[3])) for g in meta["guards"]}
        name, policy, single = str(meta["name"]), str(meta["policy"]), bool(meta["single"])
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise _bad(f"its description does not parse ({exc})") from None
    nin = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
    if (len(scalar_in) != len(shapes) or any(d < 0 for s in shapes for d in s)
            or len(out_slots) != len(out_values) or len(out_slots) != int(np.prod(out_shape, dtype=np.int64))
            or any(not -1 <= s < n for s in out_slots) or policy not in ("retrace", "raise")):
        raise _bad("its description is inconsistent")
    off = head + meta_len
    cols = {}
    for key, dt in _ARRAYS:
        cols[key] = np.frombuffer(data, dtype=dt, count=n, offset=off).astype(dt[1:])
        off += n * np.dtype(dt).itemsize
    consts = np.frombuffer(data, dtype="<f8", count=nconst, offset=off).astype(np.float64)
    out = ffi.new("pt_tape **")
    st = lib.pt_tape_load(n, ffi.from_buffer("uint16_t[]", cols["op"]), ffi.from_buffer("int32_t[]", cols["a"]),
                          ffi.from_buffer("int32_t[]", cols["b"]), _f64(cols["val"]), nconst, _f64(consts), out)
    if st == lib.PT_E_OP:
        raise _bad("its instructions break the tape's invariants")
    if st:
        raise_status(st, "record")
    tape = Tape._adopt(out[0])
    if lib.pt_tape_nleaves(tape._p) != nin or any(
            s >= 0 and OP_KINDS[lib.pt_tape_op_at(tape._p, s)] == lib.PT_KIND_GUARD for s in out_slots):
        raise _bad("its inputs or outputs do not match its instructions")
    if lib.pt_tape_plan_registers(tape._p, 0, ffi.NULL) == lib.PT_E_OP:
        raise _bad("its inputs are not the first instructions")
    try:
        c = _Compiled(tape, shapes, scalar_in, single, out_shape, out_slots, out_values, where)
    except IndexError:
        raise _bad("its outputs are not on its tape") from None
    return c, name, policy


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
