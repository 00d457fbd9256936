"""detect_anomaly(): the first nan/inf names its operation, inputs and source line."""
import inspect
import math
import re
import threading

import numpy as np

import pytest

import pytape
from pytape import Var


def line_of(marker, fn):
    """Line number of the line of fn's source that contains `marker`."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, line in enumerate(lines) if marker in line)


def forward_log(x):
    a = x * 2.0
    return pytape.log(a)  # MARK-log


def test_forward_nan_names_op_line_function_and_input():
    x = Var(-1.5)
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            forward_log(x)
    msg = str(err.value)
    assert msg.startswith("log produced nan at test_anomaly.py:")
    assert f":{line_of('MARK-log', forward_log)} in forward_log()" in msg
    assert "(input -3.0)" in msg


@pytest.mark.parametrize("expr, op, produced", [
    (lambda x: pytape.sqrt(x - 5.0), "sqrt", "nan"),
    (lambda x: (x - 1.0) / (x - 1.0), "div", "nan"),           # 0/0
    (lambda x: 1.0 / (x - 1.0), "div", "inf"),
    (lambda x: pytape.exp(x * 1000.0), "exp", "inf"),
    (lambda x: pytape.log(x - 1.0), "log", "-inf"),
    (lambda x: x ** 0.5 * pytape.asin(x + 1.0), "asin", "nan"),
])
def test_forward_non_finite_values(expr, op, produced):
    x = Var(1.0)
    with pytape.Tape() as t:
        with pytape.detect_anomaly():
            with pytest.raises(FloatingPointError, match=rf"^{op} produced {produced} at "):
                expr(x)
        n = len(t)
        # refused, not recorded: the tape holds only what came before
        y = x * 3.0
    assert len(t) == n + 1 and y.value == 3.0


def reverse_sqrt():
    x = Var(0.0)
    y = pytape.sqrt(x) * 3.0  # MARK-sqrt
    return x, y


def test_reverse_inf_names_the_op_whose_derivative_blew_up():
    with pytape.detect_anomaly():
        x, y = reverse_sqrt()
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    msg = str(err.value)
    assert msg.startswith("backward through sqrt produced inf at test_anomaly.py:")
    assert f":{line_of('MARK-sqrt', reverse_sqrt)} in reverse_sqrt()" in msg
    assert "(input 0.0)" in msg
    # nothing was accumulated and the tape was not consumed: it can be swept again
    assert x.grad == 0.0 and not y.tape.consumed
    y.backward()
    assert x.grad == math.inf


def reverse_pow():
    x, b = Var(-2.0), Var(2.0)
    y = x ** b  # MARK-pow: d/db = y * log(x) is nan at a negative base
    return y


def test_reverse_nan_names_its_line():
    with pytape.detect_anomaly():
        y = reverse_pow()
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    msg = str(err.value)
    assert msg.startswith("backward through pow produced nan at test_anomaly.py:")
    assert f":{line_of('MARK-pow', reverse_pow)} in reverse_pow()" in msg and "(inputs -2.0, 2.0)" in msg


def test_reverse_minus_inf_from_acos_at_one():
    with pytape.detect_anomaly():
        a = Var(1.0)
        y = pytape.acos(a) + a
        with pytest.raises(FloatingPointError, match="backward through acos produced -inf"):
            y.backward()


def zero_over_zero(x):
    d = x - 1.0
    return d / d  # MARK-0/0


def test_forward_zero_over_zero_names_its_line():
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            zero_over_zero(Var(1.0))
    assert f"div produced nan at test_anomaly.py:{line_of('MARK-0/0', zero_over_zero)} in zero_over_zero()" \
        in str(err.value)


def sqrt_times_three(x):
    return pytape.sqrt(x) * 3.0  # MARK-sqrt3


def test_every_first_order_sweep_is_checked():
    where = f"test_anomaly.py:{line_of('MARK-sqrt3', sqrt_times_three)} in sqrt_times_three()"
    with pytape.detect_anomaly():
        x = Var(0.0)
        with pytest.raises(FloatingPointError, match=f"backward through sqrt produced inf at {where}"):
            pytape.autograd.grad(sqrt_times_three(x), x)
        with pytest.raises(FloatingPointError, match=f"backward through sqrt produced inf at {where}"):
            pytape.grad(sqrt_times_three)(0.0)
        with pytest.raises(FloatingPointError, match=f"backward through sqrt produced inf at {where}"):
            pytape.jacrev(lambda v: [sqrt_times_three(v[0]), v[1]])([0.0, 1.0])
        with pytest.raises(FloatingPointError, match=rf"tangent \(forward mode\) of sqrt is not finite at {where}"):
            pytape.jvp(sqrt_times_three, (0.0,), (1.0,))
        with pytape.Tape() as t:
            x = Var(0.0)
            sqrt_times_three(x)
        with pytest.raises(FloatingPointError, match="tangent"):
            t.tangent_sweep({x: 1.0})
        x = Var(0.0)
        y = pytape.sqrt(x + 1.0) * sqrt_times_three(x)
        with pytest.raises(FloatingPointError, match=rf"backward through sqrt \(create_graph=True\).* at {where}"):
            pytape.autograd.grad(y, x, create_graph=True)
    # outside the mode the same calls give inf, as IEEE arithmetic does
    assert pytape.grad(sqrt_times_three)(0.0) == math.inf


def test_tape_recorded_outside_checked_when_backward_runs_inside():
    x = Var(0.0)
    y = pytape.sqrt(x)
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError, match="recorded outside detect_anomaly"):
            y.backward()


def test_outside_the_mode_nothing_is_recorded_or_checked():
    assert not pytape.is_anomaly_enabled()
    with pytape.Tape() as t:
        x = Var(-1.0)
        y = pytape.log(x) + 1.0
        assert math.isnan(y.value)
        assert t._where is None
        with pytape.detect_anomaly():
            w = x * 2.0
        assert list(t._where) == [w.slot]
    x0 = Var(0.0)
    pytape.sqrt(x0).backward()  # an inf gradient, and no exception
    assert x0.grad == math.inf


def test_decorator_and_nesting_restore_the_mode():
    @pytape.detect_anomaly()
    def f(v):
        assert pytape.is_anomaly_enabled()
        return pytape.log(v)

    with pytest.raises(FloatingPointError):
        f(Var(-1.0))
    assert not pytape.is_anomaly_enabled()
    with pytape.detect_anomaly():
        with pytape.no_grad():
            c = pytape.log(Var(-1.0))  # no recording under no_grad: a constant, no check
        assert math.isnan(c.value)
        assert pytape.is_anomaly_enabled()


def test_mode_is_per_thread():
    seen = []

    def other():
        seen.append(pytape.is_anomaly_enabled())
        seen.append(math.isnan(pytape.log(Var(-1.0)).value))

    with pytape.detect_anomaly():
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert seen == [False, True]


def test_gradients_are_unchanged_in_anomaly_mode():
    def f(x1, x2):
        return pytape.log(x1) + x1 * x2 - pytape.sin(x2)

    x1, x2 = Var(2.0), Var(5.0)
    with pytape.detect_anomaly():
        y = f(x1, x2)
        y.backward()
    assert (x1.grad, x2.grad) == (5.5, 2.0 - math.cos(5.0))


# ---- traced replays (pytape.trace) are checked too ------------------------------------

def test_traced_replays_are_checked_inside_detect_anomaly():
    fn = pytape.trace(lambda x: pytape.log(x) * 2, 1.0)
    assert math.isnan(fn(-1.0))  # outside the mode: no check
    calls = {
        "value": lambda: fn(-1.0),
        "gradient": lambda: fn.gradient(0.0),
        "hessian": lambda: fn.hessian(-1.0),
        "jacobian": lambda: fn.jacobian(-2.0),
        "hvp": lambda: fn.hvp(-2.0, 1.0),
    }
    for name, call in calls.items():
        with pytape.detect_anomaly(), pytest.raises(FloatingPointError, match="log produced"):
            call()
    with pytape.detect_anomaly(), pytest.raises(FloatingPointError, match=r"batch row 1\): log produced nan"):
        fn(np.array([1.0, -1.0, 2.0]))
    with pytape.detect_anomaly():  # finite replays pass unchanged
        assert fn(1.0) == 0.0 and fn.gradient(np.array([1.0, 2.0])).tolist() == [2.0, 1.0]


def test_a_replay_gradient_that_is_not_finite_names_the_operation_and_line():
    with pytape.detect_anomaly():
        fn = pytape.trace(lambda x: pytape.sqrt(x) * 2, 1.0)   # traced in the mode: lines noted
        with pytest.raises(FloatingPointError, match=r"backward through sqrt produced inf at test_anomaly.py:\d+"):
            fn.gradient(0.0)
        assert fn.gradient(4.0) == 0.5


def pow_three_halves(x):
    return np.sum(x ** 1.5 + x)  # MARK-pow15


def test_second_order_sweeps_are_checked():
    """hessian and hvp (forward over reverse) check their tangent sweep as jvp
    does, then every adjoint and every tangent of an adjoint of their reverse
    sweep, on array and on scalar tapes.  x ** 1.5 at 0 has finite first
    derivatives and tangents (0) but an infinite second derivative: only the
    tangent of the adjoint is inf."""
    sq = re.escape(f"test_anomaly.py:{line_of('MARK-sqrt3', sqrt_times_three)} in sqrt_times_three()")
    pw = re.escape(f"test_anomaly.py:{line_of('MARK-pow15', pow_three_halves)} in pow_three_halves()")
    x, v = np.array([1.0, 0.0, 4.0]), np.ones(3)
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError, match=rf"tangent \(forward mode\) of sqrt is not finite \(inf\) "
                                                     rf"at index \(1,\) of its tangent \(shape \(3,\)\) at {sq}"):
            pytape.hvp(lambda u: np.sum(sqrt_times_three(u)), x, v)
        # the Hessian's column of element 0 meets sqrt's infinite adjoint at element 1
        with pytest.raises(FloatingPointError, match=rf"second order \(hessian, hvp\): backward through sqrt produced "
                                                     rf"inf at index \(1,\) of the gradient of v0 .* at {sq}"):
            pytape.hessian(lambda u: np.sum(sqrt_times_three(u)))(x)
        with pytest.raises(FloatingPointError, match=rf"second order \(hessian, hvp\): backward through pow produced "
                                                     rf"inf at index \(1,\) of the tangent of the gradient of v0 "
                                                     rf"\(shape \(3,\)\) at {pw} \(inputs 0.0, 1.5\)"):
            pytape.hvp(pow_three_halves, x, v)
        with pytest.raises(FloatingPointError, match=rf"second order \(hessian, hvp\): backward through pow made the "
                                                     rf"tangent of an adjoint nan or inf at {pw}"):
            pytape.hessian(pow_three_halves, elementwise=True)(x)
        with pytest.raises(FloatingPointError, match=rf"tangent \(forward mode\) of sqrt is not finite at {sq}"):
            pytape.hvp(lambda u: np.sum(sqrt_times_three(u)), x, v, elementwise=True)
        # no false alarm: finite everywhere, the same H v as outside the mode
        inside = pytape.hvp(pow_three_halves, x + 1.0, v)
    np.testing.assert_array_equal(inside, pytape.hvp(pow_three_halves, x + 1.0, v))
    # outside the mode the same calls give inf, as IEEE arithmetic does
    assert pytape.hvp(pow_three_halves, x, v)[1] == math.inf
