"""The function transformations on array programs: f gets pytape.Tensor
leaves for its array arguments (one instruction per numpy operation), the
sweeps run in C; checked against the object-array path (elementwise=True,
the scalar engine on object arrays of Vars), finite differences and PyTorch."""
import numpy as np
import pytest

import pytape
from pytape import program

RNG = np.random.default_rng(7)
X = RNG.normal(size=(40, 3))
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 * RNG.normal(size=40) > 0).astype(float)


def logistic_loss(w):
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    return -np.mean(Y * np.log(p) + (1.0 - Y) * np.log(1.0 - p))


def mlp_layer(W, b, x):
    return np.tanh(x @ W + b)


def fd_grad(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        g[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def fd_jacobian(f, x, eps=1e-6):
    x = np.asarray(x, dtype=float)
    out = np.asarray(f(x))
    J = np.zeros(out.shape + x.shape)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        J[(Ellipsis,) + idx] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * eps)
    return J


def watch(monkeypatch):
    """Which argument types f sees: Tensor or object arrays."""
    seen = []
    init = program.TensorRecording.__init__

    def spy(self, *a, **k):
        seen.append("tensor")
        return init(self, *a, **k)
    monkeypatch.setattr(program.TensorRecording, "__init__", spy)
    return seen


# ---- what f gets -----------------------------------------------------------------------

def test_f_gets_tensors_for_arrays_and_vars_for_numbers():
    kinds = []

    def f(x, s):
        kinds.append((type(x).__name__, type(s).__name__))
        return np.sum(x * s)
    g = pytape.grad(f, argnums=(0, 1))(np.array([1.0, 2.0]), 3.0)
    assert kinds == [("TensorLeaf", "Leaf")]
    assert g[0].tolist() == [3.0, 3.0] and g[1] == 3.0
    kinds.clear()
    pytape.grad(f, argnums=(0, 1), elementwise=True)(np.array([1.0, 2.0]), 3.0)
    assert kinds == [("VarArray", "Leaf")]


def test_logistic_regression_gradient_matches_objects_fd_and_torch():
    w = np.array([0.1, -0.3, 0.2])
    g = pytape.grad(logistic_loss)(w)
    assert type(g) is np.ndarray and g.dtype == np.float64 and g.shape == (3,)
    assert np.allclose(g, pytape.grad(logistic_loss, elementwise=True)(w), rtol=1e-12, atol=1e-15)
    assert np.allclose(g, fd_grad(logistic_loss, w), rtol=1e-6, atol=1e-9)
    v, g2 = pytape.value_and_grad(logistic_loss)(w)
    assert type(v) is float and v == pytest.approx(logistic_loss(w), rel=1e-14) and np.array_equal(g, g2)
    torch = pytest.importorskip("torch")
    wt = torch.tensor(w, requires_grad=True)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    p = torch.sigmoid(Xt @ wt)
    (-(Yt * torch.log(p) + (1 - Yt) * torch.log(1 - p)).mean()).backward()
    assert np.allclose(g, wt.grad.numpy(), rtol=1e-12)


def test_mlp_layer_several_array_arguments_and_argnums():
    W, b, x = RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=(5, 3))
    loss = lambda W, b, x: np.sum(mlp_layer(W, b, x) ** 2)  # noqa: E731
    for argnums in (0, 1, 2, (0, 1), (2, 0), (0, 1, 2)):
        got = pytape.grad(loss, argnums=argnums)(W, b, x)
        want = pytape.grad(loss, argnums=argnums, elementwise=True)(W, b, x)
        got, want = (got, want) if isinstance(argnums, tuple) else ((got,), (want,))
        for a, c in zip(got, want):
            assert a.shape == c.shape and np.allclose(a, c, rtol=1e-12, atol=1e-14)
    assert np.allclose(pytape.grad(loss)(W, b, x), fd_grad(lambda W_: loss(W_, b, x), W), rtol=1e-6)


def test_broadcasting_and_jacobians_in_every_mode():
    def f(a, b):  # (3,) and (2, 1) broadcast to (2, 3)
        return np.sin(a) * b + a ** 2 / (1.0 + b ** 2)
    a, b = np.array([0.3, -1.0, 2.0]), np.array([[0.5], [-1.5]])
    for jac in (pytape.jacobian, pytape.jacfwd, pytape.jacrev):
        for argnums in (0, 1, (0, 1)):
            got = jac(f, argnums=argnums)(a, b)
            want = jac(f, argnums=argnums, elementwise=True)(a, b)
            got, want = (got, want) if isinstance(argnums, tuple) else ((got,), (want,))
            for G, W_ in zip(got, want):
                assert G.shape == W_.shape and np.allclose(G, W_, rtol=1e-13, atol=1e-15)
    J = pytape.jacobian(f)(a, b)
    assert J.shape == (2, 3, 3) and np.allclose(J, fd_jacobian(lambda u: f(u, b), a), rtol=1e-6, atol=1e-9)
    for mode in ("fwd", "rev"):
        assert np.allclose(pytape.jacobian(f, argnums=1, mode=mode)(a, b), fd_jacobian(lambda u: f(a, u), b),
                           rtol=1e-6, atol=1e-9)


def test_auto_mode_picks_the_cheaper_sweep_on_tensors(monkeypatch):
    calls = []
    rows, columns = program.TensorRecording.rows, program.TensorRecording.columns
    monkeypatch.setattr(program.TensorRecording, "rows", lambda self, s: calls.append("rev") or rows(self, s))
    monkeypatch.setattr(program.TensorRecording, "columns",
                        lambda self, j, s: calls.append("fwd") or columns(self, j, s))
    M = RNG.normal(size=(9, 2))
    wide = pytape.jacobian(lambda x: np.tanh(M @ x))(np.array([0.1, 0.2]))        # 2 in, 9 out
    tall = pytape.jacobian(lambda x: np.tanh(M.T @ x))(np.ones(9))                 # 9 in, 2 out
    assert calls == ["fwd", "rev"]
    assert wide.shape == (9, 2) and tall.shape == (2, 9)
    assert np.allclose(wide, (1 - np.tanh(M @ [0.1, 0.2]) ** 2)[:, None] * M, rtol=1e-13)


def test_vjp_with_the_cotangent_as_the_array_seed():
    A = RNG.normal(size=(4, 3))
    f = lambda x, y: np.exp(A @ x) * y  # noqa: E731
    x, y = np.array([0.1, 0.2, -0.3]), np.array([1.0, 2.0, 3.0, 4.0])
    value, fn = pytape.vjp(f, x, y)
    u = np.array([1.0, -1.0, 0.5, 2.0])
    gx, gy = fn(u)
    value2, fn2 = pytape.vjp(f, x, y, elementwise=True)
    ex, ey = fn2(u)
    assert np.allclose(value, value2) and np.allclose(gx, ex, rtol=1e-13) and np.allclose(gy, ey, rtol=1e-13)
    assert np.allclose(gx, u @ fd_jacobian(lambda v: f(v, y), x), rtol=1e-6)
    gx2, _ = fn(2.0 * u)   # the tape is kept: vjp_fn runs again
    assert np.allclose(gx2, 2.0 * gx, rtol=1e-14)
    with pytest.raises(ValueError, match="cotangent"):
        fn(np.ones(3))


def test_jvp_and_jacfwd_by_the_tangent_sweep(monkeypatch):
    import pytape._native as nat
    sweeps = []
    real = nat.tangent_sweep_arrays
    monkeypatch.setattr(nat, "tangent_sweep_arrays", lambda *a: sweeps.append(1) or real(*a))
    W, b = RNG.normal(size=(3, 2)), RNG.normal(size=2)
    x = RNG.normal(size=(4, 3))
    f = lambda W, b: mlp_layer(W, b, x)  # noqa: E731
    tW, tb = RNG.normal(size=W.shape), RNG.normal(size=b.shape)
    value, tangent = pytape.jvp(f, (W, b), (tW, tb))
    assert len(sweeps) == 1   # one sweep seeded on both arguments
    v2, t2 = pytape.jvp(f, (W, b), (tW, tb), elementwise=True)
    assert np.allclose(value, v2) and np.allclose(tangent, t2, rtol=1e-13)
    eps = 1e-6
    fd = (f(W + eps * tW, b + eps * tb) - f(W - eps * tW, b - eps * tb)) / (2 * eps)
    assert np.allclose(tangent, fd, rtol=1e-6, atol=1e-9)
    sweeps.clear()
    J = pytape.jacfwd(f)(W, b)
    assert len(sweeps) == W.size and J.shape == (4, 2, 3, 2)
    assert np.allclose(J, pytape.jacfwd(f, elementwise=True)(W, b), rtol=1e-13, atol=1e-15)
    # jvp of a scalar argument among arrays; a scalar output
    val, tan = pytape.jvp(lambda s, v: np.sum(v * s), (2.0, np.array([1.0, 3.0])), (1.0, np.array([0.5, 0.0])))
    assert val == 8.0 and tan == pytest.approx(4.0 + 1.0)


def test_pytrees_has_aux_and_dtypes():
    params = {"W": RNG.normal(size=(3, 2)), "b": np.zeros(2)}

    def loss(p, x):
        h = mlp_layer(p["W"], p["b"], x)
        return np.sum(h ** 2), {"h": h, "first": h[0, 0], "n": 3}
    x = RNG.normal(size=(5, 3))
    g, aux = pytape.grad(loss, has_aux=True)(params, x)
    g2, aux2 = pytape.grad(loss, has_aux=True, elementwise=True)(params, x)
    assert set(g) == {"W", "b"} and all(np.allclose(g[k], g2[k], rtol=1e-13, atol=1e-15) for k in g)
    assert type(aux["h"]) is np.ndarray and np.allclose(aux["h"], aux2["h"])
    assert type(aux["first"]) is float and aux["n"] == 3
    # a float32 argument: the gradient in float32, as on the object path
    g32 = pytape.grad(lambda v: np.sum(v ** 2))(np.array([1.0, 2.0], dtype=np.float32))
    assert g32.dtype == np.float32 and g32.tolist() == [2.0, 4.0]
    # a dict output: a tree of Jacobian blocks
    J = pytape.jacobian(lambda v: {"s": np.sum(v), "sq": v ** 2})(np.array([1.0, 2.0]))
    J2 = pytape.jacobian(lambda v: {"s": np.sum(v), "sq": v ** 2}, elementwise=True)(np.array([1.0, 2.0]))
    assert np.array_equal(J["s"], J2["s"]) and np.array_equal(J["sq"], J2["sq"])


def test_outputs_of_every_kind():
    x = np.array([1.0, 2.0, 3.0])
    assert pytape.grad(lambda v: 5.0)(x).tolist() == [0.0, 0.0, 0.0]             # a constant
    assert pytape.grad(lambda v, s: s * 2.0, argnums=(0, 1))(x, 1.0)[1] == 2.0     # a Var
    assert pytape.jacobian(lambda v: v)(x).tolist() == np.eye(3).tolist()          # the argument itself
    J = pytape.jacobian(lambda v: [v[0] * v[1], np.sum(v)])(x)                     # a list of 0-d Tensors
    assert J.tolist() == [[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    J = pytape.jacobian(lambda v, s: [v * s, v], argnums=1)(x, 2.0)                # a list of Tensors
    assert J.tolist() == [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
    assert pytape.jacobian(lambda v: np.zeros((2, 2)))(x).shape == (2, 2, 3)       # a constant array
    assert pytape.grad(lambda v: pytape.Tensor([1.0], requires_grad=False).sum() + 0.0 * v[0])(x).tolist() == [0.0, 0.0, 0.0]


def test_np_array_of_elements_is_recorded_again_on_object_arrays():
    # np.array([t0, t1]) converts Tensors, which numpy gives no hook to record:
    # f is recorded again on object arrays, with the same derivatives
    f = lambda v: np.array([v[0] * v[1], np.sin(v[2])])  # noqa: E731
    x = np.array([1.0, 2.0, 0.5])
    assert np.allclose(pytape.jacobian(f)(x), fd_jacobian(f, x), rtol=1e-7, atol=1e-9)


def test_unknown_numpy_functions_raise_with_a_hint():
    with pytest.raises(TypeError, match="np.sinc.*elementwise=True"):
        pytape.grad(lambda v: np.sum(np.sinc(v)))(np.array([0.3, 0.4]))
    g = pytape.grad(lambda v: np.sum(np.sinc(v)), elementwise=True)(np.array([0.3, 0.4]))
    assert np.allclose(g, fd_grad(lambda v: np.sum(np.sinc(v)), np.array([0.3, 0.4])), rtol=1e-6)
    with pytest.raises(TypeError, match="not one of its arguments"):
        w = pytape.Tensor([1.0, 2.0])
        pytape.grad(lambda v: np.sum(v * w))(np.array([1.0, 1.0]))
    assert pytape.grad(lambda v: np.sum(v * w.detach()))(np.array([1.0, 1.0])).tolist() == [1.0, 2.0]
    c = w * 2.0   # a result of another tape
    with pytest.raises(TypeError, match="pytape.Tensor from outside"):
        pytape.grad(lambda v: np.sum(v * c))(np.array([1.0, 1.0]))
    assert pytape.grad(lambda v: np.sum(v * c.detach()))(np.array([1.0, 1.0])).tolist() == [2.0, 4.0]


def test_under_no_grad_the_transformations_still_differentiate():
    with pytape.no_grad():
        g = pytape.grad(logistic_loss)(np.array([0.1, 0.2, 0.3]))
    assert np.allclose(g, pytape.grad(logistic_loss, elementwise=True)(np.array([0.1, 0.2, 0.3])), rtol=1e-12)


# ---- what stays on object arrays --------------------------------------------------------

def test_second_order_and_composition_give_the_same_numbers(monkeypatch):
    def f(x):
        return np.sum(np.sin(x) ** 2 * x[::-1]) + np.prod(x)
    x = np.array([0.3, -0.7, 1.1])
    H = pytape.hessian(f)(x)
    H_fd = fd_jacobian(lambda u: pytape.grad(f, elementwise=True)(u), x)
    assert np.allclose(H, H_fd, rtol=1e-6, atol=1e-8)
    seen = watch(monkeypatch)
    assert np.allclose(pytape.jacobian(pytape.grad(f))(x), H, rtol=1e-12, atol=1e-14)
    assert seen == ["tensor"]  # the outer recording tried Tensors, then f's grad asked for object arrays
    v = np.array([1.0, 0.5, -2.0])
    assert np.allclose(pytape.hvp(f, x, v), H @ v, rtol=1e-12)
    assert np.allclose(pytape.jvp(pytape.grad(f), (x,), (v,))[1], H @ v, rtol=1e-12)

    def calls_grad(y):   # grad of a function calling grad
        return np.sum(pytape.grad(f)(y) * y)
    g = pytape.grad(calls_grad)(x)
    assert np.allclose(g, fd_grad(lambda u: np.sum(pytape.grad(f, elementwise=True)(u) * u), x), rtol=1e-6)
    assert np.allclose(g, pytape.grad(f)(x) + H @ x, rtol=1e-12)


def test_hessian_and_hvp_record_tensors_unless_elementwise(monkeypatch):
    seen = watch(monkeypatch)
    f = lambda v: np.sum(v ** 3)  # noqa: E731
    x = np.array([1.0, 2.0])
    H = pytape.hessian(f)(x)
    Hv = pytape.hvp(f, x, np.array([1.0, 0.0]))
    assert seen == ["tensor", "tensor"]
    assert H.tolist() == [[6.0, 0.0], [0.0, 12.0]] and Hv.tolist() == [6.0, 0.0]
    assert pytape.hessian(f, elementwise=True)(x).tolist() == H.tolist()
    assert pytape.hvp(f, x, np.array([1.0, 0.0]), elementwise=True).tolist() == Hv.tolist()
    assert seen == ["tensor", "tensor"]


def test_a_closure_over_an_outer_var_records_on_object_arrays():
    c = pytape.Var(2.0)
    g = pytape.grad(lambda v: np.sum(v * c))(np.array([1.0, 3.0]))
    assert [float(e) for e in g] == [2.0, 2.0]


def test_nested_inside_an_object_recording_gets_object_arrays(monkeypatch):
    seen = watch(monkeypatch)
    f = lambda x: np.sum(pytape.grad(lambda y: np.sum(y ** 3))(x) * x)  # noqa: E731
    g = pytape.grad(f, elementwise=True)(np.array([1.0, 2.0]))
    assert [float(e) for e in g] == [9.0, 36.0] and seen == []


def test_with_more_tapes_alive_than_handle_ids_tensors_still_record(monkeypatch):
    # a tape without an id names its instructions by handles of id 0, which C resolves through the
    # tape Python names for the call (_native.on_unregistered)
    import warnings
    seen = watch(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the slow-path warning of the 64th tape
        tapes = [pytape.Tape() for _ in range(2 ** pytape._native.ID_BITS)]
        assert tapes[-1]._c.id == 0
        w = np.array([0.1, -0.3, 0.2])
        g = pytape.grad(logistic_loss)(w)
        with tapes[-1]:
            x = pytape.Tensor([1.0, 2.0])
            y = np.exp(x) * pytape.Var(3.0) + x[::-1]
            assert y.shape == (2,) and np.allclose(y.value, 3.0 * np.exp([1.0, 2.0]) + [2.0, 1.0])
            y.sum().backward()
        assert np.allclose(x.grad, 3.0 * np.exp([1.0, 2.0]) + 1.0)
    del tapes
    assert seen == ["tensor"] * len(seen) and seen
    assert np.allclose(g, pytape.grad(logistic_loss, elementwise=True)(w), rtol=1e-12)


# ---- reading an argument's values inside f -----------------------------------------------

@pytest.mark.parametrize("f", [
    lambda x: np.sum(x[x > 0] ** 2),                                  # a mask from a comparison
    lambda x: np.sum(np.where(x > 0, x ** 3, np.exp(x))),             # np.where on a comparison
    lambda x: np.sum((x > 0) * x * x),
    lambda x: np.sum(x * x) * (2.0 if float(x[0, 0]) > 0 else 1.0),  # a Python branch on an element
    lambda x: np.sum(x * x) * float(np.sum(getattr(x, "value", x)) > 0),   # x.value itself
    lambda x: np.sum(x ** 3) * (1.0 if x.tolist()[0][0] > 0 else 2.0),
], ids=["mask", "where", "times comparison", "float branch", "value", "tolist"])
def test_reading_the_arguments_values_keeps_the_derivatives(f):
    """Values read from an argument (comparisons, float(), .value) come from
    the argument's read-only view: the recording still differentiates with
    respect to it (reading .value used to place the leaf again, and the
    derivatives went to the copy: zero, silently)."""
    x = np.array([[0.3, -0.7, 1.1], [0.9, 0.2, -0.4]])
    g = pytape.grad(f)(x)
    assert np.abs(g).max() > 0.1
    np.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-6, atol=1e-8)
    v = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    np.testing.assert_allclose(pytape.hvp(f, x, v), pytape.hvp(f, x, v, elementwise=True), rtol=1e-12, atol=1e-12)


def test_an_argument_is_read_only_inside_f():
    def f(x):
        with pytest.raises(ValueError):
            x.value[0] = 1.0          # numpy: assignment destination is read-only
        with pytest.raises(TypeError, match="read only"):
            x.value = np.zeros(3)
        return np.sum(x * x)
    np.testing.assert_array_equal(pytape.grad(f)(np.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])
    leaf = pytape.Tensor([1.0, 2.0])  # outside transformations a leaf's value stays its own writable array
    leaf.value[0] = 5.0
    assert leaf.value.tolist() == [5.0, 2.0]
