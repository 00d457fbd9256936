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
    monkeypatch.setattr(codegen, "CHUNK", 3)  # many small functions: still the same code
    small = fn.compile_c()
    assert small.source.count("static int fwd_") > 3 and small.path != gen.path
    same(small.value_and_grad(X)[1], fn.value_and_grad(X)[1])


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
    strict = pytape.trace(f, np.array([1.0, 2.0]), elementwise=True, on_branch_change="raise").compile_c()
    with pytest.raises(pytape.BranchChangedError):
        strict.gradient(np.array([-1.0, 2.0]))


def test_several_outputs_and_arguments():
    fn = pytape.trace(lambda x, y: np.array([x[0] * y, x[1] + y, 3.0]), np.zeros(2), 1.0, elementwise=True)
    gen = fn.compile_c()
    same(gen(np.array([2.0, 3.0]), 4.0), [8.0, 7.0, 3.0])
    with pytest.raises(TypeError, match="scalar output"):
        gen.gradient(np.array([2.0, 3.0]), 4.0)
    assert gen.jacobian(np.array([2.0, 3.0]), 4.0)[1].tolist() == [2.0, 1.0, 0.0]  # d/dy, by the compiled function
    two = pytape.trace(lambda x, y: x * y ** 2, 1.0, 1.0).compile_c()
    assert two.value_and_grad(3.0, 2.0) == (12.0, (4.0, 12.0))


def test_what_it_refuses():
    fa = pytape.trace(lambda x: np.sum(x ** 2), np.zeros(3))  # an array program
    with pytest.raises(NotImplementedError, match="elementwise=True"):
        fa.compile_c()

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
