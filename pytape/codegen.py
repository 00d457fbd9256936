"""Generated C for compiled functions: ``fn.compile_c()``.

A compiled scalar tape (``pytape.trace``) becomes straight-line C: one
statement per instruction for the value, one per instruction for the
reverse sweep, the op table's own value and derivative columns (ops.def,
the same text the sweeps compile) with every operand a fixed index and
every constant a literal.  No instruction is interpreted at run time: a
replay's loop, its switch over opcodes and its operand fetches are gone.
A run of one operation over strided operands (numpy code recorded element
by element is made of them: ``x[1:] - x[:-1] ** 2`` is a run of ``pow``,
then one of ``sub``) becomes a loop, which the compiler vectorizes for this
machine.  Results equal the replay's bit for bit (the same formulas in the
same order; ISO C, so no fused multiply-adds, and no fast-math).

The code is split into functions of ``CHUNK`` instructions (compilers slow
down badly on one huge function: CasADi's users report it), compiled with
cffi and kept in a cache directory (``PYTAPE_CACHE``, default
``~/.cache/pytape``) under the SHA-256 of the code: the next process that
compiles the same tape loads it without compiling.  Builds happen in a
private directory and are renamed into place (concurrent builds are safe:
the last rename wins with identical contents), and a cached module is loaded
only if its bytes match the SHA-256 recorded beside it; anything else is
built again.

Guards are checked as in a replay: at a point where a recorded comparison
comes out otherwise, the generated function reports the guard and the call
falls back to the compiled function, which traces again or raises
(``on_branch_change``).

>>> import numpy as np, pytape
>>> fn = pytape.trace(lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
...                   np.zeros(4), elementwise=True)
>>> gen = fn.compile_c()
>>> x = np.array([0.5, 1.0, 1.5, 2.0])
>>> gen.value_and_grad(x)[0] == fn.value_and_grad(x)[0], np.array_equal(gen.gradient(x), fn.gradient(x))
(True, True)
"""
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import tempfile
import threading
import time

import numpy as np

from . import _native

__all__ = ["GeneratedFunction", "generate", "CHUNK", "cache_dir"]

#: instructions per generated C function
CHUNK = 250
#: the generator's version: part of the cache key
VERSION = 1
#: IEEE arithmetic as pytape's own build (build_tape.py): ISO C (no
#: contraction into fused multiply-adds), no fast-math; vectorized for this
#: machine (-march=native: the cache key holds the CPU's identity)
FLAGS = ["-std=c99", "-O3", "-g0", "-fno-trapping-math", "-march=native"]


def _machine():
    """What a module built with -march=native is valid for: the CPU's model and flags."""
    ident = [platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            ident += sorted({line.strip() for line in f if line.startswith(("model name", "flags"))})
    except OSError:
        pass
    return "\n".join(ident)

_CMP = {_native.CMP_LT: "<", _native.CMP_LE: "<=", _native.CMP_GT: ">", _native.CMP_GE: ">=",
        _native.CMP_EQ: "==", _native.CMP_NE: "!="}


def cache_dir():
    """Where built modules are kept: ``$PYTAPE_CACHE``, else ``~/.cache/pytape``."""
    return os.environ.get("PYTAPE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pytape")


def _literal(c):
    if np.isnan(c):
        return "NAN"
    if np.isinf(c):
        return "INFINITY" if c > 0 else "(-INFINITY)"
    return f"({float(c).hex()})"


def _runs(ops, A, B, kinds, ha, hb):
    """Runs of consecutive instructions [i, j) of one opcode whose operands
    step by a fixed stride (numpy code recorded element by element gives
    them: ``x[1:] - x[:-1] ** 2`` is a run of pow, then a run of sub, ...):
    (start, length, stride of a, stride of b).  A constant operand keeps
    its index (stride 0)."""
    n = len(ops)
    runs, i = [], 0
    while i < n:
        op = ops[i]
        if kinds[op] == _native.KIND_LEAF:  # inputs: slots 0, 1, ..., one copy
            j = i
            while j < n and ops[j] == op:
                j += 1
            runs.append((i, j - i, 1, 0))
            i = j
            continue
        if kinds[op] in (_native.KIND_GUARD, _native.KIND_CUSTOM, _native.KIND_ARRAY) or i + 1 >= n \
                or ops[i + 1] != op:
            runs.append((i, 1, 0, 0))
            i += 1
            continue
        sa = A[i + 1] - A[i] if ha[op] else 0
        sb = B[i + 1] - B[i] if hb[op] else 0
        if (not ha[op] and A[i + 1] != A[i]) or (not hb[op] and B[i + 1] != B[i]):
            runs.append((i, 1, 0, 0))
            i += 1
            continue
        j = i + 1
        while (j < n and ops[j] == op and A[j] - A[j - 1] == sa and (B[j] - B[j - 1] == sb)):
            j += 1
        runs.append((i, j - i, int(sa), int(sb)))
        i = j
    return runs


def generate(tape, nin, out_slots, grad):
    """The C source of a compiled scalar tape: its value (and, with ``grad``,
    the gradient of its one output).  A run of one operation over strided
    operands becomes a loop (``_runs``), anything else one statement per
    instruction.  Raises NotImplementedError for what generated code does
    not take (custom primitives, arrays)."""
    c = tape._c
    rows = c.rows(0, len(c), ("op", "a", "b", "val"))
    consts = c.consts()
    ops = rows["op"].astype(np.int64)
    A, B, V = rows["a"].astype(np.int64), rows["b"].astype(np.int64), rows["val"]
    texts = _native.OP_TEXTS
    kinds = _native.OP_KINDS
    for bad, what in ((_native.KIND_CUSTOM, "custom primitives"), (_native.KIND_ARRAY, "array instructions")):
        if np.any(np.array(kinds)[ops] == bad):
            raise NotImplementedError(f"generated C does not take {what} (their rules are Python's or the "
                                      f"array kernels'): use the compiled function's replays")
    if np.any((np.array(kinds)[ops] == _native.KIND_LEAF) & (np.arange(len(ops)) >= nin)):
        raise NotImplementedError("generated C: a leaf that is not an input (please report)")
    ha = [k in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC) for k in kinds]
    hb = [k in (_native.KIND_VV, _native.KIND_CV) for k in kinds]
    n = len(ops)
    outs = [int(s) for s in out_slots]
    top = max([s for s in outs if s >= 0], default=-1)
    fwd, rev = [], []  # units of code: a statement or a loop
    for i0, length, sa, sb in _runs(ops.tolist(), A.tolist(), B.tolist(), kinds, ha, hb):
        op = int(ops[i0])
        kind = kinds[op]
        loop = length > 1
        k = "k" if loop else "0"
        if kind == _native.KIND_LEAF:
            fwd.append(f"memcpy(v + {i0}, x + {i0}, {length} * sizeof(double));")
            continue
        if kind == _native.KIND_GUARD:
            code = int(V[i0])
            rhs = f"v[{B[i0]}]" if B[i0] >= 0 else _literal(consts[-1 - B[i0]])
            fwd.append(f"if ((v[{A[i0]}] {_CMP[code // 2]} {rhs}) != {code & 1}) return {i0};")
            continue
        value, da, db = texts[op]

        def at(base, stride):
            return f"{base}" if stride == 0 or not loop else f"{base} + {k} * {stride}" if stride != 1 else f"{base} + {k}"
        a = f"v[{at(A[i0], sa)}]" if ha[op] else _literal(consts[A[i0]])
        binary = kind != _native.KIND_UNARY
        b = (f"v[{at(B[i0], sb)}]" if hb[op] else _literal(consts[B[i0]])) if binary else "0.0"
        me = at(i0, 1)
        body = f"const double a = {a}, b = {b}; (void)b; v[{me}] = ({value});"
        fwd.append(f"for (int64_t k = 0; k < {length}; ++k) {{ {body} }}" if loop else f"{{ {body} }}")
        if grad and i0 <= top:
            last = min(length, top - i0 + 1)  # instructions after the output get no adjoint
            terms = []
            if ha[op]:
                terms.append(f"w[{at(A[i0], sa)}] += pt_chain(({da}), g);")
            if hb[op]:
                terms.append(f"w[{at(B[i0], sb)}] += pt_chain(({db}), g);")
            body = (f"const double a = {a}, b = {b}, y = v[{me}], g = w[{me}]; (void)a; (void)b; (void)y; "
                    + " ".join(terms))
            rev.append(f"for (int64_t k = {last - 1}; k >= 0; --k) {{ {body} }}" if loop else f"{{ {body} }}")
    parts = ["#include <math.h>", "#include <stdint.h>", "#include <string.h>",
             _native.rules_text()]
    nf = 0
    for start in range(0, len(fwd), CHUNK):
        body = "\n    ".join(fwd[start:start + CHUNK])
        parts.append(f"static int fwd_{nf}(const double *restrict x, double *restrict v)\n{{\n    (void)x;\n"
                     f"    {body}\n    return -1;\n}}")
        nf += 1
    calls = "\n    ".join(f"if ((s = fwd_{k}(x, v)) >= 0) return s;" for k in range(nf))
    store = "\n    ".join(f"y[{k}] = v[{s}];" for k, s in enumerate(outs) if s >= 0)
    parts.append(f"int pt_gen_value(const double *x, double *y, double *v)\n{{\n    int s;\n    {calls}\n"
                 f"    {store}\n    return -1;\n}}")
    if grad:
        mine = rev[::-1]
        nr = 0
        for start in range(0, len(mine), CHUNK):
            body = "\n    ".join(mine[start:start + CHUNK])
            parts.append(f"static void rev_{nr}(const double *restrict v, double *restrict w)\n{{\n    {body}\n}}")
            nr += 1
        revs = "\n    ".join(f"rev_{k}(v, w);" for k in range(nr))
        parts.append(
            f"int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w)\n{{\n"
            f"    int s;\n    {calls}\n    {store}\n"
            f"    memset(w, 0, {top + 1} * sizeof(double));\n    w[{top}] = 1.0;\n    {revs}\n"
            f"    for (int k = 0; k < {nin}; ++k)\n        g[k] = k <= {top} ? w[k] : 0.0;\n    return -1;\n}}")
    else:  # no gradient (several outputs): value_and_grad is never called
        parts.append("int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w)\n"
                     "{\n    (void)g; (void)w;\n    return pt_gen_value(x, y, v);\n}")
    parts.append(
        "int64_t pt_gen_rows(int64_t rows, int64_t nin, int64_t nout, const double *X, double *Y, double *G,\n"
        "                    int64_t *fail, double *v, double *w)\n{\n"
        "    for (int64_t r = 0; r < rows; ++r)\n"
        "        fail[r] = G ? pt_gen_value_grad(X + r * nin, Y + r * nout, G + r * nin, v, w)\n"
        "                    : pt_gen_value(X + r * nin, Y + r * nout, v);\n    return 0;\n}")
    return "\n\n".join(parts) + "\n"


_CDEF = """
int pt_gen_value(const double *x, double *y, double *v);
int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w);
int64_t pt_gen_rows(int64_t rows, int64_t nin, int64_t nout, const double *X, double *Y, double *G,
                    int64_t *fail, double *v, double *w);
"""

_build_lock = threading.Lock()


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build(source, directory=None):
    """(module with ffi and lib, seconds spent compiling (0.0 from the cache), path)."""
    import cffi
    key = hashlib.sha256("\0".join([str(VERSION), " ".join(FLAGS), cffi.__version__, _machine(),
                                    source]).encode()).hexdigest()
    name = f"_pytape_gen_{key[:24]}"
    directory = directory or cache_dir()
    os.makedirs(directory, exist_ok=True)
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    path = os.path.join(directory, name + suffix)
    stamp = path + ".sha256"
    with _build_lock:
        try:
            with open(stamp) as f:
                recorded = f.read().strip()
            if os.path.exists(path) and _digest(path) == recorded:
                return _load(name, path), 0.0, path
        except OSError:
            pass
        # build in a private directory, then rename into place: concurrent builders never see a partial file
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
            builder = cffi.FFI()
            builder.cdef(_CDEF)
            builder.set_source(name, source, extra_compile_args=FLAGS, libraries=["m"])
            built = builder.compile(tmpdir=tmp, verbose=False)
            digest = _digest(built)
            os.replace(built, path)
            with open(stamp + ".tmp" + str(os.getpid()), "w") as f:
                f.write(digest + "\n")
            os.replace(stamp + ".tmp" + str(os.getpid()), stamp)
        took = time.perf_counter() - t0
        if _digest(path) != digest:  # another process replaced it meanwhile: its build of the same code
            raise RuntimeError(f"pytape: the generated module {path} changed while it was being loaded; "
                               f"call compile_c() again")
        return _load(name, path), took, path


class GeneratedFunction:
    """A compiled function's value and gradient as generated C (``fn.compile_c()``).

    Call it, ``value_and_grad(*args)`` and ``gradient(*args)`` as the
    compiled function (a batch of points too); everything else
    (``jacobian``, ``hessian``, ``hvp``, ...) is the compiled function's.
    ``compile_seconds`` (0.0 when loaded from the cache), ``path``,
    ``source`` (the C text), ``num_ops``.
    """

    def __init__(self, fn, c, directory=None):
        self.fn, self._c = fn, c
        self._grad = len(c._var_outs) == 1 and c.out_shape in ((), (1,))
        self.source = generate(c.tape, c.nin, c.out_slots, self._grad)
        self._module, self.compile_seconds, self.path = build(self.source, directory)
        self._lib, self._ffi = self._module.lib, self._module.ffi
        self.num_ops = len(c.tape)
        self._local = threading.local()

    def __getattr__(self, name):
        return getattr(self.fn, name)

    def _work(self):
        w = getattr(self._local, "work", None)
        if w is None:
            n = max(1, self.num_ops)
            w = self._local.work = (np.empty(n), np.empty(n))
        return w

    def _rows(self, X, grad):
        c = self._c
        rows = X.shape[0]
        nout = len(c.out_slots)
        Y = np.tile(c.out_values, (rows, 1))
        G = np.empty((rows, c.nin)) if grad else None
        fail = np.empty(rows, dtype=np.int64)
        v, w = self._work()
        f = self._ffi
        X = np.ascontiguousarray(X, dtype=float)
        self._lib.pt_gen_rows(rows, c.nin, nout, f.from_buffer("double[]", X), f.from_buffer("double[]", Y),
                              f.from_buffer("double[]", G) if grad else f.NULL, f.from_buffer("int64_t[]", fail),
                              f.from_buffer("double[]", v), f.from_buffer("double[]", w))
        bad = fail >= 0
        if bad.any():  # a guard came out otherwise: the compiled function traces again (or raises)
            Yb, Gb = self.fn._run(X[bad], grad)
            Y[bad] = Yb
            if grad:
                G[bad] = Gb
        return Y, G

    def __call__(self, *args):
        X, batch = self.fn._points(args)
        Y, _ = self._rows(X, False)
        c = self._c
        if batch is None:
            return float(Y[0, 0]) if c.out_shape == () else Y[0].reshape(c.out_shape)
        return Y.reshape(batch + c.out_shape)

    def value_and_grad(self, *args):
        """(f(*args), gradient) from the generated code; a batch of points row by row."""
        if not self._grad:
            raise TypeError(f"gradient needs a scalar output, f returns shape {self._c.out_shape}; use jacobian")
        X, batch = self.fn._points(args)
        Y, G = self._rows(X, True)
        c = self._c
        parts = np.split(G, np.cumsum(c.sizes)[:-1], axis=1)
        if batch is None:
            return float(Y[0, 0]), self.fn._pick(c, [c.shaped_in(j, p[0]) for j, p in enumerate(parts)])
        return Y[:, 0].reshape(batch), self.fn._pick(c, [p.reshape(batch + tuple(s)) for p, s in zip(parts, c.shapes)])

    def gradient(self, *args):
        """The gradient from the generated code."""
        return self.value_and_grad(*args)[1]

    def __repr__(self):
        return (f"<pytape.GeneratedFunction of {self.fn._name}: {self.num_ops} instructions, "
                f"compiled in {self.compile_seconds:.2f} s>")
