"""Branch guards without holes: every way a traced Var's number can reach
Python steers f, so each one is guarded (or refused).  Each case traces
f(x) = 2x if cond(x) else 3x at x = 1 (cond true) and replays at x = -1
(cond false): the replay must give -3 and gradient 3, as f run eagerly
does, or raise BranchChangedError under on_branch_change="raise"."""
import copy
import math

import numpy as np
import pytest

import pytape

OTHER = pytape.Var(0.0) * 1.0  # a result of another tape, made before any trace


def _no_grad_product(x):
    with pytape.no_grad():
        return (x * 1.0) > 0


def _no_grad_compare(x):
    with pytape.no_grad():
        return x > 0


def _own_tape(x):
    with pytape.Tape():
        return x * 2.0 > 0


def _own_tape_value(x):
    with pytape.Tape():
        return (x + 0.0).value > 0


CONDITIONS = {
    "compare": lambda x: x > 0,
    "value": lambda x: x.value > 0,
    "data": lambda x: x.data > 0,
    "item": lambda x: x.item() > 0,
    "str": lambda x: not str(x).startswith("Var(-"),
    "repr": lambda x: "-" not in repr(x).split(",")[0],
    "format": lambda x: not f"{x}".startswith("Var(-"),
    "float": lambda x: float(x) > 0,
    "int": lambda x: int(x) > 0,
    "round": lambda x: round(x) > 0,
    "floor": lambda x: math.floor(x) > 0,
    "math.sqrt": lambda x: not math.isnan(math.sqrt(x)) if float(x) >= 0 else False,
    "np.float64": lambda x: np.float64(x) > 0,
    "bool": lambda x: bool(x - 1.0 + 1.0) and x.value > 0,
    "detach": lambda x: x.detach().value > 0,
    "result value": lambda x: (x * 1.0).value > 0,
    "result item": lambda x: (x * 1.0).item() > 0,
    "result str": lambda x: not str(x * 1.0).startswith("Var(-"),
    "result detach": lambda x: (x * 1.0).detach() > 0,
    "no_grad product": _no_grad_product,
    "no_grad compare": _no_grad_compare,
    "own tape": _own_tape,
    "own tape value": _own_tape_value,
    "copy of the argument": lambda x: copy.copy(x) > 0,
    "other tape, right": lambda x: x > OTHER,
    "other tape, left": lambda x: OTHER < x,
    "other tape, result": lambda x: x * 1.0 > OTHER,
    "list": lambda x: np.array([x], dtype=float)[0] > 0,
    "np.greater": lambda x: np.greater(x, 0),
    "np.sum": lambda x: np.sum([x]) > 0,
    "max": lambda x: max(x, 0.0) is x,
    "sorted": lambda x: sorted([x, 0.0])[1] is x,
    "argmax": lambda x: np.argmax([x, 0.0]) == 0,
}


def _branchy(cond):
    return lambda x: x * 2.0 if cond(x) else x * 3.0


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_a_branch_on_any_exit_of_the_number_is_guarded(name):
    f = _branchy(CONDITIONS[name])
    fn = pytape.trace(f, 1.0)
    assert fn(1.0) == 2.0
    assert fn(-1.0) == -3.0 and fn.gradient(-1.0) == 3.0
    assert fn.retraces == 1
    assert fn.gradient(2.0) == 2.0 and fn.hessian(-2.0) == 0.0


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_raise_policy_raises_on_any_exit(name):
    fn = pytape.trace(_branchy(CONDITIONS[name]), 1.0, on_branch_change="raise")
    with pytest.raises(pytape.BranchChangedError):
        fn.gradient(-1.0)
    with pytest.raises(pytape.BranchChangedError):
        fn(-1.0)


def test_issue_examples():
    fn = pytape.trace(lambda x: x * 2 if x.value > 0 else x * 3, 1.0)
    assert (fn(-1.0), fn.gradient(-1.0), fn.retraces) == (-3.0, 3.0, 1)
    c = pytape.Var(1.0) * 1.0
    fn = pytape.trace(lambda x: x * 2 if x > c else x * 3, 2.0, on_branch_change="raise")
    with pytest.raises(pytape.BranchChangedError):
        fn(0.0)


def test_array_argument_element_value_is_guarded():
    fn = pytape.trace(lambda v: np.sum(v * v) if v[1].value > 0 else np.sum(v), np.array([1.0, 2.0]))
    assert fn.gradient(np.array([3.0, 4.0])).tolist() == [6.0, 8.0]
    assert fn.gradient(np.array([3.0, -4.0])).tolist() == [1.0, 1.0]


def test_a_value_read_that_does_not_steer_still_replays_correctly():
    # printing a value makes every new input re-trace: slower, never wrong
    seen = []
    fn = pytape.trace(lambda x: (seen.append(x.value), x * x)[1], 1.0)
    assert fn.gradient(3.0) == 6.0 and seen == [1.0, 3.0]


def test_constant_closure_values_do_not_retrace():
    p = pytape.Var(2.0)
    fn = pytape.trace(lambda x: x * p if p.value > 0 else x, 1.0)
    assert fn.gradient(5.0) == 2.0 and fn.gradient(-5.0) == 2.0
    assert fn.retraces == 0


def test_nan_seen_while_tracing_is_guarded():
    fn = pytape.trace(lambda x: x * 2 if math.isnan(x.value) else x * 3, float("nan"))
    assert fn(1.0) == 3.0 and fn.gradient(1.0) == 3.0
    assert math.isnan(fn(float("nan")))


def test_a_nested_trace_guards_the_outer_argument():
    def outer(x):
        inner = pytape.trace(lambda y: y if x > 0 else -y, 1.0)
        return x * inner(2.0)

    fn = pytape.trace(outer, 1.0)
    assert fn(3.0) == 6.0
    assert fn(-3.0) == 6.0 and fn.gradient(-3.0) == -2.0


@pytest.mark.parametrize("sweep", ["backward", "backward_inputs", "autograd", "tangent"])
def test_sweeps_of_the_traced_tape_inside_f_raise(sweep):
    def f(x):
        y = x * x
        if sweep == "backward":
            y.backward(retain_graph=True)
        elif sweep == "backward_inputs":
            y.backward(inputs=[x], retain_graph=True)
        elif sweep == "autograd":
            pytape.autograd.grad(y, [x], retain_graph=True)
        else:
            pytape.current_tape().tangent_sweep({x: 1.0})
        return y

    with pytest.raises(RuntimeError, match="pytape.trace is recording"):
        pytape.trace(f, 1.0)


def test_create_graph_inside_a_traced_function_replays():
    def f(x):
        (g,) = pytape.autograd.grad(x * x * x, [x], create_graph=True)
        return g

    fn = pytape.trace(f, 1.0)
    assert fn(2.0) == 12.0 and fn.gradient(2.0) == 12.0


def test_assigning_an_argument_inside_f_raises():
    def f(x):
        x.value = 5.0
        return x * 2

    with pytest.raises(ValueError, match="argument"):
        pytape.trace(f, 1.0)
    p = pytape.Var(1.0)

    def g(x):  # a leaf made or closed over by f may change: it is a constant
        q = pytape.Var(1.0)
        q.value = 4.0
        return x * q

    assert pytape.trace(g, 1.0).gradient(3.0) == 4.0 and p.value == 1.0
