"""Function transformations that compose (issue 10): grad of grad, closures
over outer Vars, Var arguments, the perturbation-confusion test; pytrees,
dtypes, size-1 outputs and plain aux values (JAX's and HIPS autograd's
conventions).

The oracles: exact formulas; the C forward-over-reverse Hessian
(``pytape.hessian``, an independent path from the recorded sweeps that
nesting uses); central finite differences of gradients.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytape

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# ---- the examples ---------------------------------------------------------

def test_grad_of_a_function_calling_grad_on_its_argument():
    outer = lambda x: np.sum(pytape.grad(lambda z: np.sum(z ** 3))(x))  # noqa: E731  sum 3 z**2
    g = pytape.grad(outer)(np.array([1.0, 2.0]))
    assert isinstance(g, np.ndarray) and g.dtype == np.float64
    assert g.tolist() == [6.0, 12.0]


def test_grad_of_a_function_whose_inner_grad_closes_over_the_outer_argument():
    def f(x):
        return pytape.grad(lambda y: x * y)(2.0) * x  # x * x
    assert pytape.grad(f)(3.0) == 6.0


@pytest.mark.parametrize("x", [-2.5, -1.0, 0.0, 0.5, 3.0, 1e6])
def test_no_perturbation_confusion(x):
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1, at the point y = x and at another point
    assert pytape.grad(lambda x: x * pytape.grad(lambda y: x + y)(x))(x) == 1.0
    assert pytape.grad(lambda x: x * pytape.grad(lambda y: x + y)(1.0))(x) == 1.0
    # and with a product: d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2 x
    assert pytape.grad(lambda x: x * pytape.grad(lambda y: x * y)(x))(x) == 2.0 * x


# ---- towers: every transformation inside every other -------------------------------

def test_grad_to_any_depth():
    f = lambda x: x ** 7  # noqa: E731
    g = f
    for k in range(1, 5):
        g = pytape.grad(g)
        assert g(1.5) == pytest.approx(math.perm(7, k) * 1.5 ** (7 - k), rel=1e-13)


def _rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


X = np.array([0.3, -0.7, 1.1, 0.4])
V = np.array([1.0, -2.0, 0.5, 3.0])


def test_jacobian_of_grad_is_the_hessian():
    H = pytape.hessian(_rosen)(X)
    for jac in (pytape.jacobian, pytape.jacfwd, pytape.jacrev):
        assert np.allclose(jac(pytape.grad(_rosen))(X), H, rtol=1e-13, atol=1e-10)


def test_jvp_of_grad_and_grad_of_a_function_calling_hvp_and_vjp():
    H = pytape.hessian(_rosen)(X)
    _, t = pytape.jvp(pytape.grad(_rosen), (X,), (V,))
    assert np.allclose(t, H @ V, rtol=1e-13)
    # d/dx [v . H(x) v] against finite differences of the same, from the C Hessian
    quad = lambda x: np.dot(V, pytape.hvp(_rosen, x, V))  # noqa: E731
    g = pytape.grad(quad)(X)
    eps = 1e-6
    fd = [(np.dot(V, pytape.hessian(_rosen)(X + eps * e) @ V) - np.dot(V, pytape.hessian(_rosen)(X - eps * e) @ V))
          / (2 * eps) for e in np.eye(4)]
    assert np.allclose(g, fd, rtol=1e-6, atol=1e-5)
    # vjp inside grad: d/dx [u . J(x)] with J the Jacobian of x -> x**3
    u = np.array([1.0, 2.0, 3.0, 4.0])
    inner = lambda x: np.sum(pytape.vjp(lambda z: z ** 3, x)[1](u)[0])  # noqa: E731  sum 3 u z**2
    assert np.allclose(pytape.grad(inner)(X), 6.0 * u * X, rtol=1e-14)
    # jvp inside grad: sum of J v for x -> sin(x), d/dx = -sin(x) v
    inner = lambda x: np.sum(pytape.jvp(lambda z: pytape.sin(z), (x,), (V,))[1])  # noqa: E731
    assert np.allclose(pytape.grad(inner)(X), -np.sin(X) * V, rtol=1e-14)


def test_hessian_of_a_function_calling_grad_and_jacobian_of_jacobian():
    f = lambda x: np.sum(pytape.grad(_rosen)(x) ** 2)  # noqa: E731  |grad|^2: Hessian 2 (H H + sum g_i T_i)
    H = pytape.hessian(f)(X)
    eps = 1e-5
    fd = np.array([(pytape.grad(f)(X + eps * e) - pytape.grad(f)(X - eps * e)) / (2 * eps) for e in np.eye(4)])
    assert np.allclose(H, fd, rtol=1e-6, atol=1e-4)
    J2 = pytape.jacobian(pytape.jacobian(lambda x: x ** 3))(X)  # d2/dx2 of x**3: 6 x on the diagonal
    expected = np.zeros((4, 4, 4))
    for i in range(4):
        expected[i, i, i] = 6.0 * X[i]
    assert np.allclose(J2, expected, rtol=1e-14)


# ---- closures over outer Vars ---------------------------------------------------

def test_closure_over_a_users_leaf_returns_vars_that_backward_differentiates():
    w = pytape.Var(2.0)
    g = pytape.grad(lambda x: w * x ** 2)(3.0)   # 2 w x
    assert isinstance(g, pytape.Var) and g.value == 12.0
    g.backward()
    assert w.grad == 6.0                          # d/dw (2 w x) = 2 x


def test_closure_over_a_users_result():
    w = pytape.Var(2.0)
    u = pytape.exp(w)
    g = pytape.grad(lambda x: u * pytape.sin(x))(0.5)   # e^w cos x
    g.backward()
    assert g.value == pytest.approx(math.exp(2.0) * math.cos(0.5), rel=1e-15)
    assert w.grad == pytest.approx(math.exp(2.0) * math.cos(0.5), rel=1e-15)


def test_closure_in_a_tower_three_deep():
    # h(x) = d/dy [ d/dz (x y z^2) ] at y = x, z = x: d/dz = 2 x y z, d/dy = 2 x z; h = 2 x^2
    def h(x):
        return pytape.grad(lambda y: pytape.grad(lambda z: x * y * z * z)(x))(x)
    assert pytape.grad(h)(1.5) == pytest.approx(4.0 * 1.5, rel=1e-15)


def test_var_arguments_give_vars():
    x = pytape.Var(0.7)
    g = pytape.grad(pytape.sin)(x)                  # cos x, a Var on x's tape
    assert isinstance(g, pytape.Var)
    (d2,) = pytape.autograd.grad(g, x)
    assert d2 == pytest.approx(-math.sin(0.7), rel=1e-15)
    xs = np.array([pytape.Var(1.0), pytape.Var(2.0)], dtype=object)
    J = pytape.jacobian(lambda v: v ** 2)(xs)       # diag(2 v), Vars
    assert J.dtype == object and J[1, 1].value == 4.0
    J[1, 1].backward()
    assert xs[1].grad == 2.0 and xs[0].grad == 0.0


def test_a_transformation_inside_a_traced_function_replays():
    fn = pytape.trace(lambda x: x * pytape.grad(lambda y: x * y ** 3)(x), 1.0)   # x * 3 x y^2 at y = x: 3 x^4
    for x in (0.5, 2.0, -1.5):
        assert fn(x) == pytest.approx(3.0 * x ** 4, rel=1e-14)
        assert fn.gradient(x) == pytest.approx(12.0 * x ** 3, rel=1e-14)


def test_vars_of_two_tapes_in_the_arguments_raise():
    with pytape.Tape():
        a = pytape.Var(1.0) * 2.0
    with pytape.Tape():
        b = pytape.Var(1.0) * 3.0
    with pytest.raises(ValueError, match="different tapes"):
        pytape.grad(lambda x, y: x * y)(a, b)


def test_a_function_that_creates_its_own_vars_still_gets_right_derivatives():
    def f(x):
        c = pytape.Var(3.0)   # not an argument: pytape records f on the outer tape
        return c * x * x
    g = pytape.grad(f)(2.0)
    assert float(g) == 12.0


# ---- random programs: the second-order identities ----------------------------------

UNARY = ["sin", "cos", "tanh", "sigmoid", "atan", "exp"]
program = st.lists(st.tuples(st.sampled_from(["unary", "mul", "add", "sub"] + ["unary"] * 2),
                             st.sampled_from(UNARY), st.integers(0, 100), st.integers(0, 100)),
                   min_size=1, max_size=8)


def _build(prog):
    def f(x):
        nodes = list(x)
        for kind, name, i, j in prog:
            a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
            if kind == "unary":
                nodes.append(getattr(pytape, name)(a * 0.5))
            elif kind == "mul":
                nodes.append(a * b)
            elif kind == "add":
                nodes.append(a + b)
            else:
                nodes.append(a - b)
        return sum(nodes[len(x):]) + nodes[0] * nodes[-1]
    return f


@SETTINGS
@given(program, st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_second_order_identities_on_random_programs(prog, x):
    f = _build(prog)
    x = np.array(x)
    H = pytape.hessian(f)(x)
    tol = dict(rtol=1e-10, atol=1e-10)
    assert np.allclose(pytape.jacobian(pytape.grad(f))(x), H, **tol)                  # jacobian(grad) = hessian
    diag = [pytape.grad(lambda xi, i=i: pytape.grad(f)(np.concatenate([x[:i], [xi], x[i + 1:]]))[i])(x[i])
            for i in range(3)]
    assert np.allclose(diag, np.diag(H), **tol)                                         # grad(grad) = diag
    v = np.array([0.3, -1.0, 2.0])
    assert np.allclose(pytape.jvp(pytape.grad(f), (x,), (v,))[1], H @ v, **tol)       # jvp(grad) = hvp
    assert np.allclose(pytape.hvp(f, x, v), H @ v, **tol)
    closed = lambda x0: pytape.grad(lambda y: f(x0 + y))(np.zeros(3))  # noqa: E731  a closure over x0
    assert np.allclose(pytape.jacobian(closed)(x), H, **tol)
    tree = pytape.grad(lambda p: f(np.concatenate([p["a"], [p["b"][0]]])))({"a": x[:2], "b": (x[2],)})
    g = pytape.grad(f)(x)
    assert set(tree) == {"a", "b"} and np.allclose(tree["a"], g[:2], **tol) and tree["b"][0] == pytest.approx(g[2])


# ---- pytrees, dtypes, outputs, aux --------------------------------------------------

def test_pytrees_in_and_out():
    W, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5])
    x = np.array([1.0, -1.0])

    def loss(params, x):
        return np.sum(np.tanh(params["W"] @ x + params["b"]) ** 2)

    g = pytape.grad(loss)({"W": W, "b": b}, x)
    assert set(g) == {"W", "b"} and g["W"].shape == (2, 2) and g["b"].shape == (2,)
    h = np.tanh(W @ x + b)
    d = 2 * h * (1 - h ** 2)
    assert np.allclose(g["b"], d, rtol=1e-14) and np.allclose(g["W"], np.outer(d, x), rtol=1e-14)
    # argnums over two trees, nested containers, a namedtuple
    import collections
    P = collections.namedtuple("P", "a b")
    ga, gb = pytape.grad(lambda p, q: p.a * q[0][1] + p.b * q[1]["z"], argnums=(0, 1))(P(2.0, 3.0), ([1.0, 5.0], {"z": 7.0}))
    assert ga == P(5.0, 7.0) and gb == ([0.0, 2.0], {"z": 3.0})
    # vjp, jvp and hvp take trees shaped like the primals
    _, vjp_fn = pytape.vjp(lambda p: p["u"] * p["v"], {"u": 2.0, "v": 3.0})
    assert vjp_fn(1.0) == ({"u": 3.0, "v": 2.0},)
    assert pytape.jvp(lambda p: p["u"] * p["v"], ({"u": 2.0, "v": 3.0},), ({"u": 1.0, "v": 1.0},))[1] == 5.0
    hv = pytape.hvp(lambda p: p[0] ** 2 * p[1], (2.0, 3.0), (1.0, 0.0))   # H = [[2 p1, 2 p0], [2 p0, 0]]
    assert hv == (6.0, 4.0)
    Hb = pytape.hessian(lambda p: p[0] ** 2 * p[1])((2.0, 3.0))
    assert Hb == ((6.0, 4.0), (4.0, 0.0))
    with pytest.raises(ValueError, match="same tree"):
        pytape.jvp(lambda p: p["u"] * p["v"], ({"u": 2.0, "v": 3.0},), ({"u": 1.0},))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_gradients_have_the_inputs_float_dtype(dtype):
    x = np.array([0.5, 1.5], dtype=dtype)
    g = pytape.grad(lambda v: np.sum(v ** 3))(x)
    assert g.dtype == dtype and np.allclose(g, 3 * x.astype(float) ** 2, rtol=1e-3)
    s = pytape.grad(lambda v: v ** 3)(dtype(0.5))
    assert type(s) is dtype and s == dtype(0.75)
    assert pytape.jacobian(lambda v: v * 2.0)(x).dtype == dtype
    assert pytape.hessian(lambda v: np.sum(v ** 3))(x).dtype == dtype
    # Python numbers and integer arrays: float64, as before
    assert type(pytape.grad(lambda v: v * v)(2)) is float
    assert pytape.grad(lambda v: np.sum(v * v))(np.array([1, 2])).dtype == np.float64


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
def test_grad_accepts_any_output_of_size_one(shape):
    g = pytape.grad(lambda x: np.reshape(x * x, shape))(np.array([3.0]).reshape(shape))
    assert g.shape == shape and g.ravel()[0] == 6.0
    assert pytape.hessian(lambda x: np.reshape(x ** 3, shape))(np.array([2.0])).tolist() == [[12.0]]
    with pytest.raises(TypeError, match="scalar"):
        pytape.grad(lambda x: x * 1.0)(np.array([1.0, 2.0]))


def test_aux_comes_back_as_numbers_and_arrays():
    def f(x):
        y = x * x
        return np.sum(y), {"y": y, "first": y[0], "n": 2, "name": "sq"}
    g, aux = pytape.grad(f, has_aux=True)(np.array([1.0, 2.0]))
    assert g.tolist() == [2.0, 4.0]
    assert type(aux["y"]) is np.ndarray and aux["y"].dtype == np.float64 and aux["y"].tolist() == [1.0, 4.0]
    assert type(aux["first"]) is float and aux["first"] == 1.0 and aux["n"] == 2 and aux["name"] == "sq"
    (value, aux), g = pytape.value_and_grad(f, has_aux=True)(np.array([1.0, 2.0]))
    assert value == 5.0 and aux["y"].tolist() == [1.0, 4.0]


def test_dict_outputs_come_back_as_trees():
    f = lambda x: {"sq": x ** 2, "sum": np.sum(x), "pair": (x[0] * x[1], 2.0)}  # noqa: E731
    x = np.array([1.0, 2.0])
    for mode in ("rev", "fwd"):
        J = pytape.jacobian(f, mode=mode)(x)
        assert J["sq"].tolist() == [[2.0, 0.0], [0.0, 4.0]] and J["sum"].tolist() == [1.0, 1.0]
        assert J["pair"][0].tolist() == [2.0, 1.0] and J["pair"][1].tolist() == [0.0, 0.0]
    value, vjp_fn = pytape.vjp(f, x)
    assert value["sq"].tolist() == [1.0, 4.0] and value["sum"] == 3.0 and value["pair"] == (2.0, 2.0)
    (g,) = vjp_fn({"sq": np.array([1.0, 10.0]), "sum": 1.0, "pair": (100.0, 0.0)})
    assert g.tolist() == [2.0 + 1.0 + 200.0, 40.0 + 1.0 + 100.0]
    value, t = pytape.jvp(f, (x,), (np.array([1.0, 0.0]),))
    assert t["sq"].tolist() == [2.0, 0.0] and t["sum"] == 1.0 and t["pair"] == (2.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        vjp_fn({"sq": 1.0, "sum": 1.0, "pair": (1.0, 0.0)})
    # a tree in and a tree out: the output's tree of the input's trees, as in JAX
    assert pytape.jacobian(lambda p: {"a": p["u"] * p["v"]})({"u": 2.0, "v": 3.0}) == {"a": {"u": 3.0, "v": 2.0}}
    # a list of numbers stays numpy's: one array
    assert pytape.jacobian(lambda x: [x[0] * x[1], x[0]])(x).shape == (2, 2)


def test_autograd_grad_inside_a_transformation_records_its_sweep():
    def f(x):
        y = x ** 3
        (d,) = pytape.autograd.grad(y, x)   # 3 x**2, recorded: the outer grad differentiates it
        return d
    assert pytape.grad(f)(2.0) == 12.0


def test_backward_inside_a_transformations_f_raises():
    def f(x):
        y = x ** 3
        y.backward(retain_graph=True)   # would leave a number in x.grad, a constant to grad(f)
        return y
    with pytest.raises(RuntimeError, match="function transformation"):
        pytape.grad(f)(2.0)
    with pytest.raises(RuntimeError, match="function transformation"):
        pytape.jacobian(lambda x: pytape.current_tape().tangent_sweep({x: 1.0}) or x * 2.0)(2.0)
    x = pytape.Var(2.0)   # outside a transformation, backward() is as before
    (x ** 3).backward()
    assert x.grad == 12.0


# ---- every transformation inside every other ----------------------------------------

def _h(x):  # a vector function R^2 -> R^2
    return np.array([pytape.sin(x[0]) * x[1] ** 2, pytape.exp(x[0] * 0.5) * pytape.tanh(x[1])])


def _f(x):  # a scalar function
    return np.sum(_h(x) * np.array([1.0, 2.0])) + x[0] ** 3 * x[1]


_U, _W = np.array([0.7, -1.3]), np.array([1.1, 0.4])

#: inner transformations: each a function x -> a flat array built from one transformation
INNER = {
    "grad": lambda x: pytape.grad(_f)(x),
    "value_and_grad": lambda x: np.concatenate([[pytape.value_and_grad(_f)(x)[0]], pytape.value_and_grad(_f)(x)[1]]),
    "vjp": lambda x: pytape.vjp(_h, x)[1](_U)[0],
    "jvp": lambda x: pytape.jvp(_h, (x,), (_W,))[1],
    "jacobian": lambda x: np.ravel(pytape.jacobian(_h)(x)),
    "jacfwd": lambda x: np.ravel(pytape.jacfwd(_h)(x)),
    "jacrev": lambda x: np.ravel(pytape.jacrev(_h)(x)),
    "hessian": lambda x: np.ravel(pytape.hessian(_f)(x)),
    "hvp": lambda x: pytape.hvp(_f, x, _W),
}


def _numbers(a):
    return np.array([float(v) for v in np.ravel(a)])


def _fd_jacobian(g, x, eps=1e-6):
    return np.stack([(_numbers(g(x + eps * e)) - _numbers(g(x - eps * e))) / (2 * eps) for e in np.eye(len(x))], axis=-1)


X2 = np.array([0.4, -0.8])


@pytest.mark.parametrize("inner", list(INNER))
@pytest.mark.parametrize("outer", ["jacobian", "jacfwd", "jacrev", "grad", "value_and_grad", "vjp", "jvp", "hessian", "hvp"])
def test_every_transformation_inside_every_other(inner, outer):
    g = INNER[inner]
    J = _fd_jacobian(g, X2)                      # the oracle: finite differences of the inner result (numbers)
    tol = dict(rtol=1e-6, atol=1e-6)
    s = lambda x: np.sum(g(x))  # noqa: E731
    if outer in ("jacobian", "jacfwd", "jacrev"):
        got = getattr(pytape, outer)(g)(X2)
        assert np.allclose(got, J, **tol)
    elif outer == "grad":
        assert np.allclose(pytape.grad(s)(X2), J.sum(axis=0), **tol)
    elif outer == "value_and_grad":
        value, gs = pytape.value_and_grad(s)(X2)
        assert value == pytest.approx(np.sum(_numbers(g(X2))), rel=1e-14) and np.allclose(gs, J.sum(axis=0), **tol)
    elif outer == "vjp":
        value, vjp_fn = pytape.vjp(g, X2)
        u = np.linspace(1.0, 2.0, len(_numbers(value)))
        assert np.allclose(vjp_fn(u)[0], u @ J, **tol)
    elif outer == "jvp":
        _, t = pytape.jvp(g, (X2,), (_W,))
        assert np.allclose(t, J @ _W, **tol)
    else:  # second order of the inner result: against finite differences of its gradient
        gs = lambda x: pytape.grad(s)(x)  # noqa: E731
        H = _fd_jacobian(gs, X2)
        if outer == "hessian":
            assert np.allclose(pytape.hessian(s)(X2), H, rtol=1e-5, atol=1e-5)
        else:
            assert np.allclose(pytape.hvp(s, X2, _W), H @ _W, rtol=1e-5, atol=1e-5)


def test_trace_inside_a_transformation_refuses_a_closure_over_its_argument():
    with pytest.raises(RuntimeError, match="outer function transformation"):
        pytape.grad(lambda x: pytape.trace(lambda y: x * y, 1.0)(2.0))(3.0)
    # a traced function of its own arguments is fine inside a transformation: its numbers are constants there
    fn = pytape.trace(lambda y: y * y, 1.0)
    assert pytape.grad(lambda x: x * fn(2.0))(3.0) == 4.0


def test_transformations_under_no_grad():
    # a transformation records f whatever the grad mode (as torch.func), and under no_grad
    # Vars from outside are constants (as no_grad asks): the results are numbers
    w = pytape.Var(2.0)
    with pytape.no_grad():
        assert pytape.grad(lambda x: x ** 3)(2.0) == 12.0
        assert pytape.hessian(lambda x: x ** 3)(2.0) == 12.0
        g = pytape.grad(lambda x: w * x ** 3)(2.0)
        assert type(g) is float and g == 24.0
        assert pytape.grad(lambda x: x ** 3)(w) == 12.0
        assert pytape.trace(lambda x: x ** 3, 1.0).gradient(2.0) == 12.0

    def f(x):
        with pytape.no_grad():                            # a constant inside f, as the user asked
            c = pytape.grad(lambda y: x * y ** 2)(x)      # 2 x^2
        return x * c
    assert pytape.grad(f)(2.0) == 8.0
