"""The two second-order paths agree with each other at every point, edge
points included, and with PyTorch where PyTorch defines a value (issue 10,
defects 2 and 6).

Path 1: ``pytape.hessian`` (the C forward-over-reverse sweep, csrc/sweep_hessian.c,
with the second-derivative columns of csrc/ops.def).  Path 2:
``pytape.autograd.grad(..., create_graph=True)`` (pytape/higher_order.py: the
first-derivative columns recorded as instructions), differentiated again.  For
every op of the op table, in every form (unary; var-var, var-constant,
constant-var), on a grid of points with the edge points (0, -0.0, ties,
domain edges, negative bases, integer and non-integer exponents, large and
tiny magnitudes, inf and nan; not +-inf for atan2, hypot, pow: NO_INF), the
two Hessians are equal: the same values to within 1e-12 relative (and 1e-290
absolute, where a composed formula underflows a little earlier), nan where
the other is nan, the same infinities (beyond 1e+-150, see
overflow_territory).  The gradients of create_graph are Vars everywhere.

The comparisons with PyTorch need torch (skipped without it); the differences
from PyTorch are the ones README.md lists under "Derivatives at edge points,
and PyTorch", each an xfail below.
"""
import itertools
import math

import numpy as np
import pytest

import pytape
from pytape import Var
from pytape._native import UNARY
from pytape.autograd import grad
from pytape.recording import FUNCTIONS

inf, nan = math.inf, math.nan

UNARY_GRID = [-inf, -1e300, -40.0, -2.5, -1.0, -0.5, -1e-300, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 0.3, 0.5,
              0.9999, 1.0, 1.0001, 2.0, 3.7, 40.0, 1e300, inf, nan]
BINARY_VALUES = [-inf, -1e300, -2.5, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 2.0, 1e300, inf, nan]
#: at an infinite operand the first derivatives of these are inf/inf (nan) in
#: some components, the limit 0 in others, as in PyTorch; the paths differ
#: there in which second-derivative entries are nan (see README)
NO_INF = {"atan2", "hypot", "pow"}


def binary_grid(name):
    pts = list(itertools.product(BINARY_VALUES, BINARY_VALUES))
    if name in NO_INF:
        pts = [p for p in pts if not any(math.isinf(v) for v in p)]
    if name == "pow":  # exponents of every kind: integers, halves, 0, 1, 2, and a**b of negative bases
        pts += [(a, b) for a in (-2.0, -0.5, -0.0, 0.0, 0.5, 2.0, 3.0) for b in (-3.0, -2.0, -1.5, -0.5, 0.25, 1.5, 3.0)]
        # a negative base whose power over- or underflows: a**b is an even
        # power there, and the scaled formulas (through ln |a|) differ in what they call nan
        pts = [(a, b) for a, b in pts if not (a < 0 and max(abs(a), abs(b)) > 1e150)]
    return pts


def forms(name):
    """(label, function of Vars, point) for every form of op `name` at every grid point."""
    f = FUNCTIONS[name]
    if name in UNARY:
        for x in UNARY_GRID:
            yield f"{name}({x!r})", f, (x,)
        return
    for a, b in binary_grid(name):
        yield f"{name}({a!r}, {b!r})", f, (a, b)
        yield f"{name}({a!r}, const {b!r})", (lambda b: lambda x: f(x, b))(b), (a,)
        yield f"{name}(const {a!r}, {b!r})", (lambda a: lambda x: f(a, x))(a), (b,)


def hessian_path(f, args):
    """Path 1: the C forward-over-reverse sweep."""
    with np.errstate(all="ignore"):
        return np.atleast_2d(pytape.hessian(lambda v: f(*v))(np.array(args, dtype=float)))


def create_graph_path(f, args):
    """Path 2: create_graph=True, then each gradient differentiated again.
    Returns (first derivatives as Vars, Hessian)."""
    xs = [Var(v) for v in args]
    gs = grad(f(*xs), xs, create_graph=True)
    assert all(isinstance(g, Var) for g in gs), f"not Vars: {gs}"
    rows = [grad(g, xs, retain_graph=True) for g in gs]  # no allow_unused: every input is reached
    return gs, np.array(rows, dtype=float)


def overflow_territory(args):
    """An operand so large or tiny that an intermediate of a composed formula
    overflows where the closed form does not (d2(a**b)/da2 at a = b = 1e-300
    is -1e300, but a**(b-2) is inf), or reverse accumulation adds inf - inf
    (atan2 at (0, 1e-300): -1/b**2 = -1e600)."""
    return any(v != 0 and (abs(v) >= 1e150 or abs(v) <= 1e-150) for v in args if math.isfinite(v))


def disagreements(h1, h2, args):
    """Entries where the two Hessians differ: not both nan, not equal (the same
    infinity), not within 1e-12 relative + 1e-290 absolute.  In overflow
    territory two entries that both overflow (|v| > 1e290, inf or nan) agree,
    and create_graph may give nan (its reverse accumulation adds the inf -
    inf of intermediates: atan2 at (1e-300, 1e-300), d2/da db = 0)."""
    bad = []
    big = overflow_territory(args)
    for (i, j), u in np.ndenumerate(h1):
        v = h2[i, j]
        if (math.isnan(u) and math.isnan(v)) or u == v:
            continue
        if math.isfinite(u) and math.isfinite(v) and abs(u - v) <= 1e-12 * max(abs(u), abs(v)) + 1e-290:
            continue
        if big and not (abs(u) <= 1e290) and not (abs(v) <= 1e290):
            continue
        if big and math.isnan(v):  # create_graph's reverse accumulation added inf - inf
            continue
        bad.append((i, j, u, v))
    return bad


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_hessian_and_create_graph_agree_everywhere(name):
    # and the gradients of create_graph are Vars at every point (never a float
    # where the derivative happens to be 0) with the C reverse sweep's values,
    # which can be differentiated again with respect to every input without
    # allow_unused (0 where the gradient does not depend on that input)
    failures = []
    for label, f, args in forms(name):
        h1 = hessian_path(f, args)
        gs, h2 = create_graph_path(f, args)
        with np.errstate(all="ignore"):
            want = np.atleast_1d(pytape.grad(lambda v: f(*v))(np.array(args, dtype=float)))
        for k, (g, w) in enumerate(zip(gs, want)):
            if not (g.value == w or (math.isnan(g.value) and math.isnan(w))):
                failures.append(f"{label}: d/dx{k} create_graph {g.value!r}, backward {w!r}")
        for i, j, u, v in disagreements(h1, h2, args):
            failures.append(f"{label}: d2/dx{i}dx{j} hessian {u!r}, create_graph {v!r}")
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:30])


# ---- the examples, each against exact formulas ----------------------------------

def second_derivatives(y, xs):
    """create_graph=True, then every gradient differentiated again (path 2)."""
    gs = grad(y, xs, create_graph=True)
    return gs, [list(grad(g, xs, retain_graph=True)) for g in gs]


def test_pow_mixed_second_derivative_at_exponent_zero():
    # d/da a**b = b a**(b-1); d/db of that = a**(b-1) (1 + b ln a) = 1/a at b = 0
    a, b = Var(0.5), Var(0.0)
    gs, H = second_derivatives(a ** b, [a, b])
    want = [[0.0, 1 / 0.5], [1 / 0.5, math.log(0.5) ** 2]]
    assert [g.value for g in gs] == [0.0, math.log(0.5)]
    np.testing.assert_allclose(H, want, rtol=1e-15)
    np.testing.assert_allclose(pytape.hessian(lambda v: v[0] ** v[1])(np.array([0.5, 0.0])), want, rtol=1e-15)


@pytest.mark.parametrize("b", [2.0, 1.0, 3.0])
def test_pow_mixed_second_derivative_at_integer_exponents(b):
    # x**2 is recorded with a shortcut (2 a) that must not cut the exponent's graph
    a0 = 1.7
    a, bb = Var(a0), Var(b)
    gs, H = second_derivatives(a ** bb, [a, bb])
    dab = a0 ** (b - 1) * (1 + b * math.log(a0))
    want = [[b * (b - 1) * a0 ** (b - 2), dab], [dab, a0 ** b * math.log(a0) ** 2]]
    np.testing.assert_allclose(H, want, rtol=1e-14)


def test_zero_to_the_zero():
    # 0**0: gradient (0, 0) by convention; Vars, differentiable again; the
    # Hessian of both paths: d2/da2 = 0 (b a**(b-1) is 0 along b = 0),
    # d2/dadb = a**-1 = inf (1 + b ln a is 1 by the zero-factor rule), d2/db2 = 0
    a, b = Var(0.0), Var(0.0)
    gs, H = second_derivatives(a ** b, [a, b])
    assert all(isinstance(g, Var) for g in gs) and [g.value for g in gs] == [0.0, 0.0]
    assert H == [[0.0, inf], [inf, 0.0]]
    assert pytape.hessian(lambda v: v[0] ** v[1])(np.array([0.0, 0.0])).tolist() == H


@pytest.mark.parametrize("x0, want", [(0.0, -inf), (-0.0, inf)])
def test_cbrt_second_derivative_at_zero(x0, want):
    # cbrt''(x) = -2/9 x**(-5/3): -inf from above, +inf from below
    x = Var(x0)
    (g,), ((h,),) = second_derivatives(pytape.cbrt(x), [x])
    assert g.value == inf and h == want
    assert pytape.hessian(lambda v: pytape.cbrt(v[0]))(np.array([x0]))[0, 0] == want


@pytest.mark.parametrize("f", [pytape.atan2, pytape.hypot], ids=["atan2", "hypot"])
def test_atan2_hypot_at_the_origin_give_vars(f):
    a, b = Var(0.0), Var(0.0)
    gs, H = second_derivatives(f(a, b), [a, b])
    assert all(isinstance(g, Var) for g in gs) and [g.value for g in gs] == [0.0, 0.0]
    assert H == [[0.0, 0.0], [0.0, 0.0]] == pytape.hessian(lambda v: f(v[0], v[1]))(np.zeros(2)).tolist()


def test_where_branch_not_taken_gives_a_var():
    # the branch not taken gets 0; the gradient is still a Var of x, and its
    # derivative is that of the branch taken (here 0: the constant branch)
    x = Var(-1.0)
    y = pytape.where(pytape.greater(x, 0.0), pytape.sqrt(x), 0.0)
    (g,), ((h,),) = second_derivatives(y, [x])
    assert isinstance(g, Var) and g.value == 0.0 and h == 0.0
    x = Var(2.0)
    y = pytape.where(pytape.greater(x, 0.0), x ** 3, pytape.sqrt(x))
    (g,), ((h,),) = second_derivatives(y, [x])
    assert (g.value, h) == (12.0, 12.0)  # 3 x**2, 6 x


@pytest.mark.parametrize("f, x0, d1", [(pytape.abs, -2.0, -1.0), (pytape.relu, 3.0, 1.0), (pytape.relu, -3.0, 0.0),
                                       (lambda x: -x, 1.0, -1.0), (lambda x: 3.0 * x + 1.0, 1.0, 3.0)],
                         ids=["abs", "relu+", "relu-", "neg", "affine"])
def test_piecewise_linear_gradients_are_vars_with_zero_slope(f, x0, d1):
    # PyTorch: abs backward is grad * sgn(x), in the graph; differentiating again gives 0
    x = Var(x0)
    (g,), ((h,),) = second_derivatives(f(x), [x])
    assert isinstance(g, Var) and g.value == d1 and h == 0.0


def test_mixed_partials_of_a_product_with_respect_to_every_input():
    # d(ab)/da = b does not depend on a: differentiating it with respect to a gives 0, not an error
    a, b = Var(2.0), Var(5.0)
    gs, H = second_derivatives(a * b, [a, b])
    assert H == [[0.0, 1.0], [1.0, 0.0]]


def test_constant_divisor_zero_with_create_graph():
    # a constant operand is computed with as in the C sweeps (IEEE), not by Python floats
    x = Var(1.0)
    (g,) = grad(x / 0.0, x, create_graph=True)
    assert g.value == inf


def test_zero_factor_rule_in_create_graph():
    # relu(-1) * sqrt(x) at x = 0: the adjoint of sqrt is 0, its derivative inf:
    # 0 (exact) in every sweep, as backward() gives, not 0 * inf = nan
    x, u = Var(0.0), Var(-1.0)
    y = pytape.relu(u) * pytape.sqrt(x)
    gx, gu = grad(y, [x, u], create_graph=True)
    assert gx.value == 0.0 and gu.value == 0.0
    y2 = pytape.relu(Var(-1.0)) * pytape.sqrt(x)
    assert grad(y2, x) == (0.0,)


def test_an_output_that_is_the_input_gives_a_var():
    x = Var(2.0)
    (g,) = grad(x, x, create_graph=True)
    assert isinstance(g, Var) and g.value == 1.0
    assert grad(g, x) == (0.0,)


def test_grad_outputs_one_entry_per_output():
    # defect 6: PyTorch accepts a sequence with one entry per output
    x = Var(3.0)
    assert grad(x ** 2, x, grad_outputs=[1.0]) == (6.0,)
    assert grad(x ** 2, x, grad_outputs=(2.0,)) == (12.0,)
    assert grad(x ** 2, x, grad_outputs=np.array([0.5])) == (3.0,)
    (g,) = grad(x ** 2, x, grad_outputs=[Var(2.0)], create_graph=True)
    assert g.value == 12.0
    with pytest.raises(ValueError, match="2 entries for 1 outputs"):
        grad(x ** 2, x, grad_outputs=[1.0, 2.0])
    with pytest.raises(TypeError, match="grad_outputs"):
        grad(x ** 2, x, grad_outputs=["a"])


# ---- against PyTorch (torch 2.13, float64) ------------------------------------------------

def _torch_functions(torch):
    f64 = torch.float64
    return {
        "neg": torch.neg, "abs": torch.abs, "sqrt": torch.sqrt, "exp": torch.exp, "exp2": torch.exp2,
        "expm1": torch.expm1, "log": torch.log, "log2": torch.log2, "log10": torch.log10, "log1p": torch.log1p,
        "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin, "acos": torch.acos,
        "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "asinh": torch.asinh,
        "acosh": torch.acosh, "atanh": torch.atanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
        "softplus": torch.nn.functional.softplus, "erf": torch.erf, "erfc": torch.erfc,
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
        "atan2": torch.atan2, "hypot": torch.hypot, "minimum": torch.minimum, "maximum": torch.maximum,
        "clamp_min": lambda a, b: torch.clamp(a, min=b), "clamp_max": lambda a, b: torch.clamp(a, max=b),
        "less": lambda a, b: torch.lt(a, b).to(f64), "less_equal": lambda a, b: torch.le(a, b).to(f64),
        "equal": lambda a, b: torch.eq(a, b).to(f64), "not_equal": lambda a, b: torch.ne(a, b).to(f64),
        "where_t": lambda c, v: torch.where(c != 0, v, torch.tensor(-0.0, dtype=f64)),
        "where_f": lambda c, v: torch.where(c != 0, torch.tensor(-0.0, dtype=f64), v),
        "sign": torch.sign, "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "trunc": torch.trunc,
        "mod": torch.remainder, "fmod": torch.fmod,
        "floor_divide": lambda a, b: torch.div(a, b, rounding_mode="floor"),
        "logaddexp": torch.logaddexp, "logaddexp2": torch.logaddexp2,
    }


#: rows without a PyTorch counterpart: cbrt (torch has none), chain (create_graph's product)
NO_TORCH = {"cbrt", "chain"}


def torch_derivatives(torch, fn, args, var):
    """value, gradient and Hessian (row i: the gradient of d/dx_i) by torch's
    double backward; var[k] says whether operand k is a variable (else a constant)."""
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=w) for v, w in zip(args, var)]
    ins = [x for x in xs if x.requires_grad]
    y = fn(*xs)
    n = len(ins)
    if not y.requires_grad:  # comparisons: no graph, derivative 0
        return float(y.detach()), [0.0] * n, [[0.0] * n for _ in range(n)]
    gs = torch.autograd.grad(y, ins, create_graph=True, materialize_grads=True)
    H = [[float(v) for v in torch.autograd.grad(g, ins, retain_graph=True, materialize_grads=True)]
         if g.requires_grad else [0.0] * n for g in gs]
    return float(y.detach()), [float(g.detach()) for g in gs], H


def pytape_derivatives(name, args, var):
    """value, gradient by the reverse sweep, gradient by the tangent sweep,
    Hessian (the Hessian sweep; create_graph agrees with it, tested above)."""
    f = FUNCTIONS[name]

    def fn(v):
        it = iter(v)
        return f(*[next(it) if w else c for c, w in zip(args, var)])

    x = np.array([v for v, w in zip(args, var) if w], dtype=float)
    with np.errstate(all="ignore"):
        return (fn([Var(v) for v in x]).value, np.atleast_1d(pytape.grad(fn)(x)),
                np.atleast_2d(pytape.jacfwd(fn)(x)).ravel(), np.atleast_2d(pytape.hessian(fn)(x)))


def torch_points(name):
    """(args, var) for every form at every grid point."""
    if name in UNARY:
        return [((x,), (True,)) for x in UNARY_GRID]
    return [(p, var) for p in binary_grid(name) for var in ((True, True), (True, False), (False, True))]


def _origin(args):
    return all(v == 0 for v in args)


#: the deliberate differences from PyTorch (README.md, "Derivatives at edge
#: points, and PyTorch"): name -> (predicate(op, args, var, quantity), example
#: points).  quantity: "value", "d" (first derivatives), "H" (second).
DIFFERENCES = {
    "second derivative 0 at +-inf": (
        lambda op, args, var, q: q == "H" and op in ("atan", "asinh", "acosh", "atanh", "erf", "erfc")
        and math.isinf(args[0]),
        [("atan", (inf,), (True,)), ("erf", (-inf,), (True,))]),
    "digits pytape keeps": (
        lambda op, args, var, q: q != "value" and (
            (op in ("tanh", "sigmoid", "expm1", "softplus") and abs(args[0]) >= 19)
            or (op in ("atan2", "pow") and overflow_territory(args))),
        [("tanh", (40.0,), (True,)), ("expm1", (-40.0,), (True,)), ("softplus", (40.0,), (True,)),
         ("atan2", (1e-300, 1e-300), (True, True)), ("pow", (1e300, 2.0), (True, True))]),
    "hypot at the origin": (
        lambda op, args, var, q: op == "hypot" and q != "value" and _origin(args),
        [("hypot", (0.0, 0.0), (True, True))]),
    "atan2 at the origin, second derivatives": (
        lambda op, args, var, q: op == "atan2" and q == "H" and _origin(args),
        [("atan2", (0.0, 0.0), (True, True)), ("atan2", (-0.0, 0.0), (True, False))]),
    "pow at a == 0 or b == 0, second derivatives": (
        lambda op, args, var, q: op == "pow" and q == "H" and (args[0] == 0 or args[1] == 0),
        [("pow", (0.5, 0.0), (True, True)), ("pow", (0.0, 0.0), (True, True)), ("pow", (0.0, 1.0), (True, True)),
         ("pow", (0.0, 2.0), (False, True)), ("pow", (-2.5, 0.0), (True, True)), ("pow", (nan, 0.0), (True, False))]),
    "pow(1, nan), second derivatives": (
        lambda op, args, var, q: op == "pow" and q == "H" and args[0] == 1 and math.isnan(args[1]),
        [("pow", (1.0, nan), (True, True))]),
    "sign of nan": (
        lambda op, args, var, q: op == "sign" and q == "value" and math.isnan(args[0]),
        [("sign", (nan,), (True,))]),
    "fmod at an infinite dividend, first derivatives": (
        lambda op, args, var, q: op == "fmod" and q == "d" and math.isinf(args[0]),
        [("fmod", (inf, 2.0), (True, True)), ("fmod", (-inf, 0.5), (False, True))]),
    "logaddexp at infinities and beyond 1e300": (
        lambda op, args, var, q: op in ("logaddexp", "logaddexp2") and q != "value"
        and any(math.isinf(a) or abs(a) >= 1e300 for a in args),
        [("logaddexp", (-inf, -inf), (True, True)), ("logaddexp", (-1e300, -2.5), (True, True)),
         ("logaddexp2", (inf, inf), (True, False))]),
    "logaddexp2 at a tie, value": (
        lambda op, args, var, q: op == "logaddexp2" and q == "value" and args[0] == args[1],
        [("logaddexp2", (-1.0, -1.0), (True, True))]),
    "acosh at -1": (
        lambda op, args, var, q: op == "acosh" and q != "value" and args[0] == -1,
        [("acosh", (-1.0,), (True,))]),
}


def documented(op, args, var, quantity):
    return [k for k, (pred, _) in DIFFERENCES.items() if pred(op, args, var, quantity)]


def _eq(u, v):
    return ((math.isnan(u) and math.isnan(v)) or u == v
            or (math.isfinite(u) and math.isfinite(v) and abs(u - v) <= 1e-12 * max(abs(u), abs(v)) + 1e-300))


def torch_mismatches(torch, op, args, var):
    """[(quantity, what, pytape's, torch's)] where pytape and torch differ at one point."""
    ty, tg, tH = torch_derivatives(torch, _torch_functions(torch)[op], args, var)
    py, pg, pj, pH = pytape_derivatives(op, args, var)
    out = [("value", "value", py, ty)] if not _eq(py, ty) else []
    for k, t in enumerate(tg):
        out += [("d", f"{how} d/dx{k}", p[k], t) for how, p in (("reverse", pg), ("tangent", pj)) if not _eq(p[k], t)]
    out += [("H", f"d2/dx{i}dx{j}", pH[i][j], t) for i, row in enumerate(tH) for j, t in enumerate(row)
            if not _eq(pH[i][j], t)]
    return out


@pytest.mark.parametrize("op", sorted(set(FUNCTIONS) - NO_TORCH))
def test_against_pytorch_except_the_documented_differences(op):
    torch = pytest.importorskip("torch")
    failures = []
    for args, var in torch_points(op):
        for q, what, p, t in torch_mismatches(torch, op, args, var):
            if not documented(op, args, var, q):
                failures.append(f"{op}{args} {'VV' if all(var) else 'VC' if var[0] else 'CV'} {what}: "
                                f"pytape {p!r}, torch {t!r}")
    assert not failures, f"{len(failures)} differences from PyTorch not in README:\n" + "\n".join(failures[:30])


@pytest.mark.parametrize("difference", sorted(DIFFERENCES))
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="a deliberate difference from PyTorch, in README.md")
def test_documented_difference_from_pytorch(difference):
    torch = pytest.importorskip("torch")
    for op, args, var in DIFFERENCES[difference][1]:
        assert not torch_mismatches(torch, op, args, var), f"{op}{args} differs from PyTorch"


@pytest.mark.parametrize("difference", sorted(DIFFERENCES))
def test_each_documented_difference_is_one(difference):
    # every example of a listed difference differs from torch there, and only in what the entry says
    torch = pytest.importorskip("torch")
    pred, examples = DIFFERENCES[difference]
    for op, args, var in examples:
        diffs = torch_mismatches(torch, op, args, var)
        assert diffs, f"{op}{args} no longer differs from PyTorch: drop it from DIFFERENCES and README.md"
        assert all(pred(op, args, var, q) for q, *_ in diffs), f"{op}{args}: {diffs}"
