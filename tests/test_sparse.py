"""Sparse Jacobians and Hessians (pytape/sparse.py, csrc/sparsity.c): the
patterns against the nonzeros of dense derivatives, the colourings against
their definitions, the compressed sweeps against pytape's dense Jacobians and
Hessians (themselves checked against finite differences elsewhere) and
against finite differences here."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import pytape
from pytape import _native
from pytape.sparse import DENSE, SparseHessian, SparseJacobian

sp = pytest.importorskip("scipy.sparse")


# ---- random programs -------------------------------------------------------------------------------------------

# smooth nodes with positive weights: no cancellation, so at random points the
# numerical nonzeros are exactly the structural ones
EXACT = {
    "mul": lambda a, b: a * b,
    "sin": lambda a, b: pytape.sin(0.3 * a + 0.7 * b),
    "exp": lambda a, b: pytape.exp(0.5 * a),
    "tanh": lambda a, b: pytape.tanh(a) + 1.3 * b,
    "lin": lambda a, b: 0.6 * a + 0.8 * b,
    "sq": lambda a, b: a * a,
}
# and branches in values: pattern a superset of the nonzeros
BRANCHY = dict(EXACT, **{
    "relu": lambda a, b: pytape.relu(a - 0.5) * b,
    "max": lambda a, b: pytape.maximum(a, b),
    "abs": lambda a, b: abs(a - b),
    "where": lambda a, b: pytape.where(pytape.less(a, 0.5), a * a, b),
    "floor": lambda a, b: pytape.floor(a) * b + a,
    "div": lambda a, b: a / (b + 2.0),
})

node = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))


def program(ops, nodes, n, k):
    """f(x) -> its last k nodes (a vector), each node an op of two earlier nodes."""
    names = sorted(ops)

    def f(x):
        vals = list(x[:n])
        for op, ia, ib in nodes:
            vals.append(ops[names[op % len(names)]](vals[ia % len(vals)], vals[ib % len(vals)]))
        return np.array(vals[-k:], dtype=object)
    return f


def nonzeros(M):
    return np.abs(np.asarray(M)) > 0


def dense_of(S):
    assert sp.issparse(S) and S.format == "csr"
    return S.toarray()


def check_jacobian(f, x, exact):
    J = pytape.jacobian(f)(x)
    P = dense_of(pytape.jacobian_sparsity(f, x))
    assert P.dtype == bool and P.shape == J.shape
    assert not np.any(nonzeros(J) & ~P), "a nonzero outside the pattern"
    if exact:
        J2 = pytape.jacobian(f)(np.random.default_rng(1).uniform(0.1, 0.9, x.shape))
        np.testing.assert_array_equal(P, nonzeros(J) | nonzeros(J2))
    for mode in ("auto", "fwd", "rev"):
        Js = pytape.sparse_jacobian(f, mode)(x)
        np.testing.assert_allclose(dense_of(Js), J, rtol=1e-13, atol=1e-13)
        assert Js.nnz == P.sum()  # the pattern's entries, zeros included


def check_hessian(f, x, exact):
    H = pytape.hessian(f)(x)
    P = dense_of(pytape.hessian_sparsity(f, x))
    np.testing.assert_array_equal(P, P.T)
    assert not np.any(nonzeros(H) & ~P), "a nonzero outside the pattern"
    if exact:
        H2 = pytape.hessian(f)(np.random.default_rng(2).uniform(0.1, 0.9, x.shape))
        np.testing.assert_array_equal(P, nonzeros(H) | nonzeros(H2))
    Hs = dense_of(pytape.sparse_hessian(f)(x))
    np.testing.assert_allclose(Hs, H, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(H).max()))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), nodes=st.lists(node, min_size=1, max_size=25), k=st.integers(1, 6),
       seed=st.integers(0, 1000), exact=st.booleans())
def test_random_jacobians(n, nodes, k, seed, exact):
    x = np.random.default_rng(seed).uniform(0.1, 0.9, n)
    f = program(EXACT if exact else BRANCHY, nodes, n, k)
    check_jacobian(f, x, exact)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), nodes=st.lists(node, min_size=1, max_size=25), seed=st.integers(0, 1000),
       exact=st.booleans())
def test_random_hessians(n, nodes, seed, exact):
    x = np.random.default_rng(seed).uniform(0.1, 0.9, n)
    g = program(EXACT if exact else BRANCHY, nodes, n, 3)
    f = lambda v: np.sum(g(v))  # noqa: E731
    H = pytape.hessian(f)(x)
    assume(np.all(np.isfinite(H)))
    check_hessian(f, x, exact)


def test_branches_count_both_ways():
    """where / maximum: the pattern is the same on either side of the branch."""
    f = lambda x: [pytape.where(pytape.less(x[0], x[1]), x[2] * x[3], pytape.maximum(x[1], x[4]))]  # noqa: E731
    for x in ([0.1, 0.5, 0.3, 0.2, 0.9], [0.9, 0.5, 0.3, 0.2, 0.1], [0.9, 0.5, 0.3, 0.2, 0.6]):
        P = dense_of(pytape.jacobian_sparsity(f, np.array(x)))
        np.testing.assert_array_equal(P, [[False, True, True, True, True]])
        check_jacobian(f, np.array(x), exact=False)
    # piecewise-constant operations carry no dependence
    g = lambda x: [pytape.floor(x[0]) + x[1], pytape.sign(x[2]) * 3.0]  # noqa: E731
    np.testing.assert_array_equal(dense_of(pytape.jacobian_sparsity(g, np.ones(3))), [[0, 1, 0], [0, 0, 0]])


# ---- the known cases ---------------------------------------------------------------------------------------

def rosenbrock(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_tridiagonal_hessian_takes_three_colours():
    x = np.random.default_rng(0).uniform(-1, 1, 400)
    rec = pytape.program.Recording(rosenbrock, (x,), 0)
    plan = SparseHessian(rec)
    assert plan.colours == 3 and plan.sweeps == 3
    H = dense_of(plan.evaluate(rec))
    # the exact Hessian of the chained Rosenbrock function
    n = len(x)
    d = np.zeros(n)
    d[:-1] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    d[1:] += 200
    off = -400 * x[:-1]
    np.testing.assert_allclose(H, np.diag(d) + np.diag(off, 1) + np.diag(off, -1), rtol=1e-13, atol=1e-10)


def test_banded_jacobian_takes_the_bandwidth():
    # c_i = x_{i-1} x_i x_{i+1} - 1: three columns per row, three colours either way
    f = lambda x: x[:-2] * x[1:-1] * x[2:] - 1.0  # noqa: E731
    x = np.random.default_rng(1).uniform(0.5, 1.5, 300)
    rec = pytape.program.Recording(f, (x,), 0)
    for mode in ("fwd", "rev"):
        plan = SparseJacobian(rec, mode)
        assert plan.mode == mode and plan.colours == 3 and plan.sweeps == 3
        np.testing.assert_allclose(dense_of(plan.evaluate(rec)), pytape.jacobian(f)(x), rtol=1e-14)


def test_a_dense_row_gets_its_own_reverse_sweep():
    """A budget constraint sum(x) = 1 beside banded ones: colouring the columns
    would need a colour per column; the dense row takes one reverse lane."""
    n = 3 * DENSE
    f = lambda x: np.concatenate([x[1:] ** 2 - x[:-1], [np.sum(x) - 1.0]])  # noqa: E731
    x = np.random.default_rng(2).uniform(-1, 1, n)
    rec = pytape.program.Recording(f, (x,), 0)
    for mode in ("auto", "fwd", "rev"):
        plan = SparseJacobian(rec, mode)
        assert plan.sweeps <= 4, (mode, plan.sweeps)
        np.testing.assert_allclose(dense_of(plan.evaluate(rec)), pytape.jacobian(f)(x), rtol=1e-14)
    # and a dense column (a variable in every constraint) its own tangent lane
    g = lambda x: x[1:] * x[0] + x[1:] ** 2  # noqa: E731
    rec = pytape.program.Recording(g, (x,), 0)
    for mode in ("auto", "fwd", "rev"):
        plan = SparseJacobian(rec, mode)
        assert plan.sweeps <= 3, (mode, plan.sweeps)
        np.testing.assert_allclose(dense_of(plan.evaluate(rec)), pytape.jacobian(g)(x), rtol=1e-14)


def test_a_hub_vertex_gets_its_own_lane():
    """An arrowhead Hessian (x0 coupled to every variable): the hub is a dense
    vertex, computed by its own Hessian-vector product."""
    n = 2 * DENSE + 10
    f = lambda x: np.sum(x[0] * x[1:] ** 2) + np.sum(x ** 4)  # noqa: E731
    x = np.random.default_rng(3).uniform(-1, 1, n)
    rec = pytape.program.Recording(f, (x,), 0)
    plan = SparseHessian(rec)
    assert plan.dense.sum() == 1 and plan.dense[0]
    assert plan.sweeps <= 3
    np.testing.assert_allclose(dense_of(plan.evaluate(rec)), pytape.hessian(f)(x), rtol=1e-13, atol=1e-13)


def test_against_finite_differences():
    f = lambda x: np.sum(np.sin(x[1:] * x[:-1]) + x[:-1] ** 3 * pytape.exp(0.1 * x[1:]))  # noqa: E731
    x = np.random.default_rng(4).uniform(-1, 1, 30)
    H = dense_of(pytape.sparse_hessian(f)(x))
    grad = pytape.grad(f)
    eps = 1e-6
    fd = np.array([(grad(x + eps * e) - grad(x - eps * e)) / (2 * eps) for e in np.eye(len(x))])
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-6)
    c = lambda x: x[1:] * pytape.cos(x[:-1])  # noqa: E731
    J = dense_of(pytape.sparse_jacobian(c)(x))
    fdj = np.array([(np.array([v.value if hasattr(v, "value") else v for v in c(x + eps * e)]) -
                     np.array([v.value if hasattr(v, "value") else v for v in c(x - eps * e)])) / (2 * eps)
                    for e in np.eye(len(x))]).T
    np.testing.assert_allclose(J, fdj, rtol=1e-6, atol=1e-8)


def test_long_chains_share_their_index_sets():
    """10^4 nonlinear steps on two variables (an integrator's state): the
    index sets are shared along the chain, the products not repeated."""
    def f(x):
        a, b = x[0], x[1]
        for _ in range(5000):
            a, b = a + 0.001 * pytape.sin(b), b - 0.001 * a * a
        return a * b + x[2] ** 2
    x = np.array([0.3, 0.4, 0.5])
    rec = pytape.program.Recording(f, (x,), 0)
    rows, cols = rec.tape._c.hessian_pattern(rec.all_in_slots(), rec.out_slots[0])
    assert len(rows) < 40  # a few products while the sets grow, then one set: not 4 pairs per step
    np.testing.assert_allclose(dense_of(SparseHessian(rec).evaluate(rec)), pytape.hessian(f)(x), rtol=1e-10)


def test_custom_primitives_depend_on_every_operand():
    @pytape.primitive
    def mysum(a, b):
        return a + b

    @mysum.defvjp
    def _(ans, a, b):
        return lambda g: (g, g)

    f = lambda x: [mysum(x[0], x[1]), x[2]]  # noqa: E731
    np.testing.assert_array_equal(dense_of(pytape.jacobian_sparsity(f, np.ones(3))), [[1, 1, 0], [0, 0, 1]])
    g = lambda x: mysum(x[0], x[1]) + x[2] ** 2  # noqa: E731
    # a custom primitive may be nonlinear in any pair of its operands
    np.testing.assert_array_equal(dense_of(pytape.hessian_sparsity(g, np.ones(3))),
                                  [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


# ---- colourings ------------------------------------------------------------------------------------------------

def random_pattern(rng, m, n, density):
    return sp.csr_matrix(rng.random((m, n)) < density)


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 30), n=st.integers(1, 30), density=st.floats(0.0, 0.6), seed=st.integers(0, 10**6))
def test_column_colourings_separate_columns_that_share_a_row(m, n, density, seed):
    P = random_pattern(np.random.default_rng(seed), m, n, density)
    colour, k = _native.colour_columns(P, P.tocsc())
    A = P.toarray()
    assert colour.min(initial=0) >= 0 and (n == 0 or colour.max() == k - 1)
    for i in range(m):
        cs = colour[A[i]]
        assert len(set(cs)) == len(cs), "two columns of one row share a colour"


def _bicoloured_path_on_four(A, colour):
    n = len(A)
    adj = [np.flatnonzero(A[v] & (np.arange(n) != v)) for v in range(n)]
    for a in range(n):
        for b in adj[a]:
            for c in adj[b]:
                if c == a:
                    continue
                for d in adj[c]:
                    if d in (a, b):
                        continue
                    if colour[a] == colour[c] and colour[b] == colour[d]:
                        return (a, b, c, d)
    return None


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 16), density=st.floats(0.0, 0.5), seed=st.integers(0, 10**6))
def test_star_colourings_are_star_colourings(n, density, seed):
    rng = np.random.default_rng(seed)
    A = rng.random((n, n)) < density
    A = A | A.T
    colour, k = _native.colour_star(sp.csr_matrix(A))
    for v, w in zip(*np.nonzero(A)):
        assert v == w or colour[v] != colour[w], "adjacent vertices share a colour"
    assert _bicoloured_path_on_four(A, colour) is None
    # and every entry is read back from H S exactly (a random symmetric H on the pattern)
    H = np.where(A, rng.normal(size=(n, n)), 0.0)
    H = np.triu(H) + np.triu(H, 1).T
    S = np.zeros((n, k))
    S[np.arange(n), colour] = 1.0
    B = H @ S
    for i, j in zip(*np.nonzero(A)):
        alone = sum(1 for l in np.flatnonzero(A[i]) if l != i and colour[l] == colour[j]) == 1
        got = B[i, colour[j]] if (i == j or alone) else B[j, colour[i]]
        assert got == pytest.approx(H[i, j], abs=1e-12)


# ---- compiled functions ------------------------------------------------------------------------------------------

def test_compiled_functions_keep_the_plan():
    n = 50
    fn = pytape.trace(rosenbrock, np.zeros(n), elementwise=True)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.uniform(-1, 1, n)
        np.testing.assert_allclose(dense_of(fn.sparse_hessian(x)), pytape.hessian(rosenbrock)(x), rtol=1e-13,
                                   atol=1e-12)
    plans = fn._tapes[0].origin._sparse_plans
    assert list(plans) == ["sparse_hessian"]
    plan = plans["sparse_hessian"]
    fn.sparse_hessian(x)
    assert fn._tapes[0].origin._sparse_plans["sparse_hessian"] is plan  # made once
    assert fn.hessian_sparsity(x).nnz == 3 * n - 2

    c = lambda x: x[1:] * x[:-1] - pytape.sin(x[1:])  # noqa: E731
    fc = pytape.trace(c, np.zeros(n), elementwise=True)
    for mode in ("auto", "fwd", "rev"):
        x = rng.uniform(-1, 1, n)
        np.testing.assert_allclose(dense_of(fc.sparse_jacobian(x, mode=mode)), pytape.jacobian(c)(x), rtol=1e-14)
    assert fc.jacobian_sparsity(x).nnz == 2 * (n - 1)


def test_compiled_functions_follow_branches():
    """A Python branch is a guard: the other branch is traced again, with its own pattern."""
    def f(x):
        if x[0] > 0:
            return x[0] * x[1] + x[2]
        return x[0] * x[2] ** 2
    fn = pytape.trace(f, np.array([1.0, 2.0, 3.0]), elementwise=True)
    for x in ([1.0, 2.0, 3.0], [-1.0, 2.0, 3.0], [2.0, -1.0, 0.5]):
        x = np.array(x)
        np.testing.assert_array_equal(dense_of(fn.sparse_hessian(x)), pytape.hessian(f)(x))
    np.testing.assert_array_equal(dense_of(fn.hessian_sparsity(np.array([-1.0, 0, 0]))),
                                  [[0, 0, 1], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(dense_of(fn.hessian_sparsity(np.array([1.0, 0, 0]))),
                                  [[0, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_several_arguments_are_columns_one_after_another():
    f = lambda x, y: [x[0] * y, x[1] + y]  # noqa: E731
    fn = pytape.trace(f, np.zeros(2), 1.0, elementwise=True)
    J = dense_of(fn.sparse_jacobian(np.array([2.0, 3.0]), 5.0))
    np.testing.assert_array_equal(J, [[5.0, 0.0, 2.0], [0.0, 1.0, 1.0]])


def test_argnums_choose_the_inputs():
    """The Hessian of a Lagrangian term v . c(x) in x only (v data), as
    constrained optimisers ask for it; and the Jacobian in one argument."""
    c = lambda x: np.concatenate([x[:-1] * x[1:] ** 2, [np.sum(x ** 3)]])  # noqa: E731
    n = 20
    rng = np.random.default_rng(6)
    x, v = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    lag = pytape.trace(lambda x, v: np.dot(v, c(x)), x, v, argnums=0, elementwise=True)
    want = pytape.hessian(lambda x: np.dot(v, c(x)))(x)
    np.testing.assert_allclose(dense_of(lag.sparse_hessian(x, v)), want, rtol=1e-13, atol=1e-14)
    assert lag.hessian_sparsity(x, v).shape == (n, n)
    v2 = rng.uniform(-1, 1, n)  # new data, same plan
    np.testing.assert_allclose(dense_of(lag.sparse_hessian(x, v2)),
                               pytape.hessian(lambda x: np.dot(v2, c(x)))(x), rtol=1e-13, atol=1e-14)
    fb = pytape.trace(lambda w, x: c(x) * w, 2.0, x, argnums=1, elementwise=True)
    for mode in ("fwd", "rev"):
        np.testing.assert_allclose(dense_of(fb.sparse_jacobian(2.0, x, mode=mode)), 2.0 * pytape.jacobian(c)(x),
                                   rtol=1e-14)


# ---- array programs (traced as Tensors): the pattern from f recorded element by element ----------------------------

def test_array_programs_take_the_pattern_from_elements_and_the_values_from_the_array_tape():
    n = 40
    fa = pytape.trace(rosenbrock, np.zeros(n))
    c = fa._tapes[0]
    assert type(c).__name__ == "_ArrayCompiled" and fa.num_ops < 20  # array instructions
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.uniform(-1, 1, n)
        np.testing.assert_allclose(dense_of(fa.sparse_hessian(x)), pytape.hessian(rosenbrock)(x), rtol=1e-13,
                                   atol=1e-12)
    plan = c._sparse_plans["sparse_hessian"]
    assert plan is not None and plan.colours == 3 and fa.hessian_sparsity(x).nnz == 3 * n - 2
    assert getattr(fa, "_twin", None) is None  # no element-level branch: the array tape's own sweeps
    # broadcasting, a banded matrix product, a reduction along an axis
    A = np.diag(np.full(n, 2.0)) + np.diag(np.ones(n - 1), 1)
    g = lambda x: np.concatenate([np.sin(A @ x) * x, np.sum(x.reshape(4, 10) ** 2, axis=1)])  # noqa: E731
    ga = pytape.trace(g, np.zeros(n))
    for mode in ("auto", "fwd", "rev"):
        x = rng.uniform(-1, 1, n)
        J = dense_of(ga.sparse_jacobian(x, mode=mode))
        np.testing.assert_allclose(J, pytape.jacobian(g)(x), rtol=1e-13, atol=1e-14)
    P = dense_of(ga.jacobian_sparsity(x))
    np.testing.assert_array_equal(P[:n], (A != 0) | np.eye(n, dtype=bool))
    np.testing.assert_array_equal(P[n:], np.kron(np.eye(4), np.ones(10)).astype(bool))


def test_array_programs_with_element_level_comparisons_follow_them():
    """np.max picks an element by comparisons: the pattern at one point is not the
    pattern at another, so the element-level tape and its guards serve."""
    f = lambda x: np.max(x) ** 3 + np.sum(x[1:] * x[:-1])  # noqa: E731
    x = np.array([0.1, 0.5, 0.2, 0.3])
    fa = pytape.trace(f, x)
    for point in (x, np.array([0.9, 0.5, 0.2, 0.3]), np.array([0.1, 0.5, 0.2, 0.7])):
        np.testing.assert_allclose(dense_of(fa.sparse_hessian(point)), pytape.hessian(f)(point), rtol=1e-14)
        np.testing.assert_allclose(dense_of(fa.sparse_jacobian(point)).ravel(), fa.gradient(point), rtol=1e-14)
    assert fa._tapes[0]._sparse_plans["sparse_hessian"] is None and fa._twin.retraces >= 2


def test_array_programs_with_data_arguments():
    n = 30
    rng = np.random.default_rng(8)
    lag = pytape.trace(lambda x, v: np.sum(v * np.exp(x[1:] - x[:-1])), np.zeros(n), np.ones(n - 1), argnums=0)
    assert type(lag._tapes[0]).__name__ == "_ArrayCompiled"
    for _ in range(2):
        x, v = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n - 1)
        want = pytape.hessian(lambda x: np.sum(v * np.exp(x[1:] - x[:-1])))(x)
        np.testing.assert_allclose(dense_of(lag.sparse_hessian(x, v)), want, rtol=1e-13, atol=1e-14)


# ---- errors ---------------------------------------------------------------------------------------------------------

def test_errors_say_what_to_do():
    def tensors_only(x):
        if not isinstance(x, pytape.Tensor):
            raise TypeError("written for pytape.Tensor")
        return np.sum(x ** 2)
    fa = pytape.trace(tensors_only, np.zeros(3))   # an array program that cannot run on object arrays
    with pytest.raises(NotImplementedError, match="element by element.*written for pytape.Tensor"):
        fa.sparse_hessian(np.ones(3))
    with pytest.raises(TypeError, match="scalar"):
        pytape.sparse_hessian(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(ValueError, match="mode"):
        pytape.sparse_jacobian(lambda x: x, mode="sideways")
    outer = pytape.Var(2.0)
    with pytest.raises(TypeError, match="outside its argument"):
        pytape.sparse_jacobian(lambda x: x * outer)(np.ones(2))


def test_constant_and_unused_inputs():
    f = lambda x: [x[0] * 0 + 3.0, x[0] ** 2]  # noqa: E731
    J = dense_of(pytape.sparse_jacobian(f)(np.array([2.0, 5.0])))
    np.testing.assert_array_equal(J, pytape.jacobian(f)(np.array([2.0, 5.0])))
    H = dense_of(pytape.sparse_hessian(lambda x: x[1] ** 3)(np.array([2.0, 5.0])))
    np.testing.assert_array_equal(H, [[0.0, 0.0], [0.0, 30.0]])
    H = dense_of(pytape.sparse_hessian(lambda x: 4.0)(np.array([2.0, 5.0])))
    np.testing.assert_array_equal(H, np.zeros((2, 2)))
