"""pytape.autograd.grad and backward(inputs=...) with PyTorch's semantics."""
import math

import numpy as np
import pytest

import pytape
from pytape import Var
from pytape.autograd import grad


def test_grad_matches_backward_and_leaves_grad_untouched():
    x1, x2 = Var(2.0), Var(5.0)
    y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    d1, d2 = grad(y, [x1, x2], retain_graph=True)
    assert (x1.grad, x2.grad) == (0.0, 0.0)
    y.backward()
    assert (d1, d2) == (x1.grad, x2.grad) == (5.5, 2.0 - math.cos(5.0))
    assert grad(x1 * 3.0, x1) == (3.0,)


def test_several_outputs_and_grad_outputs():
    x = Var(2.0)
    with pytape.Tape():
        a, b = x * x, pytape.exp(x)
    (g,) = grad([a, b], [x], retain_graph=True)
    assert g == pytest.approx(4.0 + math.exp(2.0))
    (g,) = grad([a, b], [x], grad_outputs=[0.5, 2.0], retain_graph=True)
    assert g == pytest.approx(0.5 * 4.0 + 2.0 * math.exp(2.0))
    # an array of outputs is "non-scalar": it needs grad_outputs, like a tensor in PyTorch
    xs = np.array([Var(1.0), Var(2.0)], dtype=object)
    ys = xs * 3.0 + xs * xs
    with pytest.raises(RuntimeError, match="grad_outputs"):
        grad(ys, list(xs))
    u = np.array([1.0, 10.0])
    assert grad(ys, list(xs), grad_outputs=u) == (1.0 * (3 + 2), 10.0 * (3 + 4))


def test_unused_inputs_raise_unless_allow_unused():
    x, z = Var(1.0), Var(2.0)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"inputs\[1\] was not used.*allow_unused=True"):
        grad(y, [x, z], retain_graph=True)
    assert grad(y, [x, z], allow_unused=True) == (2.0, None)
    # recorded on the tape but not reaching the output: also unused
    w = Var(3.0)
    with pytape.Tape():
        q = x * 2.0
        w * 5.0
    assert grad(q, [w], allow_unused=True) == (None,)


def test_intermediate_inputs_give_their_adjoint():
    x = Var(0.5)
    h = pytape.tanh(x)
    y = h * h
    assert grad(y, [h, x]) == (2 * math.tanh(0.5), pytest.approx(2 * math.tanh(0.5) * (1 - math.tanh(0.5) ** 2)))


def test_retain_graph_default_consumes_the_tape():
    x = Var(1.0)
    y = x * x
    grad(y, x)
    assert y.tape.consumed
    with pytest.raises(pytape.TapeConsumedError, match="retain_graph=True"):
        grad(y, x)
    y2 = x * x
    grad(y2, x, retain_graph=True)
    assert grad(y2, x) == (2.0,)


def test_backward_inputs_restricts_accumulation():
    x, w = Var(2.0), Var(3.0)
    y = x * w + x
    y.backward(inputs=[x], retain_graph=True)
    assert (x.grad, w.grad) == (4.0, 0.0)
    y.backward(inputs=[w, x])
    assert (x.grad, w.grad) == (8.0, 2.0)
    with pytest.raises(TypeError, match="leaves"):
        (x * 2.0).backward(inputs=[x * 1.0])


def test_argument_errors_are_clear():
    x = Var(1.0)
    with pytest.raises(TypeError, match="inputs"):
        grad(x * 2.0, "x")
    with pytest.raises(ValueError, match="different tapes"):
        with pytape.Tape():
            a = x * 1.0
        with pytape.Tape():
            b = x * 2.0
        grad([a, b], [x])
    with pytest.raises(ValueError, match="grad_outputs has 1 entries for 2 outputs"):
        grad([x * 1.0, x * 2.0], [x], grad_outputs=[1.0])


def test_create_graph_third_derivatives_exact():
    for f, d1, d2, d3, d4 in [
        (pytape.sin, math.cos, lambda v: -math.sin(v), lambda v: -math.cos(v), math.sin),
        (pytape.exp, math.exp, math.exp, math.exp, math.exp),
        (lambda v: v ** 5, lambda v: 5 * v ** 4, lambda v: 20 * v ** 3, lambda v: 60 * v ** 2, lambda v: 120 * v),
    ]:
        x = Var(0.7)
        y = f(x)
        (g1,) = grad(y, x, create_graph=True)
        (g2,) = grad(g1, x, create_graph=True)
        (g3,) = grad(g2, x, create_graph=True)
        assert isinstance(g1, Var) and isinstance(g3, Var)
        assert (g1.value, g2.value, g3.value) == (d1(0.7), d2(0.7), d3(0.7))
        g3.backward()  # the fourth, through an ordinary backward
        assert x.grad == pytest.approx(d4(0.7), rel=1e-14)


def test_create_graph_mixed_partials_and_hessian_agree():
    def f(x1, x2):
        return pytape.log(x1) + x1 * x2 - pytape.sin(x2) + pytape.atan2(x1, x2) * pytape.hypot(x1, x2)

    x1, x2 = Var(2.0), Var(5.0)
    y = f(x1, x2)
    g1, g2 = grad(y, [x1, x2], create_graph=True)
    h11, h12 = grad(g1, [x1, x2], retain_graph=True)
    h21, h22 = grad(g2, [x1, x2])
    H = pytape.hessian(lambda v: f(v[0], v[1]))(np.array([2.0, 5.0]))
    np.testing.assert_allclose([[h11, h12], [h21, h22]], H, rtol=1e-12)
    assert (g1.value, g2.value) == pytest.approx(tuple(pytape.grad(lambda v: f(v[0], v[1]))(np.array([2.0, 5.0]))))


@pytest.mark.parametrize("name", sorted(pytape.var.FUNCTIONS))
def test_create_graph_agrees_with_the_second_derivative_columns(name):
    # two independent second-order paths: first-derivative columns recorded as
    # instructions (create_graph) vs the d2 columns of the Hessian sweep
    from test_ops import ORACLES, UNARY, points

    f = pytape.var.FUNCTIONS[name]
    checked = 0
    for p in points(name):
        args = (p,) if name in UNARY else p
        if not all(math.isfinite(v) and 0.05 < abs(v) < 20 for v in args):
            continue
        o = ORACLES[name]
        if name in UNARY and o.fd_skip(args[0], 1e-6) or name not in UNARY and any(o.fd_skip(*args, 1e-6, 1e-6)):
            continue
        xs = [Var(v) for v in args]
        gs = grad(f(*xs), xs, create_graph=True)
        H = np.array([[g2 if g2 is not None else 0.0 for g2 in
                       (grad(g, xs, retain_graph=True, allow_unused=True) if isinstance(g, Var) else [0.0] * len(xs))]
                      for g in gs], dtype=float)
        want = pytape.hessian(lambda v: f(*v))(np.array(args, dtype=float))
        np.testing.assert_allclose(H, np.atleast_2d(want), rtol=1e-10, atol=1e-12, err_msg=f"{name} at {args}")
        checked += 1
        if checked == 5:
            break
    assert checked >= 1


def test_grad_outputs_as_vars_with_create_graph_stay_in_the_graph():
    # PyTorch: with create_graph=True the gradient depends on grad_outputs too
    x, v = pytape.Var(2.0), pytape.Var(3.0)
    y = x ** 2
    (g,) = pytape.autograd.grad(y, x, grad_outputs=v, create_graph=True)
    assert g.value == 12.0  # 2 x v
    dv, dx = pytape.autograd.grad(g, [v, x])
    assert (dv, dx) == (4.0, 6.0)  # d(2xv)/dv = 2x, d/dx = 2v
    # without create_graph a Var seed counts by its value
    z = x ** 2
    assert pytape.autograd.grad(z, x, grad_outputs=v) == (12.0,)
