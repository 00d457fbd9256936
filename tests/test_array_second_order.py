"""Second order on array programs: ``pytape.hessian`` and ``pytape.hvp`` by
forward over reverse through array instructions (csrc/sweep_hessian.c,
pt_hvp_arrays; each kind's second-derivative kernel, csrc/array.h).

Oracles:

* the scalar engine: the same program on object arrays of Vars
  (``elementwise=True``: one scalar instruction per element and the scalar
  second-order sweep);
* central finite differences of the Tensor program's gradient (first
  order, checked on its own in test_array_oracle.py);
* PyTorch's double-backward Hessian-vector product, when installed.
"""
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pytape
from pytape import tensor as tensor_module
from pytape.program import TensorRecording
from test_array_oracle import BINARY, COMPARISONS, UNARY, _binary_tensor_fn, _sample, weights

RTOL, ATOL = 1e-11, 1e-11


def fd_hessian(f, args, argnums, eps=1e-5):
    """Central differences of pytape.grad (Tensors) of f: the Hessian blocks
    H[j][k] = d grad_j / d x_k, as pytape.hessian shapes them."""
    grad = pytape.grad(f, argnums=argnums)
    blocks = []
    for j in argnums:
        row = []
        for k in argnums:
            x = np.asarray(args[k], dtype=float)
            gj = np.asarray(grad(*args)[argnums.index(j)])
            H = np.zeros(gj.shape + x.shape)
            for idx in np.ndindex(x.shape):
                moved = []
                for step in (eps, -eps):
                    a = list(args)
                    xk = x.copy()
                    xk[idx] += step
                    a[k] = float(xk) if np.ndim(args[k]) == 0 and not isinstance(args[k], np.ndarray) else xk
                    moved.append(np.asarray(grad(*a)[argnums.index(j)]))
                H[(Ellipsis,) + idx] = (moved[0] - moved[1]) / (2 * eps)
            row.append(H)
        blocks.append(row)
    return blocks


def blocks_of(H, n):
    """pytape.hessian's answer as a list of lists of blocks."""
    if n == 1:
        return [[np.asarray(H)]]
    return [[np.asarray(b) for b in row] for row in H]


def check_hessian(f, *args, argnums=None, rtol=RTOL, atol=ATOL, fd=True, fd_rtol=1e-5, fd_atol=1e-6,
                  elementwise=True, el_f=None):
    """The Tensor Hessian of f against the scalar engine's and finite
    differences of the Tensor gradient; Hessian-vector products against the
    Hessian.  Answers the Tensor Hessian's blocks."""
    if argnums is None:
        argnums = tuple(range(len(args)))
    an = argnums if len(argnums) > 1 else argnums[0]
    H = blocks_of(pytape.hessian(f, argnums=an)(*args), len(argnums))
    He = blocks_of(pytape.hessian(el_f or f, argnums=an, elementwise=True)(*args), len(argnums)) \
        if elementwise else H
    for row, rowe in zip(H, He):
        for b, be in zip(row, rowe):
            assert b.shape == be.shape
            np.testing.assert_allclose(b, be, rtol=rtol, atol=atol)
    if fd:
        for row, rowf in zip(H, fd_hessian(f, list(args), list(argnums))):
            for b, bf in zip(row, rowf):
                np.testing.assert_allclose(b, bf, rtol=fd_rtol, atol=fd_atol)
    if len(argnums) == 1:  # hvp is H v, from its own sweep
        x = args[argnums[0]]
        v = np.random.default_rng(1).normal(size=np.shape(x))
        Hv = pytape.hvp(lambda u: f(*[u if k == argnums[0] else a for k, a in enumerate(args)]), x, v)
        want = H[0][0].reshape(np.size(x), np.size(x)) @ np.ravel(v)
        np.testing.assert_allclose(np.ravel(Hv), want, rtol=1e-10, atol=1e-10)
    return H


# =============================================================================
# every op-table row: the MAP kernels' second-derivative terms
# =============================================================================

SMOOTH_FD = {"abs", "relu", "sign", "floor", "ceil", "round", "trunc", "rint", "mod", "fmod", "floor_divide"}


def unary_case(name):
    """Row ``name``'s test point (3 x 4, from its domain) and output weights."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = _sample(name, rng, 12).reshape(3, 4)
    return a, weights(a.shape, rng)


def binary_case(name):
    """Binary row ``name``'s test operands: a (3 x 4), b (4: broadcast over
    a's rows), output weights w, and numbers c (a b) and c2 (an a)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = _sample(name, rng, 12, 0).reshape(3, 4)
    b = _sample(name, rng, 4, 1)
    w = weights(a.shape, rng)
    c = float(_sample(name, rng, 1, 1)[0])
    c2 = float(_sample(name, rng, 1, 0)[0])
    return a, b, w, c, c2


@pytest.mark.parametrize("name", UNARY)
def test_unary_row(name):
    a, w = unary_case(name)
    fn = getattr(pytape, name)
    check_hessian(lambda x: np.sum(w * fn(x)), a, fd=name not in SMOOTH_FD)


@pytest.mark.parametrize("name", [n for n in BINARY if n not in COMPARISONS])
def test_binary_row_broadcast_and_with_numbers(name):
    a, b, w, c, c2 = binary_case(name)
    fn = _binary_tensor_fn(name)
    fd = name not in SMOOTH_FD and name not in ("where_t", "where_f")
    el = name != "chain"  # the sweeps' own row (pt_chain): no function of Vars, so finite differences only
    # where_t(c, v) is v where c != 0 (where_f: where c == 0): on Vars, numpy's where
    g = {"where_t": lambda x, y: np.where(x != 0, y, 0.0), "where_f": lambda x, y: np.where(x == 0, y, 0.0)}.get(name)
    el_f = (lambda x, y: np.sum(w * g(x, y))) if g else None
    # b broadcast over a's rows: its second-order terms sum over them
    check_hessian(lambda x, y: np.sum(w * fn(x, y)), a, b, fd=fd, elementwise=el, el_f=el_f)
    check_hessian(lambda x: np.sum(w * fn(x, c)), a, fd=fd, elementwise=el, el_f=el_f and (lambda x: el_f(x, c)))
    check_hessian(lambda y: np.sum(w[0] * fn(c2, y)), b, fd=fd, elementwise=el,
                  el_f=g and (lambda y: np.sum(w[0] * g(c2, y))))


# =============================================================================
# every kind of array instruction
# =============================================================================

A = np.array([[0.3, -0.7, 1.1], [0.9, 0.2, -0.4]])
V = np.array([0.5, -1.2, 0.8, 1.5])
M = np.array([[1.0, 0.5, -0.3], [0.2, -0.8, 0.6], [0.4, 0.1, 0.9]])

KINDS = {
    "sum over axes": (lambda x: np.sum(np.sum(x ** 3, axis=0, keepdims=True) * np.sin(x)), A),
    "mean and var": (lambda x: np.mean(x ** 2) * np.var(x, axis=1).sum() + np.std(x), A),
    "max and min": (lambda x: np.max(x * x, axis=1).sum() * np.min(x) + np.amax(x) ** 2, A),
    "prod": (lambda x: np.prod(x, axis=1).sum() + np.prod(x) ** 2, A),
    "prod with one zero": (lambda x: np.sum(np.prod(x, axis=0) * np.cos(x[0])),
                           np.array([[0.0, 2.0, -1.5], [0.7, 0.0, 1.2], [1.3, 0.4, 0.0]])),
    "prod with two zeros": (lambda x: np.prod(x * 2.0), np.array([0.0, 1.5, 0.0, -0.5])),
    "cumsum": (lambda x: np.sum(np.cumsum(x, axis=1) ** 3), A),
    "views": (lambda x: np.sum(x.T[::-1] ** 2 * x.reshape(3, 2)) + np.sum(np.flip(x) * x), A),
    "gathers": (lambda x: np.sum(x[[0, 1, 1], [2, 0, 0]] ** 3) + np.sum(x[x > 0] ** 2), A),
    "concat and stack": (lambda x: np.sum(np.concatenate([x, x ** 2]) * np.concatenate([np.exp(x), x]))
                         + np.sum(np.stack([x, x * x])[1] ** 2), A),
    "matvec": (lambda x: np.sum(np.tanh(M @ x)), np.array([0.3, -0.5, 0.8])),
    "x^T M x": (lambda x: x @ M @ x, np.array([0.3, -0.5, 0.8])),
    "matmul of the argument with itself": (lambda x: np.sum((x @ x.T) ** 2) + np.sum(x.T @ x), A),
    "matmul with itself, square": (lambda x: np.sum(np.sin(x @ x)), M * 0.5),
    "batched matmul": (lambda x: np.sum(np.cos(x.reshape(2, 1, 3) @ x.reshape(2, 3, 1))), A),
    "einsum": (lambda x: np.einsum("ij,kj,ik->", x, x, np.exp(x[:, :2])), A),
    # pytape's stable forms on Tensors; the scalar engine's oracle: the textbook formulas on Vars
    "softmax cross-entropy": (lambda x: -np.sum(pytape.log_softmax(x, axis=1)[:, 1]), A,
                              lambda x: -np.sum(x[:, 1] - np.log(np.sum(np.exp(x), axis=1)))),
    "logsumexp and norm": (lambda x: pytape.logsumexp(x) + np.linalg.norm(x) ** 3, A,
                           lambda x: np.log(np.sum(np.exp(x))) + np.sqrt(np.sum(x * x)) ** 3),
    "where and clip": (lambda x: np.sum(np.where(x > 0, x ** 3, np.exp(x)) + np.clip(x, -0.5, 0.5) ** 2), A),
    "maximum of two": (lambda x: np.sum(np.maximum(x ** 2, np.sin(x))), A),
    "power with array exponent": (lambda x: np.sum((x[0] ** 2 + 1.0) ** x[1]), A),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind(name):
    f, x, *el_f = KINDS[name]
    check_hessian(f, x, rtol=1e-10, atol=1e-10, el_f=el_f[0] if el_f else None)


def test_max_with_ties_shares_second_order_as_the_adjoint():
    """At a tie the adjoint is shared evenly (torch.amax's rule): the
    reduction acts as the mean of the tied elements, so max(x^2) at
    x = (1, -1, 0.5) has Hessian diag(0.5 * 2, 0.5 * 2, 0), and min(x)^3 at a
    tie of two 2s has the block 6 * 2 * (1/2)(1/2) = 3 everywhere."""
    H = pytape.hessian(lambda x: np.max(x * x))(np.array([1.0, -1.0, 0.5]))
    np.testing.assert_array_equal(H, np.diag([1.0, 1.0, 0.0]))
    H = pytape.hessian(lambda x: np.sum(np.min(x, axis=1) ** 3))(np.array([[2.0, 2.0], [1.0, 3.0]]))
    np.testing.assert_array_equal(H.reshape(4, 4), np.array(
        [[3.0, 3.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))


def test_scalar_arguments_beside_arrays():
    """A Var argument (a 0-d operand) beside an array: every block, and an
    output that is the Var's own instruction."""
    def f(x, s):
        return np.sum(np.sin(x * s) ** 2) * s + s ** 3
    check_hessian(f, A, 0.7)
    check_hessian(lambda x, s: s ** 3 + 0.0 * s, A, 0.7, fd=False)  # a Var output: zero array blocks
    H = blocks_of(pytape.hessian(lambda x, s: s ** 3, argnums=(0, 1))(A, 0.7), 2)
    assert np.all(H[0][0] == 0.0) and np.isclose(float(H[1][1]), 6 * 0.7)


def test_constant_output_and_unused_argument():
    H = pytape.hessian(lambda x: np.sum(np.ones(3)))(A)
    assert H.shape == A.shape + A.shape and not H.any()
    H = blocks_of(pytape.hessian(lambda x, y: np.sum(x ** 3), argnums=(0, 1))(A, V), 2)
    assert not H[0][1].any() and not H[1][1].any() and np.allclose(np.diagonal(H[0][0].reshape(6, 6)), 6 * A.ravel())


def test_vector_output_is_refused():
    with pytest.raises(TypeError, match="scalar"):
        pytape.hessian(lambda x: np.sin(x))(A)
    with pytest.raises(TypeError, match="scalar"):
        pytape.hvp(lambda x: x * 2.0, V, V)


# =============================================================================
# random programs (hypothesis)
# =============================================================================

UNARY_STEPS = [
    lambda x: np.sin(x), lambda x: np.tanh(x), lambda x: x * x, lambda x: np.exp(0.3 * x),
    lambda x: x / (1.0 + x * x), lambda x: np.sqrt(x * x + 0.5), lambda x: np.log1p(x * x),
    lambda x: np.cumsum(x, axis=-1), lambda x: x[::-1], lambda x: x.T if x.ndim == 2 else x,
    lambda x: np.max(x, axis=0, keepdims=True) * x, lambda x: np.prod(x, axis=-1, keepdims=True) + x,
    lambda x: np.sum(x, axis=0) + x, lambda x: x @ x.T @ x * 0.1 if x.ndim == 2 else x * (x @ x) * 0.1,
]
BINARY_STEPS = [lambda x, y: x * y, lambda x, y: x - np.sin(y), lambda x, y: x / (2.0 + np.cos(y)),
                lambda x, y: np.maximum(x, y), lambda x, y: np.concatenate([x, y])[: len(x)] * y]


@st.composite
def programs(draw):
    steps = draw(st.lists(st.tuples(st.integers(0, len(UNARY_STEPS) + len(BINARY_STEPS) - 1),
                                    st.integers(0, 10 ** 6)), min_size=1, max_size=6))
    shape = draw(st.sampled_from([(4,), (3, 3), (2, 3)]))
    seed = draw(st.integers(0, 2 ** 31))
    return steps, shape, seed


def run_program(steps, x):
    vals = [x]
    for k, pick in steps:
        a = vals[pick % len(vals)]
        if k < len(UNARY_STEPS):
            y = UNARY_STEPS[k](a)
        else:
            b = vals[(pick // 7) % len(vals)]
            if np.shape(a) != np.shape(b):
                b = a
            y = BINARY_STEPS[k - len(UNARY_STEPS)](a, b)
        if np.shape(y) == np.shape(x):
            vals.append(y)
    return np.sum(vals[-1] * np.sin(vals[0])) + np.sum(vals[len(vals) // 2] ** 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs(prog):
    steps, shape, seed = prog
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape)
    f = lambda u: run_program(steps, u)  # noqa: E731
    check_hessian(f, x, rtol=1e-9, atol=1e-9, fd_rtol=1e-4, fd_atol=1e-5)


# =============================================================================
# large arrays: recycling, memory, PyTorch
# =============================================================================

def big(x):
    y = np.exp(0.5 * x) * np.tanh(x)           # the intermediates die as soon as used (recycled)
    z = y * y / (1.0 + x * x)
    return np.sum(np.sin(z) + z * x) + np.sum(np.cumsum(z)[::100] ** 2) * 1e-6


def test_large_arrays_that_recycle_their_memory(monkeypatch):
    """Intermediates of 40000 elements die while f runs (their memory goes
    back to the tape unless a sweep reads it): H v equals the same sweep with
    nothing recycled, bit for bit, and central differences of the gradient."""
    rng = np.random.default_rng(3)
    x, v = rng.uniform(-1, 1, 40000), rng.normal(size=40000)
    hv = pytape.hvp(big, x, v)
    eps = 1e-5
    g = pytape.grad(big)
    np.testing.assert_allclose(hv, (g(x + eps * v) - g(x - eps * v)) / (2 * eps), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(tensor_module, "_watch", lambda *a: None)
    np.testing.assert_array_equal(pytape.hvp(big, x, v), hv)


def test_repeated_sweeps_reuse_the_tape_memory():
    """A Hessian is one sweep per column on one recording: the buffers of the
    first sweep serve every later one."""
    x = np.linspace(-1, 1, 30)
    rec = TensorRecording(lambda u: np.sum(np.sin(u) * (u @ u) + np.prod(u[:4])), (x,), 0)
    first = rec.hvps(np.eye(30)[:, :1])
    before = rec.tape.nbytes
    H = rec.hvps(np.eye(30))
    assert rec.tape.nbytes == before
    np.testing.assert_array_equal(H[:, 0], first[:, 0])
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(32, 6)), rng.integers(0, 3, 32)
    W0, v = rng.normal(size=(6, 3)) * 0.5, rng.normal(size=(6, 3))

    def loss(W):
        z = np.tanh(X @ W)
        return -np.mean(pytape.log_softmax(z, axis=1)[np.arange(32), y]) + 0.01 * np.sum(W ** 4)

    def tloss(W):
        z = torch.tanh(torch.tensor(X) @ W)
        return torch.nn.functional.cross_entropy(z, torch.tensor(y)) + 0.01 * torch.sum(W ** 4)
    _, want = torch.autograd.functional.hvp(tloss, torch.tensor(W0), torch.tensor(v))
    np.testing.assert_allclose(pytape.hvp(loss, W0, v), want.numpy(), rtol=1e-11, atol=1e-13)


def long_rows(x):
    s, u = x[0], x[1:]                         # a 0-d operand broadcast over a long row, and the row
    y = np.sin(u) * u * s + (u + 1.0) ** 2 * (s * s)
    return np.sum(y * np.exp(-u * u)) + np.sum(u[::2] / (2.0 + np.cos(u[::2])))


FUSED_N = 256 * 3 + 7  # three blocks and a part


@pytest.mark.parametrize("n", [FUSED_N, 2 ** 18 + 5])
def test_fused_pass_over_long_rows_blocks_and_threads(n):
    """The elementwise kinds' fused pass (adjoint and its tangent at once,
    csrc/array_elementwise.c: pt_map_vjp_hvp, by blocks of 256 elements, split
    over threads from 2^17 on) and the written tangent: rows across block
    boundaries, a 0-d operand whose adjoint sums the row, x * x, an adjoint
    passed on unchanged (u + 1.0), strided gathers; H v against central
    differences of the gradient, and the small case against the scalar engine."""
    rng = np.random.default_rng(n)
    x, v = rng.uniform(-1, 1, n), rng.normal(size=n)
    hv = pytape.hvp(long_rows, x, v)
    eps = 1e-5
    g = pytape.grad(long_rows)
    np.testing.assert_allclose(hv, (g(x + eps * v) - g(x - eps * v)) / (2 * eps), rtol=1e-6, atol=1e-6)
    if n == FUSED_N:
        np.testing.assert_allclose(hv, pytape.hvp(long_rows, x, v, elementwise=True), rtol=1e-12, atol=1e-12)
