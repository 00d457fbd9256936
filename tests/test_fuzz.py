"""Fuzz test of the public API: random programs built from random operations
(every primitive, numpy ufuncs, where), conversions (float, int, round,
.value, .data, .item(), str, math functions of floats, detach, no_grad) and
Python branches on them, run

* eagerly (a fresh recording and backward() at each point: the oracle),
* under the function transformations (grad, value_and_grad, jacobian,
  jacrev, jacfwd, hessian, autograd.grad),
* traced once and replayed (fn(x), gradient, value_and_grad, jacobian,
  hessian, batches) at random new inputs,

and every result must equal the oracle's at that input (values and first
derivatives bit for bit: the same C rules run in the same order; Hessians
against a fresh recording's Hessian), or an exception must be raised.
Nothing else is allowed.

The examples per test default to a CI-sized run; a long fuzz run:
``PYTAPE_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py``.
"""
import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytape
from pytape._native import BINARY, UNARY

# every primitive with a public function (where_t / where_f are pytape.where's
# halves, chain create_graph's product: pytape.ops._PARTS)
UNARY_OPS = [u for u in UNARY if hasattr(pytape, u)]
BINARY_OPS = [b for b in BINARY if hasattr(pytape, b)]
assert len(UNARY_OPS) == len(UNARY) and len(BINARY_OPS) >= len(BINARY) - len(pytape.ops._PARTS)

EXAMPLES = int(os.environ.get("PYTAPE_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=os.environ.get("PYTAPE_FUZZ_EXAMPLES") is None)

# conversions that take a Var's number out to Python
CONVERSIONS = {
    "compare": lambda v: v,  # the Var itself: the comparison is recorded as a guard
    "float": float,
    "int": lambda v: int(v),
    "round": lambda v: round(v, 1),
    "value": lambda v: v.value if isinstance(v, pytape.Var) else v,
    "data": lambda v: v.data if isinstance(v, pytape.Var) else v,
    "item": lambda v: v.item() if isinstance(v, pytape.Var) else v,
    "str": lambda v: float(str(v).split("(")[1].split(",")[0]) if isinstance(v, pytape.Var) else v,
    "floor": math.floor,
}
NUMPY = ["exp", "sin", "tanh", "sqrt", "log1p", "abs", "negative", "square", "maximum", "add", "multiply"]

point = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False).map(
    lambda v: 0.0 if abs(v) < 1e-3 else v)
const = st.sampled_from([0.0, 0.5, -1.0, 2.0, 3.0, -0.25, 1.0])
idx = st.integers(0, 10**6)

step = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(UNARY_OPS), idx),
    st.tuples(st.just("binary"), st.sampled_from(BINARY_OPS), idx, idx),
    st.tuples(st.just("binary_c"), st.sampled_from(BINARY_OPS), idx, const, st.booleans()),
    st.tuples(st.just("numpy"), st.sampled_from(NUMPY), idx, idx),
    st.tuples(st.just("branch"), st.sampled_from(sorted(CONVERSIONS)), idx, const, idx, idx),
    st.tuples(st.just("where"), idx, const, idx, idx),
    st.tuples(st.just("math"), idx),
    st.tuples(st.just("detach"), idx),
    st.tuples(st.just("no_grad"), idx, const),
)
program = st.lists(step, min_size=1, max_size=10)
nin = st.integers(1, 3)


def _op(name, a, b=None):
    f = getattr(pytape, name)
    return f(a) if b is None else f(a, b)


def run(prog, x):
    """The program on inputs x (Vars or floats); returns its nodes."""
    nodes = [x[k] for k in range(len(x))]

    def at(i):
        return nodes[i % len(nodes)]

    for s in prog:
        kind = s[0]
        if kind == "unary":
            nodes.append(_op(s[1], at(s[2])))
        elif kind == "binary":
            nodes.append(_op(s[1], at(s[2]), at(s[3])))
        elif kind == "binary_c":
            a = at(s[2])
            nodes.append(_op(s[1], s[3], a) if s[4] else _op(s[1], a, s[3]))
        elif kind == "numpy":
            f = getattr(np, s[1])
            nodes.append(f(at(s[2]), at(s[3])) if f.nin == 2 else f(at(s[2])))
        elif kind == "branch":
            v = CONVERSIONS[s[1]](at(s[2]))
            nodes.append(at(s[4]) if v > s[3] else at(s[5]))
        elif kind == "where":
            nodes.append(pytape.where(pytape.greater(at(s[1]), s[2]), at(s[3]), at(s[4])))
        elif kind == "math":
            nodes.append(math.atan(float(at(s[1]))))
        elif kind == "detach":
            v = at(s[1])
            nodes.append(v.detach() if isinstance(v, (pytape.Var, pytape.Tensor)) else v)
        else:  # no_grad
            with pytape.no_grad():
                nodes.append(at(s[1]) * s[2])
    return nodes


def scalar_f(prog, n):
    def f(x):
        nodes = run(prog, x)
        return nodes[-1] + 0.5 * nodes[len(nodes) // 2] if len(nodes) > n else nodes[-1]
    return f


def vector_f(prog):
    def f(x):
        nodes = run(prog, x)
        return [nodes[-1], nodes[0] * nodes[-1]]
    return f


def eager(f, p):
    """The oracle: a fresh recording at p and its reverse sweep."""
    leaves = [pytape.Var(float(v)) for v in p]
    with pytape.Tape():
        y = f(leaves)
    if isinstance(y, pytape.Var) and not y.is_leaf:
        y.backward()
        value = y.value
    else:
        value = float(y.value if isinstance(y, pytape.Var) else y)
        if isinstance(y, pytape.Var) and y.requires_grad:
            y.backward()
    return value, np.array([leaf.grad for leaf in leaves])


def eager_jacobian(f, p):
    rows = []
    for k in range(2):
        leaves = [pytape.Var(float(v)) for v in p]
        with pytape.Tape():
            y = f(leaves)[k]
        if isinstance(y, pytape.Var) and y.requires_grad:
            y.backward()
        rows.append([leaf.grad for leaf in leaves])
    return np.array(rows)


class Raised:
    """What a call raised, in place of its result."""

    def __init__(self, exc):
        self.exc = exc

    def __repr__(self):
        return f"Raised({self.exc!r})"


def outcome(call, *args):
    try:
        return call(*args)
    except (ArithmeticError, ValueError, TypeError, RuntimeError) as e:
        return Raised(e)


def agrees(got, want, eq):
    """A transformation's result agrees with the oracle's: equal, or it raised."""
    if isinstance(got, Raised):
        return True
    if isinstance(want, Raised):  # a number where the program itself raises: never allowed
        return False
    if isinstance(got, tuple):
        return len(got) == len(want) and all(eq(a, b) for a, b in zip(got, want))
    return eq(got, want)


def eager_tangent_jacobian(f, p):
    """The forward-mode oracle: a fresh recording and one tangent sweep per input
    (forward and reverse mode may differ where 0 meets inf: sqrt(x - x) at 0)."""
    cols = []
    for k in range(len(p)):
        leaves = [pytape.Var(float(v)) for v in p]
        with pytape.Tape() as t:
            ys = f(leaves)
        try:
            t.tangent_sweep({leaves[k]: 1.0})
        except ValueError:  # leaf k is not on the tape: no output depends on it
            pass
        cols.append([(y.tangent if not y.is_leaf else float(y is leaves[k] and y.requires_grad))
                     if isinstance(y, pytape.Var) else 0.0 for y in ys])
    return np.array(cols).T


def same(a, b):
    """Equal, nan matching nan (bit for bit up to the sign of zero)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
                                              | (np.isinf(a) & (a == b))))


def _points(data, n, k):
    return [np.array(data.draw(st.lists(point, min_size=n, max_size=n))) for _ in range(k)]


@FUZZ
@given(prog=program, n=nin, data=st.data())
def test_transformations_equal_a_fresh_eager_recording(prog, n, data):
    f = scalar_f(prog, n)
    (p,) = _points(data, n, 1)
    want = outcome(eager, f, p)
    grad = want if isinstance(want, Raised) else want[1]
    # elementwise=True: bit-for-bit equality with the eager recording on Vars (and its conversions,
    # guards and detach of elements) is the scalar path's promise; the Tensor recording the
    # transformations make by default is checked in tests/test_array_functional.py
    assert agrees(outcome(pytape.grad(f, elementwise=True), p), grad, same)
    assert agrees(outcome(pytape.value_and_grad(f, elementwise=True), p), want, same)
    assert agrees(outcome(pytape.jacobian(f, elementwise=True), p), grad, same)
    assert agrees(outcome(_autograd, f, p), grad, same)
    g = vector_f(prog)
    assert agrees(outcome(pytape.jacrev(g, elementwise=True), p), outcome(eager_jacobian, g, p), same)
    assert agrees(outcome(pytape.jacfwd(g, elementwise=True), p), outcome(eager_tangent_jacobian, g, p), same)


def _autograd(f, p):
    leaves = [pytape.Var(float(v)) for v in p]
    with pytape.Tape():
        y = f(leaves)
    if not (isinstance(y, pytape.Var) and not y.is_leaf):
        return eager(f, p)[1]
    got = pytape.autograd.grad(y, leaves, allow_unused=True)
    return np.array([0.0 if d is None else d for d in got])


@FUZZ
@given(prog=program, n=nin, data=st.data())
def test_traced_replays_equal_a_fresh_eager_recording(prog, n, data):
    f = scalar_f(prog, n)
    p0, p1, p2, p3 = _points(data, n, 4)
    fn = outcome(pytape.trace, f, p0)
    if isinstance(fn, Raised):
        assert isinstance(outcome(eager, f, p0), Raised)  # tracing raises only where f does
        return
    for p in (p1, p0, p2):
        want = outcome(eager, f, p)
        assert agrees(outcome(fn, p), want if isinstance(want, Raised) else want[0], same), p
        assert agrees(outcome(fn.gradient, p), want if isinstance(want, Raised) else want[1], same), p
        assert agrees(outcome(fn.value_and_grad, p), want, same), p
        assert agrees(outcome(fn.jacobian, p), want if isinstance(want, Raised) else want[1], same), p
    P = np.array([p1, p2, p3, p0])
    G, V = outcome(fn.gradient, P), outcome(fn, P)
    for row, p in enumerate(P):
        want = outcome(eager, f, p)
        assert agrees(G if isinstance(G, Raised) else G[row], want if isinstance(want, Raised) else want[1], same)
        assert agrees(V if isinstance(V, Raised) else V[row], want if isinstance(want, Raised) else want[0], same)
    g = vector_f(prog)
    gn = outcome(pytape.trace, g, p0)
    if isinstance(gn, Raised):
        return
    for p in (p2, p1):
        assert agrees(outcome(lambda q: gn.jacobian(q, mode="rev"), p), outcome(eager_jacobian, g, p), same)
        assert agrees(outcome(lambda q: gn.jacobian(q, mode="fwd"), p), outcome(eager_tangent_jacobian, g, p), same)


@FUZZ
@given(prog=program, n=nin, data=st.data())
def test_traced_hessians_equal_a_fresh_recordings(prog, n, data):
    f = scalar_f(prog, n)
    p0, p1 = _points(data, n, 2)
    fn = outcome(pytape.trace, f, p0)
    if isinstance(fn, Raised):
        return
    v = np.linspace(-1.0, 1.0, n)
    for p in (p1, p0):
        H = outcome(pytape.hessian(f), p)
        assert agrees(outcome(fn.hessian, p), H, close)
        hv = outcome(pytape.hvp, f, p, v)
        assert agrees(outcome(fn.hvp, p, v), hv, close)
