"""Generated C for compiled functions: ``fn.compile_c()``.

A compiled scalar tape (``pytape.trace``) becomes straight-line C: one
statement per instruction for the value, one per instruction for the
reverse sweep, and for Hessian-vector products one for the tangents and one
for forward over reverse, the op table's own value, first and second
derivative columns (ops.def,
the same text the sweeps compile) with every operand a fixed index and
every constant a literal.  No instruction is interpreted at run time: a
replay's loop, its switch over opcodes and its operand fetches are gone.
A run of one operation over strided operands (numpy code recorded element
by element is made of them: ``x[1:] - x[:-1] ** 2`` is a run of ``pow``,
then one of ``sub``) becomes a loop, which the compiler vectorizes for this
machine.  Results equal the replay's bit for bit (the same formulas in the
same order; ISO C, so no fused multiply-adds, and no fast-math).
Hessian-vector products take p directions at once, each a lane of its own
(lane-major arrays, every run's loop once per lane), so ``sparse_hessian``
is one pass with a lane per colour.  An array program (``Tensor`` trace) is
recorded element by element once (``CompiledFunction._elements``) and that
tape is generated.

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
VERSION = 2
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


def _nonzero(text):
    """Is an op-table column possibly nonzero (not the literal 0.0)?"""
    return text.strip() != "0.0"


def generate(tape, nin, out_slots, grad, hvp=True):
    """The C source of a compiled scalar tape: its value (and, with ``grad``,
    the gradient of its one output; with ``hvp`` too, Hessian-vector products
    along p directions at once by forward over reverse).  A run of one
    operation over strided operands becomes a loop (``_runs``), anything else
    one statement per instruction.  Raises NotImplementedError for what
    generated code does not take (custom primitives, arrays)."""
    c = tape._c
    rows = c.rows(0, len(c), ("op", "a", "b", "val"))
    consts = c.consts()
    ops = rows["op"].astype(np.int64)
    A, B, V = rows["a"].astype(np.int64), rows["b"].astype(np.int64), rows["val"]
    kinds = _native.OP_KINDS
    for bad, what in ((_native.KIND_CUSTOM, "custom primitives"), (_native.KIND_ARRAY, "array instructions")):
        if np.any(np.array(kinds)[ops] == bad):
            raise NotImplementedError(f"generated C does not take {what} (their rules are Python's or the "
                                      f"array kernels'): use the compiled function's replays")
    if np.any((np.array(kinds)[ops] == _native.KIND_LEAF) & (np.arange(len(ops)) >= nin)):
        raise NotImplementedError("generated C: a leaf that is not an input (please report)")
    ha = [k in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC) for k in kinds]
    hb = [k in (_native.KIND_VV, _native.KIND_CV) for k in kinds]
    outs = [int(s) for s in out_slots]
    top = max([s for s in outs if s >= 0], default=-1)
    hvp = hvp and grad
    n = len(ops)
    # The reverse sweeps accumulate into adjoints; the first contribution to a slot (from its
    # last consumer, as they run backwards) assigns instead, so that only the slots no
    # instruction writes need zeros before them (a memset of every adjoint was a fifth of a
    # gradient's time).  Per instruction: does it write operand a's (b's) adjoint first?
    op_kind = np.array(kinds)[ops]
    slot_a = np.array(ha)[ops] & (np.arange(n) <= top)
    slot_b = np.array(hb)[ops] & (np.arange(n) <= top)
    last_use = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_use, A[slot_a], np.flatnonzero(slot_a))
    np.maximum.at(last_use, B[slot_b], np.flatnonzero(slot_b))
    first_a = slot_a & (last_use[np.where(slot_a, A, 0)] == np.arange(n))
    first_b = slot_b & (last_use[np.where(slot_b, B, 0)] == np.arange(n)) & ~(slot_a & (A == B))
    zeroed = []  # slots written first by a += (a run that is not uniform): zeros before the sweep
    # units of code (a statement or a loop): the value; the gradient's reverse sweep; for
    # Hessian-vector products the value with the tangents' lane 0, the other lanes, and forward
    # over reverse
    fwd, rev, fwdt, tan, hrev = [], [], [], [], []
    for i0, length, sa, sb in _runs(ops.tolist(), A.tolist(), B.tolist(), kinds, ha, hb):
        op = int(ops[i0])
        kind = kinds[op]
        loop = length > 1
        k = "k" if loop else "0"
        if kind == _native.KIND_LEAF:
            fwd.append(f"memcpy(v + {i0}, x + {i0}, {length} * sizeof(double));")
            fwdt.append(fwd[-1])
            continue
        if kind == _native.KIND_GUARD:
            code = int(V[i0])
            rhs = f"v[{B[i0]}]" if B[i0] >= 0 else _literal(consts[-1 - B[i0]])
            fwd.append(f"if ((v[{A[i0]}] {_CMP[code // 2]} {rhs}) != {code & 1}) return {i0};")
            fwdt.append(fwd[-1])
            continue
        value, da, db, daa, dab, dbb = _native.OP_TEXTS[op]

        def at(base, stride):
            return f"{base}" if stride == 0 or not loop else f"{base} + {k} * {stride}" if stride != 1 else f"{base} + {k}"
        ia, ib, me = at(A[i0], sa), at(B[i0], sb), at(i0, 1)
        a = f"v[{ia}]" if ha[op] else _literal(consts[A[i0]])
        binary = kind != _native.KIND_UNARY
        b = (f"v[{ib}]" if hb[op] else _literal(consts[B[i0]])) if binary else "0.0"
        operands = f"const double a = {a}, b = {b}, y = v[{me}]; (void)a; (void)b; (void)y;"

        def unit(body, backwards=False, upto=length, start=0):
            if not loop:
                return f"{{ {body} }}"
            return (f"for (int64_t k = {upto - 1}; k >= 0; --k) {{ {body} }}" if backwards
                    else f"for (int64_t k = {start}; k < {upto}; ++k) {{ {body} }}")
        evaluate = f"const double a = {a}, b = {b}; (void)b; v[{me}] = ({value});"
        fwd.append(unit(evaluate))
        if not grad or i0 > top:
            fwdt.append(fwd[-1])
            continue
        last = min(length, top - i0 + 1)  # instructions after the output get no adjoint
        into = {}  # "=" for an operand whose adjoint every instruction of the run writes first, else "+="
        for name, first, operand in (("a", first_a, A), ("b", first_b, B)):
            flags = first[i0:i0 + last]
            into[name] = "=" if flags.all() else "+="
            if flags.any() and not flags.all():
                zeroed.extend(operand[i0:i0 + last][flags].tolist())
        terms = []
        if ha[op]:
            terms.append(f"w[{ia}] {into['a']} pt_chain(({da}), g);")
        if hb[op]:
            terms.append(f"w[{ib}] {into['b']} pt_chain(({db}), g);")
        rev.append(unit(f"{operands} const double g = w[{me}]; " + " ".join(terms), True, last))
        if not hvp:
            continue
        # Tangents and their adjoints are lane-major (lane l of slot i at [l * M + i]) and every
        # lane runs the whole run, so that each loop over a run vectorizes as the gradient's does.
        # Tangents (sweep_block.c): t_i = f_a t_a + f_b t_b, a zero passing nothing.
        fa = f"const double fa = ({da}); " if ha[op] else ""
        fb = f"const double fb = ({db}); " if hb[op] else ""
        lanes = (f"d += pt_chain(fa, tl[{ia}]); " if ha[op] else "") + (f"d += pt_chain(fb, tl[{ib}]); " if hb[op] else "")
        tangent = f"{fa}{fb}double d = 0.0; {lanes}tl[{me}] = d;"
        fwdt.append("{ double *restrict tl = t; " + unit(f"const double a = {a}, b = {b}, y = ({value}); (void)a; "
                                                         f"(void)b; v[{me}] = y; {tangent}", False, last) + " }")
        if last < length:  # past the output: values only
            fwdt.append(unit(evaluate, False, length, last))
        tan.append("for (int64_t l = 1; l < p; ++l) { double *restrict tl = t + l * M; "
                   + unit(f"{operands} {tangent}", False, last) + " }")
        # Forward over reverse (sweep_hessian.c, in its order): abar += f_a g, then
        # abar' += f_a g' + (f_aa a' + f_ab b') g.  The run's adjoints first: each g = w[i] is
        # final once the instructions after i are done, as in the sweep.
        second = {"aa": ha[op] and _nonzero(daa), "ab": ha[op] and hb[op] and _nonzero(dab),
                  "bb": hb[op] and _nonzero(dbb)}
        decl = fa + fb + "".join(f"const double f{n} = ({t}); " for n, t in (("aa", daa), ("ab", dab), ("bb", dbb))
                                 if second[n])
        body = [f"{operands} const double g = w[{me}], gd = wdl[{me}]; (void)g; {decl}"]
        for mine, f, pairs in (("a", "fa", (("aa", ia), ("ab", ib))), ("b", "fb", (("ab", ia), ("bb", ib)))):
            if not (ha[op] if mine == "a" else hb[op]):
                continue
            extra = " ".join(f"d{mine} += pt_chain(pt_chain(f{n}, tl[{idx}]), g);" for n, idx in pairs if second[n])
            # (sweep_hessian.c skips these when g == 0; pt_chain(., 0) adds exactly 0 here, and the
            # loop stays free of branches, so it vectorizes)
            extra = f"{extra} " if extra else ""
            body.append(f"double d{mine} = 0.0; d{mine} += pt_chain({f}, gd); {extra}")
        if ha[op]:
            body.append(f"wdl[{ia}] {into['a']} da;")
        if hb[op]:
            body.append(f"wdl[{ib}] {into['b']} db;")
        # lane 0 in the adjoints' own loop (one pass over the run's operands), the others after it
        lane0 = body[:1] + [f"w[{ia}] {into['a']} pt_chain(fa, g);"] * ha[op] + [
            f"w[{ib}] {into['b']} pt_chain(fb, g);"] * hb[op] + body[1:]
        hrev.append("{ const double *restrict tl = t; double *restrict wdl = wd; (void)tl; "
                    + unit(" ".join(lane0), True, last) + " }"
                    " for (int64_t l = 1; l < p; ++l) { const double *restrict tl = t + l * M; "
                    "double *restrict wdl = wd + l * M; (void)tl; " + unit(" ".join(body), True, last) + " }")
    parts = ["#include <math.h>", "#include <stdint.h>", "#include <string.h>",
             _native.rules_text()]

    def functions(units, name, ret, params, head=""):
        """The units as functions of CHUNK units each (``ret NAME(params) { head units }``,
        returning -1 unless ``ret`` is void); their names.  A piece may use no
        parameter of some kind (no input, no tangent): each is marked used."""
        names = []
        used = " ".join(f"(void){p.split()[-1]};" for p in params.split(","))
        for start in range(0, len(units), CHUNK):
            body = "\n    ".join(units[start:start + CHUNK])
            names.append(f"{name}_{len(names)}")
            end = "" if ret == "void" else "    return -1;\n"
            parts.append(f"static {ret} {names[-1]}({params})\n{{\n    {used} {head}\n    {body}\n{end}}}")
        return names
    # the adjoints no instruction writes first (inputs f does not use, values nothing reads): zeros
    zero = set(np.flatnonzero((last_use[:top + 1] < 0) & (op_kind[:top + 1] != _native.KIND_GUARD)).tolist())
    zero = sorted((zero - {top}) | set(zeroed))
    whole = len(zero) > (top + 1) // 4  # many: one memset of them all

    def zeros(array, lanes=False):
        if whole:
            return f"memset({array}, 0, {top + 1} * {'p * ' if lanes else ''}sizeof(double));"
        if not zero:
            return ""
        at = f"l * {top + 1} + pt_zero[k]" if lanes else "pt_zero[k]"
        loop = f"for (int64_t k = 0; k < {len(zero)}; ++k) {array}[{at}] = 0.0;"
        return f"for (int64_t l = 0; l < p; ++l) {loop}" if lanes else loop
    if grad and zero and not whole:
        parts.append(f"static const int32_t pt_zero[{len(zero)}] = {{{', '.join(map(str, zero))}}};")
    nf = functions(fwd, "fwd", "int", "const double *restrict x, double *restrict v")
    calls = "\n    ".join(f"if ((s = {f}(x, v)) >= 0) return s;" for f in nf)
    store = "\n    ".join(f"y[{k}] = v[{s}];" for k, s in enumerate(outs) if s >= 0)
    parts.append(f"int pt_gen_value(const double *x, double *y, double *v)\n{{\n    int s;\n    {calls}\n"
                 f"    {store}\n    return -1;\n}}")
    if grad:
        revs = "\n    ".join(f"{f}(v, w);" for f in functions(
            rev[::-1], "rev", "void", "const double *restrict v, double *restrict w"))
        parts.append(
            f"int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w)\n{{\n"
            f"    int s;\n    {calls}\n    {store}\n"
            f"    {zeros('w')}\n    w[{top}] = 1.0;\n    {revs}\n"
            f"    for (int k = 0; k < {nin}; ++k)\n        g[k] = k <= {top} ? w[k] : 0.0;\n    return -1;\n}}")
    else:  # no gradient (several outputs): value_and_grad is never called
        parts.append("int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w)\n"
                     "{\n    (void)g; (void)w;\n    return pt_gen_value(x, y, v);\n}")
    if hvp:
        M = top + 1  # the lanes' length: the slots up to the output
        lanes = f"const int64_t M = {M}; (void)M;"
        fwdts = "\n    ".join(f"if ((r = {f}(x, v, t)) >= 0) return r;" for f in functions(
            fwdt, "fwdt", "int", "const double *restrict x, double *restrict v, double *restrict t"))
        tans = "\n    ".join(f"{f}(v, t, p);" for f in functions(
            tan, "tan", "void", "const double *restrict v, double *restrict t, int64_t p", lanes))
        hrevs = "\n    ".join(f"{f}(v, t, w, wd, p);" for f in functions(
            hrev[::-1], "hrev", "void", "const double *restrict v, const double *restrict t, double *restrict w, "
                                        "double *restrict wd, int64_t p", lanes))
        parts.append(
            f"int pt_gen_hvp(const double *x, const double *s, int64_t p, double *y, double *g, double *h,\n"
            f"               double *v, double *t, double *w, double *wd)\n{{\n"
            f"    int r;\n"
            f"    for (int64_t l = 0; l < p; ++l)\n        for (int64_t k = 0; k < {min(nin, M)}; ++k)\n"
            f"            t[l * {M} + k] = s[k * p + l];\n    {fwdts}\n    {store}\n    {tans}\n"
            f"    {zeros('w')}\n    {zeros('wd', True)}\n    for (int64_t l = 0; l < p; ++l)\n        wd[l * {top + 1} + {top}] = 0.0;\n"
            f"    w[{top}] = 1.0;\n    {hrevs}\n"
            f"    for (int64_t k = 0; k < {nin}; ++k) {{\n        g[k] = k < {M} ? w[k] : 0.0;\n"
            f"        for (int64_t l = 0; l < p; ++l)\n            h[k * p + l] = k < {M} ? wd[l * {M} + k] : 0.0;\n"
            f"    }}\n    return -1;\n}}")
    else:
        parts.append("int pt_gen_hvp(const double *x, const double *s, int64_t p, double *y, double *g, double *h,\n"
                     "               double *v, double *t, double *w, double *wd)\n"
                     "{\n    (void)s; (void)p; (void)g; (void)h; (void)t; (void)w; (void)wd;\n"
                     "    return pt_gen_value(x, y, v);\n}")
    parts.append(
        "int64_t pt_gen_rows(int64_t rows, int64_t nin, int64_t nout, const double *X, double *Y, double *G,\n"
        "                    int64_t *fail, double *v, double *w)\n{\n"
        "    for (int64_t r = 0; r < rows; ++r)\n"
        "        fail[r] = G ? pt_gen_value_grad(X + r * nin, Y + r * nout, G + r * nin, v, w)\n"
        "                    : pt_gen_value(X + r * nin, Y + r * nout, v);\n    return 0;\n}")
    parts.append(
        "int64_t pt_gen_hvp_rows(int64_t rows, int64_t nin, int64_t nout, int64_t p, const double *X,\n"
        "                        const double *S, int64_t sstride, double *Y, double *G, double *H,\n"
        "                        int64_t *fail, double *v, double *t, double *w, double *wd)\n{\n"
        "    for (int64_t r = 0; r < rows; ++r)\n"
        "        fail[r] = pt_gen_hvp(X + r * nin, S + r * sstride, p, Y + r * nout, G + r * nin, H + r * nin * p,\n"
        "                             v, t, w, wd);\n    return 0;\n}")
    return "\n\n".join(parts) + "\n"


_CDEF = """
int pt_gen_value(const double *x, double *y, double *v);
int pt_gen_value_grad(const double *x, double *y, double *g, double *v, double *w);
int64_t pt_gen_rows(int64_t rows, int64_t nin, int64_t nout, const double *X, double *Y, double *G,
                    int64_t *fail, double *v, double *w);
int64_t pt_gen_hvp_rows(int64_t rows, int64_t nin, int64_t nout, int64_t p, const double *X,
                        const double *S, int64_t sstride, double *Y, double *G, double *H,
                        int64_t *fail, double *v, double *t, double *w, double *wd);
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
    """A compiled function's value, gradient and Hessian-vector products as
    generated C (``fn.compile_c()``).

    Call it, ``value_and_grad(*args)`` and ``gradient(*args)`` as the
    compiled function (a batch of points too); ``hvp(x, v)`` (one point or a
    batch, with one v or one per point) and ``sparse_hessian(*args)`` run
    the generated forward-over-reverse code; everything else (``jacobian``,
    ``hessian``, ...) is the compiled function's.  ``compile_seconds`` (0.0
    when loaded from the cache), ``path``, ``source`` (the C text),
    ``num_ops``.
    """

    def __init__(self, fn, c, directory=None, hvp=True):
        self.fn, self._c = fn, c
        self._grad = len(c._var_outs) == 1 and c.out_shape in ((), (1,))
        self._hvp = hvp and self._grad
        self.source = generate(c.tape, c.nin, c.out_slots, self._grad, self._hvp)
        self._module, self.compile_seconds, self.path = build(self.source, directory)
        self._lib, self._ffi = self._module.lib, self._module.ffi
        self.num_ops = len(c.tape)
        self._local = threading.local()

    def __getattr__(self, name):
        return getattr(self.fn, name)

    def _work(self, p=0):
        """This thread's work arrays: values and adjoints, and with p lanes their tangents."""
        w = getattr(self._local, "work", None)
        n = max(1, self.num_ops)
        if w is None:
            w = self._local.work = [np.empty(n), np.empty(n), np.empty(0), np.empty(0)]
        if len(w[2]) < n * p:
            w[2], w[3] = np.empty(n * p), np.empty(n * p)
        return w

    def _buf(self, a, dtype="double[]"):
        return self._ffi.from_buffer(dtype, a)

    def _rows(self, X, grad):
        c = self._c
        rows = X.shape[0]
        nout = len(c.out_slots)
        Y = np.tile(c.out_values, (rows, 1))
        G = np.empty((rows, c.nin)) if grad else None
        fail = np.empty(rows, dtype=np.int64)
        v, w, _, _ = self._work()
        X = np.ascontiguousarray(X, dtype=float)
        self._lib.pt_gen_rows(rows, c.nin, nout, self._buf(X), self._buf(Y), self._buf(G) if grad else self._ffi.NULL,
                              self._buf(fail, "int64_t[]"), self._buf(v), self._buf(w))
        bad = fail >= 0
        if bad.any():  # a guard came out otherwise: the compiled function traces again (or raises)
            Yb, Gb = self.fn._run(X[bad], grad)
            Y[bad] = Yb
            if grad:
                G[bad] = Gb
        return Y, G

    def _hvp_rows(self, X, S):
        """H S for each row of X (rows, nin): S (nin, p) for every row, or (rows, nin, p);
        (H S (rows, nin, p), rows whose guards failed)."""
        c = self._c
        rows, p = X.shape[0], S.shape[-1]
        H = np.zeros((rows, c.nin, p))
        fail = np.empty(rows, dtype=np.int64)
        if p == 0 or rows == 0:
            return H, np.zeros(rows, dtype=bool)
        v, w, t, wd = self._work(p)
        X, S = np.ascontiguousarray(X, dtype=float), np.ascontiguousarray(S, dtype=float)
        Y, G = np.empty((rows, len(c.out_slots))), np.empty((rows, c.nin))
        self._lib.pt_gen_hvp_rows(rows, c.nin, len(c.out_slots), p, self._buf(X), self._buf(S),
                                  0 if S.ndim == 2 else c.nin * p, self._buf(Y), self._buf(G), self._buf(H),
                                  self._buf(fail, "int64_t[]"), self._buf(v), self._buf(t), self._buf(w),
                                  self._buf(wd))
        return H, fail >= 0

    def _need_hvp(self):
        if not self._grad:
            raise TypeError(f"Hessian-vector products need a scalar output, f returns shape {self._c.out_shape}")
        if not self._hvp:
            raise TypeError("this generated function was compiled without Hessian-vector products "
                            "(compile_c(hvp=False)): compile_c() again to have them")

    def _points(self, args):
        """(X (rows, nin), batch shape or None), as ``fn._points``; one point
        given as one float64 array of the traced shape goes straight in (the
        general path costs about 50 us of Python per call)."""
        c = self._c
        x = args[0] if len(args) == 1 else None
        if (type(x) is np.ndarray and len(c.shapes) == 1 and not c.scalar_in[0] and x.shape == tuple(c.shapes[0])
                and x.dtype == np.float64):
            return x.reshape(1, -1), None
        return self.fn._points(args)

    def __call__(self, *args):
        X, batch = self._points(args)
        Y, _ = self._rows(X, False)
        c = self._c
        if batch is None:
            return float(Y[0, 0]) if c.out_shape == () else Y[0].reshape(c.out_shape)
        return Y.reshape(batch + c.out_shape)

    def value_and_grad(self, *args):
        """(f(*args), gradient) from the generated code; a batch of points row by row."""
        if not self._grad:
            raise TypeError(f"gradient needs a scalar output, f returns shape {self._c.out_shape}; use jacobian")
        c = self._c
        X, batch = self._points(args)
        Y, G = self._rows(X, True)
        parts = [G] if len(c.sizes) == 1 else np.split(G, np.cumsum(c.sizes)[:-1], axis=1)
        if batch is None:
            return float(Y[0, 0]), self.fn._pick(c, [c.shaped_in(j, p[0]) for j, p in enumerate(parts)])
        return Y[:, 0].reshape(batch), self.fn._pick(c, [p.reshape(batch + tuple(s)) for p, s in zip(parts, c.shapes)])

    def gradient(self, *args):
        """The gradient from the generated code."""
        return self.value_and_grad(*args)[1]

    def hvp(self, x, v):
        """H v of a scalar f of one argument at x, from the generated forward-over-reverse
        code.  A batch: x with leading dimensions, v of x's shape (the same
        direction for every point) or with the same leading dimensions.

        >>> import numpy as np, pytape
        >>> gen = pytape.trace(lambda x: x[0] ** 2 * x[1], np.ones(2), elementwise=True).compile_c()
        >>> gen.hvp(np.array([1.0, 2.0]), np.array([1.0, 0.0])).tolist()   # H = [[2 x1, 2 x0], [2 x0, 0]]
        [4.0, 2.0]
        """
        self._need_hvp()
        c = self._c
        if len(c.shapes) != 1:
            raise TypeError(f"hvp(x, v) takes a function of one argument; this one takes {len(c.shapes)}")
        shape = tuple(c.shapes[0])
        X, batch = self._points((x,))
        v = np.asarray(v, dtype=float)
        if v.shape == shape:
            S = v.reshape(-1, 1)
        elif batch is not None and v.shape == batch + shape:
            S = v.reshape(X.shape[0], -1, 1)
        else:
            raise ValueError(f"v has shape {v.shape}; hvp needs x's shape {shape}"
                             + (f" or the batch's {batch + shape}" if batch is not None else ""))
        H, bad = self._hvp_rows(X, S)
        for r in np.flatnonzero(bad) if bad.any() else ():  # a guard came out otherwise: the compiled function there
            H[r, :, 0] = self.fn.hvp(c.shaped_in(0, X[r]), c.shaped_in(0, (S if S.ndim == 2 else S[r])[:, 0]))
        if batch is None:
            return c.shaped_in(0, H[0, :, 0])
        return H[:, :, 0].reshape(batch + shape)

    def sparse_hessian(self, *args):
        """The Hessian of a scalar f at args as a symmetric scipy.sparse.csr_matrix
        (``pytape.sparse_hessian``): the compiled function's pattern and star
        colouring, then one generated forward-over-reverse pass with a lane per colour.

        >>> import numpy as np, pytape
        >>> fn = pytape.trace(lambda x: np.sum((x[1:] - x[:-1]) ** 2), np.zeros(3), elementwise=True)
        >>> fn.compile_c().sparse_hessian(np.ones(3)).toarray()
        array([[ 2., -2.,  0.],
               [-2.,  4., -2.],
               [ 0., -2.,  2.]])
        """
        self._need_hvp()
        from .sparse import SparseHessian
        c = self._c
        X, batch = self._points(args)
        if batch is not None:
            raise ValueError("sparse_hessian takes one point, not a batch; loop over the rows")
        plan = self.fn._sparse_plan_of(c, "sparse_hessian", lambda c, ks: SparseHessian(c, ks))
        H, bad = self._hvp_rows(X, plan.seeds)
        if bad[0]:  # a guard came out otherwise: the compiled function traces again (or raises)
            return self.fn.sparse_hessian(*args)
        return plan.assemble(H[0])

    def __repr__(self):
        return (f"<pytape.GeneratedFunction of {self.fn._name}: {self.num_ops} instructions, "
                f"compiled in {self.compile_seconds:.2f} s>")
