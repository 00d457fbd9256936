"""Custom primitives on arrays (pytape/custom.py, csrc/array_custom.c): a
function of numpy arrays as one array instruction with the user's rules,
called back from the C sweeps with numpy arrays.  Checked against the
function's own numpy derivative, finite differences and PyTorch."""
import gc

import numpy as np
import pytest

import pytape
from test_array_functional import fd_grad
from pytape import custom


@pytape.primitive(arrays=True)
def cumprod(x):
    return np.cumprod(x)


cumprod.defvjp(lambda ans, x: lambda g: np.cumsum((g * ans)[::-1])[::-1] / x)
cumprod.defjvp(lambda t, ans, x: ans * np.cumsum(t / x))


@pytape.primitive(arrays=True)
def scaled_shift(x, s, c):
    """x * s + c: a Tensor, a Var (a float in the rules) and a constant array."""
    return x * s + c


scaled_shift.defvjp(lambda ans, x, s, c: lambda g: g * s, lambda ans, x, s, c: lambda g: float(np.sum(g * x)),
                    None)


X0 = np.array([0.5, 1.5, -2.0, 0.75])


def test_one_instruction_with_the_users_reverse_and_forward_rules():
    x = pytape.Tensor(X0)
    with pytape.Tape() as t:
        y = cumprod(x)
        loss = np.sum(np.sin(y))
    assert len(t) == 4  # the leaf, the custom instruction, sin, sum
    np.testing.assert_array_equal(y.value, np.cumprod(X0))
    loss.backward()
    f = lambda v: np.sum(np.sin(np.cumprod(v)))  # noqa: E731
    np.testing.assert_allclose(x.grad, fd_grad(f, X0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pytape.grad(f_tensor)(X0), fd_grad(f, X0), rtol=1e-7, atol=1e-9)
    v = np.array([1.0, -0.5, 0.25, 2.0])
    _, jv = pytape.jvp(f_tensor, (X0,), (v,))
    assert jv == pytest.approx(float(fd_grad(f, X0) @ v), rel=1e-7)
    J = pytape.jacobian(lambda u: cumprod(u), mode="rev")(X0)
    np.testing.assert_allclose(J, pytape.jacobian(lambda u: cumprod(u), mode="fwd")(X0), rtol=1e-13)
    np.testing.assert_allclose(J, np.tril(np.cumprod(X0)[:, None] / X0[None, :]), rtol=1e-13)


def f_tensor(u):
    return np.sum(np.sin(cumprod(u)))


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    xt = torch.tensor(X0, requires_grad=True)
    torch.sum(torch.cumprod(xt, 0) ** 2).backward()
    np.testing.assert_allclose(pytape.grad(lambda u: np.sum(cumprod(u) ** 2))(X0), xt.grad.numpy(), rtol=1e-13)


def test_tensor_var_and_constant_arguments():
    x, s = pytape.Tensor(X0), pytape.Var(1.5)
    c = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.array([0.5, -1.0, 2.0, 1.0])
    y = scaled_shift(x, s, c)
    np.testing.assert_array_equal(y.value, X0 * 1.5 + c)
    np.sum(y * w).backward()
    np.testing.assert_array_equal(x.grad, w * 1.5)
    assert s.grad == pytest.approx(float(np.sum(w * X0)), rel=1e-15)


def test_an_operand_twice_gets_both_shares():
    mul = pytape.primitive(arrays=True)(lambda a, b: a * b).defvjp(lambda ans, a, b: lambda g: g * b,
                                                      lambda ans, a, b: lambda g: g * a)
    x = pytape.Tensor(X0)
    np.sum(mul(x, x)).backward()
    np.testing.assert_array_equal(x.grad, 2 * X0)


def test_rules_that_do_not_fit_raise_and_leave_the_tape_and_grads():
    only_jvp = pytape.primitive(arrays=True)(lambda a: a * 2.0).defjvp(lambda t, ans, a: 2.0 * t)
    with pytest.raises(NotImplementedError, match="no vjp rule for its argument 0.*give both"):
        pytape.grad(lambda u: np.sum(only_jvp(u)))(X0)
    bad_shape = pytape.primitive(arrays=True)(lambda a: a * 2.0).defvjp(lambda ans, a: lambda g: np.sum(g))
    x = pytape.Tensor(X0)
    y = np.sum(bad_shape(x))
    with pytest.raises(ValueError, match=r"returned shape \(\); it must be \(4,\)"):
        y.backward()
    assert not x.grad.any()
    boom = pytape.primitive(arrays=True)(lambda a: a * 2.0).defvjp(lambda ans, a: lambda g: 1 / 0)
    z = np.sum(boom(x))
    with pytest.raises(ZeroDivisionError):
        z.backward()
    assert not x.grad.any()
    np.sum(x * 3.0).backward()  # the thread's tapes still work
    assert x.grad.tolist() == [3.0] * 4
    with pytest.raises(TypeError, match="returns a real array"):
        pytape.primitive(arrays=True)(lambda a: "no")(x)


def test_second_order_through_it_raises_rather_than_answering_wrong():
    with pytest.raises(NotImplementedError, match="elementwise=True"):
        pytape.hvp(lambda u: np.sum(cumprod(u) ** 2), X0, np.ones(4))


def test_under_no_grad_and_with_constants_only():
    with pytape.no_grad():
        y = cumprod(pytape.Tensor(X0))
    assert not y.requires_grad and y.value.tolist() == np.cumprod(X0).tolist()
    c = cumprod(pytape.Tensor(X0, requires_grad=False))
    assert not c.requires_grad


def test_large_operands_that_die_keep_their_values_for_the_rules():
    """A result of 40000 elements that dies after the call (recycling gives
    back values no sweep reads): the rules still see the values they were
    recorded with."""
    x0 = np.linspace(0.5, 1.5, 40000)
    logistic = pytape.primitive(arrays=True)(lambda a: 1 / (1 + np.exp(-a))).defvjp(lambda ans, a: lambda g: g * ans * (1 - ans))
    x = pytape.Tensor(x0)
    y = np.sum(logistic(x * 2.0) ** 2)   # x * 2.0 dies once the primitive has read it
    padding = [np.exp(x + k) for k in range(3)]  # new buffers after it died: they would reuse its memory
    y.backward()
    s = 1 / (1 + np.exp(-2 * x0))
    np.testing.assert_allclose(x.grad, 2 * s * s * (1 - s) * 2.0, rtol=1e-13)
    del padding


def test_records_of_calls_are_forgotten_with_their_tapes():
    gc.collect()
    before = len(custom._ARRAY_CALLS)
    for _ in range(50):
        with pytape.Tape():
            cumprod(pytape.Tensor(X0))
    gc.collect()
    assert len(custom._ARRAY_CALLS) <= before + 1


def test_plain_arrays_and_object_arrays():
    np.testing.assert_array_equal(cumprod(X0), np.cumprod(X0))   # nothing recorded: f's value
    assert isinstance(cumprod(X0), np.ndarray)
    with pytest.raises(TypeError, match="arrays=True"):
        pytape.grad(lambda u: np.sum(cumprod(u)), elementwise=True)(X0)
    scalar = pytape.primitive(lambda a: a * a).defvjp(lambda ans, a: lambda g: 2.0 * a * g)
    # a scalar primitive (no arrays=True) inside a transformation: recorded again on object arrays, elementwise
    np.testing.assert_array_equal(pytape.grad(lambda u: np.sum(scalar(u)))(X0), 2 * X0)


def test_seen_in_the_table_and_caught_by_detect_anomaly():
    x = pytape.Tensor(X0)
    with pytape.Tape() as t:
        cumprod(x)
    row = [line for line in t.table().splitlines() if " custom " in line]
    assert len(row) == 1 and "(4,)" in row[0] and t.stats()["array_ops"].get("custom") == 1
    bad = pytape.primitive(arrays=True)(lambda a: np.log(a)).defvjp(lambda ans, a: lambda g: g / a)
    with pytape.detect_anomaly(), pytest.raises(FloatingPointError, match="nan"):
        with np.errstate(invalid="ignore"):
            bad(x)


def test_second_order_through_a_primitive_with_its_hvp_rule():
    @pytape.primitive(arrays=True)
    def mul(x, y):
        return x * y
    mul.defvjp(lambda ans, x, y: lambda g: g * y, lambda ans, x, y: lambda g: g * x)
    mul.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)
    # d/de of (g * y, g * x) along (tx, ty): (g * ty, g * tx); a zero tangent comes as None
    mul.defhvp(lambda ans, x, y: lambda g, tx, ty: (None if ty is None else g * ty, None if tx is None else g * tx))

    def f(x, y):
        return np.sum(np.sin(mul(x, y)) * x)

    def plain(x, y):
        return np.sum(np.sin(x * y) * x)
    rng = np.random.default_rng(4)
    x, y, v = rng.normal(size=3), rng.normal(size=3), rng.normal(size=3)
    H, Hp = pytape.hessian(f, argnums=(0, 1))(x, y), pytape.hessian(plain, argnums=(0, 1))(x, y)
    for a, b in zip(H, Hp):
        for u, w in zip(a, b):
            np.testing.assert_allclose(u, w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pytape.hvp(lambda x: f(x, y), x, v), pytape.hvp(lambda x: plain(x, y), x, v),
                               rtol=1e-12, atol=1e-12)
    bad = pytape.primitive(lambda x: x * 2.0, arrays=True).defvjp(lambda ans, x: lambda g: 2.0 * g)
    bad.defjvp(lambda t, ans, x: 2.0 * t)
    bad.defhvp(lambda ans, x: lambda g, t: 0.0)  # not a tuple
    with pytest.raises(TypeError, match="tuple of 1 terms"):
        pytape.hessian(lambda x: np.sum(bad(x) ** 2))(np.ones(2))
    with pytest.raises(TypeError, match="arrays=True"):
        pytape.primitive(lambda x: x).defhvp(lambda ans, x: None)
