"""pytape.trace of array programs (Tensor tapes replayed in place): replays
equal fresh recordings, masks are recomputed, values that reach Python are
guarded, the plan skips constants and dead code, batches equal single calls,
and saved tapes round-trip and survive truncation, byte flips and fuzzed
array tables -- never a crash, never a wrong derivative."""
import hashlib
import pickle
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytape
from pytape import _native
from pytape.saved import _ARRAY_HEADER, _HEADER, MAGIC

from test_array_second_order import KINDS, programs, run_program
from test_tracing import check_threads_agree

RNG = np.random.default_rng(0)


def fresh(f, x):
    """Value and gradient of a fresh Tensor recording (the oracle of a replay)."""
    return pytape.value_and_grad(f)(x)


def check_replays(f, x0, points, rtol=0.0):
    fn = pytape.trace(f, x0)
    assert fn.retraces == 0 and fn.tape.stats()["arrays"] > 0  # array instructions, not elements
    for x in points:
        v, g = fresh(f, x)
        fv, fg = fn.value_and_grad(x)
        if rtol:
            np.testing.assert_allclose(fv, v, rtol=rtol)
            np.testing.assert_allclose(fg, g, rtol=rtol, atol=1e-300)
        else:  # the same kernels on the same operands: bit for bit
            assert fv == v or (np.isnan(fv) and np.isnan(v))
            np.testing.assert_array_equal(fg, g)
    return fn


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_replays_as_a_fresh_recording(name):
    f, x0 = KINDS[name][:2]
    rng = np.random.default_rng(len(name))
    points = [x0 * rng.uniform(0.5, 1.5, x0.shape) for _ in range(4)]  # the same signs: no retrace
    # the stable log-sum-exp shifts by a recorded max when traced (a constant when not): rounding apart
    fn = check_replays(f, x0, points, rtol=1e-14 if "softmax" in name or "logsumexp" in name else 0.0)
    x = points[-1]
    np.testing.assert_allclose(fn.hessian(x), pytape.hessian(f)(x), rtol=1e-12, atol=1e-12)
    v = rng.normal(size=x.shape)
    np.testing.assert_allclose(fn.hvp(x, v), pytape.hvp(f, x, v), rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 2 ** 31))
def test_random_programs_replay_as_fresh_recordings(prog, seed2):
    steps, shape, seed = prog
    f = lambda u: run_program(steps, u)  # noqa: E731
    x0 = np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)
    fn = pytape.trace(f, x0)
    for s in (seed2, seed2 + 1):
        x = np.random.default_rng(s).uniform(-1.0, 1.0, size=shape)
        v, g = fresh(f, x)
        fv, fg = fn.value_and_grad(x)  # on another branch of a max, it retraced: still equal
        assert fv == v
        np.testing.assert_array_equal(fg, g)


def test_jacobian_jvp_vjp_of_a_vector_output():
    W = RNG.normal(size=(3, 4))
    f = lambda x: np.tanh(W @ x) * x[:3]  # noqa: E731
    x0, x = RNG.normal(size=4), RNG.normal(size=4)
    fn = pytape.trace(f, x0)
    np.testing.assert_array_equal(fn(x), np.tanh(W @ x) * x[:3])
    J = pytape.jacobian(f)(x)
    for mode in ("rev", "fwd"):
        np.testing.assert_allclose(fn.jacobian(x, mode=mode), J, rtol=1e-14)
    v, u = RNG.normal(size=4), RNG.normal(size=3)
    np.testing.assert_allclose(fn.jvp(x, v)[1], J @ v, rtol=1e-13)
    np.testing.assert_allclose(fn.vjp(x, u)[1], u @ J, rtol=1e-13)


def test_several_arguments_scalars_and_a_constant_output():
    X = RNG.normal(size=(20, 3))
    f = lambda w, b, s: np.mean((X @ w + b) ** 2) * s  # noqa: E731
    fn = pytape.trace(f, np.ones(3), 0.5, 2.0)
    w, b, s = RNG.normal(size=3), 0.3, 1.5
    v, g = fn.value_and_grad(w, b, s)
    v2, g2 = pytape.value_and_grad(f, argnums=(0, 1, 2))(w, b, s)
    assert v == v2
    for a, c in zip(g, g2):
        np.testing.assert_allclose(a, c, rtol=1e-15)
    assert isinstance(g[1], float) and isinstance(g[2], float)
    const = pytape.trace(lambda x: 3.0, np.ones(2))
    assert const(np.zeros(2)) == 3.0 and const.gradient(np.zeros(2)).tolist() == [0.0, 0.0]


# ---- masks and guards -----------------------------------------------------------------

def test_masks_are_recomputed_not_guarded():
    def f(x):
        m = (x > 0) & ~(x > 2.0)
        r = np.where(m, x, 0.1 * x) + (x < -1) * x ** 2 + np.where(np.logical_or(x > 1, x < -1), 1.0, 0.0)
        return np.sum(r) + m.sum() + np.count_nonzero(x > 0.5)
    x0 = np.array([1.0, -2.0, 3.0, 0.2])
    fn = pytape.trace(f, x0)
    for _ in range(10):
        x = RNG.normal(size=4) * 2.0
        v, g = fresh(f, x)
        fv, fg = fn.value_and_grad(x)
        assert fv == pytest.approx(v, rel=1e-15)
        np.testing.assert_allclose(fg, g, rtol=1e-15)
    assert fn.retraces == 0


def test_booleans_of_masks_are_guards():
    calls = []

    def f(x):
        calls.append(1)
        if np.all(x > 0):
            return np.sum(np.log(x))
        if (x < -5).any():
            return np.sum(x)
        return np.sum(x ** 2)
    fn = pytape.trace(f, np.array([1.0, 2.0]))
    assert fn(np.array([3.0, 4.0])) == pytest.approx(np.log(12.0)) and fn.retraces == 0
    assert fn(np.array([-1.0, 2.0])) == 5.0 and fn.retraces == 1
    assert fn(np.array([-6.0, 2.0])) == -4.0 and fn.retraces == 2
    n = len(calls)
    assert fn(np.array([5.0, 1.0])) == pytest.approx(np.log(5.0)) and len(calls) == n  # a kept tape fits
    strict = pytape.trace(f, np.array([1.0, 2.0]), on_branch_change="raise")
    with pytest.raises(pytape.BranchChangedError, match=r"test_trace_arrays.py:\d+ in f\(\)"):
        strict.gradient(np.array([-1.0, 2.0]))


@pytest.mark.parametrize("escape", [
    lambda x: np.sum(x[x > 0] ** 2),                       # a mask as an index: its values
    lambda x: np.sum(x ** 2) * float(np.max(x)),           # float() of a result
    lambda x: np.sum(x * x.value[0]),                      # .value of an argument
    lambda x: np.sum(x ** 2) * np.argmax(x),               # a numpy function of the values
    lambda x: np.sum(x * (x ** 2).detach()),               # detach(): a constant of the values
    lambda x: np.sum(x * np.asarray(np.exp(x) > 2.0)),     # np.asarray of a mask
])
def test_values_that_reach_python_are_guarded(escape):
    x0 = np.array([1.0, -2.0, 3.0])
    fn = pytape.trace(escape, x0)
    for x in (np.array([1.5, -2.0, 3.0]), np.array([-1.0, 2.0, 0.5]), x0):
        v, g = fresh(escape, x)
        fv, fg = fn.value_and_grad(x)
        assert fv == pytest.approx(v, rel=1e-15)
        np.testing.assert_allclose(fg, g, rtol=1e-15)
    assert fn.retraces >= 1  # the values changed: f was traced again, never a stale constant


def test_a_guarded_nan_matches_only_a_nan():
    # float() of a nan while tracing: a replay where that value is a number traces again
    f = lambda x: np.sum(x) + (1.0 if np.isnan(float(np.sqrt(x[0]))) else 2.0)  # noqa: E731
    fn = pytape.trace(f, np.array([-1.0, 0.0]))
    for x in ([4.0, 0.0], [-4.0, 1.0], [4.0, 1.0]):  # a number, a nan again, the number again
        with np.errstate(invalid="ignore"):
            v, g = fresh(f, np.array(x))
        assert fn(np.array(x)) == v and fn.gradient(np.array(x)).tolist() == g.tolist()
    assert fn.retraces == 1


def test_anomaly_mode_names_the_array_operation_of_a_replay():
    with pytape.detect_anomaly():
        fn = pytape.trace(lambda x: np.sum(np.log(x) * 2.0), np.ones(3))
        g = pytape.trace(lambda x: np.sum(np.sqrt(x)), np.ones(2))
        with pytest.raises(FloatingPointError, match=r"replaying <lambda>: log produced nan at index \(1,\)"):
            fn(np.array([1.0, -1.0, 2.0]))  # element 0 finite: the first bad element, not the sum, is named
        with pytest.raises(FloatingPointError, match=r"batch row 1\): log produced nan at index \(2,\)"):
            fn.gradient(np.array([[1.0, 1.0, 2.0], [1.0, 1.0, -1.0]]))
        with pytest.raises(FloatingPointError, match="backward through sqrt"):  # finite values, a nan gradient
            g.gradient(np.array([0.0, 1.0]))


def test_log_softmax_shift_is_recorded_not_frozen():
    f = lambda x: -np.sum(pytape.log_softmax(x, axis=1)[:, 0])  # noqa: E731
    x0 = np.zeros((2, 3))
    fn = pytape.trace(f, x0)
    x = np.array([[800.0, 1.0, 2.0], [-3.0, 900.0, 0.5]])  # far from the trace point: a frozen shift overflows
    v, g = fresh(f, x)
    fv, fg = fn.value_and_grad(x)
    assert np.isfinite(fv) and fv == pytest.approx(v, rel=1e-14) and fn.retraces == 0
    np.testing.assert_allclose(fg, g, rtol=1e-12, atol=1e-300)


# ---- the plan: constants and dead code ---------------------------------------------------

def test_constants_and_dead_code_are_not_replayed():
    W = RNG.normal(size=(50, 50))

    def f(x):
        K = np.tanh(W @ W.T)              # depends on no input: computed once, when traced
        _unused = np.exp(x) * 3.0         # reaches no output
        return np.sum(np.sin(K @ x))
    fn = pytape.trace(f, np.ones(50))
    c = fn._main
    assert len(c._plan) == 3  # K @ x, sin, sum
    x = RNG.normal(size=50)
    v, g = fresh(f, x)
    fv, fg = fn.value_and_grad(x)
    assert fv == v
    np.testing.assert_array_equal(fg, g)


def test_large_arrays_are_not_recycled_while_traced():
    # intermediates past the recycling size die while f runs, and no sweep reads
    # x * 0.5, ... + 1.0, ... * 2.0: recycling would hand their buffers to the next
    # results, which a replay would then overwrite.  A traced tape keeps them.
    f = lambda x: np.sum(np.sin((x * 0.5 + 1.0) * 2.0 - 1.0) + np.exp(x * 3.0 - 2.0) * 0.5)  # noqa: E731
    n = 2 * _native.RECYCLE_MIN
    fn = pytape.trace(f, np.zeros(n))
    # and a replay's values that no sweep reads share buffers along the plan: the live set
    assert fn._main.shared_bytes >= 2 * n * 8
    for seed in (1, 2):
        x = np.random.default_rng(seed).uniform(-1, 1, n)
        v, g = fresh(f, x)
        fv, fg = fn.value_and_grad(x)
        np.testing.assert_allclose(fv, v, rtol=1e-13)  # numpy's SIMD exp/tanh when recorded, C's rows on replays
        np.testing.assert_allclose(fg, g, rtol=1e-13, atol=1e-300)
        w = np.random.default_rng(seed + 5).normal(size=n)
        np.testing.assert_allclose(fn.hvp(x, w), pytape.hvp(f, x, w), rtol=1e-12, atol=1e-12)


# ---- batches, threads, custom primitives ---------------------------------------------

def test_batches_equal_single_calls():
    X = RNG.normal(size=(30, 5))
    f = lambda w: np.mean(np.log1p(np.exp(-(X @ w)))) + np.sum(np.where(w > 0, w, 0.0) ** 2)  # noqa: E731
    fn = pytape.trace(f, np.ones(5))
    B = RNG.normal(size=(4, 3, 5))
    vals, grads = fn.value_and_grad(B)
    assert vals.shape == (4, 3) and grads.shape == (4, 3, 5)
    for idx in np.ndindex(4, 3):
        v, g = fn.value_and_grad(B[idx])
        assert vals[idx] == v
        np.testing.assert_array_equal(grads[idx], g)
    np.testing.assert_array_equal(fn(B), vals)


def test_batches_split_over_threads_equal_single_calls():
    X = RNG.normal(size=(40, 50))
    f = lambda w: np.sum(np.tanh(X @ w) ** 2) + np.sum(np.where(w > 0.5, w, 0.0))  # noqa: E731
    fn = pytape.trace(f, np.ones(50))
    B = RNG.normal(size=(120, 50))  # 6000 elements: split over two pool threads, each with its own copy
    vals, grads = check_threads_agree(fn, B)
    for r in (0, 59, 60, 119):
        v, g = fresh(f, B[r])
        assert vals[r] == v
        np.testing.assert_array_equal(grads[r], g)


def test_batches_over_threads_run_the_blas_on_one_thread(monkeypatch):
    """Each pool thread calling a BLAS that starts threads of its own would
    oversubscribe the cores: numpy's OpenBLAS is set to one thread while a
    split batch runs (seen from each pool thread's share), and set back
    after the last batch ends."""
    from pytape import _native, tracing
    state, calls = {"threads": 4}, []

    def fake_blas_threads(n):
        calls.append(n)
        old, state["threads"] = state["threads"], n
        return old
    monkeypatch.setattr(_native, "blas_threads", fake_blas_threads)
    seen = []
    rows = tracing._ArrayCompiled._rows

    def spy(self, *args, **kwargs):  # a pool thread's share of the batch
        seen.append(state["threads"])
        return rows(self, *args, **kwargs)
    monkeypatch.setattr(tracing._ArrayCompiled, "_rows", spy)
    X = RNG.normal(size=(40, 50))
    f = lambda w: np.sum(np.tanh(X @ w) ** 2)  # noqa: E731
    fn = pytape.trace(f, np.ones(50))
    fn.threads = 2
    fn.value_and_grad(RNG.normal(size=(120, 50)))
    assert seen == [1, 1] and calls == [1, 4] and state["threads"] == 4
    with tracing._one_blas_thread(), tracing._one_blas_thread():  # nested batches: restored once, at the end
        assert state["threads"] == 1
    assert calls == [1, 4, 1, 4]


def test_another_thread_replays_its_own_copy():
    X = RNG.normal(size=(30, 5))
    f = lambda w: np.sum(np.tanh(X @ w) ** 2)  # noqa: E731
    fn = pytape.trace(f, np.ones(5))
    ws = RNG.normal(size=(6, 5))
    want = [fn.value_and_grad(w) for w in ws]
    got = [None] * len(ws)

    def work(k):
        got[k] = fn.value_and_grad(ws[k])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(ws))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (v, g), (v2, g2) in zip(want, got):
        assert v == v2
        np.testing.assert_array_equal(g, g2)


def test_custom_array_primitives_and_checkpoints_are_called_on_replays():
    @pytape.primitive(arrays=True)
    def cube(x):
        return x ** 3
    cube.defvjp(lambda ans, x: lambda g: 3.0 * x ** 2 * g)

    block = pytape.checkpoint(lambda x: np.sin(x) * x)
    f = lambda x: np.sum(cube(x) * block(x))  # noqa: E731
    fn = pytape.trace(f, np.ones(4))
    for _ in range(3):
        x = RNG.normal(size=4)
        v, g = fresh(f, x)
        fv, fg = fn.value_and_grad(x)
        assert fv == pytest.approx(v, rel=1e-15)
        np.testing.assert_allclose(fg, g, rtol=1e-14)
    with pytest.raises(ValueError, match="custom array primitive"):
        fn.to_bytes()


# ---- saving ----------------------------------------------------------------------------

X_DATA = np.random.default_rng(7).normal(size=(12, 3))


def logreg(w):
    z = X_DATA @ w
    return np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0)) + np.sum(np.where(w > 0, w, -w))


def _gradient_in_worker(fn, x):
    return fn.gradient(x)


def test_round_trip_bytes_pickle_and_a_worker_process():
    fn = pytape.trace(logreg, np.ones(3))
    data = fn.to_bytes()
    assert data.startswith(MAGIC) and _HEADER.unpack_from(data, len(MAGIC))[0] == 2
    x = RNG.normal(size=3)
    for g in (pytape.CompiledFunction.from_bytes(data), pickle.loads(pickle.dumps(fn))):
        assert g(x) == fn(x)
        np.testing.assert_array_equal(g.gradient(x), fn.gradient(x))
        np.testing.assert_array_equal(g.hessian(x), fn.hessian(x))
        assert g.to_bytes() == data  # the inputs' values are not saved: the same f, the same bytes
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_gradient_in_worker, (fn, x))
    np.testing.assert_array_equal(got, fn.gradient(x))


def _small():
    return pytape.trace(logreg, np.array([1.0, -1.0, 0.5])).to_bytes()


def _reseal(body):
    return body + hashlib.sha256(body).digest()


def test_every_truncation_and_byte_flip_raises():
    data = _small()
    for k in range(0, len(data), 3):
        with pytest.raises(pytape.TapeFormatError):
            pytape.CompiledFunction.from_bytes(data[:k])
    rng = np.random.default_rng(1)
    for _ in range(300):
        b = bytearray(data)
        b[rng.integers(len(b))] ^= 1 << rng.integers(8)
        with pytest.raises(pytape.TapeFormatError):
            pytape.CompiledFunction.from_bytes(bytes(b))


def test_fuzzed_array_tables_with_valid_checksums_never_crash():
    """Random edits of the array table (kinds, opcodes, shapes, operands,
    parameters, counts) behind a valid checksum: each loads and replays
    (finite or not) or raises TapeFormatError, never a crash."""
    data = _small()
    body = data[:-32]
    version, meta_len, n, nconst = _HEADER.unpack_from(body, len(MAGIC))
    start = len(MAGIC) + _HEADER.size + meta_len + n * 18 + nconst * 8
    counts = _ARRAY_HEADER.unpack_from(body, start)
    table_start = start + _ARRAY_HEADER.size
    ints = (counts[0] * _native.SAVED_N + sum(counts[1:4]))  # facts, dims, args, pars: int64 each
    rng = np.random.default_rng(11)
    loaded = 0
    for trial in range(1500):
        b = bytearray(body)
        if trial % 10 == 0:  # a count in the array header
            at = start + 8 * rng.integers(5)
            b[at:at + 8] = int(rng.integers(-2, 40)).to_bytes(8, "little", signed=True)
        else:  # an int64 of the table
            at = table_start + 8 * rng.integers(ints)
            b[at:at + 8] = int(rng.integers(-3, 40)).to_bytes(8, "little", signed=True)
        try:
            g = pytape.CompiledFunction.from_bytes(_reseal(bytes(b)))
        except pytape.TapeFormatError:
            continue
        loaded += 1
        with np.errstate(all="ignore"):
            try:
                g.value_and_grad(np.array([0.3, -0.2, 1.0]))
            except (pytape.BranchChangedError, ValueError, TypeError):
                pass
    assert loaded > 0  # some edits are harmless (an operand order, an equal shape)


# ---- data arguments: argnums -------------------------------------------------------------

def test_argnums_make_the_other_arguments_data_inputs():
    nn = pytape.nn
    rng = np.random.default_rng(8)
    ws = [rng.normal(size=(8, 5)) * 0.3, np.zeros(5), rng.normal(size=(5, 3)) * 0.3, np.zeros(3)]

    def loss(W1, b1, W2, b2, X, y):
        return nn.cross_entropy(np.tanh(X @ W1 + b1) @ W2 + b2, y)
    fn = pytape.trace(loss, *ws, rng.normal(size=(16, 8)), rng.integers(0, 3, 16), argnums=(0, 1, 2, 3))
    assert fn.tape.stats()["array_ops"].get("const", 0) >= 2  # X and y: inputs without derivatives
    for _ in range(3):  # new minibatches: replays, no retrace, the derivatives of a fresh recording
        X, y = rng.normal(size=(16, 8)), rng.integers(0, 3, 16)
        v, g = fn.value_and_grad(*ws, X, y)
        v2, g2 = pytape.value_and_grad(lambda *w: loss(*w, X, y), argnums=(0, 1, 2, 3))(*ws)
        assert len(g) == 4 and v == pytest.approx(v2, rel=1e-14)
        for a, b in zip(g, g2):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert fn.retraces == 0
    H = fn.hessian(*ws, X, y)
    H2 = pytape.hessian(lambda *w: loss(*w, X, y), argnums=(0, 1, 2, 3))(*ws)
    for ra, rb in zip(H, H2):
        for a, b in zip(ra, rb):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    J = fn.jacobian(*ws, X, y, mode="fwd")
    assert len(J) == 4 and J[0].shape == (8, 5)
    np.testing.assert_allclose(J[0], g[0], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="class indices must be integers"):  # the labels' range is a guard
        fn.value_and_grad(*ws, X, np.full(16, 3))
    g3 = pytape.CompiledFunction.from_bytes(fn.to_bytes())  # argnums and data inputs saved
    np.testing.assert_array_equal(g3.gradient(*ws, X, y)[0], fn.gradient(*ws, X, y)[0])
    one = pytape.trace(lambda w, X: np.sum((X @ w) ** 2), np.ones(2), np.ones((3, 2)), argnums=0)
    assert one.gradient(np.ones(2), np.eye(3, 2)).tolist() == [2.0, 2.0]  # an int argnums: one gradient
    sc = pytape.trace(lambda w, c: np.sum(w * c), np.ones(2), 3.0, argnums=0, elementwise=True)
    assert sc.gradient(np.ones(2), 5.0).tolist() == [5.0, 5.0]  # the scalar tapes take argnums too
