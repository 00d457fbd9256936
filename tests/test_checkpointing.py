"""pytape.checkpoint (pytape/checkpointing.py): a block recorded as one
instruction whose intermediates the reverse sweep recomputes.  Gradients
against the block recorded in place (bit for bit where the sums run in the
same order), the tape's memory, forward mode, and what it refuses."""
import numpy as np
import pytest

import pytape

DT = 1e-2


def euler_block(x, steps=20):
    for _ in range(steps):
        x = x + DT * (np.sin(x) - 0.5 * x ** 3)
    return x


def run(x, block, blocks=10):
    for _ in range(blocks):
        x = block(x)
    return np.sum(x ** 2)


X0 = np.linspace(-1.0, 1.0, 50) + 0.1


def test_gradients_equal_the_block_recorded_in_place_bit_for_bit():
    ck = pytape.checkpoint(euler_block)
    g_ck = pytape.grad(lambda x: run(x, ck))(X0)
    g = pytape.grad(lambda x: run(x, euler_block))(X0)
    np.testing.assert_array_equal(g_ck, g)
    x = pytape.Tensor(X0)   # and eagerly, backward() on a tape
    y = run(x, ck)
    y.backward()
    np.testing.assert_array_equal(x.grad, g)
    assert y.item() == run(X0, euler_block)  # the values too


def test_the_tape_keeps_the_blocks_inputs_and_outputs_only():
    ck = pytape.checkpoint(euler_block)
    nbytes = {}
    for name, block in (("plain", euler_block), ("checkpoint", ck)):
        x = pytape.Tensor(np.linspace(-1.0, 1.0, 4000))
        with pytape.Tape() as t:
            y = run(x, block)
        nbytes[name] = t.nbytes
        assert len(t) < 30 if name == "checkpoint" else len(t) > 1000
        y.backward()
    assert nbytes["plain"] > 10 * nbytes["checkpoint"], nbytes


def test_several_arguments_vars_and_constants():
    def layer(h, W, s, c):
        return np.tanh(h @ W * s + c)
    ck = pytape.checkpoint(layer)
    rng = np.random.default_rng(0)
    H, W0, c = rng.normal(size=(6, 4)), rng.normal(size=(4, 4)) * 0.5, rng.normal(size=4)

    def f(W, s, block):
        h = H
        for _ in range(3):
            h = block(h, W, s, c)
        return np.sum(h ** 2)
    gW, gs = pytape.grad(lambda W, s: f(W, s, ck), argnums=(0, 1))(W0, 0.7)
    eW, es = pytape.grad(lambda W, s: f(W, s, layer), argnums=(0, 1))(W0, 0.7)
    np.testing.assert_allclose(gW, eW, rtol=1e-13, atol=1e-15)
    assert gs == pytest.approx(es, rel=1e-13)


def test_forward_mode_and_jacobians():
    ck = pytape.checkpoint(euler_block)
    v = np.cos(np.arange(50.0))
    _, a = pytape.jvp(lambda x: run(x, ck, 3), (X0,), (v,))
    _, b = pytape.jvp(lambda x: run(x, euler_block, 3), (X0,), (v,))
    assert a == pytest.approx(b, rel=1e-12)
    J = pytape.jacobian(lambda x: ck(x[:5]), mode="fwd")(X0)
    np.testing.assert_allclose(J, pytape.jacobian(lambda x: euler_block(x[:5]), mode="fwd")(X0), rtol=1e-12)


def test_second_order_recomputes_each_blocks_hessian_vector_product():
    ck = pytape.checkpoint(euler_block)
    v = np.cos(np.arange(50.0))
    a = pytape.hvp(lambda x: run(x, ck, 3), X0, v)
    b = pytape.hvp(lambda x: run(x, euler_block, 3), X0, v)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    layer = pytape.checkpoint(lambda h, W, s: np.tanh(h @ W) * s)
    H = np.random.default_rng(1).normal(size=(5, 3))
    f_ck = lambda W, s: np.sum(layer(H, W, s) ** 2)  # noqa: E731
    f = lambda W, s: np.sum((np.tanh(H @ W) * s) ** 2)  # noqa: E731
    W0 = np.eye(3) * 0.4
    for got, want in zip(sum(pytape.hessian(f_ck, argnums=(0, 1))(W0, 0.8), ()),
                         sum(pytape.hessian(f, argnums=(0, 1))(W0, 0.8), ())):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_nested_checkpoints():
    inner = pytape.checkpoint(lambda x: euler_block(x, 5))
    outer = pytape.checkpoint(lambda x: inner(inner(x)))
    np.testing.assert_allclose(pytape.grad(lambda x: run(x, outer, 4))(X0),
                               pytape.grad(lambda x: run(x, lambda u: euler_block(u, 10), 4))(X0), rtol=1e-13)
    v = np.sin(np.arange(50.0))
    np.testing.assert_allclose(pytape.hvp(lambda x: run(x, outer, 2), X0, v),
                               pytape.hvp(lambda x: run(x, lambda u: euler_block(u, 10), 2), X0, v), rtol=1e-11)


def test_what_it_refuses_or_passes_through():
    ck = pytape.checkpoint(euler_block)
    np.testing.assert_array_equal(ck(X0), euler_block(X0))   # no Tensor: f itself
    pair = pytape.checkpoint(lambda x: (x, x))
    with pytest.raises(TypeError, match="one Tensor or number"):
        pair(pytape.Tensor(X0))
    with pytest.raises(TypeError, match="takes a function"):
        pytape.checkpoint(3)
