"""pytape.autograd.grad and backward(inputs=...) with PyTorch's semantics (create_graph: test_higher_order.py)."""
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


def _leaf_back_on_its_tape():
    """c = x^2 * x on tape T, with x used on another tape in between: x has
    two slots on T, and d c/d x = 3 x^2 sums both."""
    x = pytape.Var(2.0)
    with pytape.Tape():
        a = x * x
        with pytape.Tape():
            x * 3.0
        c = a * x
    return x, c


def test_a_leaf_with_two_slots_on_a_tape_gets_the_sum_of_their_gradients():
    x, c = _leaf_back_on_its_tape()
    assert pytape.autograd.grad(c, [x], retain_graph=True) == (12.0,)
    (g,) = pytape.autograd.grad(c, [x], create_graph=True)
    assert g.value == 12.0
    (h,) = pytape.autograd.grad(g, [x])
    assert h == 12.0  # d(3 x^2)/dx = 6 x
    x, c = _leaf_back_on_its_tape()
    c.tape.tangent_sweep({x: 1.0})
    assert c.tangent == 12.0
    c.backward(inputs=[x], retain_graph=True)
    assert x.grad == 12.0
    c.backward()
    assert x.grad == 24.0


def test_an_argument_used_on_another_tape_inside_f_keeps_its_gradient():
    def f(v):
        y = v * v
        with pytape.Tape():
            v * 3.0
        return y * v

    assert pytape.grad(f)(3.0) == 27.0
    assert pytape.jacobian(f)(3.0) == 27.0
    assert pytape.trace(f, 1.0).gradient(3.0) == 27.0
