"""pytape/array_rules.py: the derivative columns of the op table on Tensors.

Three checks per row of csrc/ops.def:
* values: the Tensor rule at a grid of points (edge values, the helpers'
  branch thresholds) equals the C column there, element by element (nan where
  C has nan), with both operands Tensors (broadcast) and with either a float
  constant.  The C values come from the scalar engine, as in
  tests/test_higher_order.py: each instruction recorded on a C tape and swept
  in reverse with seed 1 (pt_chain(d, 1) is d; a -0.0 reads as 0.0);
* derivatives: the Tensor rule recorded and swept again equals the
  derivatives of the scalar twin (pytape/higher_order.py) on Vars, point by
  point: the second derivatives create_graph gives, branch points included;
* traces: a traced function of a rule, replayed at points in other branches,
  equals a fresh evaluation there, with no retrace (no value was read).
"""
import math

import numpy as np
import pytest

import pytape
from pytape import Var, _native, array_rules, higher_order
from pytape.array_ops import ROWS
from pytape.array_rules import tensor_rule
from pytape.autograd import grad

OPC = _native.OPCODES
NAMES = sorted(OPC)
INF, NAN = math.inf, math.nan
DBL_MIN = 2.2250738585072014e-308

# ---- points ---------------------------------------------------------------------------------

EDGE = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, -0.5, 1.0 / 3.0, 2.5, -2.5, 0.999, 7.0, 0.3,
        1e-310, -1e-310, 5e-324, 1e-300, 1e-160, -1.4e-154, 1e155, 1e200, 1e300, -1e300, 1.5e8, INF, -INF, NAN]


def _around(x, k=2):
    """x and its k neighbours on each side (doubles)."""
    out, lo, hi = [x], x, x
    for _ in range(k):
        lo, hi = np.nextafter(lo, -INF), np.nextafter(hi, INF)
        out += [float(lo), float(hi)]
    return out


# where the unary helpers branch: expm1' at -0.5, acosh' at 1e8, |tanh| and sigmoid at 0.999
_TANH_AT = float(np.arctanh(0.999))
_SIGMOID_AT = math.log(0.999 / 0.001)
UNARY_POINTS = EDGE + _around(-0.5) + _around(1e8) + _around(_TANH_AT) + _around(-_TANH_AT) + \
    _around(_SIGMOID_AT, 4) + [1.0000001, 0.9999, -0.9999, 1e-8, 19.0, 20.0, -20.0, 40.0, -40.0, 710.0, -745.0,
                               1e154, 1.5e154, 1e308, -1e-300]

# pairs where the binary helpers branch: pow's exponents 0, 1, 2, 3, negative and non-integer exponents of
# negative bases, a**(b-1) under- or overflowing (pt_pow_scaled's logarithms); atan2's and hypot's sums
# near DBL_MIN and DBL_MAX; a subnormal quotient (pt_div_db); ties (minimum, logaddexp)
EXTRA = [(a, e) for a in (0.0, -0.0, 0.5, 2.0, -3.0, -8.0, 1e-310, 5e-324, INF, -INF)
         for e in (0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, 1.0 / 3.0, -0.5, 1e-300)]
EXTRA += [(1e-300, 1e10), (-1e-300, 3e9), (0.5, 1e308), (-0.9, 1e308), (1e-5, 1e305), (1.05e-154, 1.05e-154),
          (1.06e-154, 1.0e-154), (1e-154, -1e-154), (1e-170, 1e-150), (1e154, 1e154), (1.4e154, -1e154),
          (1e-200, 1e-200), (5e-324, 1e-320), (0.5, 1100.0), (0.5, 2000.0), (2.0, -1100.0), (-2.0, 1025.0),
          (10.0, 400.0), (1e300, 1.5), (1.0000001, 1e16), (3.5, 3.5), (-7.0, -7.0), (1e-3, 1e-3), (7.0, 2.0),
          (-7.0, 2.0), (7.0, -2.0), (-7.0, -2.0), (1.0, 0.1), (-1.0, 0.1), (5.5, 1.25), (1e300, -1e-300)]


def binary_grid():
    a, b = np.meshgrid(np.array(EDGE), np.array(EDGE), indexing="ij")
    ea, eb = np.array(EXTRA).T
    return np.concatenate([a.ravel(), ea]), np.concatenate([b.ravel(), eb])


# ---- the C columns ------------------------------------------------------------------------

def c_columns(name, mode, av, bv):
    """(y, da, db) of row ``name`` from C, one instruction per point on one
    scalar tape, swept once (the instructions are independent): mode
    'unary', 'vv', 'vc' (b the constant) or 'cv' (a the constant)."""
    code = OPC[name]
    t = _native.CTape()

    def leaf(v):
        return _native.slot_of_handle(t.leaf(float(v), _native.new_grad_cell()))
    outs, ia, ib = [], [], []
    for x, z in zip(av, bv):
        if mode == "unary":
            sa, sb = leaf(x), None
            h = t.record(code, sa, sa, 0.0)
        elif mode == "vv":
            sa, sb = leaf(x), leaf(z)
            h = t.record(code, sa, sb, 0.0)
        elif mode == "vc":
            sa, sb = leaf(x), None
            h = t.record(code + 1, sa, 0, float(z))
        else:
            sa, sb = None, leaf(z)
            h = t.record(code + 2, 0, sb, float(x))
        assert h >= 0
        outs.append(_native.slot_of_handle(h))
        ia.append(sa)
        ib.append(sb)
    ins = [s for s in ia + ib if s is not None]
    adj = dict(zip(ins, t.backward_block(outs, np.ones((len(outs), 1)), ins)[:, 0]))
    y = np.array([t.value(s) for s in outs])
    da = np.array([adj[s] for s in ia]) if ia[0] is not None else None
    db = np.array([adj[s] for s in ib]) if mode != "unary" and ib[0] is not None else None
    return y, da, db


def as_values(r, shape):
    """A rule's result (Tensor or float) as an array of ``shape``."""
    v = r.value if isinstance(r, pytape.Tensor) else np.float64(r)
    return np.broadcast_to(v, shape)


def two_ulps_at(name, which, b):
    """Where a column may be 2 ulps off C: pow's d/da at b == 3, where C's
    pt_pow_scaled calls libm's pow(a, 2.0) and the rule the pow row, a * a
    (pytape/array_rules.py says why); nowhere else."""
    if name == "pow" and which == 0:
        return np.asarray(b, dtype=float) == 3.0
    return False


def assert_same(got, want, what, points, ulp_ok=False):
    """got == want elementwise (nan where want is nan; -0.0 == 0.0); within
    2 ulps where ``ulp_ok``."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    with np.errstate(invalid="ignore"):
        near = ulp_ok & np.isfinite(want) & (np.abs(got - want) <= 2 * np.spacing(np.abs(want)))
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)) | near)
    if bad.any():
        rows = [f"  at {tuple(p[i] for p in points)}: C {want[i]!r}, Tensor rule {got[i]!r}"
                for i in np.flatnonzero(bad)[:8]]
        pytest.fail(f"{what}: {bad.sum()} of {bad.size} points differ\n" + "\n".join(rows))


# ---- values ---------------------------------------------------------------------------------

CONSTANTS = [0.0, -0.0, 1.0, -1.0, 2.0, 3.0, -2.5, 0.5, 1.0 / 3.0, 1e-310, 1e300, INF, -INF, NAN, 1e-160]


@pytest.mark.parametrize("name", NAMES)
def test_values_equal_the_c_column(name):
    code = OPC[name]
    da, db = tensor_rule(code)
    with pytape.Tape():
        if name in _native.UNARY:
            assert db is None
            x = np.array(UNARY_POINTS)
            y, ca, _ = c_columns(name, "unary", x, x)
            A = pytape.Tensor(x)
            Y = ROWS[name](A)
            assert_same(Y.value, y, f"{name} value", (x,))
            assert_same(as_values(da(A, None, Y), x.shape), ca, f"d{name}/da", (x,))
            return
        # both operands Tensors: the grid broadcast (n, 1) against (1, n), then the extra pairs
        a, b = binary_grid()
        y, ca, cb = c_columns(name, "vv", a, b)
        n = len(EDGE)
        for sl, A, B, shape in (
                (slice(0, n * n), pytape.Tensor(np.array(EDGE)[:, None]), pytape.Tensor(np.array(EDGE)[None, :]),
                 (n, n)),
                (slice(n * n, None), pytape.Tensor(a[n * n:]), pytape.Tensor(b[n * n:]), (len(a) - n * n,))):
            Y = ROWS[name](A, B)
            pts = (a[sl], b[sl])
            assert_same(Y.value.ravel(), y[sl], f"{name} value", pts)
            assert_same(as_values(da(A, B, Y), shape).ravel(), ca[sl], f"d{name}/da (Tensor, Tensor)", pts,
                        two_ulps_at(name, 0, pts[1]))
            assert_same(as_values(db(A, B, Y), shape).ravel(), cb[sl], f"d{name}/db (Tensor, Tensor)", pts)
        # one operand a float constant: each constant against the unary points (and the grid)
        xs = np.array(sorted(set(UNARY_POINTS + EDGE), key=lambda v: (math.isnan(v), v)))
        ka = np.repeat(np.array(CONSTANTS), len(xs))
        kx = np.tile(xs, len(CONSTANTS))
        _, ca, _ = c_columns(name, "vc", kx, ka)  # a varies, b the constant
        _, _, cb = c_columns(name, "cv", ka, kx)  # a the constant, b varies
        X = pytape.Tensor(xs)
        for k, c in enumerate(CONSTANTS):
            sl = slice(k * len(xs), (k + 1) * len(xs))
            Y = ROWS[name](X, c)
            assert_same(as_values(da(X, c, Y), xs.shape), ca[sl], f"d{name}/da (Tensor, constant {c})", (xs,),
                        two_ulps_at(name, 0, np.full(xs.shape, c)))
            Y = ROWS[name](c, X)
            assert_same(as_values(db(c, X, Y), xs.shape), cb[sl], f"d{name}/db (constant {c}, Tensor)", (xs,),
                        two_ulps_at(name, 1, xs))


@pytest.mark.parametrize("name", ["erf", "erfc", "tanh", "expm1", "sinh", "cosh", "sigmoid", "pow", "logaddexp"])
def test_values_equal_the_array_sweep_at_every_size(name):
    # 1500 elements: past the size from which map1 takes numpy's values for exp, log, cosh, ... (512); the
    # rule's own exp / log stay C's, so it equals the array instruction's reverse sweep (the C column at the
    # recorded y, seed 1) element by element
    rng = np.random.default_rng(7)
    with pytape.Tape():
        if name in _native.UNARY:
            x = np.concatenate([UNARY_POINTS, rng.uniform(-12.0, 12.0, 1500)])
            A = pytape.Tensor(x)
            Y = ROWS[name](A)
            Y.backward(np.ones(Y.shape), retain_graph=True)
            d = tensor_rule(OPC[name])[0](A, None, Y)
            assert_same(as_values(d, x.shape), A.grad, f"d{name}/da", (x,))
            with pytape.no_grad():  # a constant, computed on a scratch tape: C's values too
                d = tensor_rule(OPC[name])[0](A, None, Y)
            assert_same(as_values(d, x.shape), A.grad, f"d{name}/da under no_grad", (x,))
            return
        a, b = rng.uniform(-3.0, 3.0, 1500), rng.uniform(-3.0, 3.0, 1500)
        if name == "pow":  # and b == 3 at a fifth of the points: pow's d/da there is 3 pow(a, 2.0) in C
            a, b[::5] = np.abs(a), 3.0
        A, B = pytape.Tensor(a), pytape.Tensor(b)
        Y = ROWS[name](A, B)
        Y.backward(np.ones(Y.shape), retain_graph=True)
        da, db = tensor_rule(OPC[name])
        assert_same(as_values(da(A, B, Y), a.shape), A.grad, f"d{name}/da", (a, b), two_ulps_at(name, 0, b))
        assert_same(as_values(db(A, B, Y), a.shape), B.grad, f"d{name}/db", (a, b))


# ---- derivatives: the scalar twins' --------------------------------------------------------

SMALL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, 0.5, -0.5, 1.0 / 3.0, 2.5, 0.999, 1e-310, 1e-160, 1e300, INF,
         -INF, NAN]
DERIV_EXTRA = EXTRA[::2] + EXTRA[1::6]
D_CONSTANTS = [0.0, -0.0, 1.0, 2.0, 3.0, -2.5, 0.5, 1e-310, INF, NAN]


def twin_derivatives(name, which, mode, a, b):
    """d/da, d/db of column ``which`` (0: da, 1: db) at one point by the
    scalar path: the first derivative by ``grad(..., create_graph=True)``
    (pytape/higher_order.py applies the twin of the column), differentiated
    again; 0.0 where it does not depend on an operand, None for a constant
    operand."""
    with pytape.Tape():
        A = higher_order._constant(a) if mode == "cv" else Var(a)
        B = None if mode == "unary" else higher_order._constant(b) if mode == "vc" else Var(b)
        Y = pytape.recording.FUNCTIONS[name](*((A,) if B is None else (A, B)))
        vs = [v for v in (A, B) if v is not None and not higher_order._is_constant(v)]
        firsts = grad(Y, vs, create_graph=True)
        d = firsts[0 if mode in ("unary", "vc", "cv") else which]
        if not isinstance(d, Var) or higher_order._is_constant(d):
            gs = [0.0] * len(vs)
        else:
            gs = [0.0 if g is None else float(g) for g in grad(d, vs, allow_unused=True)]
    out = iter(gs)
    return [next(out) if v is not None and not higher_order._is_constant(v) else None for v in (A, B)]


def tensor_derivatives(name, which, mode, a, b):
    """d/da, d/db (arrays, elementwise) of the Tensor rule of column ``which``
    over points a, b (arrays; the constant of 'vc' / 'cv' a float), swept from
    the rule's sum."""
    rule = tensor_rule(OPC[name])[which]
    with pytape.Tape():
        A = a if mode == "cv" else pytape.Tensor(a)
        B = None if mode == "unary" else b if mode == "vc" else pytape.Tensor(b)
        Y = ROWS[name](*((A,) if B is None else (A, B)))
        d = rule(A, B, Y)
        if isinstance(d, pytape.Tensor):
            d.sum().backward()
        n = len(a) if mode != "cv" else len(b)
        return [None if not isinstance(v, pytape.Tensor) else
                (v.grad if isinstance(d, pytape.Tensor) else np.zeros(n)) for v in (A, B)]


def hessian_entry(name, which, k, mode, a, b):
    """d2y / d(which) d(k) from the Hessian sweep (the C second-derivative
    columns) at one point."""
    f = pytape.recording.FUNCTIONS[name]
    if mode == "unary":
        return float(np.asarray(pytape.hessian(lambda v: f(v[0]))(np.array([a]))).ravel()[0])
    if mode == "vv":
        return float(np.asarray(pytape.hessian(lambda v: f(v[0], v[1]))(np.array([a, b])))[which, k])
    g = (lambda v: f(v[0], b)) if mode == "vc" else (lambda v: f(a, v[0]))
    return float(np.asarray(pytape.hessian(g)(np.array([b if mode == "cv" else a]))).ravel()[0])


def _close(got, want, rtol):
    """Within rtol, or 2 ulps of a subnormal (pow's d/da at a = 5e-324, b == 2:
    a slope of a few units of 5e-324, formed differently by rule and twin)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (got == want) | (np.isnan(got) & np.isnan(want)) | (
            np.isfinite(want) & (np.abs(got - want) <= np.maximum(rtol * np.abs(want), 2 * 5e-324)))


def assert_close(got, want, what, points, rtol=1e-13, c_second=None):
    """got == want to rtol (nan where want is nan).  Where the twin's slope
    is inf or nan but C's second-derivative column is finite (the twin's
    intermediate overflowed: atan2 at (1e-310, 1e-160), pow's d/da at a
    subnormal a, b == 2), the rule must give C's: ``c_second(i)``."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    ok = _close(got, want, rtol)
    if c_second is not None:
        for i in np.flatnonzero(~ok & ~np.isfinite(want)):
            c = c_second(i)
            ok[i] = math.isfinite(c) and bool(_close(got[i:i + 1], np.array([c]), rtol)[0])
    if not ok.all():
        rows = [f"  at {tuple(p[i] for p in points)}: scalar twin {want[i]!r}, Tensor rule {got[i]!r}"
                for i in np.flatnonzero(~ok)[:8]]
        pytest.fail(f"{what}: {(~ok).sum()} of {ok.size} points differ\n" + "\n".join(rows))


def _constant_column(name, which):
    text = _native.RULES[OPC[name]][which]
    try:
        float(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("name", NAMES)
def test_derivatives_of_the_rule_equal_the_scalar_twins(name):
    unary = name in _native.UNARY
    for which in ((0,) if unary else (0, 1)):
        if _constant_column(name, which):  # "1.0", "-1.0", "0.0": a float, nothing recorded
            assert isinstance(tensor_rule(OPC[name])[which](pytape.Tensor([1.0]), 1.0, pytape.Tensor([1.0])),
                              float)
            continue
        if unary:
            cases = [("unary", np.array(UNARY_POINTS), np.array(UNARY_POINTS))]
        else:
            a, b = np.meshgrid(np.array(SMALL), np.array(SMALL), indexing="ij")
            ea, eb = np.array(DERIV_EXTRA).T
            a, b = np.concatenate([a.ravel(), ea]), np.concatenate([b.ravel(), eb])
            cases = [("vv", a, b)]
            xs = np.array(SMALL + [p for q in DERIV_EXTRA for p in q])
            for c in D_CONSTANTS:  # the column of the operand that is not the constant
                cases.append(("vc", xs, c) if which == 0 else ("cv", c, xs))
        for mode, a, b in cases:
            got = tensor_derivatives(name, which, mode, a, b)
            pa = np.broadcast_to(a, np.shape(b if mode == "cv" else a))
            pb = np.broadcast_to(b, pa.shape)
            want = [twin_derivatives(name, which, mode, x, z) for x, z in zip(pa, pb)]
            for k in (0, 1):
                if got[k] is None:
                    continue
                w = np.array([p[k] for p in want])
                assert_close(got[k], w, f"d(d{name}/d{'ab'[which]})/d{'ab'[k]} ({mode})", (pa, pb),
                             c_second=lambda i: hessian_entry(name, which, k, mode, pa[i], pb[i]))


# ---- traces: branches decided by recorded operations ------------------------------------

def _branching(name):
    """Rows with a column that is not a number (the traced check's rows)."""
    return not all(_constant_column(name, w) for w in ((0,) if name in _native.UNARY else (0, 1)))


TRACED = [n for n in NAMES if _branching(n)]
# a start in the common branch of every helper, and points in the others
START = {"pow": ([2.0, 3.0, 0.7, 1.5], [2.5, 0.5, 3.0, 1.7]), "acosh": ([2.0, 3.0, 5.0, 1.5], None)}


@pytest.mark.parametrize("name", TRACED)
def test_a_traced_rule_takes_each_points_branch_at_replay(name):
    unary = name in _native.UNARY
    rng = np.random.default_rng(OPC[name])
    n = 4
    a0, b0 = START.get(name, ([0.7, 1.3, 0.4, 2.0], [1.1, 0.6, 1.9, 0.2]))
    a0 = np.array(a0)
    b0 = np.array(b0 if b0 is not None else [1.0] * n)
    w = rng.uniform(0.5, 2.0, n)
    rules = [c for c in tensor_rule(OPC[name]) if c is not None]

    def f(a, b):
        y = ROWS[name](a) if unary else ROWS[name](a, b)
        s = 0.0
        for col in rules:
            s = s + (col(a, None if unary else b, y) * w).sum()
        return s

    def g(a, c):  # b a float constant of the trace
        y = ROWS[name](a, c)
        return (rules[0](a, c, y) * w).sum()

    fn = pytape.trace(f, a0, b0)
    if unary:
        pa = np.array(UNARY_POINTS)
        pb = np.ones_like(pa)
    else:
        pa, pb = binary_grid()
        probe = pytape.Tensor(a0)
        fc = {c: pytape.trace(lambda a, c=c: g(a, c), a0) for c in (0.0, 1.0, 2.0, -2.5)
              if isinstance(rules[0](probe, c, ROWS[name](probe, c)), pytape.Tensor)}  # else a float: no slope
    order = rng.permutation(len(pa))
    checked = 0
    for k in range(0, len(order) - n + 1, n):
        a1, b1 = pa[order[k:k + n]], pb[order[k:k + n]]
        A, B = pytape.Tensor(a1), pytape.Tensor(b1)
        with pytape.Tape():
            want = f(A, B)
            want.backward()
        got = fn(a1, b1)
        assert got == float(want) or (math.isnan(got) and math.isnan(float(want))), (name, a1, b1)
        ga, gb = fn.gradient(a1, b1)
        np.testing.assert_array_equal(ga, A.grad, err_msg=f"{name} d/da at {a1}, {b1}")
        np.testing.assert_array_equal(gb, B.grad, err_msg=f"{name} d/db at {a1}, {b1}")
        if not unary and k % (8 * n) == 0:
            for c, fnc in fc.items():
                A = pytape.Tensor(a1)
                with pytape.Tape():
                    want = g(A, c)
                    want.backward()
                got = fnc(a1)
                assert got == float(want) or (math.isnan(got) and math.isnan(float(want))), (name, a1, c)
                np.testing.assert_array_equal(fnc.gradient(a1), A.grad, err_msg=f"{name} d/da at {a1}, b = {c}")
        checked += 1
    assert checked >= 7
    # no value reached Python (nothing guarded, so nothing retraced)
    assert fn.retraces == 0 and (unary or all(f.retraces == 0 for f in fc.values()))


def test_rules_record_with_anomaly_mode_on():
    # a branch not taken holds inf / nan (atan2's scaled hypot of 1e300 * 2**600): not an anomaly
    da, db = tensor_rule(OPC["atan2"])
    a, b = pytape.Tensor([1e300, 2.0]), pytape.Tensor([3.0, 0.5])
    with pytape.Tape():
        want = da(a, b, np.arctan2(a, b)).value
    with pytape.detect_anomaly(), pytape.Tape():
        got = da(a, b, np.arctan2(a, b)).value
        assert pytape.is_anomaly_enabled()
    np.testing.assert_array_equal(got, want)
    assert np.isfinite(got).all()


# ---- the module ------------------------------------------------------------------------------

def test_every_helper_a_column_calls_has_a_tensor_twin():
    for code, (da, db) in enumerate(_native.RULES):
        if _native.OP_KINDS[code] in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC, _native.KIND_CV):
            tensor_rule(code)  # NotImplementedError naming the helper otherwise
    assert set(array_rules.HELPERS) == {k for k in higher_order.HELPERS if k.startswith(("pt_", "PT_"))}
    with pytest.raises(ValueError):
        tensor_rule(0)  # a LEAF: no columns


def test_no_branch_reads_a_value_and_no_unchosen_branch_leaks():
    # every branch of pow's d/da at once: a nan or inf in a branch not taken stays out of value and slopes
    a = pytape.Tensor([0.0, 0.0, 2.0, 5e-324, -8.0, 0.5, 0.0, 3.0])
    b = pytape.Tensor([0.0, 1.0, 2.0, 1e-300, 3.0, 2000.0, -1.0, 0.5])
    da, db = tensor_rule(OPC["pow"])
    with pytape.Tape():
        y = a ** b
        d = da(a, b, y) + db(a, b, y)
        d.sum().backward()
    for i in range(8):
        want = [twin_derivatives("pow", k, "vv", a.value[i], b.value[i]) for k in (0, 1)]
        for k, g in enumerate((a.grad[i], b.grad[i])):
            w = want[0][k] + want[1][k]
            assert g == w or (math.isnan(g) and math.isnan(w)) or abs(g - w) <= 1e-13 * abs(w), (i, k, g, w)

