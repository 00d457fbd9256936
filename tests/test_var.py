"""Vars (pytape/var.py): leaves, results and constants; gradients, accumulation, backward, detach, no_grad, comparisons, numpy scalars, pickling, operand errors."""
import math
import pickle

import numpy as np
import pytest

import pytape
from pytape import Var


def chain(y, depth):
    """The benchmark chain: the gradient of each step is exactly 1."""
    for _ in range(depth):
        y = (y * 0.5 + 0.25).relu() + y * 0.5
    return y


# ---- the classic worked example ---------------------------------------------

def test_textbook_example():
    # y = ln(x1) + x1*x2 - sin(x2) at (2, 5): the evaluation-trace example of AD tutorials
    x1, x2 = Var(2.0), Var(5.0)
    y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    y.backward()
    assert round(y.value, 3) == 11.652
    assert round(x1.grad, 3) == 5.5
    assert round(x2.grad, 3) == 1.716
    # and exactly the hand-derived formulas
    assert x1.grad == pytest.approx(1 / 2 + 5, rel=1e-15)
    assert x2.grad == pytest.approx(2 - math.cos(5), rel=1e-15)


# ---- gradients: accumulation, reuse, retain_graph, intermediates ---------------

def test_leaf_used_thousands_of_times_accumulates():
    x = Var(1.5)
    y = x * 0.0
    for k in range(3000):
        y = y + x * float(k)
    y.backward()
    assert x.grad == sum(range(3000))


def test_shared_subexpression_and_same_operand_twice():
    x = Var(3.0)
    s = x * x          # used twice below
    y = s * s + s      # x**4 + x**2
    y.backward()
    assert x.grad == pytest.approx(4 * 27 + 6)
    z = Var(2.0)
    w = z - z + z / z
    w.backward()
    assert z.grad == 0.0


def test_leaf_grads_accumulate_across_backward_calls_and_zero_grad():
    x = Var(2.0)
    (x * x).backward()
    (x * 3.0).backward()
    assert x.grad == 4.0 + 3.0
    x.zero_grad()
    assert x.grad == 0.0
    x.grad = 5.0
    (x * 1.0).backward()
    assert x.grad == 6.0


def test_retain_graph_allows_repeated_backward():
    x = Var(3.0)
    y = x ** 2
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad == 18.0
    with pytest.raises(pytape.TapeConsumedError, match="retain_graph=True"):
        y.backward()


def test_backward_seed_and_intermediate_adjoints():
    x = Var(2.0)
    h = x * 3.0          # intermediate
    y = pytape.exp(h)
    y.backward(gradient=0.5)
    assert x.grad == pytest.approx(0.5 * 3 * math.exp(6.0))
    assert h.grad == pytest.approx(0.5 * math.exp(6.0))  # adjoint of an intermediate
    assert y.grad == 0.5


def test_backward_from_a_middle_slot_ignores_later_instructions():
    x = Var(2.0)
    a = x * x
    b = a * 10.0  # recorded after a, does not influence a
    a.backward(retain_graph=True)
    assert x.grad == 4.0
    assert b.grad == 0.0


def test_leaf_backward_and_constant_backward():
    x = Var(1.0)
    x.backward(2.0)
    assert x.grad == 2.0
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.detach().backward()


def test_data_assignment_on_leaves_records_new_value():
    p = Var(1.0)
    (p * p).backward()
    assert p.grad == 2.0
    p.data -= 0.1 * p.grad  # micrograd's update step
    assert p.data == pytest.approx(0.8)
    p.grad = 0
    (p * p).backward()
    assert p.grad == pytest.approx(1.6)


def test_changing_a_leaf_does_not_alter_an_existing_recording():
    # in-place changes break reverse mode in most engines; here the tape keeps
    # the value it recorded, so a retained graph still differentiates correctly
    p = Var(2.0)
    y = p * p
    p.value = 10.0
    y.backward()
    assert y.value == 4.0
    assert p.grad == 4.0


def test_assigning_value_of_intermediate_raises():
    y = Var(2.0) * 2.0
    with pytest.raises(AttributeError, match="only leaves"):
        y.value = 1.0


def test_detach_stops_gradient_and_is_constant():
    x = Var(3.0)
    c = x.detach()
    assert c.requires_grad is False and c.grad is None and c.value == 3.0
    y = x * c
    y.backward()
    assert x.grad == 3.0


def test_no_grad_returns_constants_and_records_nothing():
    x = Var(2.0)
    with pytape.Tape() as t:
        y = x * 1.0
        n = len(t)
        with pytape.no_grad():
            assert not pytape.is_grad_enabled()
            z = pytape.sin(y) * x + 1.0
            with pytape.enable_grad():
                assert pytape.is_grad_enabled()
        assert pytape.is_grad_enabled()
        assert len(t) == n
    assert z.requires_grad is False
    assert z.value == pytest.approx(math.sin(2.0) * 2.0 + 1.0)

    @pytape.no_grad()
    def f(v):
        return v * 2.0

    assert f(x).requires_grad is False


def test_comparisons_conversions_hash_repr():
    x, y = Var(1.0), Var(2.0)
    assert x < y and x <= y and y > x and y >= x and x != y and not x == y
    assert x < 1.5 and 0.5 < x and x == 1.0 and 1.0 == x
    assert float(y * 1.0) == 2.0 and int(y) == 2 and bool(x) and not bool(Var(0.0))
    assert abs(Var(-2.0)).value == 2.0 and (+x) is x and (-x).value == -1.0
    assert len({x, y, x}) == 2  # hashable by identity
    assert "grad" in repr(x) and "mul" in repr(x * y)
    assert x.item() == 1.0
    z = Var(2.5) * 1.0
    assert (round(z), round(z, 1), math.floor(z), math.ceil(z), math.trunc(-z)) == (2, 2.5, 2, 3, -2)
    # control flow on values
    z = x if x > 0 else -x
    assert z is x


def test_numpy_scalars_and_object_arrays():
    x = Var(0.5)
    for c in (np.float64(2.0), np.float32(2.0), np.int64(2), np.int32(2), True):
        assert (x * c).value == 0.5 * float(c)
        assert (c * x).value == 0.5 * float(c)
    assert isinstance(pytape.sin(np.float64(1.0)), float)
    a = np.array([Var(1.0), Var(2.0)], dtype=object)
    s = np.sum(np.sin(a) ** 2)
    s.backward()
    assert a[0].grad == pytest.approx(math.sin(2.0))  # d/dx sin(x)^2 = sin(2x)
    assert a[1].grad == pytest.approx(math.sin(4.0))


def test_leaves_pickle_and_recorded_vars_refuse():
    x = Var(1.5)
    x.grad = 2.0
    x2 = pickle.loads(pickle.dumps(x))
    assert x2.value == 1.5 and x2.grad == 2.0 and x2 is not x
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(x * 2.0)


# ---- scale: no recursion, no Python object per node ----------------------------


# ---- tape lifecycle and memory ---------------------------------------------------


# ---- errors: clear exceptions, never a crash or a wrong result -------------------


def test_leaf_joins_the_tape_of_its_partner():
    x = Var(2.0)
    with pytape.Tape() as t1:
        a = x * 1.0
    with pytape.Tape() as t2:
        b = x * 1.0
    # x is a leaf: it may take part in both recordings
    assert a.tape is t1 and b.tape is t2
    c = a * x  # x joins t1 again
    c.backward()
    assert x.grad == 2 * 2.0


@pytest.mark.parametrize("bad", ["a", None, [1.0], 1j, object()])
def test_non_numeric_operands_raise_type_error(bad):
    x = Var(1.0)
    y = x * 1.0
    with pytest.raises(TypeError):
        x * bad
    with pytest.raises(TypeError):
        bad - y
    with pytest.raises(TypeError):
        pytape.sin(bad)
    with pytest.raises(TypeError):
        pytape.maximum(y, bad)
    with pytest.raises(TypeError):
        Var(bad)
    with pytest.raises(TypeError):
        y.backward(gradient=bad)


def test_zero_adjoint_contributes_nothing_but_nan_and_inf_propagate():
    x = Var(0.0)
    (pytape.relu(Var(-1.0)) * pytape.sqrt(x)).backward()  # 0 * sqrt'(0) = 0 * inf
    assert x.grad == 0.0
    x = Var(0.0)
    y = x * 1.0
    pytape.log(y)  # recorded after y's inputs, not on the path to the output
    z = y + 1.0
    z.backward()
    assert x.grad == 1.0
    x = Var(0.0)
    pytape.sqrt(x).backward()
    assert x.grad == math.inf
    x = Var(-1.0)
    (pytape.sqrt(x) * 2.0).backward()  # sqrt'(-1) is nan: propagates
    assert math.isnan(x.grad)


def test_star_import_does_not_shadow_builtins():
    ns = {}
    exec("from pytape import *", ns)
    assert "abs" not in ns and "pow" not in ns
    assert "sin" in ns and "Var" in ns and "Value" in ns
    assert pytape.abs(-2.0) == 2.0 and pytape.pow(2.0, 3.0) == 8.0


def test_numpy_ufuncs_on_a_single_var():
    x = Var(0.5)
    y = np.exp(x) + np.sin(x) * np.float64(2.0) + np.maximum(x, 0.1) + np.hypot(x, 1.0)
    y.backward()
    assert x.grad == pytest.approx(math.exp(0.5) + 2 * math.cos(0.5) + 1 + 0.5 / math.hypot(0.5, 1.0))
    assert isinstance(np.float64(3.0) - x, Var) and (np.float64(3.0) - x).value == 2.5
    assert (np.array([1.0, 2.0]) * x)[1].value == 1.0
    assert np.less(x, 1.0) and not np.greater(x, 1.0)
