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


def test_raise_policy_names_the_comparison_line():
    fn = pytape.trace(branchy_abs, 2.0, on_branch_change="raise")
    assert fn.gradient(5.0) == 1.0  # same branch: fine
    with pytest.raises(pytape.BranchChangedError, match=r"test_replay.py:\d+ in branchy_abs\(\)"):
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
    fn = pytape.trace(rosenbrock, np.zeros(3))
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
