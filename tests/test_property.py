"""Property tests: random expression DAGs give the same values and gradients
on pytape's C tape as on the pure-Python reference engine."""
import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pytape
import pytape.reference as ref

# ops defined on the whole real line (domain-limited ones are covered in test_ops.py)
UNARY = ["neg", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus", "erf",
         "erfc", "atan", "asinh", "cbrt", "exp", "expm1", "sinh"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "hypot", "atan2", "pow_int"]


def apply(engine, name, a, b=None):
    """One op through `engine` (the pytape or reference module)."""
    if name == "neg":
        return -a
    if name == "abs":
        return abs(a)
    if name == "add":
        return a + b
    if name == "sub":
        return a - b
    if name == "mul":
        return a * b
    if name == "div":
        return a / b
    if name == "pow_int":  # integer exponents keep pow real on negative bases
        return a ** 3.0
    fn = getattr(engine, name)
    return fn(a) if b is None else fn(a, b)


# leaf values and constants: moderate magnitudes (or exactly 0, to hit kinks), so
# that cancellations between huge terms (x / -x at x = 1e-46 has terms of 1e45)
# do not turn rounding differences between the two engines into failures
finite = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False).filter(
    lambda v: v == 0.0 or abs(v) >= 1e-3)

# an instruction: (op, index of operand a, index of operand b, constant or None,
# constant on the left?) -- indices are taken modulo the number of nodes so far,
# so nodes are shared and leaves reused freely
instruction = st.tuples(
    st.sampled_from(UNARY + BINARY),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.one_of(st.none(), finite),
    st.booleans(),
)


def build(engine, leaves, program):
    nodes = list(leaves)
    for name, ia, ib, const, left in program:
        a = nodes[ia % len(nodes)]
        if name in UNARY or name == "pow_int":
            out = apply(engine, name, a)
        elif const is not None:
            out = apply(engine, name, const, a) if left else apply(engine, name, a, const)
        else:
            out = apply(engine, name, a, nodes[ib % len(nodes)])
        nodes.append(out)
    # the output sums a few nodes so several paths meet
    y = nodes[-1]
    for k in range(1, min(4, len(nodes))):
        y = y + nodes[-1 - k] * 0.5
    return y


def run_both(values, program):
    ours = [pytape.Var(v) for v in values]
    theirs = [ref.Value(v) for v in values]
    y = build(pytape, ours, program)
    z = build(ref, theirs, program)
    yv, zv = float(y.value) if isinstance(y, pytape.Var) else y, z.data if isinstance(z, ref.Value) else z
    assume(math.isfinite(zv) and abs(zv) < 1e6)
    if isinstance(y, pytape.Var):
        y.backward()
    if isinstance(z, ref.Value):
        z.backward()
    ga = np.array([x.grad for x in ours])
    gb = np.array([x.grad for x in theirs])
    assume(np.all(np.isfinite(gb)) and np.all(np.abs(gb) < 1e6))
    return yv, zv, ga, gb


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(values=st.lists(finite, min_size=1, max_size=4), program=st.lists(instruction, min_size=1, max_size=30))
def test_random_dags_match_reference(values, program):
    yv, zv, ga, gb = run_both(values, program)
    assert np.isclose(yv, zv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(values=st.lists(finite, min_size=1, max_size=3),
       block=st.lists(instruction, min_size=1, max_size=5),
       repeats=st.integers(200, 2000))
def test_deep_chains_match_reference(values, block, repeats):
    # a block whose output feeds the next copy: deep, with reused leaves
    def chained(engine, leaves):
        y = leaves[0]
        for _ in range(repeats):
            y = engine.tanh(build(engine, [y] + leaves[1:], block))
        return y

    ours = [pytape.Var(v) for v in values]
    theirs = [ref.Value(v) for v in values]
    y, z = chained(pytape, ours), chained(ref, theirs)
    assume(math.isfinite(z.data))
    y.backward()
    z.backward()
    assert np.isclose(y.value, z.data, rtol=1e-11, atol=1e-12)
    gb = np.array([x.grad for x in theirs])
    assume(np.all(np.isfinite(gb)))
    np.testing.assert_allclose([x.grad for x in ours], gb, rtol=1e-8, atol=1e-10)


# ---- derivatives of every kind agree on random DAGs --------------------------------

SMOOTH_UNARY = ["neg", "sin", "cos", "tanh", "sigmoid", "softplus", "erf", "atan", "asinh", "exp", "sinh"]
SMOOTH_BINARY = ["add", "sub", "mul", "hypot", "atan2"]
smooth_instruction = st.tuples(st.sampled_from(SMOOTH_UNARY + SMOOTH_BINARY),
                               st.integers(0, 10**6), st.integers(0, 10**6))


def dag(program, k):
    """f(x) -> its last k nodes: a random DAG over the entries of x."""
    def f(x):
        nodes = list(x)
        for name, ia, ib in program:
            a, b = nodes[ia % len(nodes)], nodes[ib % len(nodes)]
            nodes.append(apply(pytape, name, a) if name in SMOOTH_UNARY else apply(pytape, name, a, b + 2.0))
        return np.array(nodes[-k:], dtype=object)
    return f


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.floats(0.2, 2.0), min_size=1, max_size=5),
       program=st.lists(smooth_instruction, min_size=1, max_size=15),
       k=st.integers(1, 4), seed=st.integers(0, 1000))
def test_jacobians_jvps_vjps_agree(x, program, k, seed):
    x = np.array(x)
    f = dag(program, k)
    Jf, Jr = pytape.jacfwd(f)(x), pytape.jacrev(f)(x)
    assume(np.all(np.isfinite(Jr)) and np.abs(Jr).max() < 1e8)
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(Jr).max()))
    rng = np.random.default_rng(seed)
    v, u = rng.normal(size=x.shape), rng.normal(size=Jr.shape[0])
    np.testing.assert_allclose(pytape.jvp(f, (x,), (v,))[1], Jr @ v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(pytape.vjp(f, x)[1](u)[0], u @ Jr, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(x=st.lists(st.floats(0.2, 2.0), min_size=1, max_size=4),
       program=st.lists(smooth_instruction, min_size=1, max_size=12), seed=st.integers(0, 1000))
def test_hessians_are_symmetric_and_match_gradient_differences(x, program, seed):
    x = np.array(x)
    g = dag(program, 1)
    f = lambda v: g(v)[0]  # noqa: E731
    H = pytape.hessian(f)(x)
    assume(np.all(np.isfinite(H)) and np.abs(H).max() < 1e6)
    scale = max(1.0, np.abs(H).max())
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12 * scale)
    v = np.random.default_rng(seed).normal(size=x.shape)
    np.testing.assert_allclose(pytape.hvp(f, x, v), H @ v, rtol=1e-10, atol=1e-10 * scale)
    eps = 1e-6
    grad = pytape.grad(f)
    fd = np.array([(grad(x + eps * e) - grad(x - eps * e)) / (2 * eps) for e in np.eye(len(x))])
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-5 * scale)
