"""cffi builder (out-of-line, API mode) for pytape's C tape: ``pytape._tape_cffi``.

setuptools runs this file through cffi's ``cffi_modules`` hook, so it must not
import pytape.  ``csrc/pytape.h`` doubles as the cdef: its ``#`` lines are dropped.

Run it directly (``python build_tape.py``) to build the module in place.

``PYTAPE_SANITIZE=1`` builds it instrumented by AddressSanitizer and
UndefinedBehaviorSanitizer instead (``-fsanitize=address,undefined``, -O1, any
UBSan report fatal), for CI's sanitizer step (.ci/run).  Python must then run
with gcc's libasan preloaded (``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``)
and ``ASAN_OPTIONS=detect_leaks=0`` (CPython keeps memory to the end by
design).  Unset or ``0``, the build is the normal one, flags unchanged.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")
SOURCES = ["tape.c", "tape_compile.c", "tape_load.c", "custom.c", "sweep_forward.c", "sweep_reverse.c",
           "sweep_tangent.c", "sweep_block.c", "sweep_hessian.c", "sweep_batch.c", "array.c",
           "array_elementwise.c", "array_movement.c", "array_reduce.c", "array_matmul.c", "array_custom.c",
           "sparsity.c"]
DEPENDS = ["pytape.h", "tape.h", "array.h", "rules.h", "ops.def", "forms.h"]


def _rows():
    """(kind, NAME) of every row of the op table, in order."""
    with open(os.path.join(HERE, CSRC, "ops.def")) as f:
        return re.findall(r"^PT_OP([12])\(\s*(\w+)\s*,", f.read(), re.M)


def _cdef():
    with open(os.path.join(HERE, CSRC, "pytape.h")) as f:
        decls = [line for line in f if not line.lstrip().startswith("#")]
    # the per-op recording entry points of tape.c (handles in and out), declared
    # from the op table
    for kind, name in _rows():
        if kind == "1":
            decls.append(f"int64_t pt_rec_{name}(int64_t ha);\n")
        else:
            decls.append(f"int64_t pt_rec_{name}(int64_t ha, int64_t hb);\n")
            decls.append(f"int64_t pt_rec_{name}_VC(int64_t ha, double b);\n")
            decls.append(f"int64_t pt_rec_{name}_CV(double a, int64_t hb);\n")
    # the callback of custom instructions (pytape.h: pt_custom_fn), defined in
    # Python (pytape/_native.py, @ffi.def_extern) and registered at import
    decls.append('extern "Python" int pt_py_custom_array(int, int64_t, int64_t, const double *const *, '
                 'const double *const *, const double *, const double *, double *const *);\n')
    decls.append('extern "Python" int pt_py_custom(int, int32_t, int64_t, int64_t, uint64_t, const double *, '
                 'double, int64_t, const double *, double *);\n')
    return "".join(decls)


# cffi wraps every C call in Py_BEGIN/END_ALLOW_THREADS.  Releasing and
# retaking the GIL costs ~35 ns of a ~135 ns call (measured in one run; the
# floor for a whole recorded operation is ~170 ns), so every call keeps the GIL
# except the long sweeps, which let other threads go on: those whose names
# start with pt_b (pt_backward, pt_backward_block, pt_batch_values,
# pt_batch_gradients) and the replays of array tapes, pt_replay_a and
# pt_replay_g (pt_replay_arrays, pt_replay_gradient, pt_replay_gradient_rows:
# a batch's threads each run them on their own tape; holding the GIL, two
# threads ran one after the other).  The test is on the wrapper's name
# (_cffi_f_pt_backward), a constant that the compiler folds.  Should cffi ever stop using these macros, calls simply
# release the GIL again: slower, never wrong (tapes check their thread in C).
# Likewise cffi saves and restores the C errno around every call, for
# ffi.errno, which pytape never reads: two calls into cffi's backend per
# recorded operation (about 2% of it, counted with callgrind), dropped here;
# and an int passed for a double (x ** 2) no longer makes a float object on
# the way (about 20 ns a call, measured).
PREAMBLE = r"""
#include "tape.h"  /* pytape.h and the per-op entry points */

#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)

/* a double argument: cffi calls PyFloat_AsDouble, which turns an int (x ** 2,
 * 100 * x) into a float object first; read ints directly (the same values and
 * errors: int.__float__ is PyLong_AsDouble) */
static inline double pt_arg_double(PyObject *o)
{
    return PyLong_CheckExact(o) ? PyLong_AsDouble(o) : PyFloat_AsDouble(o);
}
#undef _cffi_to_c_double
#define _cffi_to_c_double pt_arg_double

/* an int64_t argument (a handle, a slot): an int straight to PyLong_AsLongLong,
 * anything else through cffi's own conversion as before */
static inline long long pt_arg_i64(PyObject *o)
{
    return PyLong_CheckExact(o) ? PyLong_AsLongLong(o) : ((long long (*)(PyObject *))_cffi_exports[7])(o);
}
#undef _cffi_to_c_i64
#define _cffi_to_c_i64 pt_arg_i64

#define PT_RELEASES_GIL(wrapper) (wrapper[8] == 'p' && wrapper[9] == 't' && wrapper[10] == '_' && \
                                  (wrapper[11] == 'b' ||                                          \
                                   (wrapper[11] == 'r' && wrapper[12] == 'e' && wrapper[13] == 'p' && \
                                    wrapper[14] == 'l' && wrapper[15] == 'a' && wrapper[16] == 'y' && \
                                    wrapper[17] == '_' && (wrapper[18] == 'a' || wrapper[18] == 'g'))))
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS { PyThreadState *_save = \
    PT_RELEASES_GIL(__func__) ? PyEval_SaveThread() : NULL;
#define Py_END_ALLOW_THREADS if (_save) PyEval_RestoreThread(_save); }
"""

# -fno-trapping-math: pytape never reads the floating-point exception flags
# (numpy clears them before each of its loops), and without it gcc keeps a
# branch per element for a comparison of doubles: the adjoint loops, whose
# chain rule selects 0 when a factor is 0, stayed scalar
CFLAGS = ["-std=c99", "-O3", "-fno-trapping-math", "-pthread", "-fvisibility=hidden", "-fno-plt"]
LDFLAGS = ["-pthread"]
if os.environ.get("PYTAPE_SANITIZE", "0") not in ("", "0"):
    SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    CFLAGS = [f for f in CFLAGS if f != "-O3"] + ["-O1", "-g", "-fno-omit-frame-pointer"] + SANITIZE
    LDFLAGS = LDFLAGS + SANITIZE



def _compile_in_parallel():
    """Compile the C files on every core: setuptools compiles the sources of
    one extension one after another, and two of ours (the elementwise
    kernels, the second-order sweep) take most of a build, three builds of
    which are in CI.  The same steps as distutils' CCompiler.compile, the
    largest file first; left as it is if its private helpers are missing."""
    import concurrent.futures
    try:
        from setuptools._distutils import ccompiler
    except ImportError:  # pragma: no cover - an old setuptools: distutils itself
        from distutils import ccompiler
    cls = ccompiler.CCompiler
    if getattr(cls, "_pytape_parallel", False) or not all(
            hasattr(cls, a) for a in ("_setup_compile", "_get_cc_args", "_compile")):
        return

    def compile(self, sources, output_dir=None, macros=None, include_dirs=None, debug=False, extra_preargs=None,
                extra_postargs=None, depends=None):
        macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs)
        cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
        todo = [obj for obj in objects if obj in build]
        todo.sort(key=lambda obj: -os.path.getsize(build[obj][0]) if os.path.exists(build[obj][0]) else 0)

        def one(obj):
            src, ext = build[obj]
            self._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for done in [pool.submit(one, obj) for obj in todo]:
                done.result()  # a compiler error is raised here
        return objects
    cls.compile = compile
    cls._pytape_parallel = True


def _rules_text():
    """rules.h as a C function returning its text: generated C (pytape/codegen.py)
    includes the same helpers as the sweeps, from the built module."""
    with open(os.path.join(CSRC, "rules.h")) as f:
        text = f.read()
    lines = "".join('    "' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"\n'
                    for line in text.splitlines())
    return "\nconst char *pt_rules_text(void)\n{\n    return\n" + lines + "    ;\n}\n"


_compile_in_parallel()
ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "pytape._tape_cffi",
    PREAMBLE + _rules_text(),
    sources=[os.path.join(CSRC, s) for s in SOURCES],
    depends=[os.path.join(CSRC, d) for d in DEPENDS],
    include_dirs=[CSRC],
    # hidden: calls between our own functions (the cffi wrapper to pt_rec_*, a
    # sweep to another) go direct instead of through the PLT; only the
    # module's init function is exported
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS,
    libraries=["m"],
)

if __name__ == "__main__":
    os.chdir(HERE)
    ffibuilder.compile(verbose=True)
