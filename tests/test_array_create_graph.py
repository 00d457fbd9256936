"""create_graph on array tapes (pytape/array_adjoints.py): the reverse sweep
over array instructions recorded as Tensor operations, so that gradients of
numpy programs are Tensors that can be differentiated again, to any order:
``pytape.autograd.grad(..., create_graph=True)`` on Tensors and nested
transformations (``grad(grad(f))``, pytape/nested.py NestedTensorRecording).

Oracles:

* second order: C's forward-over-reverse Hessian of the same program
  (``pytape.hessian``, test_array_second_order.py checks it against the
  scalar engine and finite differences) and the scalar engine's
  (``elementwise=True``);
* third order: the scalar engine's nested transformations on object arrays
  of Vars (pytape/higher_order.py, checked on its own);
* PyTorch's double backward, when installed.
"""
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import pytape
from pytape import _native
from pytape import tensor as tensor_module
from test_array_oracle import BINARY, COMPARISONS, UNARY, _binary_tensor_fn, weights
from test_array_second_order import KINDS, binary_case, programs, run_program, unary_case

RTOL, ATOL = 1e-10, 1e-10


def double_backward_hessian(f, x):
    """The Hessian as the Jacobian of the recorded gradient (one recorded reverse sweep per row)."""
    return np.asarray(pytape.jacobian(pytape.grad(f))(x))


def check_second(f, x, el_f=None, rtol=RTOL, atol=ATOL, elementwise=True):
    H = double_backward_hessian(f, x)
    np.testing.assert_allclose(H, pytape.hessian(f)(x), rtol=rtol, atol=atol)
    if elementwise:
        np.testing.assert_allclose(H, pytape.hessian(el_f or f, elementwise=True)(x), rtol=rtol, atol=atol)
    return H


def uses_tensor_instructions(f, x):
    """f's gradient recorded inside a transformation is Tensor operations (no object arrays)."""
    seen = []

    def outer(u):
        g = pytape.grad(f)(u)
        seen.append(type(g).__name__)
        return np.sum(g)
    pytape.grad(outer)(x)
    return seen == ["TensorResult"]


# =============================================================================
# every op-table row and every kind: grad of grad equals C's Hessian
# =============================================================================

@pytest.mark.parametrize("name", UNARY)
def test_unary_row(name):
    a, w = unary_case(name)
    fn = getattr(pytape, name)
    check_second(lambda x: np.sum(w * fn(x)), a)


@pytest.mark.parametrize("name", [n for n in BINARY if n not in COMPARISONS])
def test_binary_row_broadcast_and_with_numbers(name):
    a, b, w, c, c2 = binary_case(name)
    fn = _binary_tensor_fn(name)
    el = name not in ("chain", "where_t", "where_f")  # no function of Vars of that name
    split = lambda u: (u[:12].reshape(3, 4), u[12:])  # noqa: E731  both operands' blocks at once
    check_second(lambda u: np.sum(w * fn(*split(u))), np.concatenate([a.ravel(), b]), elementwise=el)
    check_second(lambda x: np.sum(w * fn(x, c)), a, elementwise=el)
    check_second(lambda y: np.sum(w[0] * fn(c2, y)), b, elementwise=el)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind(name):
    f, x, *el_f = KINDS[name]
    check_second(f, x, el_f=el_f[0] if el_f else None)
    assert uses_tensor_instructions(f, x)


@pytest.mark.parametrize("name", ["views", "gathers", "cumsum", "prod with two zeros", "batched matmul",
                                  "max and min", "concat and stack", "matmul of the argument with itself"])
def test_third_order_against_the_scalar_engine(name):
    """d/dx of (the Hessian along w): nested three deep on Tensors against
    the same on object arrays of Vars."""
    f, x, *_ = KINDS[name]
    w = weights(np.shape(x), np.random.default_rng(zlib.crc32(name.encode())))

    def g(u, el):
        return np.sum(pytape.grad(f, elementwise=el)(u) * w)
    T = np.asarray(pytape.jacobian(pytape.grad(lambda u: g(u, False)))(x))
    T_el = np.asarray(pytape.hessian(lambda u: g(u, True), elementwise=True)(x))
    np.testing.assert_allclose(T, T_el, rtol=1e-9, atol=1e-9)


@settings(max_examples=int(os.environ.get("PYTAPE_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs(prog):
    steps, shape, seed = prog
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)
    f = lambda u: run_program(steps, u)  # noqa: E731
    H = double_backward_hessian(f, x)
    np.testing.assert_allclose(H, pytape.hessian(f)(x), rtol=1e-9, atol=1e-9)


# =============================================================================
# pytape.autograd.grad on Tensors
# =============================================================================

def test_autograd_grad_leaves_grads_alone_and_matches_backward():
    rng = np.random.default_rng(0)
    W = pytape.Tensor(rng.normal(size=(3, 4)))
    x = pytape.Tensor(rng.normal(size=3))
    y = np.sum(np.tanh(x @ W) ** 2)
    gW, gx = pytape.autograd.grad(y, [W, x], retain_graph=True)
    assert not W.grad.any() and not x.grad.any()  # autograd.grad accumulates nothing
    y.backward()
    np.testing.assert_array_equal(gW, W.grad)
    np.testing.assert_array_equal(gx, x.grad)


def test_autograd_grad_create_graph_to_third_order():
    x = pytape.Tensor(np.array([0.5, -1.0, 2.0]))
    (g,) = pytape.autograd.grad(np.sum(np.sin(x) * x ** 2), x, create_graph=True)
    (h,) = pytape.autograd.grad(np.sum(g), x, create_graph=True)
    (t,) = pytape.autograd.grad(np.sum(h), x)
    v = x.value
    np.testing.assert_allclose(g.value, np.cos(v) * v ** 2 + 2 * v * np.sin(v), rtol=1e-14)
    np.testing.assert_allclose(h.value, -np.sin(v) * v ** 2 + 4 * v * np.cos(v) + 2 * np.sin(v), rtol=1e-14)
    np.testing.assert_allclose(t, -np.cos(v) * v ** 2 - 6 * v * np.sin(v) + 6 * np.cos(v), rtol=1e-13)


def test_autograd_grad_outputs_and_errors():
    x = pytape.Tensor(np.array([1.0, 2.0]))
    y = x * 3.0
    with pytest.raises(RuntimeError, match="one-element"):
        pytape.autograd.grad(y, x, retain_graph=True)
    with pytest.raises(ValueError, match="shape"):
        pytape.autograd.grad(y, x, grad_outputs=np.ones(3), retain_graph=True)
    (g,) = pytape.autograd.grad(y, x, grad_outputs=np.array([1.0, 10.0]), retain_graph=True)
    np.testing.assert_array_equal(g, [3.0, 30.0])
    u = pytape.Tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="not used"):
        pytape.autograd.grad(np.sum(y), [x, u], retain_graph=True)
    g, none = pytape.autograd.grad(np.sum(y), [x, u], allow_unused=True)
    assert none is None and np.array_equal(g, [3.0, 3.0])
    with pytest.raises(pytape.TapeConsumedError):
        pytape.autograd.grad(np.sum(y), x)
    # a Tensor seed with create_graph stays in the graph: d/dv (v . J) = J
    z = pytape.Tensor(np.array([0.3, 0.7]))
    v = pytape.Tensor(np.array([2.0, -1.0]))
    (gz,) = pytape.autograd.grad(z * z, z, grad_outputs=v, create_graph=True)
    (gv,) = pytape.autograd.grad(np.sum(gz), v)
    np.testing.assert_allclose(gv, 2 * z.value)


def test_autograd_grad_against_pytorch_double_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    W0, b0, X0 = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=(8, 5))
    W, b, X = pytape.Tensor(W0), pytape.Tensor(b0), pytape.Tensor(X0)
    loss = np.sum(np.log1p(np.exp(np.tanh(X @ W + b))) ** 2)
    gW, gX = pytape.autograd.grad(loss, [W, X], create_graph=True)
    penalty = np.sum(gX ** 2) + np.sum(gW * gW * gW)  # a gradient penalty, as in WGAN-GP
    out = pytape.autograd.grad(penalty, [W, b, X])
    Wt, bt, Xt = (torch.tensor(a, requires_grad=True) for a in (W0, b0, X0))
    lt = torch.sum(torch.log1p(torch.exp(torch.tanh(Xt @ Wt + bt))) ** 2)
    gWt, gXt = torch.autograd.grad(lt, [Wt, Xt], create_graph=True)
    want = torch.autograd.grad(torch.sum(gXt ** 2) + torch.sum(gWt ** 3), [Wt, bt, Xt])
    for a, b_ in zip(out, want):
        np.testing.assert_allclose(a, b_.numpy(), rtol=1e-11, atol=1e-12)


# =============================================================================
# nested transformations on Tensors
# =============================================================================

def test_no_perturbation_confusion():
    """x * d/dy (x + y) = x: the inner derivative is the adjoint of the inner
    argument's own slot, never mixed with paths through the outer x."""
    x = np.array([3.0, -2.0])
    f = lambda u: np.sum(u * pytape.grad(lambda y: np.sum(u + y))(u))  # noqa: E731
    np.testing.assert_array_equal(pytape.grad(f)(x), [1.0, 1.0])


def test_closures_over_outer_tensors_and_user_tensors():
    """A gradient taken of Tensors the user recorded (a Tensor argument, a
    closure) is recorded too: backward() through it is the total derivative."""
    x = pytape.Tensor(np.array([1.0, 2.0]))
    g = pytape.grad(lambda y: np.sum(y * y * x))(x)  # 2 y x at y = x
    assert isinstance(g, pytape.Tensor)
    np.sum(g).backward()
    np.testing.assert_array_equal(x.grad, 4 * x.value)


def test_every_transformation_nests_on_tensors():
    x = np.array([0.3, -0.8, 1.2])
    f = lambda u: np.sum(np.sin(u) * u[::-1]) + np.prod(u) ** 2  # noqa: E731
    H = pytape.hessian(f)(x)
    np.testing.assert_allclose(pytape.jacobian(pytape.grad(f))(x), H, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pytape.jacfwd(pytape.grad(f))(x), H, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pytape.hessian(lambda u: np.sum(pytape.grad(f)(u) * x))(x),
                               pytape.hessian(lambda u: np.sum(pytape.grad(f, elementwise=True)(u) * x),
                                              elementwise=True)(x), rtol=1e-10, atol=1e-10)
    v = np.array([1.0, 0.5, -2.0])
    np.testing.assert_allclose(pytape.grad(lambda u: np.sum(pytape.hvp(f, u, v)))(x),
                               pytape.grad(lambda u: np.sum(pytape.hvp(f, u, v, elementwise=True)),
                                           elementwise=True)(x), rtol=1e-10, atol=1e-10)
    jv = pytape.grad(lambda u: np.sum(pytape.jvp(pytape.grad(f), (u,), (v,))[1]))(x)
    np.testing.assert_allclose(jv, pytape.grad(lambda u: np.sum(H @ v) * 0 + np.sum(
        pytape.jvp(pytape.grad(f, elementwise=True), (u,), (v,), elementwise=True)[1]), elementwise=True)(x),
        rtol=1e-10, atol=1e-10)

    def through_vjp(u):
        value, back = pytape.vjp(lambda w: np.sin(w) * w, u)
        (g,) = back(np.cos(u))  # a Tensor cotangent: recorded
        return np.sum(g) + np.sum(value)
    np.testing.assert_allclose(pytape.grad(through_vjp)(x), pytape.grad(through_vjp, elementwise=True)(x),
                               rtol=1e-12, atol=1e-12)
    vg = pytape.grad(lambda u: pytape.value_and_grad(f)(u)[0] + np.sum(pytape.value_and_grad(f)(u)[1]))(x)
    np.testing.assert_allclose(vg, pytape.grad(f)(x) + H.sum(axis=0), rtol=1e-12)


def test_custom_primitives_and_checkpoint_under_grad_of_grad():
    @pytape.primitive(arrays=True)
    def cube(x):
        return x ** 3
    cube.defvjp(lambda ans, x: lambda g: 3.0 * g * x ** 2)  # numpy on Tensors: recorded
    x = np.linspace(-1.0, 1.0, 5)
    np.testing.assert_allclose(pytape.jacobian(pytape.grad(lambda u: np.sum(cube(u) * u)))(x),
                               np.diag(12 * x ** 2), rtol=1e-13, atol=1e-14)
    step = pytape.checkpoint(lambda u: u + 0.1 * np.sin(u))

    def f(u, ck):
        for _ in range(4):
            u = step(u) if ck else u + 0.1 * np.sin(u)
        return np.sum(u ** 2)
    np.testing.assert_array_equal(pytape.jacobian(pytape.grad(lambda u: f(u, True)))(x),
                                  pytape.jacobian(pytape.grad(lambda u: f(u, False)))(x))


def test_large_arrays_whose_memory_is_recycled():
    """Intermediates of 40000 elements die while f runs (their value buffers
    go back unless a sweep reads them): the recorded sweep reads only values
    the first-order sweep keeps, so H v by double backward equals C's hvp."""
    rng = np.random.default_rng(3)
    x, v = rng.uniform(-1, 1, 40000), rng.normal(size=40000)

    def big(u):
        y = np.exp(0.5 * u) * np.tanh(u)
        z = y * y / (1.0 + u * u)
        return np.sum(np.sin(z) + z * u) + np.sum(np.cumsum(z)[::100] ** 2) * 1e-6
    hv = pytape.grad(lambda u: np.sum(pytape.grad(big)(u) * v))(x)
    np.testing.assert_allclose(hv, pytape.hvp(big, x, v), rtol=1e-12, atol=1e-12)


def test_traced_grad_of_grad_replays_and_saves():
    """pytape.trace of a function holding a gradient: its recorded sweep (with
    SCATTER instructions, the adjoints of views and gathers) replays at new
    points as a fresh recording, and survives to_bytes / from_bytes."""
    f = lambda u: np.sum(np.tanh(u[1:] * u[:-1]) ** 2) + np.sum(u[[0, 2, 2]] ** 3)  # noqa: E731
    g = lambda u: np.sum(pytape.grad(f)(u) ** 2)  # noqa: E731
    x0 = np.linspace(-1.0, 1.0, 6)
    fn = pytape.trace(g, x0)
    kinds = fn.tape._c.array_facts()[:, _native.FACT_KIND]
    assert _native.ARRAY_KINDS["SCATTER"] in kinds
    again = pytape.CompiledFunction.from_bytes(fn.to_bytes())
    for x in (x0, np.linspace(-2.0, 0.5, 6), np.random.default_rng(1).normal(size=6)):
        want = pytape.value_and_grad(g)(x)
        for h in (fn, again):
            value, grad = h.value_and_grad(x)
            np.testing.assert_allclose(value, want[0], rtol=1e-13)
            np.testing.assert_allclose(grad, want[1], rtol=1e-12, atol=1e-13)


def test_scatter_instruction_checks_its_indices():
    from pytape.array_ops import KIND, record
    x = pytape.Tensor(np.array([1.0, 2.0, 3.0]))
    y = record(KIND["SCATTER"], [x], (2,), [0, 1, 1])  # [1, 2 + 3]
    np.testing.assert_array_equal(y.value, [1.0, 5.0])
    np.sum(y * np.array([10.0, 100.0])).backward()
    np.testing.assert_array_equal(x.grad, [10.0, 100.0, 100.0])  # its adjoint gathers
    for bad in ([0, 1, 2], [0, -1, 1], [0, 1]):
        with pytest.raises(ValueError):
            record(KIND["SCATTER"], [x], (2,), bad)


def test_a_gradient_inside_a_tensor_recording_stays_tensor_operations(monkeypatch):
    """No fallback to object arrays: the object-array recording is never made."""
    from pytape import functional
    calls = []
    real = functional.Recording
    monkeypatch.setattr(functional, "Recording", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = np.linspace(0.1, 1.0, 50)
    pytape.hessian(lambda u: np.sum(pytape.grad(lambda w: np.sum(np.exp(w) * w))(u) ** 2))(x)
    assert not calls
    assert tensor_module.TensorResult  # the module is the one tests patch elsewhere


def test_a_tape_of_tensors_and_vars():
    """Scalar instructions between array ones (a Var's sin, a 0-d operand):
    the recorded sweep passes through both; the same program on Vars only is
    the oracle, to second order."""
    x = pytape.Tensor(np.array([1.0, 2.0]))
    s = pytape.Var(1.5)
    y = np.sum(x * pytape.sin(s * s)) * s
    gx, gs = pytape.autograd.grad(y, [x, s], create_graph=True)
    hx, hs = pytape.autograd.grad(np.sum(gx) + gs, [x, s])
    xs, t = [pytape.Var(1.0), pytape.Var(2.0)], pytape.Var(1.5)
    z = (xs[0] + xs[1]) * pytape.sin(t * t) * t
    g = pytape.autograd.grad(z, xs + [t], create_graph=True)
    want = pytape.autograd.grad(g[0] + g[1] + g[2], xs + [t])
    np.testing.assert_allclose(gx.value, [g[0].value, g[1].value], rtol=1e-15)
    np.testing.assert_allclose(float(gs.value), g[2].value, rtol=1e-15)
    np.testing.assert_allclose(hx, want[:2], rtol=1e-14)
    np.testing.assert_allclose(hs, want[2], rtol=1e-14)


def test_max_with_ties_shares_as_the_first_order_sweep():
    """At a tie the adjoint is shared evenly (torch.amax's rule), in the
    recorded sweep as in C's: max(x^2) at x = (1, -1, 0.5) has Hessian
    diag(1, 1, 0), min over rows with a tie of two 2s the block 3."""
    for f, x in ((lambda u: np.max(u * u), np.array([1.0, -1.0, 0.5])),
                 (lambda u: np.sum(np.min(u, axis=1) ** 3), np.array([[2.0, 2.0], [1.0, 3.0]]))):
        np.testing.assert_array_equal(double_backward_hessian(f, x), pytape.hessian(f)(x))


def test_autograd_grad_sums_every_placement_of_a_leaf():
    """A leaf whose value was handed out for writing (``x.value``) is placed
    again at its next use: two LEAF slots on one tape. backward() adds both
    adjoints into .grad; autograd.grad sums them too, with and without
    create_graph."""
    x = pytape.Tensor(np.array([1.0, 2.0]))
    y1 = x * 2.0
    assert x.value is not None  # the next use of x is a new placement
    y = np.sum(y1 * x)  # 2 x**2
    assert len(y._t._c.array_leaf_slots([x._g])[0]) == 2
    np.testing.assert_array_equal(pytape.autograd.grad(y, x, retain_graph=True)[0], [4.0, 8.0])
    (g,) = pytape.autograd.grad(y, x, create_graph=True)
    np.testing.assert_array_equal(g.value, [4.0, 8.0])
    np.testing.assert_array_equal(pytape.autograd.grad(np.sum(g), x, retain_graph=True)[0], [4.0, 4.0])
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    c = pytape.Tensor(np.ones(2), requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        pytape.autograd.grad(np.sum(pytape.Tensor(np.ones(2)) * c), c)
