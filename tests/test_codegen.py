"""Generated C (pytape/codegen.py, fn.compile_c()): the same values and
gradients as the replay, bit for bit, on random programs; guards fall back to
the compiled function; the cache reuses, survives concurrent builds and
rebuilds a corrupted file instead of loading it."""
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pytape
import pytape.codegen as codegen

pytest.importorskip("cffi")
pytestmark = pytest.mark.not_under_asan("compiles C with the system compiler (gcc under the preloaded ASan "
                                        "runtime); pytape's own C here is two text getters, covered elsewhere")

UNARY = ["sin", "cos", "exp", "tanh", "sigmoid", "relu", "abs", "sqrt_abs", "log1p_sq", "atan", "erf", "floor"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "hypot", "atan2", "where"]


def apply(name, a, b):
    if name == "sqrt_abs":
        return pytape.sqrt(abs(a) + 0.1)
    if name == "log1p_sq":
        return pytape.log1p(a * a)
    if name in UNARY:
        return getattr(pytape, name)(a)
    if name == "add":
        return a + b
    if name == "sub":
        return a - b
    if name == "mul":
        return a * b
    if name == "div":
        return a / (b * b + 0.5)
    if name == "pow":
        return abs(a) ** 1.5 + a ** 2
    if name == "where":
        return pytape.where(pytape.less(a, b), a * 2.0, b - 1.0)
    return getattr(pytape, name)(a, b)


def program(nodes, n):
    def f(x):
        vals = list(x[:n])
        for op, i, j in nodes:
            vals.append(apply(op, vals[i % len(vals)], vals[j % len(vals)]))
        return vals[-1] + 0.5 * vals[0]
    return f


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTAPE_CACHE", str(tmp_path / "cache"))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), nodes=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 99),
                                                     st.integers(0, 99)), min_size=1, max_size=20),
       seed=st.integers(0, 100))
def test_random_programs_equal_the_replay_bit_for_bit(n, nodes, seed):
    f = program(nodes, n)
    x0 = np.linspace(-1.0, 1.0, n)
    fn = pytape.trace(f, x0, elementwise=True)
    gen = fn.compile_c()
    X = np.random.default_rng(seed).uniform(-2, 2, size=(7, n))
    with np.errstate(all="ignore"):
        same(gen(X), fn(X))
        vg, gg = gen.value_and_grad(X)
        vr, gr = fn.value_and_grad(X)
        same(vg, vr)
        same(gg, gr)
        same(gen.gradient(X[0]), fn.gradient(X[0]))
        # Hessian-vector products: per point, with a direction per point or one for all, and p lanes at once
        V = np.random.default_rng(seed + 1).normal(size=(7, n))
        same(gen.hvp(X, V), [fn.hvp(X[r], V[r]) for r in range(7)])
        same(gen.hvp(X, V[0]), [fn.hvp(X[r], V[0]) for r in range(7)])
        same(gen.hvp(X[3], V[3]), fn.hvp(X[3], V[3]))
        same(gen.sparse_hessian(X[1]).toarray(), fn.sparse_hessian(X[1]).toarray())


def test_rosenbrock_as_loops_and_split_into_functions(monkeypatch):
    f = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)  # noqa: E731
    x = np.linspace(-1, 1, 300)
    fn = pytape.trace(f, x, elementwise=True)
    gen = fn.compile_c()
    assert gen.source.count("for (int64_t k") >= 8  # the runs as loops
    X = np.random.default_rng(0).uniform(-1, 1, size=(5, 300))
    same(gen.value_and_grad(X)[1], fn.value_and_grad(X)[1])
    # the oracle: the gradient written by hand
    g = np.zeros(300)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    np.testing.assert_allclose(gen.gradient(x), g, rtol=1e-13, atol=1e-12)
    # the oracle for second order: the tridiagonal Hessian written by hand, in 3 lanes (colours)
    d = np.zeros(300)
    d[:-1] = 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    d[1:] += 200
    off = -400 * x[:-1]
    H = gen.sparse_hessian(x)
    assert H.nnz == 300 + 2 * 299
    np.testing.assert_allclose(H.toarray(), np.diag(d) + np.diag(off, 1) + np.diag(off, -1), rtol=1e-13, atol=1e-10)
    v = np.random.default_rng(1).normal(size=300)
    np.testing.assert_allclose(gen.hvp(x, v), H @ v, rtol=1e-12, atol=1e-10)
    monkeypatch.setattr(codegen, "CHUNK", 3)  # many small functions: still the same code
    small = fn.compile_c()
    assert small.source.count("static int fwd_") > 3 and small.path != gen.path
    same(small.value_and_grad(X)[1], fn.value_and_grad(X)[1])
    same(small.hvp(X, v), gen.hvp(X, v))


@pytest.mark.parametrize("chunk", [codegen.CHUNK, 3])
def test_the_generated_code_compiles_without_warnings(tmp_path, monkeypatch, chunk):
    import shutil
    import subprocess
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler on PATH")
    nodes = [(op, 3 * k + 1, 5 * k + 2) for k, op in enumerate(UNARY + BINARY)]
    fn = pytape.trace(program(nodes, 3), np.linspace(-1.0, 1.0, 3), elementwise=True)
    wide = pytape.trace(lambda x: np.sum(pytape.where(x[1:] > x[:-1], x[1:] * x[:-1], x[1:] ** 3)),
                        np.linspace(-1.0, 1.0, 50), elementwise=True)
    monkeypatch.setattr(codegen, "CHUNK", chunk)  # many small functions: some use no input, some no output
    for f in (fn, wide):
        path = tmp_path / "gen.c"
        path.write_text(f.compile_c().source)
        done = subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]


def test_a_changed_branch_falls_back_to_the_compiled_function():
    def f(x):
        if x[0] > 0:
            return x[0] * x[1]
        return pytape.sin(x[1]) - x[0]
    fn = pytape.trace(f, np.array([1.0, 2.0]), elementwise=True)
    gen = fn.compile_c()
    X = np.array([[1.0, 2.0], [-1.0, 2.0], [3.0, -1.0]])
    same(gen.gradient(X), [[2.0, 1.0], [-1.0, np.cos(2.0)], [-1.0, 3.0]])
    assert fn.retraces == 1  # the other branch was traced by the compiled function
    same(gen.gradient(np.array([-2.0, 1.0])), [-1.0, np.cos(1.0)])  # one point: the same fallback
    same(gen.value_and_grad(np.array([2.0, 1.0]))[1], [1.0, 2.0])
    strict = pytape.trace(f, np.array([1.0, 2.0]), elementwise=True, on_branch_change="raise").compile_c()
    with pytest.raises(pytape.BranchChangedError):
        strict.gradient(np.array([-1.0, 2.0]))


@pytest.mark.parametrize("used", [2, 40])
def test_adjoints_nothing_writes_are_zero(used):
    """Adjoints are assigned by their first contribution; the rest (inputs f does not
    use, a run whose operands are written first by some of its instructions only) are
    zeroed: a list of them, or one memset when they are many."""
    f = lambda x: np.sum(x[1:used] * x[:used - 1] ** 2) + pytape.sin(x[used - 1]) * x[0]  # noqa: E731
    fn = pytape.trace(f, np.linspace(0.1, 1.0, 40), elementwise=True)
    gen = fn.compile_c()
    assert ("pt_zero" in gen.source) == (used == 40)
    X = np.random.default_rng(4).uniform(-1, 1, size=(3, 40))
    for _ in range(2):  # work arrays reused: nothing left over from the previous call
        same(gen.gradient(X), fn.gradient(X))
        same(gen.hvp(X, X[::-1]), [fn.hvp(x, v) for x, v in zip(X, X[::-1])])
    assert not gen.gradient(X)[:, used:].any()


def test_hvp_arguments_and_what_it_refuses():
    gen = pytape.trace(lambda x: x[0] ** 2 * x[1], np.ones(2), elementwise=True).compile_c()
    with pytest.raises(ValueError, match="shape"):
        gen.hvp(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="one point"):
        gen.sparse_hessian(np.ones((2, 2)))
    lean = pytape.trace(lambda x: x[0] ** 2 * x[1], np.ones(2), elementwise=True).compile_c(hvp=False)
    assert "pt_gen_hvp(" in lean.source and "hrev_" not in lean.source
    same(lean.gradient(np.array([1.0, 2.0])), gen.gradient(np.array([1.0, 2.0])))
    with pytest.raises(TypeError, match="hvp=False"):
        lean.hvp(np.ones(2), np.ones(2))
    two = pytape.trace(lambda x, y: x * y ** 2, 1.0, 1.0).compile_c()
    with pytest.raises(TypeError, match="one argument"):
        two.hvp(1.0, 1.0)
    vec = pytape.trace(lambda x: x * 2.0, np.ones(2), elementwise=True).compile_c()
    with pytest.raises(TypeError, match="scalar output"):
        vec.hvp(np.ones(2), np.ones(2))


def test_hvp_where_a_guard_changes_falls_back():
    def f(x):
        if x[0] > 0:
            return x[0] ** 3 * x[1]
        return pytape.sin(x[1]) * x[0] ** 2
    fn = pytape.trace(f, np.array([1.0, 2.0]), elementwise=True)
    gen = fn.compile_c()
    X = np.array([[1.0, 2.0], [-1.0, 2.0]])
    H = gen.hvp(X, np.array([1.0, 0.0]))
    same(H[0], [6.0 * 1.0 * 2.0, 3.0])                   # d/dx0 of (3 x0^2 x1, x0^3)
    np.testing.assert_allclose(H[1], [2.0 * np.sin(2.0), 2.0 * -1.0 * np.cos(2.0)], rtol=1e-15)
    np.testing.assert_allclose(gen.sparse_hessian(X[1]).toarray(),
                               [[2 * np.sin(2.0), -2 * np.cos(2.0)], [-2 * np.cos(2.0), -np.sin(2.0)]], rtol=1e-15)


def test_several_outputs_and_arguments():
    fn = pytape.trace(lambda x, y: np.array([x[0] * y, x[1] + y, 3.0]), np.zeros(2), 1.0, elementwise=True)
    gen = fn.compile_c()
    same(gen(np.array([2.0, 3.0]), 4.0), [8.0, 7.0, 3.0])
    with pytest.raises(TypeError, match="scalar output"):
        gen.gradient(np.array([2.0, 3.0]), 4.0)
    assert gen.jacobian(np.array([2.0, 3.0]), 4.0)[1].tolist() == [2.0, 1.0, 0.0]  # d/dy, by the compiled function
    two = pytape.trace(lambda x, y: x * y ** 2, 1.0, 1.0).compile_c()
    assert two.value_and_grad(3.0, 2.0) == (12.0, (4.0, 12.0))


def test_array_programs_are_generated_from_their_elements():
    """An array program (Tensor trace) is recorded element by element for the
    generated code; rows where an element-level comparison comes out otherwise
    (here np.max picking another element) take the array program's replay."""
    f = lambda x: np.max(x) ** 3 + np.sum(np.sin(x[1:]) * x[:-1] ** 2)  # noqa: E731
    x0 = np.array([0.1, 0.5, 0.2, 0.3])
    fa = pytape.trace(f, x0)
    assert type(fa._tapes[0]).__name__ == "_ArrayCompiled"
    gen = fa.compile_c()
    assert gen.num_ops > fa.num_ops  # one instruction per element
    X = np.array([x0, [0.2, 0.6, -0.3, 0.1], [0.9, 0.5, 0.2, 0.3], [0.1, 0.5, 0.2, 0.7]])  # argmax 1, 1, 0, 3
    np.testing.assert_allclose(gen(X), fa(X), rtol=1e-14)
    np.testing.assert_allclose(gen.gradient(X), fa.gradient(X), rtol=1e-14)
    V = np.random.default_rng(3).normal(size=X.shape)
    np.testing.assert_allclose(gen.hvp(X, V), [pytape.hessian(f)(x) @ v for x, v in zip(X, V)], rtol=1e-13)
    for x in X:
        np.testing.assert_allclose(gen.sparse_hessian(x).toarray(), pytape.hessian(f)(x), rtol=1e-13)
    assert fa.retraces == 0  # the array tape holds everywhere: only the generated code's guards failed


def test_what_it_refuses():

    @pytape.primitive
    def twice(a):
        return 2.0 * a

    twice.defvjp(lambda ans, a: lambda g: 2.0 * g)
    fc = pytape.trace(lambda x: twice(x) * x, 1.0)
    with pytest.raises(NotImplementedError, match="custom primitives"):
        fc.compile_c()


def test_the_cache_reuses_and_never_loads_a_corrupted_file():
    f = lambda x: pytape.exp(x[0]) * x[1]  # noqa: E731
    fn = pytape.trace(f, np.zeros(2), elementwise=True)
    first = fn.compile_c()
    assert first.compile_seconds > 0 and os.path.exists(first.path)
    again = pytape.trace(f, np.ones(2), elementwise=True).compile_c()
    assert again.compile_seconds == 0.0 and again.path == first.path  # loaded, not compiled
    with open(first.path, "r+b") as fh:  # corrupt it
        fh.seek(100)
        fh.write(b"\xff" * 64)
    rebuilt = pytape.trace(f, np.ones(2), elementwise=True).compile_c()
    assert rebuilt.compile_seconds > 0  # the checksum did not match: built again
    same(rebuilt.gradient(np.array([0.5, 2.0])), fn.gradient(np.array([0.5, 2.0])))
    os.remove(first.path + ".sha256")  # no checksum: built again too
    assert pytape.trace(f, np.ones(2), elementwise=True).compile_c().compile_seconds > 0


def test_concurrent_builds_of_the_same_code(tmp_path):
    f = lambda x: pytape.tanh(x[0] * x[1]) + x[0]  # noqa: E731
    fns = [pytape.trace(f, np.zeros(2), elementwise=True) for _ in range(3)]
    out, errors = [None] * 3, []

    def build(k):
        try:
            out[k] = fns[k].compile_c()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=build, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    x = np.array([0.3, -0.7])
    for gen in out:
        same(gen.gradient(x), fns[0].gradient(x))
    # and another process building the same code at the same time
    import subprocess
    import sys
    code = ("import numpy as np, pytape; f = lambda x: pytape.tanh(x[0] * x[1]) + x[0]; "
            "g = pytape.trace(f, np.zeros(2), elementwise=True).compile_c(); print(g.gradient(np.array([0.3, -0.7])).tolist())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTAPE_CACHE=str(tmp_path / "shared"))) for _ in range(2)]
    results = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert results[0] == results[1] == str(fns[0].gradient(x).tolist())
