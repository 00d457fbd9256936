"""pytape.trace: replayed values and derivatives equal fresh recordings, and a
replay never follows the wrong branch."""
import math

import numpy as np
import pytest

import pytape


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_replay_equals_fresh_recordings_at_random_inputs():
    rng = np.random.default_rng(0)
    fn = pytape.trace(rosenbrock, np.zeros(6))
    n_ops = fn.num_ops
    for _ in range(25):
        x = rng.uniform(-2, 2, 6)
        assert fn(x) == pytest.approx(float(rosenbrock(x)), rel=1e-15)
        np.testing.assert_allclose(fn.gradient(x), pytape.grad(rosenbrock)(x), rtol=1e-15)
        np.testing.assert_allclose(fn.hessian(x), pytape.hessian(rosenbrock)(x), rtol=1e-15)
        v = rng.normal(size=6)
        np.testing.assert_allclose(fn.hvp(x, v), pytape.hvp(rosenbrock, x, v), rtol=1e-14)
    assert fn.num_ops == n_ops and fn.retraces == 0  # no comparison: one tape for all inputs


def test_replay_jacobian_jvp_vjp_of_vector_function():
    W = np.random.default_rng(1).normal(size=(3, 4))
    f = lambda x: np.tanh(W @ x) * np.sin(x[:3])  # noqa: E731
    fn = pytape.trace(f, np.zeros(4))
    x = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(fn(x), [y.value for y in f(np.array([pytape.Var(v) for v in x]))], rtol=1e-15)
    J = pytape.jacobian(f)(x)
    np.testing.assert_allclose(fn.jacobian(x), J, rtol=1e-14)
    np.testing.assert_allclose(fn.jacobian(x, mode="fwd"), J, rtol=1e-14)
    v, u = np.arange(4.0), np.arange(3.0)
    np.testing.assert_allclose(fn.jvp(x, v)[1], J @ v, rtol=1e-13)
    np.testing.assert_allclose(fn.vjp(x, u)[1], u @ J, rtol=1e-13)


def branchy_abs(x):
    return x if x > 0 else -x


def piecewise(x):
    if x < -1.0:
        return x * x
    if x <= 2.0:
        return pytape.sin(x) * 3.0
    return pytape.exp(x - 2.0) + x


def loop(x):
    # the trip count depends on the value: halve until below 1
    y = x * 1.0
    while y > 1.0:
        y = y * 0.5 + pytape.sin(y) * 0.01
    return y * y


@pytest.mark.parametrize("f, points", [
    (branchy_abs, [-3.0, -0.5, 0.25, 2.0, -7.0]),
    (piecewise, [-3.0, -0.5, 1.5, 3.0, -1.5, 2.5]),
    (loop, [0.5, 3.0, 10.0, 0.9, 40.0]),
])
def test_branches_retrace_to_the_right_derivative(f, points):
    fn = pytape.trace(f, points[0])
    for x in points:
        want = pytape.grad(f)(x)
        assert fn(x) == pytest.approx(pytape.value_and_grad(f)(x)[0], rel=1e-15)
        assert fn.gradient(x) == pytest.approx(want, rel=1e-14)
    assert fn.retraces >= 1


@pytest.mark.parametrize("f, points", [
    (branchy_abs, [-3.0, -0.5, 0.25, 2.0, -7.0]),
    (piecewise, [-3.0, -0.5, 1.5, 3.0, -1.5, 2.5]),
    (loop, [0.5, 3.0, 10.0, 0.9, 40.0]),
])
def test_raise_policy_is_right_or_raises_never_wrong(f, points):
    fn = pytape.trace(f, points[0], on_branch_change="raise")
    raised = 0
    for x in points:
        try:
            g = fn.gradient(x)
        except pytape.BranchChangedError as exc:
            raised += 1
            assert f"in {f.__name__}()" in str(exc)
            continue
        assert g == pytest.approx(pytape.grad(f)(x), rel=1e-14)
    assert raised >= 1 and fn.retraces == 0
    assert fn.gradient(points[0]) == pytest.approx(pytape.grad(f)(points[0]), rel=1e-14)


def test_raise_policy_names_the_comparison_line():
    fn = pytape.trace(branchy_abs, 2.0, on_branch_change="raise")
    assert fn.gradient(5.0) == 1.0  # same branch: fine
    with pytest.raises(pytape.BranchChangedError, match=r"test_tracing.py:\d+ in branchy_abs\(\)"):
        fn(-1.0)
    assert fn.gradient(0.5) == 1.0  # the tape is still usable on its branch


def test_conversions_are_guarded():
    # float() lets the value escape into Python: any other value re-traces
    fn = pytape.trace(lambda x: x * float(x), 3.0)
    assert fn(3.0) == 9.0 and fn.retraces == 0
    assert fn(4.0) == 16.0 and fn.gradient(4.0) == 4.0 and fn.retraces == 1
    fb = pytape.trace(lambda x: x * 2.0 if bool(x) else x * 3.0, 1.0)
    assert fb.gradient(0.0) == 3.0 and fb.gradient(5.0) == 2.0


def test_errors_and_introspection():
    fn = pytape.trace(rosenbrock, np.zeros(3), elementwise=True)
    with pytest.raises(ValueError, match="shapes"):
        fn(np.zeros(4))
    with pytest.raises(TypeError, match="takes 1 arguments"):
        fn(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="on_branch_change"):
        pytape.trace(rosenbrock, np.zeros(3), on_branch_change="ignore")
    st = fn.stats()
    assert st["instructions"] == fn.num_ops and st["leaves"] == 3 and fn.nbytes > 0
    assert "CompiledFunction" in repr(fn)
    # tracing leaves ordinary comparisons alone afterwards
    with pytape.Tape():
        x = pytape.Var(1.0) * 1.0
        assert (x > 0) and len(x.tape) == 2


def test_decorator_form_traces_at_first_call():
    @pytape.trace
    def f(x):
        return pytape.exp(x) * x

    assert f.num_ops == 0
    assert f(1.0) == pytest.approx(math.e)
    n = f.num_ops
    assert n > 0 and f.gradient(2.0) == pytest.approx(3 * math.exp(2.0))
    assert f.num_ops == n

    @pytape.trace(on_branch_change="raise")
    def g(x):
        return x if x > 0 else -x

    assert g(2.0) == 2.0
    with pytest.raises(pytape.BranchChangedError):
        g(-2.0)


# ---- the optimisation pass -----------------------------------------------------

def test_dead_code_and_constant_folding():
    w = pytape.Var(0.3)  # a parameter f closes over: a constant of the compiled function

    def f(x):
        unused = pytape.exp(x) * 5.0  # reaches no output  # noqa: F841
        scale = pytape.exp(w) * 2.0 + pytape.sin(w)  # depends on no input: folds
        if w > 0:  # a comparison of constants: no guard survives
            scale = scale + 1.0
        return x * scale + pytape.Var(4.0) * x  # Var(4.0) times x: mul with a constant

    with pytape.Tape() as t:
        f(pytape.Var(1.0))
    recorded = len(t)
    fn = pytape.trace(f, 1.0)
    ops = fn.stats()["ops"]
    assert fn.num_ops < recorded
    assert ops == {"leaf": 1, "mul_vc": 1, "mul_cv": 1, "add": 1}, ops  # x*scale, 4*x, the sum
    scale = math.exp(0.3) * 2.0 + math.sin(0.3) + 1.0
    assert fn(2.0) == pytest.approx(2.0 * scale + 8.0, rel=1e-15)
    assert fn.gradient(2.0) == pytest.approx(scale + 4.0, rel=1e-15)
    w.data = -1.0  # the compiled function keeps the traced constant
    assert fn(2.0) == pytest.approx(2.0 * scale + 8.0, rel=1e-15)


def test_guard_on_an_input_compared_with_a_constant_slot_is_mirrored():
    c = pytape.Var(1.0)  # a constant on the left of the comparison
    fn = pytape.trace(lambda x: x * 2.0 if c < x else x * 3.0, 2.0)
    assert [fn.gradient(v) for v in (5.0, 0.5, 1.5, -4.0)] == [2.0, 3.0, 2.0, 3.0]


def test_register_plan_keeps_the_live_set():
    def chain(x):
        y = x
        for _ in range(500):
            y = pytape.sin(y) * 0.5 + y * 0.25
        return y

    fn = pytape.trace(chain, 0.1)
    assert fn.num_registers <= 4 < fn.num_ops  # a chain needs a few live values, not 1500
    for x in (0.3, -1.2, 2.0):
        v, g = pytape.value_and_grad(chain)(x)
        assert fn(x) == v and fn.gradient(x) == g  # the same rules, the same roundings


def test_unused_and_passed_through_inputs():
    fn = pytape.trace(lambda x, y, z: [x * 2.0, z, 7.0], 1.0, 2.0, 3.0)
    assert fn(4.0, 5.0, 6.0).tolist() == [8.0, 6.0, 7.0]
    J = fn.jacobian(4.0, 5.0, 6.0)
    assert [j.tolist() for j in J] == [[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    const = pytape.trace(lambda x: 3.0, 1.0)
    assert const(2.0) == 3.0 and const.gradient(2.0) == 0.0
    assert const.gradient(np.array([1.0, 2.0])).tolist() == [0.0, 0.0]


# ---- batches ---------------------------------------------------------------------

def test_batch_values_and_gradients_equal_fresh_recordings():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, (37, 6))
    fn = pytape.trace(rosenbrock, np.zeros(6), elementwise=True)  # the scalar tape, batches on both cores
    values, grads = fn.value_and_grad(X)
    assert values.shape == (37,) and grads.shape == (37, 6)
    for x, v, g in zip(X, values, grads):
        fv, fg = pytape.value_and_grad(rosenbrock, elementwise=True)(x)  # exact: the same scalar tape's order
        assert v == fv
        np.testing.assert_array_equal(g, fg)
    np.testing.assert_array_equal(fn(X), values)
    np.testing.assert_array_equal(fn.gradient(X.reshape(37, 1, 6)), grads.reshape(37, 1, 6))
    # vector outputs and several arguments, an unbatched one broadcast over the batch
    f = lambda x, p: [x[0] * p, pytape.sin(x[1]) + p]  # noqa: E731
    fv = pytape.trace(f, np.zeros(2), 1.0)
    Y = fv(X[:, :2], 3.0)
    assert Y.shape == (37, 2)
    np.testing.assert_allclose(Y, np.stack([X[:, 0] * 3.0, np.sin(X[:, 1]) + 3.0], axis=1), rtol=1e-15)
    gx, gp = pytape.trace(lambda x, p: x[0] * p, np.zeros(2), 1.0).gradient(X[:, :2], np.arange(37.0))
    np.testing.assert_array_equal(gx[:, 0], np.arange(37.0))
    np.testing.assert_array_equal(gp, X[:, 0])
    with pytest.raises(ValueError, match="batch"):
        fv(np.zeros((3, 2)), np.zeros(4))  # two different batch shapes
    assert fn(np.zeros((0, 6))).shape == (0,) and fn.gradient(np.zeros((0, 6))).shape == (0, 6)


def test_batch_rows_on_different_branches():
    rng = np.random.default_rng(4)
    X = rng.uniform(-3, 3, 200)
    fn = pytape.trace(piecewise, 0.5)
    v, g = fn.value_and_grad(X)
    for x, vi, gi in zip(X, v, g):
        want_v, want_g = pytape.value_and_grad(piecewise)(x)
        assert vi == pytest.approx(want_v, rel=1e-15) and gi == pytest.approx(want_g, rel=1e-15)
    assert fn.retraces == 2  # three branches: one tape each, kept for the next batch
    fn.value_and_grad(X[::-1])
    assert fn.retraces == 2 and fn.stats()["tapes"] == 3
    strict = pytape.trace(piecewise, 0.5, on_branch_change="raise")
    with pytest.raises(pytape.BranchChangedError, match=r"test_tracing.py:\d+ in piecewise\(\)"):
        strict.gradient(X)


def check_threads_agree(fn, X):
    """fn's batch values and gradients on two threads equal those on one; (values, gradients)."""
    fn.threads = 1
    v1, g1 = fn.value_and_grad(X)
    y1 = fn(X)
    fn.threads = 2
    v2, g2 = fn.value_and_grad(X)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(y1, fn(X))
    np.testing.assert_array_equal(y1, v1)
    return v1, g1


@pytest.mark.parametrize("elementwise", [True, False])
def test_batch_on_two_threads_equals_one_thread(elementwise):
    W = np.random.default_rng(5).normal(size=(30, 30))

    def f(x):
        return np.sum(np.tanh(W @ x) ** 2)

    fn = pytape.trace(f, np.zeros(30), elementwise=elementwise)  # the scalar tape, or the array tape
    X = np.random.default_rng(6).normal(size=(400, 30))  # ~10^3 instructions x 400 rows: 2 threads
    _, g1 = check_threads_agree(fn, X)
    np.testing.assert_allclose(g1[17], pytape.grad(f)(X[17]), rtol=1e-13)


# ---- property: replays equal fresh recordings on random programs ---------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_property import build, instruction  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(instruction, min_size=1, max_size=25),
       st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
       st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))
def test_replay_equals_fresh_recording_on_random_programs(program, x0, x1):
    def f(x):
        y = build(pytape, list(x), program)
        # a branch on a value and a branch-free choice, so guards and where are exercised
        y = y * 2.0 if x[0] > x[1] else y - 1.0
        return pytape.where(pytape.less(x[2], 0.5), y, pytape.sin(y))

    x0, x1 = np.array(x0), np.array(x1)
    fn = pytape.trace(f, x0)
    with np.errstate(all="ignore"):
        v, g = pytape.value_and_grad(f)(x1)
        J = pytape.jacobian(lambda x: np.array([f(x), f(x) * x[0]]))(x1)
    np.testing.assert_array_equal(fn(x1), v)
    np.testing.assert_array_equal(fn.gradient(x1), g)
    np.testing.assert_array_equal(fn.gradient(np.stack([x1, x0]))[0], g)
    fj = pytape.trace(lambda x: np.array([f(x), f(x) * x[0]]), x0)
    np.testing.assert_allclose(fj.jacobian(x1), J, rtol=1e-13)
    if np.all(np.isfinite(g)):
        np.testing.assert_allclose(fn.hessian(x1), pytape.hessian(f)(x1), rtol=1e-12, atol=1e-12)
