"""Custom primitives (pytape.primitive, defvjp, defjvp): one instruction with
the user's own rules, in every sweep, trace replays, batches and saved tapes.

Oracles: exact derivatives, central finite differences of the plain-float
function, scipy's special functions, and the implicit function theorem checked
against finite differences of the solver itself."""
import math
import pickle
import sys
import threading
import types

import numpy as np
import pytest

import pytape
from pytape import GradcheckError, TapeFormatError


def fd(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def softplus_float(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


# ---- the primitives (at module level: saved tapes find them by name) ----------------

CALLS = {"softplus": 0}


@pytape.primitive
def softplus(x):
    """log(1 + e^x) without overflow; its rule pytape.sigmoid, so it differentiates again."""
    CALLS["softplus"] += 1
    return softplus_float(x)


softplus.defvjp(lambda ans, x: lambda g: g * pytape.sigmoid(x))


@pytape.primitive
def mulsin(x, y):
    """x * sin(y), both rules given."""
    return x * math.sin(y)


mulsin.defvjp(lambda ans, x, y: lambda g: g * pytape.sin(y),
              lambda ans, x, y: lambda g: g * x * pytape.cos(y))
mulsin.defjvp(lambda t, ans, x, y: t * pytape.sin(y),
              lambda t, ans, x, y: t * x * pytape.cos(y))


@pytape.primitive
def clip_grad(x):
    """The identity, with its gradient clipped to [-1, 1] in the backward pass."""
    return x


clip_grad.defvjp(lambda ans, x: lambda g: max(-1.0, min(1.0, g)))
clip_grad.defjvp(lambda t, ans, x: t)


def _cube_root_solve(a):
    """y with y^3 + y = a, by scipy.optimize.brentq."""
    from scipy.optimize import brentq
    return brentq(lambda y: y ** 3 + y - a, -abs(a) - 1.0, abs(a) + 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps)


@pytape.primitive
def implicit(a):
    """The root y(a) of F(y, a) = y^3 + y - a = 0; by the implicit function
    theorem dy/da = -F_a / F_y = 1 / (3 y^2 + 1)."""
    return _cube_root_solve(a)


implicit.defvjp(lambda ans, a: lambda g: g / (3.0 * ans * ans + 1.0))


FLAKY = {"raise": False}


@pytape.primitive
def flaky(x):
    return 2.0 * x


def _flaky_rule(ans, x):
    def vjp(g):
        if FLAKY["raise"]:
            raise ZeroDivisionError("the rule of flaky failed on purpose")
        return 2.0 * g
    return vjp


flaky.defvjp(_flaky_rule)


# ---- the README uses: stable softplus, scipy, an implicit function, clipping -----------

@pytest.mark.parametrize("x", [-30.0, -2.0, 0.0, 0.7, 5.0, 40.0])
def test_softplus_value_and_gradient_against_finite_differences(x):
    v = pytape.Var(x)
    y = softplus(v)
    y.backward()
    assert y.value == pytest.approx(softplus_float(x), rel=1e-15)
    assert v.grad == pytest.approx(fd(softplus_float, x), rel=1e-6, abs=1e-12)
    assert v.grad == pytest.approx(sigmoid(x), rel=1e-14)


def test_softplus_is_stable_where_the_naive_recording_overflows():
    x = pytape.Var(800.0)
    naive = pytape.log1p(pytape.exp(x))
    assert math.isinf(naive.value)
    naive.backward()
    assert x.grad == 0.0  # 1 / (1 + inf) times inf, taken as 0: the true gradient is 1
    x = pytape.Var(800.0)
    y = softplus(x)
    y.backward()
    assert (y.value, x.grad) == (800.0, 1.0)
    assert len(y.tape) == 2  # the leaf and one instruction


def test_scipy_special_gammaln_with_digamma_as_its_rule():
    special = pytest.importorskip("scipy.special")

    @pytape.primitive
    def trigamma(x):
        return float(special.polygamma(1, x))

    @pytape.primitive
    def digamma(x):
        return float(special.digamma(x))

    digamma.defvjp(lambda ans, x: lambda g: g * trigamma(x))

    @pytape.primitive
    def gammaln(x):
        return float(special.gammaln(x))

    gammaln.defvjp(lambda ans, x: lambda g: g * digamma(x))
    for x in (0.3, 1.0, 2.5, 40.0):
        assert pytape.grad(gammaln)(x) == pytest.approx(fd(lambda t: float(special.gammaln(t)), x, 1e-5), rel=1e-7)
        # the rule is written with pytape operations (primitives too): it differentiates again
        v = pytape.Var(x)
        (d1,) = pytape.autograd.grad(gammaln(v), v, create_graph=True)
        (d2,) = pytape.autograd.grad(d1, v)
        assert d1.value == pytest.approx(float(special.digamma(x)), rel=1e-14)
        assert d2 == pytest.approx(float(special.polygamma(1, x)), rel=1e-14)


@pytest.mark.parametrize("a", [-3.0, 0.2, 1.0, 10.0])
def test_implicit_function_by_brentq_with_the_implicit_function_theorem(a):
    pytest.importorskip("scipy.optimize")
    y = implicit(a)  # numbers in, a number out
    assert y ** 3 + y == pytest.approx(a, abs=1e-12)
    g = pytape.grad(lambda t: implicit(t) * 3.0)(a)
    assert g == pytest.approx(3.0 * fd(_cube_root_solve, a, 1e-5), rel=1e-7)
    # jvp and the tangent sweep derive the forward rule from the vjp (linear in g)
    _, t = pytape.jvp(implicit, (a,), (1.0,))
    assert t == pytest.approx(fd(_cube_root_solve, a, 1e-5), rel=1e-7)


def test_a_gradient_clipped_in_the_backward_pass():
    x = pytape.Var(2.0)
    y = clip_grad(x * 3.0) * 10.0     # the cotangent reaching clip_grad is 10: clipped to 1
    y.backward(retain_graph=True)
    assert x.grad == 3.0
    x.grad = 0.0
    y.backward(gradient=0.05)          # 0.5 passes unclipped: the rule sees g itself
    assert x.grad == pytest.approx(1.5)
    assert pytape.grad(lambda t: clip_grad(t) * -7.0)(1.0) == -1.0
    assert pytape.grad(lambda t: clip_grad(t) * 0.25)(1.0) == 0.25


# ---- every transformation ------------------------------------------------------------

def f2(x, y):
    return mulsin(x, y) + softplus(x)


def f2_grad(x, y):
    return math.sin(y) + sigmoid(x), x * math.cos(y)


def test_backward_grad_vjp_and_jacobians_of_a_two_argument_primitive():
    x, y = pytape.Var(0.8), pytape.Var(-1.3)
    out = f2(x, y)
    out.backward()
    gx, gy = f2_grad(0.8, -1.3)
    assert (x.grad, y.grad) == pytest.approx((gx, gy), rel=1e-14)
    assert pytape.grad(f2, argnums=(0, 1))(0.8, -1.3) == pytest.approx((gx, gy), rel=1e-14)
    _, vjp_fn = pytape.vjp(f2, 0.8, -1.3)
    assert vjp_fn(2.0) == pytest.approx((2 * gx, 2 * gy), rel=1e-14)

    def vec(v):
        return np.array([mulsin(v[0], v[1]), softplus(v[1]) * v[0], mulsin(v[1], 2.0)])

    p = np.array([0.8, -1.3])
    exact = np.array([[math.sin(-1.3), 0.8 * math.cos(-1.3)],
                      [softplus_float(-1.3), 0.8 * sigmoid(-1.3)],
                      [0.0, math.sin(2.0)]])
    for mode in ("rev", "fwd"):
        np.testing.assert_allclose(pytape.jacobian(vec, mode=mode)(p), exact, rtol=1e-14)
    np.testing.assert_allclose(pytape.jacfwd(vec)(p), exact, rtol=1e-14)
    np.testing.assert_allclose(pytape.jacrev(vec)(p), exact, rtol=1e-14)


def test_jvp_and_tangent_sweep():
    value, t = pytape.jvp(f2, (0.8, -1.3), (0.5, 2.0))
    gx, gy = f2_grad(0.8, -1.3)
    assert value == pytest.approx(0.8 * math.sin(-1.3) + softplus_float(0.8))
    assert t == pytest.approx(0.5 * gx + 2.0 * gy, rel=1e-14)
    with pytape.Tape() as tape:
        x, y = pytape.Var(0.8), pytape.Var(-1.3)
        out = f2(x, y)
    tape.tangent_sweep({y: 1.0})
    assert out.tangent == pytest.approx(gy, rel=1e-14)


def test_arrays_map_a_primitive_elementwise():
    x = np.array([-1.0, 0.5, 3.0])
    g = pytape.grad(lambda v: np.sum(softplus(v) * v))(x)
    np.testing.assert_allclose(g, [softplus_float(t) + t * sigmoid(t) for t in x], rtol=1e-14)
    np.testing.assert_allclose(softplus(x), [softplus_float(t) for t in x], rtol=0)  # numbers: a float array
    np.testing.assert_allclose(mulsin(x, 2.0), x * math.sin(2.0), rtol=1e-15)


def test_constant_arguments_take_no_derivative():
    x = pytape.Var(0.4)
    out = mulsin(2.0, x) + mulsin(x, pytape.Var(1.0).detach())
    out.backward()
    assert x.grad == pytest.approx(2.0 * math.cos(0.4) + math.sin(1.0), rel=1e-14)
    assert mulsin(2.0, 0.5) == 2.0 * math.sin(0.5)   # numbers in, a float out


def test_create_graph_second_derivatives_against_exact():
    for x0 in (-3.0, 0.0, 1.7):
        x = pytape.Var(x0)
        (d1,) = pytape.autograd.grad(softplus(x) * x, x, create_graph=True)
        (d2,) = pytape.autograd.grad(d1, x)
        s = sigmoid(x0)
        assert d1.value == pytest.approx(softplus_float(x0) + x0 * s, rel=1e-14)
        assert d2 == pytest.approx(2 * s + x0 * s * (1 - s), rel=1e-13)
    x, y = pytape.Var(0.8), pytape.Var(-1.3)
    gx, gy = pytape.autograd.grad(mulsin(x, y), [x, y], create_graph=True)
    assert pytape.autograd.grad(gy, [x, y]) == pytest.approx((math.cos(-1.3), -0.8 * math.sin(-1.3)), rel=1e-14)


def test_transformations_of_transformations_through_primitives():
    for x0 in (-1.0, 0.3):
        s_ = sigmoid(x0)
        assert pytape.grad(pytape.grad(softplus))(x0) == pytest.approx(s_ * (1 - s_), rel=1e-14)
        assert pytape.jacfwd(pytape.grad(softplus))(x0) == pytest.approx(s_ * (1 - s_), rel=1e-14)
        # d/dx of d/dy mulsin(x, y) = x cos y, at y = 0.5
        assert pytape.grad(lambda x: pytape.grad(lambda y: mulsin(x, y))(0.5))(x0) == pytest.approx(math.cos(0.5))
    assert pytape.trace(pytape.grad(softplus), 0.3)(1.5) == pytest.approx(sigmoid(1.5), rel=1e-14)


def test_hessian_hvp_and_gradgradcheck_through_primitives_against_exact():
    for x0 in (-3.0, 0.3, 4.0):
        s_ = sigmoid(x0)
        assert pytape.hessian(lambda x: softplus(x) * x)(x0) == pytest.approx(2 * s_ + x0 * s_ * (1 - s_), rel=1e-13)
    p = np.array([0.8, -1.3])
    H = pytape.hessian(lambda v: mulsin(v[0], v[1]) * v[0])(p)
    # f = x^2 sin y: f_xx = 2 sin y, f_xy = 2 x cos y, f_yy = -x^2 sin y
    exact = np.array([[2 * math.sin(-1.3), 1.6 * math.cos(-1.3)], [1.6 * math.cos(-1.3), -0.64 * math.sin(-1.3)]])
    np.testing.assert_allclose(H, exact, rtol=1e-13)
    v = np.array([0.3, -2.0])
    np.testing.assert_allclose(pytape.hvp(lambda w: mulsin(w[0], w[1]) * w[0], p, v), exact @ v, rtol=1e-13)
    assert pytape.gradgradcheck(f2, 0.8, -1.3)
    # the cotangent's own tangent matters: a primitive inside a product (d/dx of g = 2x)
    assert pytape.hessian(lambda x: clip_grad(x) * x * x)(0.3) == pytest.approx(1.8, rel=1e-14)


def test_second_order_refuses_a_rule_computed_on_floats():
    floaty = pytape.primitive(math.exp).defvjp(lambda ans, x: lambda g: g * math.exp(x))
    assert pytape.grad(floaty)(0.5) == pytest.approx(math.exp(0.5), rel=1e-15)   # first order: fine
    with pytest.raises(TypeError, match="turns a Var into a float"):
        pytape.hessian(floaty)(0.5)
    x = pytape.Var(0.5)
    with pytest.raises(TypeError, match="turns a Var into a float"):
        pytape.autograd.grad(floaty(x), x, create_graph=True)


def test_a_rule_missing_or_of_the_wrong_kind():
    bare = pytape.primitive(lambda x: x * 2.0)
    with pytest.raises(NotImplementedError, match="no derivative rule for its argument 0"):
        pytape.grad(bare)(1.0)
    assert bare(3.0) == 6.0
    with pytest.raises(TypeError, match="must be a function or None"):
        bare.defvjp(3.0)
    with pytest.raises(TypeError, match="must be a Var or a real number"):
        softplus("1.0")
    with pytest.raises(TypeError, match="returns one real number"):
        pytape.primitive(lambda x: "no")(pytape.Var(1.0))
    jvp_only = pytape.primitive(lambda x: x ** 3).defjvp(lambda t, ans, x: 3.0 * x * x * t)
    assert pytape.grad(jvp_only)(2.0) == 12.0   # reverse mode from the forward rule
    forgetful = pytape.primitive(lambda x: x).defvjp(lambda ans, x: lambda g: None)
    with pytest.raises(TypeError, match="vjp rule of the primitive .*<lambda> returned NoneType"):
        pytape.grad(forgetful)(1.0)
    x = pytape.Var(1.0)
    with pytest.raises(TypeError, match="returned NoneType"):
        pytape.autograd.grad(forgetful(x), x, create_graph=True)
    with pytape.no_grad():
        c = softplus(x)
    assert not c.requires_grad and c.value == softplus_float(1.0)


def test_a_wrong_rule_is_caught_by_gradcheck():
    wrong = pytape.primitive(lambda x: math.sin(x))
    wrong.defvjp(lambda ans, x: lambda g: g * math.sin(x))   # should be cos
    with pytest.raises(GradcheckError, match="analytic"):
        pytape.gradcheck(lambda x: wrong(x) * 2.0, 0.4)
    assert pytape.gradcheck(lambda x: softplus(x) * x, 0.4)
    assert pytape.gradcheck(f2, 0.8, -1.3)


# ---- exceptions inside a rule ------------------------------------------------------------

def test_an_exception_in_a_rule_is_raised_again_and_the_tape_stays_usable():
    x = pytape.Var(1.5)
    y = flaky(x) * 3.0
    FLAKY["raise"] = True
    try:
        with pytest.raises(ZeroDivisionError, match="failed on purpose"):
            y.backward()
        assert x.grad == 0.0 and not y.tape.consumed      # nothing accumulated, nothing consumed
        with pytest.raises(ZeroDivisionError):
            pytape.autograd.grad(y, x, retain_graph=True)
        with pytest.raises(ZeroDivisionError):
            pytape.grad(lambda t: flaky(t))(1.0)
        with pytest.raises(ZeroDivisionError):             # forward mode derives from the same rule
            pytape.jvp(flaky, (1.0,), (1.0,))
    finally:
        FLAKY["raise"] = False
    y.backward()
    assert x.grad == 6.0


def test_an_exception_in_the_function_during_a_replay():
    state = {"fail": False}

    @pytape.primitive
    def fragile(x):
        if state["fail"]:
            raise ValueError("fragile cannot evaluate here")
        return x * x

    fragile.defvjp(lambda ans, x: lambda g: 2.0 * x * g)
    fn = pytape.trace(lambda x: fragile(x) + 1.0, 2.0)
    state["fail"] = True
    with pytest.raises(ValueError, match="cannot evaluate"):
        fn(3.0)
    with pytest.raises(ValueError, match="cannot evaluate"):
        fn.gradient(np.array([1.0, 2.0, 3.0]))
    state["fail"] = False
    assert fn(3.0) == 10.0 and fn.gradient(3.0) == 6.0


def test_a_rule_that_sweeps_its_own_tape_is_refused():
    with pytape.Tape():
        x = pytape.Var(1.0)
        z = x * 2.0
        meddle = pytape.primitive(lambda t: t)
        meddle.defvjp(lambda ans, t: lambda g: pytape.autograd.grad(z, x, retain_graph=True)[0] * g)
        y = meddle(z)
    with pytest.raises(RuntimeError, match="tape whose sweep is calling it"):
        y.backward(retain_graph=True)
    assert x.grad == 0.0


# ---- trace replays, batches --------------------------------------------------------------

def test_trace_replays_call_the_primitive_back_per_evaluation():
    fn = pytape.trace(lambda x: softplus(x) * x, 0.3)
    before = CALLS["softplus"]
    for x0 in (-2.0, 0.5, 7.0):
        assert fn(x0) == pytest.approx(softplus_float(x0) * x0, rel=1e-15)
        assert fn.gradient(x0) == pytest.approx(softplus_float(x0) + x0 * sigmoid(x0), rel=1e-14)
    assert CALLS["softplus"] - before == 6  # one call per evaluation: no value baked in
    assert fn.jacobian(0.5, mode="fwd") == pytest.approx(softplus_float(0.5) + 0.5 * sigmoid(0.5), rel=1e-14)
    assert fn.vjp(0.5, 2.0)[1] == pytest.approx(2 * (softplus_float(0.5) + 0.5 * sigmoid(0.5)), rel=1e-14)
    s_ = sigmoid(0.5)
    assert fn.hessian(0.5) == pytest.approx(2 * s_ + 0.5 * s_ * (1 - s_), rel=1e-13)


def test_trace_folds_a_primitive_of_constants_only():
    k = pytape.Var(2.0)  # not an argument of f: a constant of the compiled function
    fn = pytape.trace(lambda x: softplus(k) * x, 1.0)
    before = CALLS["softplus"]
    assert fn(3.0) == pytest.approx(3.0 * softplus_float(2.0))
    assert CALLS["softplus"] == before   # folded at trace time
    assert fn.tape._c.ncustom == 0


def test_batches_of_a_traced_function_with_primitives():
    fn = pytape.trace(lambda v: mulsin(v[0], v[1]) + softplus(v[0] * v[1]), np.zeros(2))
    X = np.array([[0.8, -1.3], [2.0, 0.5], [-1.0, 3.0], [0.0, 0.0]])
    before = CALLS["softplus"]
    Y, G = fn.value_and_grad(X)
    assert CALLS["softplus"] - before == len(X)
    for row, y, g in zip(X, Y, G):
        a, b = row
        assert y == pytest.approx(a * math.sin(b) + softplus_float(a * b), rel=1e-14)
        s = sigmoid(a * b)
        np.testing.assert_allclose(g, [math.sin(b) + s * b, a * math.cos(b) + s * a], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fn(X), Y, rtol=0, atol=0)


def test_a_batch_with_primitives_calls_back_in_the_calling_thread_only():
    seen = set()

    @pytape.primitive
    def noting(x):
        seen.add(threading.get_ident())
        return x * x

    noting.defvjp(lambda ans, x: lambda g: (seen.add(threading.get_ident()), 2.0 * x * g)[1])
    fn = pytape.trace(lambda v: noting(v[0]) + np.sum(v * v), np.zeros(8))
    fn.threads = 4  # the batch below is large enough for 4 threads without custom instructions
    X = np.random.default_rng(0).normal(size=(40000, 8))
    Y, G = fn.value_and_grad(X)
    assert seen == {threading.get_ident()}
    np.testing.assert_allclose(Y, X[:, 0] ** 2 + np.sum(X * X, axis=1), rtol=1e-14)
    np.testing.assert_allclose(G[:, 0], 4.0 * X[:, 0], rtol=1e-14)


# ---- saved tapes ---------------------------------------------------------------------------

def test_to_bytes_from_bytes_and_pickle_round_trip():
    fn = pytape.trace(lambda x: mulsin(x, 0.5) * softplus(x) + clip_grad(x), 0.3)
    for g in (pytape.CompiledFunction.from_bytes(fn.to_bytes()), pickle.loads(pickle.dumps(fn))):
        for x0 in (-1.0, 0.3, 2.0):
            assert g(x0) == fn(x0)
            assert g.gradient(x0) == fn.gradient(x0)
        assert g.tape.table().count("softplus") == 1


def test_a_primitive_pickles_by_name():
    assert pickle.loads(pickle.dumps(softplus)) is softplus
    with pytest.raises(ValueError, match="cannot be saved"):
        pickle.dumps(pytape.primitive(lambda x: x))


def test_saving_a_primitive_that_cannot_be_imported_back_says_so():
    local = pytape.primitive(lambda x: x + 1.0).defvjp(lambda ans, x: lambda g: g)
    fn = pytape.trace(lambda x: local(x) * 2.0, 1.0)
    with pytest.raises(ValueError, match="cannot be saved.*defined inside a function or is a lambda"):
        fn.to_bytes()


def test_loading_a_primitive_whose_module_is_gone_names_it():
    mod = types.ModuleType("pytape_test_vanishing")
    sys.modules[mod.__name__] = mod
    try:
        exec("import pytape\n"
             "@pytape.primitive\n"
             "def twice(x):\n"
             "    return 2.0 * x\n"
             "twice.defvjp(lambda ans, x: lambda g: 2.0 * g)\n", mod.__dict__)
        fn = pytape.trace(lambda x: mod.twice(x) + x, 1.0)
        data = fn.to_bytes()
        assert pytape.CompiledFunction.from_bytes(data)(3.0) == 9.0
    finally:
        del sys.modules[mod.__name__]
    with pytest.raises(ImportError, match="pytape_test_vanishing:twice"):
        pytape.CompiledFunction.from_bytes(data)
    # the primitive's table is part of the checked description
    with pytest.raises(TapeFormatError):
        pytape.CompiledFunction.from_bytes(data.replace(b'"counts": [1]', b'"counts": [2]'))


# ---- threads, anomaly mode, display ---------------------------------------------------------

def test_two_threads_each_with_its_own_tape():
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(50):
                with pytape.Tape():
                    x = pytape.Var(0.1 * k)
                    y = softplus(x) * mulsin(x, 1.0)
                y.backward()
                s = sigmoid(0.1 * k)
                want = s * 0.1 * k * math.sin(1.0) + softplus_float(0.1 * k) * math.sin(1.0)
                assert x.grad == pytest.approx(want, rel=1e-13)
            results[k] = x.grad
        except BaseException as exc:  # pragma: no cover (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in (3, 7)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and sorted(results) == [3, 7]


def test_anomaly_mode_names_the_primitive():
    bad = pytape.primitive(lambda x: math.nan if x > 1 else x)
    bad.defvjp(lambda ans, x: lambda g: g * math.inf)
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError, match="<lambda> produced nan"):
            bad(pytape.Var(2.0))
        x = pytape.Var(0.5)
        y = bad(x) * 2.0
        with pytest.raises(FloatingPointError, match="backward through .*<lambda> produced inf"):
            y.backward()


def test_the_table_names_the_primitive_and_its_operands():
    with pytape.Tape() as t:
        x = pytape.Var(0.5)
        y = mulsin(x * 3.0, 2.0)
    lines = t.table().splitlines()
    assert lines[2].split()[:2] == ["v1", "mul_vc"] and not lines[2].endswith("output")  # read by mulsin
    assert lines[3].split()[:4] == ["v2", "mulsin", "v1,", "2"] and lines[3].endswith("output")
    dot = pytape.to_dot(y)
    assert "v2 = mulsin(v1, 2)" in dot and "v1 -> v2;" in dot
