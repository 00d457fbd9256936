"""Derivatives of array instructions (pytape.Tensor) against oracles.

The main oracle is pytape's scalar engine: the same numpy program run on
object arrays of ``pytape.Var`` (element by element, one scalar instruction
per element), whose values and gradients the Tensor's must equal:

* elementwise rows (MAP1 / MAP2): bit for bit, values, gradients and
  tangents, since the array kernels are generated from the same C text of
  csrc/ops.def as the scalar sweeps (checked row by row below);
* reductions, contractions and composites: within a small relative
  tolerance (summation order differs: BLAS, pairwise sums).

Independent of pytape's rules: central finite differences on the Tensor
program's values, and PyTorch (when installed) for a few representative
programs.  Tangents (forward mode, ``_native.tangent_sweep_arrays``) are
checked against the scalar engine's derivatives and the identity
w . (J v) == (w^T J) . v with the reverse sweep.
"""
import math
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pytape
from pytape import _native
from pytape.array_ops import ROWS
from pytape import tensor as tensor_module
from pytape.ops import NUMPY_NAMES, var_array
from pytape.recording import FUNCTIONS as SCALAR

RTOL = 1e-11
ATOL = 1e-12


# =============================================================================
# the oracles
# =============================================================================

def var_leaves(a):
    """An object array (VarArray) of Var leaves with a's values."""
    a = np.asarray(a, dtype=np.float64)
    flat = np.empty(a.size, dtype=object)
    for k, v in enumerate(a.flat):
        flat[k] = pytape.Var(float(v))
    return var_array(flat.reshape(a.shape))


def var_values(out):
    out = np.asarray(out, dtype=object)
    return np.array([float(v.value) if isinstance(v, pytape.Var) else float(v) for v in out.flat]).reshape(out.shape)


def var_grads(leaves):
    return np.array([v.grad for v in leaves.flat]).reshape(leaves.shape)


def _inputs(args):
    """Each argument as a float64 array (a Python float stays a 0-d 'scalar Var' marker)."""
    return [(np.asarray(a, dtype=np.float64), isinstance(a, float)) for a in args]


def run_vars(prog, args, w):
    """The scalar engine: prog on object arrays of Vars (Python floats: Vars).
    Answers (value, gradients of sum(out * w))."""
    leaves = []
    xs = []
    for a, scalar in _inputs(args):
        if scalar:
            v = pytape.Var(float(a))
            leaves.append(v)
            xs.append(v)
        else:
            L = var_leaves(a)
            leaves.append(L)
            xs.append(L)
    with pytape.Tape():
        out = np.asarray(prog(*xs), dtype=object)
        value = var_values(out)
        loss = 0.0
        for o, wk in zip(out.flat, np.broadcast_to(w, out.shape).flat):
            if isinstance(o, pytape.Var):
                loss = loss + o * float(wk)
        if isinstance(loss, pytape.Var):
            loss.backward()
    grads = [np.float64(x.grad) if isinstance(x, pytape.Var) else var_grads(x) for x in leaves]
    return value, grads


def tensor_inputs(args):
    out = []
    for a, scalar in _inputs(args):
        out.append(pytape.Var(float(a)) if scalar else pytape.Tensor(a))
    return out


def run_tensor(prog, args, w, tangents=None):
    """prog on Tensor leaves (Python floats: Vars): (value, gradients of
    sum(out * w), tangent of out along ``tangents`` or None)."""
    xs = tensor_inputs(args)
    with pytape.Tape() as tape:
        out = prog(*xs)
    assert isinstance(out, pytape.Tensor), type(out)
    value = np.array(out.value)
    tangent = None
    if tangents is not None:
        slots, seeds, aslots, aseeds = [], [], [], []
        for x, d in zip(xs, tangents):
            if isinstance(x, pytape.Var):
                if x._hs == tape._serial:
                    slots.append(x._hh >> _native.ID_BITS)
                    seeds.append(float(d))
            elif x._hs == tape._serial:
                aslots.append(x._hh >> _native.ID_BITS)
                aseeds.append(np.asarray(d, dtype=np.float64))
        _native.tangent_sweep_arrays(tape._c, slots, seeds, aslots, aseeds)
        # a leaf answered as it is (x.T of a 0-d x): its tangent is its seed
        tangent = out.tangent if not out.is_leaf else np.asarray(tangents[[x is out for x in xs].index(True)])
    out.backward(np.broadcast_to(w, out.shape).copy())
    grads = [np.float64(x.grad) if isinstance(x, pytape.Var) else x.grad.copy() for x in xs]
    return value, grads, tangent


def tensor_value(prog, args):
    """The value of prog on constant Tensors (no gradients)."""
    xs = [float(a) if s else pytape.Tensor(a, requires_grad=False) for a, s in _inputs(args)]
    with pytape.Tape():
        out = prog(*xs)
    return np.array(out.value if isinstance(out, pytape.Tensor) else out, dtype=np.float64)


def finite_differences(prog, args, w, h=1e-6):
    """Central differences of sum(prog(args) * w) on the Tensor program's values."""
    base = [a.copy() for a, _ in _inputs(args)]
    scalars = [s for _, s in _inputs(args)]
    grads = []
    for k, a in enumerate(base):
        g = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            vals = []
            for step in (h, -h):
                moved = [b.copy() for b in base]
                moved[k][idx] += step
                call = [float(m) if s else m for m, s in zip(moved, scalars)]
                vals.append(float(np.sum(tensor_value(prog, call) * w)))
            g[idx] = (vals[0] - vals[1]) / (2 * h)
        grads.append(g)
    return grads


def weights(shape, rng):
    return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def oracle(prog, *args, var_prog=None, exact=False, fd=True, rtol=RTOL, atol=ATOL, seed=0, fd_rtol=1e-5):
    """Check the Tensor program ``prog`` against the scalar engine running
    ``var_prog`` (default: the same program) on object arrays of Vars, and
    against central differences; tangents along a random direction by the
    identity w . (J v) == grad . v.  Answers the Tensor gradients."""
    rng = np.random.default_rng(seed)
    probe = tensor_value(prog, args)
    w = weights(probe.shape, rng)
    vs = [rng.normal(size=np.shape(a)) for a, _ in _inputs(args)]
    tv, tg, tt = run_tensor(prog, args, w, vs)
    vv, vg = run_vars(var_prog or prog, args, w)
    assert tv.shape == vv.shape == probe.shape
    check = np.testing.assert_array_equal if exact else \
        (lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=atol))
    check(tv, vv)
    for a, b in zip(tg, vg):
        assert np.shape(a) == np.shape(b)
        check(a, b)
    np.testing.assert_allclose(np.sum(w * tt), sum(np.sum(g * v) for g, v in zip(tg, vs)), rtol=1e-9, atol=1e-9)
    if fd:
        for a, b in zip(tg, finite_differences(prog, args, w)):
            np.testing.assert_allclose(a, b, rtol=fd_rtol, atol=1e-6)
    return tg


# =============================================================================
# 1. every op-table row, elementwise
# =============================================================================

def _pm(lo, hi):
    """|x| in [lo, hi], random sign."""
    return lambda rng, n: rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)


def _u(lo, hi):
    return lambda rng, n: rng.uniform(lo, hi, n)


UNARY_DOMAIN = {
    "sqrt": _u(0.1, 3.0), "log": _u(0.1, 3.0), "log2": _u(0.1, 3.0), "log10": _u(0.1, 3.0),
    "log1p": _u(-0.9, 3.0), "asin": _u(-0.9, 0.9), "acos": _u(-0.9, 0.9), "atanh": _u(-0.9, 0.9),
    "acosh": _u(1.1, 3.0), "tan": _u(-1.2, 1.2), "cbrt": _pm(0.1, 3.0), "abs": _pm(0.1, 3.0),
    "relu": _pm(0.1, 3.0), "sign": _pm(0.1, 3.0),
}
BINARY_DOMAIN = {
    "div": (_u(-2.0, 2.0), _pm(0.5, 2.0)), "pow": (_u(0.2, 2.0), _u(-2.0, 2.0)),
    "atan2": (_pm(0.1, 2.0), _pm(0.1, 2.0)), "hypot": (_pm(0.1, 2.0), _pm(0.1, 2.0)),
    "mod": (_u(-3.0, 3.0), _pm(0.5, 2.0)), "fmod": (_u(-3.0, 3.0), _pm(0.5, 2.0)),
    "floor_divide": (_u(-3.0, 3.0), _pm(0.5, 2.0)),
    "where_t": (lambda rng, n: rng.integers(0, 2, n).astype(float), _u(-2.0, 2.0)),
    "where_f": (lambda rng, n: rng.integers(0, 2, n).astype(float), _u(-2.0, 2.0)),
}
#: rows with a numpy ufunc of their own
NUMPY_UFUNC = {name: getattr(np, pytape.ops.NUMPY_NAMES.get(name, name)) for name in _native.OPCODES
               if isinstance(getattr(np, pytape.ops.NUMPY_NAMES.get(name, name), None), np.ufunc)}


def _sample(name, rng, n, which=None):
    if which is None:
        return UNARY_DOMAIN.get(name, _u(-2.0, 2.0))(rng, n)
    return BINARY_DOMAIN.get(name, (_u(-2.0, 2.0), _u(-2.0, 2.0)))[which](rng, n)


def _scalar_map(f, *xs):
    """f element by element over object arrays / numbers (broadcast)."""
    b = np.broadcast(*xs)
    out = np.empty(b.shape, dtype=object)
    out.flat = [f(*vals) for vals in b]
    return var_array(out)


#: comparison rows: numpy's ufuncs on Tensors give plain bool arrays (values, no derivative)
COMPARISONS = {"less", "less_equal", "equal", "not_equal"}
UNARY = sorted(_native.UNARY)
BINARY = sorted(_native.BINARY)


def test_every_row_is_covered():
    assert set(UNARY) | set(BINARY) == set(_native.OPCODES)
    assert len(UNARY) >= 30 and len(BINARY) >= 20


@pytest.mark.parametrize("name", UNARY)
def test_unary_row_bit_for_bit(name):
    """values, gradients and tangents of a MAP1 row equal the scalar engine's
    exactly (same C text), through pytape.<name> and numpy's ufunc."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = _sample(name, rng, 12).reshape(3, 4)
    w = weights(a.shape, rng)
    ones = np.ones(a.shape)
    vv, (vg,) = run_vars(lambda x: _scalar_map(SCALAR[name], x), [a], w)
    _, (d,) = run_vars(lambda x: _scalar_map(SCALAR[name], x), [a], ones)  # f'(a), exactly (1.0 * f')
    v = rng.normal(size=a.shape)
    fns = [getattr(pytape, name)]
    if name in NUMPY_UFUNC:
        fns.append(NUMPY_UFUNC[name])
    for f in fns:
        tv, (tg,), tt = run_tensor(f, [a], w, [v])
        np.testing.assert_array_equal(tv, vv)
        np.testing.assert_array_equal(tg, vg)
        np.testing.assert_array_equal(tt, d * v)
    # and the reference of its values: numpy (a value check independent of pytape)
    if name in NUMPY_UFUNC and name not in ("round",):
        np.testing.assert_allclose(tv, NUMPY_UFUNC[name](a), rtol=1e-14, atol=1e-300)


def _binary_tensor_fn(name):
    if name in ("where_t", "where_f", "chain"):
        return ROWS[name]
    return getattr(pytape, name)


@pytest.mark.parametrize("name", BINARY)
def test_binary_row_bit_for_bit(name):
    """MAP2 rows: the var-var form on equal shapes, and the _vc / _cv forms
    with a Python number on either side, equal the scalar engine exactly."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = _sample(name, rng, 6, 0).reshape(2, 3)
    b = _sample(name, rng, 6, 1).reshape(2, 3)
    w = weights(a.shape, rng)
    f = _binary_tensor_fn(name)
    g = SCALAR[name]
    vv, vg = run_vars(lambda x, y: _scalar_map(g, x, y), [a, b], w)
    tv, tg, tt = run_tensor(f, [a, b], w, [np.ones(a.shape), np.zeros(b.shape)])
    np.testing.assert_array_equal(tv, vv)
    np.testing.assert_array_equal(tg[0], vg[0])
    np.testing.assert_array_equal(tg[1], vg[1])
    _, dg = run_vars(lambda x, y: _scalar_map(g, x, y), [a, b], np.ones(a.shape))
    np.testing.assert_array_equal(tt, dg[0])  # tangent along a: d/da exactly
    # a number on the right (VC) and on the left (CV)
    c = float(_sample(name, rng, 1, 1)[0])
    c2 = float(_sample(name, rng, 1, 0)[0])
    vv, (vg,) = run_vars(lambda x: _scalar_map(lambda u: g(u, c), x), [a], w)
    tv, (tg,), _ = run_tensor(lambda x: f(x, c), [a], w)
    np.testing.assert_array_equal(tv, vv)
    np.testing.assert_array_equal(tg, vg)
    vv, (vg,) = run_vars(lambda y: _scalar_map(lambda u: g(c2, u), y), [b], w)
    tv, (tg,), _ = run_tensor(lambda y: f(c2, y), [b], w)
    np.testing.assert_array_equal(tv, vv)
    np.testing.assert_array_equal(tg, vg)
    if name in NUMPY_UFUNC and name not in COMPARISONS:  # numpy's ufunc, a number on the left
        tv2, (tg2,), _ = run_tensor(lambda y: NUMPY_UFUNC[name](c2, y), [b], w)
        np.testing.assert_array_equal(tv2, tv)
        np.testing.assert_array_equal(tg2, tg)


@pytest.mark.parametrize("op, name", [("__add__", "add"), ("__sub__", "sub"), ("__mul__", "mul"),
                                      ("__truediv__", "div"), ("__pow__", "pow"), ("__mod__", "mod"),
                                      ("__floordiv__", "floor_divide")])
def test_operators_are_their_rows(op, name):
    rng = np.random.default_rng(7)
    a = _sample(name, rng, 4, 0)
    b = _sample(name, rng, 4, 1)
    w = weights(4, rng)
    ops = {"__add__": lambda x, y: x + y, "__sub__": lambda x, y: x - y, "__mul__": lambda x, y: x * y,
           "__truediv__": lambda x, y: x / y, "__pow__": lambda x, y: x ** y, "__mod__": lambda x, y: x % y,
           "__floordiv__": lambda x, y: x // y}
    f = ops[op]
    vv, vg = run_vars(f, [a, b], w)
    tv, tg, _ = run_tensor(f, [a, b], w)
    np.testing.assert_array_equal(tv, vv)
    for x, y in zip(tg, vg):
        np.testing.assert_array_equal(x, y)
    c = float(b[0])
    for h in (lambda x: f(x, c), lambda x: f(float(a[0]), x), lambda x: f(x, int(2))):
        vv, vg = run_vars(h, [np.abs(a) + 0.5], w)
        tv, tg, _ = run_tensor(h, [np.abs(a) + 0.5], w)
        np.testing.assert_array_equal(tv, vv)
        np.testing.assert_array_equal(tg[0], vg[0])


def test_elementwise_chain_against_finite_differences():
    oracle(lambda x, y: np.tanh(x) * np.exp(-y) + np.sqrt(x * x + 1.0) / (y + 3.0),
           np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0.1, 0.9, 6).reshape(2, 3))


# =============================================================================
# 2. broadcasting
# =============================================================================

@pytest.mark.parametrize("sa, sb", [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((4,), (2, 3, 4)), ((), (2, 3)),
                                    ((2, 3), ()), ((1, 1), (2, 1)), ((2, 1, 3), (1, 4, 1)), ((1,), (5,))])
def test_broadcasting_patterns(sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a = rng.uniform(0.5, 2.0, sa)
    b = rng.uniform(0.5, 2.0, sb)
    oracle(lambda x, y: x * y + x / y - np.hypot(x, y), a, b, exact=False)


def test_python_scalars_on_either_side():
    a = np.array([[0.5, 1.5], [2.0, 3.0]])
    oracle(lambda x: 2.0 * x - x / 3.0 + 1 - 4.0 / x + 2 ** x, a)


def test_var_times_tensor_gets_summed_gradient():
    a = np.array([[0.5, 1.5, -1.0], [2.0, 3.0, 0.25]])
    g = oracle(lambda x, s: s * x + np.sin(s) / (x * x + 1.0) - (x * x + 1.0) ** s, a, 1.3)
    assert g[1].shape == ()
    w = pytape.Var(2.0)
    t = pytape.Tensor(a)
    (w * t).sum().backward()
    assert w.grad == pytest.approx(a.sum(), rel=1e-15)
    np.testing.assert_array_equal(t.grad, np.full(a.shape, 2.0))


def test_zero_d_tensors():
    oracle(lambda x, y: x * y + np.exp(x), np.array(1.5), np.array([1.0, 2.0, 3.0]))
    oracle(lambda x: np.exp(x) * x, np.array(0.7))


def test_empty_axes():
    x = pytape.Tensor(np.zeros((0, 3)))
    y = x * 2.0 + pytape.Tensor(np.ones(3))
    assert y.shape == (0, 3)
    s = y.sum()
    assert s.shape == () and float(s) == 0.0
    s.backward()
    assert x.grad.shape == (0, 3)
    z = pytape.Tensor(np.zeros((0, 3))).sum(axis=0)
    np.testing.assert_array_equal(z.value, np.zeros(3))


def test_shape_mismatch_message():
    with pytest.raises(ValueError) as e:
        pytape.Tensor(np.ones((2, 3))) + pytape.Tensor(np.ones((4,)))
    assert "could not be broadcast together with shapes (2, 3) (4,)" in str(e.value)
    with pytest.raises(ValueError) as e:
        pytape.Tensor(np.ones((2, 3))) * np.ones((3, 2))
    assert "(2, 3) (3, 2)" in str(e.value)


# =============================================================================
# 3. reductions
# =============================================================================

AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("fn", ["sum", "mean", "max", "min", "prod"])
def test_reductions(fn, axis, keepdims):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.5, 1.5, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))
    f = getattr(np, fn)
    oracle(lambda x: f(x, axis=axis, keepdims=keepdims), a, fd=axis in (None, 1))
    oracle(lambda x: getattr(x, fn)(axis=axis, keepdims=keepdims), a, fd=False)


def _var_oracle(x, axis, keepdims, ddof):
    n = x.size if axis is None else np.prod([x.shape[d] for d in np.atleast_1d(axis)])
    m = np.sum(x, axis=axis, keepdims=True) * (1.0 / n)
    d = x - m
    return np.sum(d * d, axis=axis, keepdims=keepdims) * (1.0 / (n - ddof))


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_var_std(axis, keepdims):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2, 3, 4))
    oracle(lambda x: np.var(x, axis=axis, keepdims=keepdims), a,
           var_prog=lambda x: _var_oracle(x, axis, keepdims, 0))
    oracle(lambda x: np.std(x, axis=axis, keepdims=keepdims, ddof=1), a,
           var_prog=lambda x: np.vectorize(pytape.sqrt, otypes=[object])(_var_oracle(x, axis, keepdims, 1)),
           fd=False)
    np.testing.assert_allclose(np.var(pytape.Tensor(a), axis=axis).value, np.var(a, axis=axis), rtol=1e-13)
    np.testing.assert_allclose(np.std(pytape.Tensor(a), axis=axis, ddof=1).value, np.std(a, axis=axis, ddof=1),
                               rtol=1e-13)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, 2])
def test_cumsum(axis):
    a = np.random.default_rng(5).normal(size=(2, 3, 4))
    oracle(lambda x: np.cumsum(x, axis=axis), a, fd=axis in (None, 1))
    np.testing.assert_allclose(np.cumsum(pytape.Tensor(a), axis=axis).value, np.cumsum(a, axis=axis), rtol=1e-14)


def test_max_ties_share_the_adjoint_evenly():
    x = pytape.Tensor([1.0, 3.0, 2.0, 3.0, 3.0])
    np.max(x).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1 / 3, 0.0, 1 / 3, 1 / 3])
    y = pytape.Tensor([[2.0, 2.0], [1.0, 5.0]])
    np.min(y, axis=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(y.grad, [[0.5, 0.5], [1.0, 0.0]])
    z = pytape.Tensor([4.0, 4.0])
    np.maximum(z, 4.0).sum().backward()  # maximum's row: the tie rule of the scalar engine
    v = pytape.Var(4.0)
    pytape.maximum(v, 4.0).backward()
    np.testing.assert_array_equal(z.grad, [v.grad, v.grad])


@pytest.mark.parametrize("a", [[2.0, 0.0, 3.0, 1.5], [0.0, 2.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0]])
def test_prod_with_zeros(a):
    oracle(lambda x: np.prod(x), np.array(a))
    exact = [np.prod(np.delete(a, k)) for k in range(len(a))]
    x = pytape.Tensor(a)
    np.prod(x).backward()
    np.testing.assert_array_equal(x.grad, exact)


def test_prod_along_axis_with_zeros():
    a = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0], [2.0, 3.0, 4.0]])
    oracle(lambda x: np.prod(x, axis=1), a)
    oracle(lambda x: np.prod(x, axis=0, keepdims=True), a)


def test_empty_reductions():
    x = pytape.Tensor(np.zeros((0, 3)))
    s = np.sum(x)
    assert float(s) == 0.0
    s.backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(np.sum(x, axis=1).value, np.zeros(0))
    with pytest.raises(ValueError, match="zero-size array to reduction operation maximum"):
        np.max(x)
    with pytest.raises(ValueError, match="minimum"):
        np.min(x, axis=0)
    np.testing.assert_array_equal(np.max(x, axis=1).value, np.zeros(0))  # no empty rows: fine, as numpy
    np.testing.assert_array_equal(np.prod(x, axis=0).value, np.ones(3))


@pytest.mark.parametrize("uf", [np.add, np.multiply, np.maximum, np.minimum])
@pytest.mark.parametrize("kw", [{}, {"axis": None}, {"axis": 1}, {"axis": -1, "keepdims": True}, {"axis": (0, 1)}])
def test_ufunc_reduce(uf, kw):
    """np.<ufunc>.reduce on a Tensor: numpy's default axis is 0, not all."""
    a = np.array([[0.5, -1.5, 2.0], [1.25, 0.75, -3.0]])
    oracle(lambda x: uf.reduce(x, **kw), a)
    np.testing.assert_allclose(tensor_value(lambda x: uf.reduce(x, **kw), [a]), uf.reduce(a, **kw), rtol=1e-15)
    with pytest.raises(TypeError, match="initial"):
        uf.reduce(pytape.Tensor(a), initial=1.0)


def test_reduce_bad_axis():
    x = pytape.Tensor(np.ones((2, 3)))
    with pytest.raises((ValueError, np.exceptions.AxisError)):
        np.sum(x, axis=2)
    with pytest.raises(ValueError, match="duplicate"):
        np.sum(x, axis=(0, 0))


# =============================================================================
# 4. contractions
# =============================================================================

MATMUL_SHAPES = [((3, 4), (4, 5)), ((3, 4), (4,)), ((4,), (4, 5)), ((4,), (4,)), ((2, 3, 4), (4, 5)),
                 ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((20, 20), (20, 20)), ((2, 20, 20), (20, 20)),
                 ((1, 3), (3, 1)), ((0, 3), (3, 2)), ((3, 0), (0, 2)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)),
                 ((2, 1, 4), (3, 1, 4, 2))]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES)
def test_matmul(sa, sb):
    rng = np.random.default_rng(len(sa) + 7 * len(sb))
    a = rng.normal(size=sa)
    b = rng.normal(size=sb)
    small = a.size * b.size <= 2000
    oracle(lambda x, y: x @ y, a, b, fd=small)
    np.testing.assert_allclose(tensor_value(lambda x, y: x @ y, [a, b]), a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_transposed_and_constant_operands():
    rng = np.random.default_rng(8)
    a, b, c = rng.normal(size=(4, 3)), rng.normal(size=(4, 5)), rng.normal(size=(5, 2))
    oracle(lambda x, y: x.T @ y, a, b)
    oracle(lambda x: x.T @ b, a)
    oracle(lambda y: a.T @ y, b)  # constant numpy operand on the left (__rmatmul__)
    oracle(lambda y: np.matmul(y, c), b)
    oracle(lambda x, y: (x.T @ y).T @ x.T, a, b, fd=False)


# The first contribution to an adjoint buffer in a sweep writes it (no zeroing
# pass) where the kernel covers every element once; every other contribution
# adds.  A full sum's operand gets a uniform adjoint (one value for every
# element), which constant derivatives (x + c, x - y, x * c, -x) pass on as
# such, until a kernel needs its elements.  These programs reach one
# instruction through each kind of kernel in several orders, twice in one
# instruction, broadcast, uniform and not, and through empty batches: a
# buffer left unwritten, written twice or a uniform value lost would show here.
FIRST_CONTRIBUTION = {
    "uniform through constant derivatives": lambda x: np.sum(-(x * 2.0 + 1.0) / 4.0 - 3.0),
    "uniform into two operands": lambda x: np.sum(x[0] - x[1]) + np.sum(x[2] + x[0]),
    "uniform then elements": lambda x: np.sum(x * 3.0) + np.sum(x * x),
    "elements then uniform": lambda x: np.sum(x * x) + np.sum(x * 3.0),
    "uniform into a view": lambda x: np.sum(x[1:] * 2.0),
    "uniform into a transcendental": lambda x: np.sum(np.sin(x) * 0.5),
    "uniform mean": lambda x: np.mean(x + 1.0) * np.mean(x),
    "uniform twice in one instruction": lambda x: (lambda u: np.sum(u * u) + np.sum(u))(x * 2.0),
    "uniform into a broadcast row": lambda x: np.sum(x + x[0]),
    "uniform sum of a sum": lambda x: np.sum(np.sum(x, axis=0) * 2.0),
    "uniform into matmul": lambda x: np.sum((x @ x) * 2.0),
    "uniform into max": lambda x: np.sum(np.max(x * 2.0, axis=0)),
    "same operand twice": lambda x: x * x + np.sin(x),
    "broadcast then full": lambda x: (x[:1] * x).sum(axis=0) + np.exp(x[0]),
    "full then broadcast": lambda x: np.exp(x[0]) + (x[:1] * x).sum(axis=0),
    "sum then map": lambda x: np.sum(x, axis=0, keepdims=True) * x + np.tanh(x),
    "map then sum": lambda x: np.tanh(x) + np.sum(x, axis=1, keepdims=True) * x,
    "view of a part": lambda x: x[1:] * 2.0 + np.cos(x)[:-1],
    "matmul square": lambda x: x @ x,
    "matmul then map": lambda x: (x @ x.T) * 3.0 - x.sum(),
    "batched broadcast matmul": lambda x: np.stack([x, 2.0 * x]) @ x,
    "empty batch": lambda x: (np.zeros((0, 3, 3)) @ x).sum(axis=0) + x,
    "max and map": lambda x: np.max(x, axis=1, keepdims=True) + x * x,
    # a derivative of 1 (x + c, x - y's x) passes the adjoint buffer itself on; a second contribution copies it
    "passed on, then added to": lambda x: (lambda u: np.sin(u + 1.0) * 2.0 + np.cos(u))(x * 3.0),
    "added to, then passed on": lambda x: (lambda u: np.cos(u) + np.sin(u + 1.0) * 2.0)(x * 3.0),
    "passed on twice": lambda x: np.sin(((x * 3.0) + 1.0) - 2.0),
    "passed on in one instruction twice": lambda x: (lambda u: np.sin(u + u))(x * 0.5),
    "passed on as a minuend": lambda x: np.sin((x * 3.0) - (x * 2.0)),
    "passed on, one element": lambda x: np.sin(x[:1, :1] * 3.0 + 1.0) * x,
    "passed on past a broadcast": lambda x: np.sin((x * 3.0) + x[0]),
    # a leaf reached first by a uniform adjoint keeps it as one number; the first contribution that needs
    # elements claims the grad array and writes the number plus itself there (a result: into its own buffer)
    "leaf uniform, then elements": lambda x: np.sum(np.sin(x)) + np.sum(x * 0.125),
    "leaf uniform twice, then elements": lambda x: np.sum(np.sin(x)) + np.sum(x + 1.0) + np.sum(x * 2.0),
    "leaf uniform, then elements twice": lambda x: np.sum(np.sin(x) * np.cos(x)) + np.sum(x - 1.0),
    "leaf uniform, then a view": lambda x: np.sum(x.T * np.arange(3.0)) + np.sum(x * 2.0),
    "leaf uniform, then twice in one instruction": lambda x: np.sum(x * x) + np.sum(x * 2.0),
    "leaf uniform, then a matmul": lambda x: np.sum(x @ x) + np.sum(x / 4.0),
    "result uniform, then elements": lambda x: (lambda u: np.sum(np.sin(u)) + np.sum(u))(x * 3.0),
}


@pytest.mark.parametrize("name", sorted(FIRST_CONTRIBUTION))
def test_first_contribution_writes_the_adjoint(name):
    a = np.random.default_rng(3).normal(size=(3, 3))
    oracle(FIRST_CONTRIBUTION[name], a)


def test_uniform_adjoints_with_zero_d_operands():
    # a 0-d Tensor times an array: its adjoint sums over the array (not one
    # element's share), the array's is uniform
    rng = np.random.default_rng(5)
    oracle(lambda x, s: np.sum(x * s), rng.normal(size=(4, 3)), rng.normal(size=()))
    oracle(lambda x, s: np.sum(x + s) * np.sum(s - x), rng.normal(size=(4, 3)), rng.normal(size=()))
    oracle(lambda x, s: np.sum(x / s), rng.normal(size=7), 1.5 + rng.random(size=()))


def test_uniform_adjoint_read_as_elements():
    x = pytape.Tensor(np.arange(6.0).reshape(2, 3))
    with pytape.Tape():
        u = x * 2.0 + 1.0  # its adjoint is uniform in the sweep
        y = np.sum(u * 0.5)
    y.backward()
    np.testing.assert_array_equal(u.grad, np.full((2, 3), 0.5))
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 1.0))
    g = pytape.grad(lambda a: np.sum(a * 3.0 - 1.0))(np.ones(4))
    np.testing.assert_array_equal(g, np.full(4, 3.0))


@pytest.mark.parametrize("held", [False, True])
def test_uniform_leaf_adjoint_then_elements(held):
    # x's first contribution is one number (x * 2, summed); then x broadcast into a product and x's
    # elements (sin): the number is expanded into x's grad, or, when the grad holds a value (no claim),
    # into x's own buffer, and added to it
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=3), rng.normal(size=(4, 3))
    x = pytape.Tensor(a)
    if held:
        x.grad = np.full(3, 0.5)
    with pytape.Tape():
        y = np.sum(np.sin(x) * 3.0) + np.sum(x * b) + np.sum(x * 2.0)
    y.backward()
    want = 3.0 * np.cos(a) + b.sum(axis=0) + 2.0 + (0.5 if held else 0.0)
    np.testing.assert_allclose(x.grad, want, rtol=1e-14, atol=1e-15)
    with pytape.Tape():  # the same, the grad now held: accumulated in x's own buffer and added
        y = np.sum(np.sin(x) * 3.0) + np.sum(x * 2.0)
    y.backward()
    np.testing.assert_allclose(x.grad, want + 3.0 * np.cos(a) + 2.0, rtol=1e-14, atol=1e-15)


def test_passed_on_adjoints_read_and_swept_again():
    # u's adjoint is v's buffer itself (v = u + 1: the derivative 1), until cos(u) adds to it: every
    # result's .grad stays its own, also in later sweeps from other outputs of the same tape
    rng = np.random.default_rng(9)
    a, seed = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    ones, ua = np.ones((4, 5)), 3.0 * a
    gv = 2.0 * seed * np.cos(ua + 1.0)
    gu = gv - seed * np.sin(ua)

    def record():
        x = pytape.Tensor(a)
        with pytape.Tape():
            u = x * 3.0
            w = np.cos(u)
            v = u + 1.0
            s = np.sin(v) * 2.0
            y = s + w
            y2 = np.sum(v) + np.sum(w)  # v's adjoint uniform: u's first contribution is not v's buffer
        return x, u, w, v, s, y, y2

    x, u, w, v, s, y, y2 = record()
    y.backward(seed, retain_graph=True)  # u shares v's buffer, then cos(u) adds to a copy
    for t, want in [(y, seed), (s, seed), (w, seed), (v, gv), (u, gu), (x, 3.0 * gu)]:
        np.testing.assert_allclose(t.grad, want, rtol=1e-14, atol=1e-15)
    u.backward(np.full((4, 5), 2.0))  # u's own seed
    np.testing.assert_array_equal(u.grad, np.full((4, 5), 2.0))
    np.testing.assert_array_equal(v.grad, np.zeros((4, 5)))

    x, u, w, v, s, y, y2 = record()
    v.backward(ones, retain_graph=True)  # u passed v's seed buffer, and keeps it after the sweep
    np.testing.assert_array_equal(v.grad, ones)
    np.testing.assert_array_equal(u.grad, ones)
    np.testing.assert_array_equal(x.grad, np.full((4, 5), 3.0))
    assert not np.any(s.grad) and not np.any(y.grad)  # not reached by the last sweep
    x.zero_grad()
    y2.backward(retain_graph=True)  # u's buffer of the last sweep is v's: not written now
    np.testing.assert_array_equal(v.grad, ones)
    np.testing.assert_allclose(u.grad, 1.0 - np.sin(ua), rtol=1e-15)
    np.testing.assert_allclose(x.grad, 3.0 * (1.0 - np.sin(ua)), rtol=1e-15)
    u.backward(np.full((4, 5), 2.0))
    np.testing.assert_array_equal(u.grad, np.full((4, 5), 2.0))
    np.testing.assert_array_equal(v.grad, np.zeros((4, 5)))


def test_passed_on_adjoints_take_no_memory():
    # eight additions of a constant pass one adjoint buffer down; eight products by 1.5 write eight
    n = 100_000

    def nbytes_after_backward(step):
        x = pytape.Tensor(np.linspace(0.0, 1.0, n))
        held = []  # alive: none of their buffers is recycled (tests/test_array_recycling.py)
        with pytape.Tape() as tape:
            z = np.sin(x)
            for _ in range(8):
                z = step(z)
                held.append(z)
            y = np.sum(np.sin(z))
        before = tape.nbytes
        y.backward()
        return tape.nbytes - before

    added = nbytes_after_backward(lambda z: z + 1.0)
    scaled = nbytes_after_backward(lambda z: z * 1.5)
    assert added <= scaled - 7 * n * 8, (added, scaled)


@pytest.mark.parametrize("n", [5, 40000])  # numpy's memory, the tapes' allocator
@pytest.mark.parametrize("uniform", [False, True])
def test_fresh_adjoints_every_sweep_and_leaf_grads_accumulate(n, uniform):
    a = np.random.default_rng(4).normal(size=(n, 3))
    x = pytape.Tensor(a)

    def record():
        with pytape.Tape():
            m = x * 2.0
            y = (m * 3.0 if uniform else m * m + np.sin(m)).sum()
        return m, y
    want = np.full(a.shape, 6.0) if uniform else 2.0 * (2.0 * 2.0 * a + np.cos(2.0 * a))
    m, y = record()
    y.backward(retain_graph=True)
    g1, gm = x.grad.copy(), m.grad
    y.backward()  # the second sweep writes the same buffers again: the leaf adds
    np.testing.assert_allclose(g1, want, rtol=1e-13)
    np.testing.assert_allclose(x.grad, 2.0 * want, rtol=1e-13)
    np.testing.assert_allclose(m.grad, gm, rtol=0)
    x.zero_grad()  # zero without a pass: the next backward writes
    np.testing.assert_array_equal(x.grad, np.zeros(a.shape))
    x.zero_grad()
    record()[1].backward()
    np.testing.assert_allclose(x.grad, want, rtol=1e-13)
    x.grad = np.ones(a.shape)
    record()[1].backward()
    np.testing.assert_allclose(x.grad, want + 1.0, rtol=1e-13)
    x.grad = None
    x.backward(np.full(a.shape, 2.0))  # a leaf's own backward adds to its (zero) grad
    np.testing.assert_array_equal(x.grad, np.full(a.shape, 2.0))


@pytest.mark.parametrize("n", [3, 8, 24])  # 27, 512 below / 13824 multiply-adds above the BLAS threshold
def test_own_loops_equal_blas(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(2, n, n + 1)), rng.normal(size=(n + 1, n - 1))
    w = rng.normal(size=(2, n, n - 1))
    found = _native._find_dgemm()
    try:
        with_blas = run_tensor(lambda x, y: x @ y, [a, b], w)
        _native.use_blas(None)
        own = run_tensor(lambda x, y: x @ y, [a, b], w)
        own_t = run_tensor(lambda x, y: x.T @ y, [b, b[:, ::-1]], np.ones((n - 1, n - 1)))
    finally:
        _native.use_blas(found)
    assert found is None or _native.BLAS == found[2]  # BLAS restored
    with_blas_t = run_tensor(lambda x, y: x.T @ y, [b, b[:, ::-1]], np.ones((n - 1, n - 1)))
    for p, q in zip([with_blas[0]] + with_blas[1], [own[0]] + own[1]):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-12)
    for p, q in zip([with_blas_t[0]] + with_blas_t[1], [own_t[0]] + own_t[1]):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(own_t[0], b.T @ b[:, ::-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(with_blas[0], a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn, sa, sb", [
    (np.dot, (3, 4), (4, 2)), (np.dot, (4,), (4,)), (np.dot, (2, 3, 4), (4, 2)), (np.dot, (), (3,)),
    (np.inner, (2, 4), (3, 4)), (np.inner, (4,), (4,)), (np.outer, (3,), (4,)), (np.outer, (2, 2), (3,)),
    (lambda x, y: np.tensordot(x, y, axes=2), (2, 3, 4), (3, 4, 2)),
    (lambda x, y: np.tensordot(x, y, axes=([0, 2], [2, 0])), (2, 3, 4), (4, 5, 2)),
    (lambda x, y: np.tensordot(x, y, axes=0), (2,), (3,)),
])
def test_dot_inner_outer_tensordot(fn, sa, sb):
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    oracle(fn, a, b)
    np.testing.assert_allclose(tensor_value(fn, [a, b]), fn(a, b), rtol=1e-12, atol=1e-12)


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match="mismatch"):
        pytape.Tensor(np.ones((2, 3))) @ pytape.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError):
        pytape.Tensor(np.ones(3)) @ pytape.Tensor(np.array(2.0))


# =============================================================================
# 5. movement, selection and composites
# =============================================================================

A234 = np.arange(24.0).reshape(2, 3, 4) / 7.0 - 1.0

MOVES = {
    "reshape-1": lambda x: x.reshape(-1, 6) * 1.0,
    "reshape_np": lambda x: np.reshape(x, (4, 3, 2)),
    "transpose": lambda x: np.transpose(x, (2, 0, 1)),
    "transpose_method": lambda x: x.transpose(1, 2, 0),
    "T": lambda x: x.T,
    "swapaxes": lambda x: np.swapaxes(x, 0, 2),
    "moveaxis": lambda x: np.moveaxis(x, 0, -1),
    "expand_dims": lambda x: np.expand_dims(x, 1),
    "squeeze": lambda x: np.squeeze(x[:1, :, :1]),
    "ravel": lambda x: np.ravel(x),
    "broadcast_to": lambda x: np.broadcast_to(x[:, :1, :], (3, 2, 5, 4)),
    "slice_neg_step": lambda x: x[::-1, 2:0:-1, ::2],
    "slice_mixed": lambda x: x[1, :, -3:],
    "int_index": lambda x: x[1, 2, 3] * x[0, -1, 0],
    "int_array_repeated": lambda x: x[[0, 1, 0, 0], [2, 2, 2, 1]],
    "int_array_axis": lambda x: x[:, [2, 0, 2, 2]],
    "bool_mask": lambda x: x[A234 > 0.0],
    "take": lambda x: np.take(x, [3, 3, 0, 23, 5]),
    "take_axis": lambda x: np.take(x, [1, 1, 0], axis=1),
    "concat0": lambda x: np.concatenate([x, x * 2.0], axis=0),
    "concat1": lambda x: np.concatenate([x[:, :1], x, np.exp(x)], axis=1),
    "concat-1": lambda x: np.concatenate([x, x[..., :2]], axis=-1),
    "concatNone": lambda x: np.concatenate([x, x[0]], axis=None),
    "stack": lambda x: np.stack([x[0], x[1] * 3.0], axis=1),
    "split": lambda x: np.split(x, [1, 3], axis=2)[1] * np.split(x, 2, axis=2)[0],
    "flip": lambda x: np.flip(x, axis=(0, 2)),
    "diagonal": lambda x: np.diagonal(x, axis1=1, axis2=2),
    "repeat": lambda x: np.repeat(x, 2, axis=1),
    "tile": lambda x: np.tile(x[0], (2, 1, 2)),
    "roll": lambda x: np.roll(x, 5),
    "roll_axis": lambda x: np.roll(x, -1, axis=2),
}


@pytest.mark.parametrize("name", list(MOVES))
def test_movement(name):
    f = MOVES[name]
    oracle(f, A234, fd=name in ("int_array_repeated", "broadcast_to", "bool_mask", "concat1", "roll"))
    np.testing.assert_allclose(tensor_value(f, [A234]), f(A234), rtol=1e-15, atol=0)


#: numpy's surface on a 2-D Tensor: methods with positional axes, functions,
#: indexing forms, ufuncs that are rows with a constant
SURFACE = {
    "sum(0)": lambda x: x.sum(0),
    "sum(1, keepdims)": lambda x: x.sum(1, keepdims=True),
    "max(1)": lambda x: x.max(1),
    "min(0)": lambda x: x.min(0),
    "mean(-1)": lambda x: x.mean(-1),
    "prod(0)": lambda x: x.prod(0),
    "cumsum(0)": lambda x: x.cumsum(0),
    "var(0)": lambda x: x.var(0),
    "std(1)": lambda x: x.std(1),
    "transpose()": lambda x: x.transpose(),
    "transpose(1,0)": lambda x: x.transpose(1, 0),
    "reshape(3,2)": lambda x: x.reshape(3, 2),
    "reshape((3,2))": lambda x: x.reshape((3, 2)),
    "reshape(-1)": lambda x: x.reshape(-1),
    "swapaxes": lambda x: x.swapaxes(0, 1),
    "take": lambda x: x.take([0, 4]),
    "take axis": lambda x: x.take([0], axis=1),
    "squeeze": lambda x: x[:1].squeeze(0),
    "ravel": lambda x: x.ravel(),
    "flatten": lambda x: x.flatten(),
    "dot": lambda x: x.dot(np.ones(3)),
    "clip": lambda x: x.clip(2, 4),
    "np.sum(x, 0)": lambda x: np.sum(x, 0),
    "np.max(x, 1)": lambda x: np.max(x, 1),
    "np.cumsum(x,1)": lambda x: np.cumsum(x, 1),
    "np.mean(x, (0,1))": lambda x: np.mean(x, (0, 1)),
    "np.std(x, 0, ddof=1)": lambda x: np.std(x, 0, ddof=1),
    "np.amax": lambda x: np.amax(x, axis=0),
    "np.var(keepdims)": lambda x: np.var(x, axis=1, keepdims=True),
    "np.diagonal offset": lambda x: np.diagonal(x, 1),
    "np.tile": lambda x: np.tile(x, 2),
    "np.repeat none": lambda x: np.repeat(x, 2),
    "np.roll axis": lambda x: np.roll(x, 1, axis=0),
    "np.flip none": lambda x: np.flip(x),
    "np.expand_dims tuple": lambda x: np.expand_dims(x, (0, 2)),
    "np.moveaxis": lambda x: np.moveaxis(x, 1, 0),
    "np.squeeze none": lambda x: np.squeeze(x[None]),
    "x[...,1]": lambda x: x[..., 1],
    "x[:, None, ::-2]": lambda x: x[:, None, ::-2],
    "x[[1,0]][:, [2, 2]]": lambda x: x[[1, 0]][:, [2, 2]],
    "x[np.array([[0],[1]]), [1,2]]": lambda x: x[np.array([[0], [1]]), [1, 2]],
    "x[1][::-1]": lambda x: x[1][::-1],
    "x[-1, -1]": lambda x: x[-1, -1],
    "x[np.int64(1)]": lambda x: x[np.int64(1)],
    "x[[True, False]]": lambda x: x[[True, False]],
    "x[:, [True, False, True]]": lambda x: x[:, [True, False, True]],
    "np.split ax1": lambda x: np.split(x, 3, axis=1)[2],
    "np.concatenate neg": lambda x: np.concatenate([x, x], -2),
    "np.stack -1": lambda x: np.stack([x, x], -1),
    "np.outer": lambda x: np.outer(x, x[0]),
    "np.inner": lambda x: np.inner(x, x),
    "np.tensordot 1": lambda x: np.tensordot(x, x.T, 1),
    "np.square": lambda x: np.square(x),
    "np.reciprocal": lambda x: np.reciprocal(x),
    "np.negative": lambda x: np.negative(x),
    "np.deg2rad": lambda x: np.deg2rad(x),
    "np.power": lambda x: np.power(x, 2.5),
    "np.true_divide": lambda x: np.true_divide(1.0, x),
    "np.fabs": lambda x: np.fabs(-x),
    "np.positive": lambda x: np.positive(x),
    "np.rint": lambda x: np.rint(x * 1.3),
    "np.remainder": lambda x: np.remainder(x, 2.5),
    "np.fmod": lambda x: np.fmod(-x, 2.5),
    "np.floor_divide": lambda x: np.floor_divide(x, 2.5),
    "np.logaddexp2": lambda x: np.logaddexp2(x, 1.0),
    "np.arctan2": lambda x: np.arctan2(x, -x[::-1]),
    "np.sign": lambda x: np.sign(x - 3),
    "np.matmul": lambda x: np.matmul(x, x.T),
}
SURFACE_DATA = np.array([[1.1, 2.3, 2.9], [4.2, 5.35, 6.05]])  # away from the kinks of clip, rint, mod, sign


@pytest.mark.parametrize("name", list(SURFACE))
def test_numpy_surface(name):
    f = SURFACE[name]
    oracle(f, SURFACE_DATA)
    ref = f(SURFACE_DATA)
    got = tensor_value(f, [SURFACE_DATA])
    assert got.shape == np.shape(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-14)


def test_repeated_indices_scatter_add():
    x = pytape.Tensor([1.0, 2.0, 3.0])
    y = x[[0, 0, 2, 0]]
    y.backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [1011.0, 0.0, 100.0])


def test_broadcast_to_adjoint_sums():
    x = pytape.Tensor([[1.0], [2.0]])
    np.broadcast_to(x, (3, 2, 4)).backward(np.ones((3, 2, 4)))
    np.testing.assert_array_equal(x.grad, [[12.0], [12.0]])


def test_where_untaken_branch_gets_exact_zero():
    x = pytape.Tensor([1.0, -2.0, 0.0, 4.0])
    with np.errstate(all="ignore"):
        # the untaken branch holds nan (sqrt(-2)), -inf (log(0)) and derivatives nan, inf
        y = np.where(x > 0.0, np.sqrt(x) + np.log(x), 3.0 * x)
        assert np.isnan(np.sqrt(x).value[1]) and np.log(x).value[2] == -np.inf
        y.sum().backward()
    np.testing.assert_array_equal(y.value, [1.0, -6.0, 0.0, 2.0 + np.log(4.0)])
    np.testing.assert_array_equal(x.grad, [1.5, 3.0, 3.0, 0.5])
    a = np.array([[0.5, -1.0], [2.0, -0.3]])
    oracle(lambda u, v: np.where(a > 0, u * v, u - v), a, a + 1.0)
    oracle(lambda u: np.where(a > 0, u, 2.0), a)


def test_clip_maximum_minimum():
    a = np.array([[-2.0, -0.5, 0.25], [0.75, 1.5, 3.0]])
    oracle(lambda x: np.clip(x, -1.0, 1.0), a)
    oracle(lambda x: x.clip(0.0), a)
    oracle(lambda x, y: np.maximum(x, y) + np.minimum(x, 0.5 * y), a, a[::-1, ::-1] * 0.9)


def _lse_var(x, axis):
    m = np.max(var_values(x), axis=axis, keepdims=True)
    return np.vectorize(pytape.log, otypes=[object])(np.sum(np.vectorize(pytape.exp, otypes=[object])(x - m),
                                                           axis=axis, keepdims=True)) + m


@pytest.mark.parametrize("axis", [None, 0, -1])
def test_logsumexp_softmax(axis):
    a = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5]])
    def lse_v(x):
        r = _lse_var(x, axis)
        return r.reshape(()) if axis is None else np.squeeze(r, axis)
    oracle(lambda x: pytape.logsumexp(x, axis=axis), a, var_prog=lse_v)
    if axis is not None:
        oracle(lambda x: pytape.softmax(x, axis=axis), a,
               var_prog=lambda x: np.vectorize(pytape.exp, otypes=[object])(x - _lse_var(x, axis)))
        oracle(lambda x: pytape.log_softmax(x, axis=axis), a, var_prog=lambda x: x - _lse_var(x, axis))


def test_stable_at_1000():
    x = pytape.Tensor([1000.0, 1000.0, 999.0])
    y = pytape.logsumexp(x)
    assert math.isfinite(float(y))
    assert float(y) == pytest.approx(1000.0 + math.log(2.0 + math.exp(-1.0)), rel=1e-15)
    y.backward()
    e = np.exp([0.0, 0.0, -1.0])
    np.testing.assert_allclose(x.grad, e / e.sum(), rtol=1e-14)
    s = pytape.softmax(pytape.Tensor([1000.0, -1000.0]))
    np.testing.assert_array_equal(s.value, [1.0, 0.0])
    ls = pytape.log_softmax(pytape.Tensor([1000.0, 0.0]))
    assert np.all(np.isfinite(ls.value)) and float(ls[1]) == -1000.0


@pytest.mark.parametrize("ord, axis", [(None, None), (2, None), (1, None), (np.inf, None), (None, 1), (1, 0),
                                       ("fro", None)])
def test_norm(ord, axis):
    a = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -3.0]])
    x = a if ord in (None, "fro") or axis is not None else a[0]
    oracle(lambda t: np.linalg.norm(t, ord=ord, axis=axis), x, var_prog=lambda t: np.linalg.norm(t, ord=ord, axis=axis)
           if ord not in (1, np.inf) else (np.sum(np.vectorize(pytape.abs, otypes=[object])(t), axis=axis)
                                           if ord == 1 else np.max(np.vectorize(pytape.abs, otypes=[object])(t))))
    np.testing.assert_allclose(tensor_value(lambda t: np.linalg.norm(t, ord=ord, axis=axis), [x]),
                               np.linalg.norm(x, ord=ord, axis=axis), rtol=1e-14)


# =============================================================================
# PyTorch, a few representative programs
# =============================================================================

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _torch_grads(prog_torch, args):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
    out = prog_torch(*ts)
    out.backward()
    return float(out.detach()), [t.grad.numpy() for t in ts]


TORCH_PROGRAMS = {
    "mlp": (lambda X, W1, W2: np.mean(np.tanh(X @ W1) @ W2 ** 2),
            lambda X, W1, W2: torch.mean(torch.tanh(X @ W1) @ W2 ** 2)),
    "logreg": (lambda X, w: np.mean(np.logaddexp(0.0, -(X @ w[:, 0]))) + 0.1 * np.sum(w * w),
               lambda X, w: torch.mean(torch.logaddexp(torch.zeros(()), -(X @ w[:, 0]))) + 0.1 * torch.sum(w * w)),
    "softmax_xent": (lambda X, W: -np.sum(pytape.log_softmax(X @ W, axis=1)[np.arange(4), [0, 2, 1, 0]]),
                     lambda X, W: -torch.sum(torch.log_softmax(X @ W, dim=1)[torch.arange(4), [0, 2, 1, 0]])),
    "reductions": (lambda X, W: np.sum(np.max(X, axis=0) * np.prod(W, axis=1)[:3]) + np.std(X) * np.var(W),
                   lambda X, W: torch.sum(torch.amax(X, dim=0) * torch.prod(W, dim=1)[:3])
                   + torch.std(X, unbiased=False) * torch.var(W, unbiased=False)),
}


@pytest.mark.skipif(torch is None, reason="PyTorch not installed")
@pytest.mark.parametrize("name", list(TORCH_PROGRAMS))
def test_against_pytorch(name):
    rng = np.random.default_rng(11)
    shapes = {"mlp": [(4, 3), (3, 5), (5, 2)], "logreg": [(6, 3), (3, 1)], "softmax_xent": [(4, 3), (3, 3)],
              "reductions": [(4, 3), (3, 3)]}[name]
    args = [rng.normal(size=s) for s in shapes]
    fp, ft = TORCH_PROGRAMS[name]
    xs = [pytape.Tensor(a) for a in args]
    with pytape.Tape():
        y = fp(*xs)
    y.backward()
    value, grads = _torch_grads(ft, args)
    assert float(y) == pytest.approx(value, rel=1e-12, abs=1e-14)
    for x, g in zip(xs, grads):
        np.testing.assert_allclose(x.grad, g, rtol=1e-10, atol=1e-12)


# =============================================================================
# 7. random programs (hypothesis): gradient equals the scalar engine's
# =============================================================================

SMALL = st.sampled_from([(), (1,), (3,), (2, 3), (1, 3), (2, 1), (3, 1, 2), (2, 3, 1)])


@st.composite
def programs(draw):
    """A random program of array operations on one Tensor x (and a scalar Var
    s): a list of steps, each replacing the current array."""
    shape = draw(SMALL)
    steps = draw(st.lists(st.sampled_from(["unary", "binary_self", "scalar", "var", "bcast", "sum", "max", "mean",
                                           "cumsum", "matmul", "index", "T", "reshape", "gather", "concat", "prod",
                                           "where", "maximum", "flip", "stack", "pow", "div"]),
                          min_size=1, max_size=6))
    picks = draw(st.lists(st.integers(0, 1000), min_size=len(steps), max_size=len(steps)))
    keep = draw(st.booleans())
    return shape, steps, picks, keep


UN = ["sin", "tanh", "exp", "sigmoid", "softplus", "atan", "neg"]


def _apply_step(step, p, y, s, keep):
    sh = y.shape
    nd = len(sh)
    if step == "unary":
        f = UN[p % len(UN)]
        return _elementwise(getattr(pytape, f), y)
    if step == "binary_self":
        return y * np.tanh(y) + y / 3.0
    if step == "scalar":
        return (p % 5 + 0.5) * y - 1.25
    if step == "var":
        return s * y + np.sin(s)
    if step == "bcast":
        k = sh[-1] if nd else 1 + p % 3
        c = np.linspace(-1.0, 1.0, 2 * k).reshape(2, 1, k)  # a new leading axis, the last one matched
        return y * (c if nd <= 2 else c[0, 0]) + (c[0] if p % 2 else 0.5)
    if step in ("sum", "max", "mean"):
        if nd == 0:
            return y * 2.0
        axis = (p % (nd + 1)) - 1  # -1 .. nd-1, -1 meaning all (None)
        axis = None if axis == -1 else axis - nd if p % 2 else axis
        return getattr(np, step)(y, axis=axis, keepdims=keep)
    if step == "cumsum":
        return np.cumsum(y, axis=(p % nd) if nd else None)
    if step == "matmul":
        if nd == 0:
            return y * y
        k = sh[-1]
        m = np.cos(np.arange(k * 2, dtype=float)).reshape(k, 2)
        return y @ m
    if step == "index":
        if nd == 0 or sh[0] == 0:
            return y + 0.5
        return y[p % sh[0]] if p % 3 else y[::-1]
    if step == "T":
        return y.T if nd else y
    if step == "reshape":
        return y.reshape(-1) if p % 2 else y.reshape(sh + (1,))
    if step == "gather":
        if nd == 0:
            return y
        n = sh[0]
        return y[[p % n, 0, p % n]]
    if step == "concat":
        if nd == 0:
            return y
        return np.concatenate([y, y * 0.5], axis=p % nd)
    if step == "prod":
        if nd == 0:
            return y * y
        return np.prod(y, axis=p % nd, keepdims=keep)
    if step == "where":
        values = np.array(var_values(y)) if not isinstance(y, pytape.Tensor) else y.value
        return np.where(values > 0.1 * (p % 3), y * 2.0, 1.0 - y)
    if step == "maximum":
        return np.maximum(y, 0.25 * (p % 3)) + np.minimum(y * 0.5, s)
    if step == "flip":
        return np.flip(y) if nd else y
    if step == "stack":
        return np.stack([y, y * s], axis=p % (nd + 1))
    if step == "pow":
        return (y * y + 1.0) ** (0.5 + p % 2)
    if step == "div":
        return y / (1.0 + y * y) - 2.0 / (2.0 + y * y)
    raise AssertionError(step)


def _elementwise(f, y):
    if isinstance(y, pytape.Tensor):
        return f(y)
    return np.vectorize(f, otypes=[object])(y) if np.ndim(y) else f(y[()] if isinstance(y, np.ndarray) else y)


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs(), st.integers(0, 2**31 - 1))
def test_random_programs_match_scalar_engine(prog_spec, seed):
    shape, steps, picks, keep = prog_spec

    def prog(x, s):
        y = x
        for step, p in zip(steps, picks):
            y = _apply_step(step, p, y if isinstance(y, pytape.Tensor) else np.asarray(y, dtype=object), s, keep)
        if not isinstance(x, pytape.Tensor):
            y = np.asarray(y, dtype=object)
        return y

    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.5, 1.5, shape)
    oracle(prog, a, float(rng.uniform(0.5, 1.5)), fd=False, rtol=1e-10, atol=1e-11, seed=seed)


# ---- values against numpy's own, in ulps ---------------------------------------------------

_ULP_DOMAINS = {"log": (0.01, 10), "log2": (0.01, 10), "log10": (0.01, 10), "log1p": (-0.9, 10), "sqrt": (0, 10),
                "cbrt": (-10, 10), "asin": (-0.99, 0.99), "acos": (-0.99, 0.99), "atanh": (-0.99, 0.99),
                "acosh": (1.01, 10), "pow": (0.1, 3)}


def _ulps(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isfinite(a) & np.isfinite(b)
    assert np.array_equal(a[~ok & ~np.isnan(a)], b[~ok & ~np.isnan(b)])
    d = np.abs(a[ok] - b[ok]) / np.spacing(np.maximum(np.abs(a[ok]), np.abs(b[ok])))
    return float(d.max()) if d.size else 0.0


@pytest.mark.parametrize("name", sorted(n for n in _native.OPCODES
                                        if isinstance(getattr(np, NUMPY_NAMES.get(n, n), None), np.ufunc)))
def test_values_within_two_ulps_of_numpy_and_equal_to_it_where_numpy_computes_them(name):
    # the C rows use the C library's functions: within 2 ulps of numpy's SIMD loops (measured: log10 and
    # tanh differ by 2, most transcendentals by 1, arithmetic by 0); from NUMPY_VALUES_FROM elements the
    # rows of NUMPY_VALUES take numpy's values: equal
    uf = getattr(np, NUMPY_NAMES.get(name, name))
    code = _native.OPCODES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lo, hi = _ULP_DOMAINS.get(name, (-5.0, 5.0))
    for n in (300, tensor_module.NUMPY_VALUES_FROM + 1):
        a = rng.uniform(lo, hi, n)
        if name in _native.UNARY:
            got, want = uf(pytape.Tensor(a) * 1.0), uf(a)
        else:
            b = rng.uniform(-2.0, 2.0, n) if name == "pow" else rng.uniform(lo, hi, n)
            got, want = uf(pytape.Tensor(a) * 1.0, pytape.Tensor(b) * 1.0), uf(a, b)
        got = getattr(got, "value", got)
        if code in tensor_module.NUMPY_VALUES and n >= tensor_module.NUMPY_VALUES_FROM:
            assert np.array_equal(got, want, equal_nan=True), name
        else:
            assert _ulps(got, want) <= 2.0, name


@pytest.mark.parametrize("n", [(1 << 18) + 37, 3 * (1 << 17) - 1])  # split across threads, ragged last chunk
def test_rows_split_across_threads_equal_numpy(n):
    # from 2^18 elements a row runs on several threads, each taking chunks in turn: every element
    # once, values, adjoints and tangents equal numpy's rows and the hand-written derivative
    a = np.linspace(-2.0, 2.0, n)
    x = pytape.Tensor(a)
    with pytape.Tape():
        y = np.sum(np.sin(x * 0.5 + 0.25) * x)
    y.backward()
    u = a * 0.5 + 0.25
    assert float(y) == pytest.approx(np.sum(np.sin(u) * a), rel=1e-12)
    np.testing.assert_allclose(x.grad, np.cos(u) * 0.5 * a + np.sin(u), rtol=1e-13, atol=1e-15)
    _, t = pytape.jvp(lambda v: np.sin(v * 0.5 + 0.25) * v, (a,), (np.ones(n),))
    np.testing.assert_allclose(t, np.cos(u) * 0.5 * a + np.sin(u), rtol=1e-13, atol=1e-15)


# ---- the reduction kernels' long-row paths (rows of 8 and more: the vectorised loops) ---------------------


def _extremum_rule(a, sign, w, v):
    """numpy's rule for MAX over the last axis: values, gradient of sum(y * w), tangent along v."""
    rows, wv, vv = a.reshape(-1, a.shape[-1]), np.ravel(w), v.reshape(-1, a.shape[-1])
    y, g, t = np.empty(len(rows)), np.zeros_like(rows), np.empty(len(rows))
    for i, r in enumerate(rows):
        if np.isnan(r).any():
            y[i], mask = np.nan, np.isnan(r)
        else:
            y[i] = r.max() if sign > 0 else r.min()
            mask = r == y[i]
        g[i, mask] = wv[i] / mask.sum()
        t[i] = vv[i, mask].sum() / mask.sum()
    return y.reshape(a.shape[:-1]), g.reshape(a.shape), t.reshape(a.shape[:-1])


@pytest.mark.parametrize("r", [1, 2, 7, 8, 9, 15, 16, 17, 33, 1000])
@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_long_rows_ties_and_nans(r, fn):
    sign = 1 if fn == "max" else -1
    rng = np.random.default_rng(r)
    a = rng.integers(-3, 4, size=(12, r)).astype(float)  # small integers: many ties
    a[1] = rng.normal(size=r)  # no ties
    top = 9.0 * sign
    for i, k in enumerate([0, r - 1, r // 2, 7 % r, 8 % r]):  # a lone extremum at the edges of the loops
        a[2 + i] = rng.normal(size=r)
        a[2 + i, k] = top
    a[7, [0, r - 1]] = top  # ties first and last
    a[8, r - 1] = np.nan  # a nan last, first, in the middle, twice
    a[9, 0] = np.nan
    a[10, r // 2] = np.nan
    a[11, [r // 3, r - 1]] = np.nan
    a[6, r - 1] = np.inf * sign
    for shape in [(12, r), (3, 4, r)]:
        x = a.reshape(shape)
        w, v = weights(shape[:-1], rng), rng.normal(size=shape)
        value, (grad,), tangent = run_tensor(lambda t: getattr(np, fn)(t, axis=-1), [x], w, [v])
        want_y, want_g, want_t = _extremum_rule(x, sign, w, v)
        np.testing.assert_array_equal(value, getattr(np, fn)(x, axis=-1))
        np.testing.assert_array_equal(value, want_y)
        np.testing.assert_allclose(grad, want_g, rtol=1e-15, atol=0)
        np.testing.assert_allclose(tangent, want_t, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 1, 4), (2, 3, 4, 5)])
def test_whole_sum_one_call_equals_the_general_instruction(shape):
    # np.sum(t) of a recorded array takes one C call (pt_arr_sum_all); the same SUM by its axes goes
    # through the general recording: equal values and gradients, and the scalar engine's
    rng = np.random.default_rng(len(shape))
    a = rng.normal(size=shape)
    axes = tuple(range(len(shape)))
    got = run_tensor(lambda t: np.sum(t * 2.0), [a], np.ones(()))
    want = run_tensor(lambda t: np.sum(t * 2.0, axis=axes), [a], np.ones(()))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1][0], want[1][0])
    np.testing.assert_array_equal(got[1][0], np.full(shape, 2.0))
    oracle(lambda t: np.sum(np.sin(t)), a)
    x = pytape.Tensor(a)
    with pytape.Tape():
        s = (x * 2.0).sum()
    assert isinstance(s, pytape.Tensor) and s.shape == () and float(s) == float(want[0])
    with pytape.no_grad():  # nothing recorded: the value
        assert float(np.sum(x * 2.0)) == float(want[0])


@pytest.mark.parametrize("shape,axis", [((1000,), None), ((7,), None), ((8,), None), ((129,), None),
                                        ((5, 300), 1), ((9, 7, 11), 0), ((9, 7, 11), (0, 1)), ((4, 5, 130), 0),
                                        ((6, 5, 3), (0, 2)), ((300, 2), 0), ((3, 1, 9), 0)])
def test_sum_long_rows_and_leading_axes(shape, axis):
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=shape)
    w = weights(np.sum(a, axis=axis).shape, rng)
    v = rng.normal(size=shape)
    value, (grad,), tangent = run_tensor(lambda t: np.sum(t, axis=axis), [a], w, [v])
    np.testing.assert_allclose(value, np.sum(a, axis=axis), rtol=1e-13, atol=1e-13)
    # exactly rounded sums: the kernel's error stays near numpy's
    axes = tuple(range(a.ndim)) if axis is None else tuple(d % a.ndim for d in np.atleast_1d(axis))
    rows = np.moveaxis(a, axes, range(-len(axes), 0)).reshape(-1, math.prod(a.shape[d] for d in axes))
    exact = np.array([math.fsum(r) for r in rows]).reshape(np.shape(value))
    np.testing.assert_allclose(value, exact, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(grad, np.broadcast_to(np.expand_dims(w, axis) if axis is not None else w, shape))
    np.testing.assert_allclose(tangent, np.sum(v, axis=axis), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m", [1, 7, 8, 9, 16, 17, 1000])
@pytest.mark.parametrize("n", [3, 16, 33, 1000])
def test_sum_over_leading_axis_adds_rows_in_order(m, n):
    # eight rows a pass (SSE2, or AVX2 where the CPU has it), the rest one at a time: every split of m, rows
    # shorter than a vector step and longer; the value is the rows added in order, exactly (numpy's order)
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.normal(size=(m, n)) * 10.0 ** rng.integers(-8, 9, size=(m, 1))
    want = np.zeros(n)
    for row in a:
        want = want + row
    w, v = weights((n,), rng), rng.normal(size=a.shape)
    value, (grad,), tangent = run_tensor(lambda t: np.sum(t, axis=0), [a], w, [v])
    np.testing.assert_array_equal(value, want)
    np.testing.assert_array_equal(grad, np.broadcast_to(w, a.shape))
    np.testing.assert_allclose(tangent, np.sum(v, axis=0), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("r", [8, 15, 16, 17, 31, 32, 33, 47, 64, 100])
@pytest.mark.parametrize("fn", ["max", "min"])
def test_max_a_lone_nan_or_extremum_at_every_position(r, fn):
    # every lane of the vectorised loops: row k holds a nan at k alone, row r + k the extremum at k alone,
    # row 2r + k the extremum at k and at the end
    sign = 1 if fn == "max" else -1
    rng = np.random.default_rng(100 + r)
    a = rng.normal(size=(3 * r, r))
    for k in range(r):
        a[k, k] = np.nan
        a[r + k, k] = 5.0 * sign
        a[2 * r + k, [k, r - 1]] = 5.0 * sign
    w, v = weights((3 * r,), rng), rng.normal(size=a.shape)
    value, (grad,), tangent = run_tensor(lambda t: getattr(np, fn)(t, axis=1), [a], w, [v])
    want_y, want_g, want_t = _extremum_rule(a, sign, w, v)
    np.testing.assert_array_equal(value, want_y)
    np.testing.assert_allclose(grad, want_g, rtol=1e-15, atol=0)
    np.testing.assert_allclose(tangent, want_t, rtol=1e-14, atol=1e-15)
