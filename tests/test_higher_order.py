"""create_graph=True (pytape/higher_order.py): the reverse sweep recorded as
instructions, any order of derivatives; its Python twins of the rule helpers
of csrc/rules.h, checked against C for every derivative column."""
import math
import pathlib
import re

import numpy as np
import pytest

import pytape
from pytape import Var, _native, higher_order
from pytape.autograd import grad


def test_create_graph_third_derivatives_exact():
    for f, d1, d2, d3, d4 in [
        (pytape.sin, math.cos, lambda v: -math.sin(v), lambda v: -math.cos(v), math.sin),
        (pytape.exp, math.exp, math.exp, math.exp, math.exp),
        (lambda v: v ** 5, lambda v: 5 * v ** 4, lambda v: 20 * v ** 3, lambda v: 60 * v ** 2, lambda v: 120 * v),
    ]:
        x = Var(0.7)
        y = f(x)
        (g1,) = grad(y, x, create_graph=True)
        (g2,) = grad(g1, x, create_graph=True)
        (g3,) = grad(g2, x, create_graph=True)
        assert isinstance(g1, Var) and isinstance(g3, Var)
        assert (g1.value, g2.value, g3.value) == (d1(0.7), d2(0.7), d3(0.7))
        g3.backward()  # the fourth, through an ordinary backward
        assert x.grad == pytest.approx(d4(0.7), rel=1e-14)


def test_create_graph_mixed_partials_and_hessian_agree():
    def f(x1, x2):
        return pytape.log(x1) + x1 * x2 - pytape.sin(x2) + pytape.atan2(x1, x2) * pytape.hypot(x1, x2)

    x1, x2 = Var(2.0), Var(5.0)
    y = f(x1, x2)
    g1, g2 = grad(y, [x1, x2], create_graph=True)
    h11, h12 = grad(g1, [x1, x2], retain_graph=True)
    h21, h22 = grad(g2, [x1, x2])
    H = pytape.hessian(lambda v: f(v[0], v[1]))(np.array([2.0, 5.0]))
    np.testing.assert_allclose([[h11, h12], [h21, h22]], H, rtol=1e-12)
    assert (g1.value, g2.value) == pytest.approx(tuple(pytape.grad(lambda v: f(v[0], v[1]))(np.array([2.0, 5.0]))))


@pytest.mark.parametrize("name", sorted(pytape.recording.FUNCTIONS))
def test_create_graph_agrees_with_the_second_derivative_columns(name):
    # two independent second-order paths: first-derivative columns recorded as
    # instructions (create_graph) vs the d2 columns of the Hessian sweep
    from test_ops import ORACLES, UNARY, points

    f = pytape.recording.FUNCTIONS[name]
    checked = 0
    for p in points(name):
        args = (p,) if name in UNARY else p
        if not all(math.isfinite(v) and 0.05 < abs(v) < 20 for v in args):
            continue
        o = ORACLES[name]
        if name in UNARY and o.fd_skip(args[0], 1e-6) or name not in UNARY and any(o.fd_skip(*args, 1e-6, 1e-6)):
            continue
        xs = [Var(v) for v in args]
        gs = grad(f(*xs), xs, create_graph=True)
        H = np.array([[g2 if g2 is not None else 0.0 for g2 in
                       (grad(g, xs, retain_graph=True, allow_unused=True) if isinstance(g, Var) else [0.0] * len(xs))]
                      for g in gs], dtype=float)
        want = pytape.hessian(lambda v: f(*v))(np.array(args, dtype=float))
        np.testing.assert_allclose(H, np.atleast_2d(want), rtol=1e-10, atol=1e-12, err_msg=f"{name} at {args}")
        checked += 1
        if checked == 5:
            break
    assert checked >= 1


def test_grad_outputs_as_vars_with_create_graph_stay_in_the_graph():
    # PyTorch: with create_graph=True the gradient depends on grad_outputs too
    x, v = pytape.Var(2.0), pytape.Var(3.0)
    y = x ** 2
    (g,) = pytape.autograd.grad(y, x, grad_outputs=v, create_graph=True)
    assert g.value == 12.0  # 2 x v
    dv, dx = pytape.autograd.grad(g, [v, x])
    assert (dv, dx) == (4.0, 6.0)  # d(2xv)/dv = 2x, d/dx = 2v
    # without create_graph a Var seed counts by its value
    z = x ** 2
    assert pytape.autograd.grad(z, x, grad_outputs=v) == (12.0,)


# ---- the Python twins of csrc/rules.h, checked against C ------------------------------

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES_H = (ROOT / "csrc" / "rules.h").read_text()


def test_every_helper_a_derivative_column_calls_has_a_python_twin():
    used = set()
    for da, db in _native.RULES:
        used |= set(re.findall(r"\b(pt_\w+|PT_\w+)\b", da + " " + db))
    defined = set(re.findall(r"static inline double (pt_\w+)\(", RULES_H)) | set(
        re.findall(r"#define (PT_\w+)", RULES_H))
    assert used <= defined, f"columns call helpers rules.h lacks: {used - defined}"
    twins = {k for k in higher_order.HELPERS if k.startswith(("pt_", "PT_"))}
    assert used - {"pt_chain"} <= twins, f"no Python twin in higher_order.HELPERS for {used - twins}"
    assert twins <= used, f"twins no column calls any more (remove them): {twins - used}"


def special_points(name):
    """Points where the helpers branch: zeros, signs, ties, pow's exponents 0, 1 and 2."""
    base = [-2.5, -1.0, -0.5, -0.0, 0.0, 0.3, 0.5, 1.0, 2.0, 3.7]
    if name in _native.UNARY:
        return [(x,) for x in base + [-40.0, 40.0, 1e-300, 0.9999]]
    pts = [(a, b) for a in base for b in base]
    pts += [(a, e) for a in (0.0, -0.0, 0.5, 2.0, -3.0) for e in (0.0, 1.0, 2.0, 3.0, -1.0, 0.5)]
    return pts


def c_derivatives(code, args):
    """(value, dy/da, dy/db) from C: the op recorded on a tape of its own and
    swept in reverse (pt_chain(d, 1) is d)."""
    t = _native.CTape()
    slots = [_native.slot_of_handle(t.leaf(v, _native.new_grad_cell())) for v in args]
    h = t.record(code, slots[0], slots[-1], 0.0)
    assert h >= 0
    y = _native.slot_of_handle(h)
    d = t.backward_block([y], [[1.0]], slots)[:, 0]
    return t.value(y), d


def same(c, py):
    return (math.isnan(c) and math.isnan(py)) or c == py or math.isclose(c, py, rel_tol=1e-14, abs_tol=1e-300)


def value(x):
    return x.value if isinstance(x, Var) else float(x)


@pytest.mark.parametrize("name", sorted(_native.OPCODES))
def test_python_twins_of_the_derivative_columns_agree_with_c(name):
    # the twins run as higher_order runs them: on Vars (a result for y), so
    # every operation inside a rule is pytape's, as in create_graph
    code = _native.OPCODES[name]
    da, db = higher_order._RULES[code]
    for args in special_points(name):
        y, d = c_derivatives(code, args)
        with pytape.Tape():
            xs = [Var(v) for v in args]
            Y = pytape.recording.FUNCTIONS[name](*xs)
            A, B = xs[0], xs[-1] if db is not None else None
            py_a = value(da(A, B, Y))
            py_b = value(db(A, B, Y)) if db is not None else None
        assert Y.value == y or (math.isnan(y) and math.isnan(Y.value))
        assert same(d[0], py_a), f"d{name}/da at {args}: C {d[0]!r}, Python twin {py_a!r}"
        if db is not None:
            assert same(d[-1], py_b), f"d{name}/db at {args}: C {d[-1]!r}, Python twin {py_b!r}"
