"""Seeing and checking array instructions: table(), stats(), to_dot(), render()
and detect_anomaly() on pytape.Tensor programs."""
import inspect
import math
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np

import pytest

import pytape


def line_of(marker, fn):
    """Line number of the line of fn's source that contains `marker`."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, line in enumerate(lines) if marker in line)


X = [[1.0, 2.0, 3.0], [4.0, 5.0, -6.0]]
W = [[0.1], [-0.2], [0.05]]


def program():
    """A small array program, each step kept: (tape, {name: Tensor})."""
    with pytape.Tape() as t:
        v = {"x": pytape.Tensor(X), "w": pytape.Tensor(W)}
        v["mm"] = v["x"] @ v["w"]              # matmul (2, 1)
        v["th"] = np.tanh(v["mm"])             # tanh (2, 1)
        v["sc"] = v["th"] * 3.0                # mul (2, 1), a constant operand
        v["y"] = v["sc"].sum()                 # sum ()
        v["mx"] = np.max(v["x"], axis=1)       # max (2,), an unused output
        v["mn"] = np.min(v["x"])               # min ()
    return t, v


def leaf_slot(t, name_shape):
    """The slot of the array leaf of that shape (each shape once here)."""
    return next(int(m.group(1)) for m in re.finditer(r"^\s*v(\d+)\s+leaf\s+(\(.*?\))", t.table(None), re.M)
                if m.group(2) == name_shape)


def row(text, slot):
    """The line of slot v{slot} in a table."""
    return next(line for line in text.splitlines() if line.split()[:1] == [f"v{slot}"])


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def bounds(cell):
    """[lo, hi] of a summary cell '[lo, hi]' as floats."""
    lo, hi = re.fullmatch(r"\[(\S+), (\S+)\]", cell).groups()
    return [float(lo), float(hi)]


# ---- table ----------------------------------------------------------------------------------

def test_table_names_array_operations_with_shapes_operands_values_and_bytes():
    t, v = program()
    xs, ws = leaf_slot(t, "(2, 3)"), leaf_slot(t, "(3, 1)")
    text = t.table()
    header = text.splitlines()[0].split()
    assert header == ["slot", "op", "shape", "operands", "value", "bytes"]
    mm, th, sc, y, mx, mn = (v[k].slot for k in ("mm", "th", "sc", "y", "mx", "mn"))
    expect_mm = np.array(X) @ np.array(W)
    c = cells(row(text, mm))
    assert c[:4] + c[5:] == [f"v{mm}", "matmul", "(2, 1)", f"v{xs}, v{ws}", "16"]
    assert bounds(c[4]) == pytest.approx([expect_mm.min(), expect_mm.max()], rel=1e-5)
    assert cells(row(text, th))[1:4] == ["tanh", "(2, 1)", f"v{mm}"]
    assert cells(row(text, sc))[1:4] == ["mul", "(2, 1)", f"v{th}, 3"]   # the constant as a number
    y_value = float(np.sum(np.tanh(expect_mm) * 3.0))
    c = cells(row(text, y))
    assert c[:4] + c[5:] == [f"v{y}", "sum", "()", f"v{sc}", "8", "output"]
    assert float(c[4]) == pytest.approx(y_value, rel=1e-5)
    assert cells(row(text, mx))[1:4] == ["max", "(2,)", f"v{xs}"] and row(text, mx).endswith("output")
    assert cells(row(text, mn))[1:5] == ["min", "()", f"v{xs}", "-6"]
    # leaves: inputs, their own arrays lent to the tape (0 bytes of its own); read results are no outputs
    assert re.match(rf"\s*v{xs}\s+leaf\s+\(2, 3\)\s+\[-6, 5\]\s+0\s+input$", row(text, xs))
    assert not row(text, mm).endswith("output") and not row(text, sc).endswith("output")


def test_table_after_backward_and_tangent_summarises_the_array_adjoints_and_tangents():
    t, v = program()
    v["y"].backward(retain_graph=True)
    text = t.table()
    assert text.splitlines()[0].split() == ["slot", "op", "shape", "operands", "value", "adjoint", "bytes"]
    assert cells(row(text, v["y"].slot))[5] == "1"               # the seed
    assert cells(row(text, v["sc"].slot))[5] == "[1, 1]"         # d sum / d its operand: 1 everywhere
    th = np.tanh(np.array(X) @ np.array(W))
    g_mm = 3.0 * (1 - th ** 2)
    assert bounds(cells(row(text, v["mm"].slot))[5]) == pytest.approx([g_mm.min(), g_mm.max()], rel=1e-5)
    assert cells(row(text, v["mx"].slot))[5] == "0"              # not reached
    # the adjoint buffer is counted in the bytes: value 16 + adjoint 16
    assert cells(row(text, v["mm"].slot))[6] == "32"
    np.testing.assert_allclose(v["x"].grad, g_mm @ np.array(W).T)


def test_table_summarises_non_finite_elements_outside_anomaly_mode():
    with pytape.Tape() as t:
        x = pytape.Tensor([0.2, 1.0, 2.0])
        y = np.log(x - 0.5)                      # nan at 0: recorded, no error outside the mode
    assert np.isnan(y.value[0])
    assert cells(row(t.table(), y.slot))[1:5] == ["log", "(3,)", f"v{y.slot - 1}",
                                                  "[-0.693147, 0.405465], 1 not finite"]


def test_scalar_rows_keep_their_cells_in_a_table_with_arrays():
    with pytape.Tape() as t:
        a = pytape.Var(2.0)
        b = a * 3.0
        x = pytape.Tensor([1.0, 2.0])
        y = x * b                                # a Var times a Tensor: a 0-d operand
    text = t.table()
    assert cells(row(text, b.slot)) == [f"v{b.slot}", "mul_vc", "()", "v0, 3", "6"]
    assert cells(row(text, y.slot))[1:5] == ["mul", "(2,)", f"v{y.slot - 1}, v{b.slot}", "[6, 12]"]


def test_a_large_array_tape_is_summarised_with_array_counts_and_bytes():
    with pytape.Tape() as t:
        x = pytape.Tensor(np.ones(1000))
        y = x
        for _ in range(100):
            y = np.exp(y * 0.001)
    text = t.table(max_rows=6)
    assert "ops: exp 100, mul 100, leaf 1" in text
    s = t.stats()
    b = s["array_nbytes"]
    assert f"arrays: {s['arrays']} instructions; bytes in values {b['values']:,}, adjoints 0, tangents 0" in text
    assert b["values"] == 200 * 1000 * 8                      # every result's own; the leaf's is lent
    assert len([line for line in text.splitlines() if re.match(r"\s*v\d+\s", line)]) == 6


# ---- stats ---------------------------------------------------------------------------------

def test_stats_count_array_operations_and_their_bytes():
    t, v = program()
    s = t.stats()
    assert s["instructions"] == len(t) == 8
    assert s["arrays"] == 8 and s["leaves"] == 2
    assert s["ops"] == s["array_ops"] == {"leaf": 2, "mul": 1, "tanh": 1, "sum": 1, "matmul": 1, "min": 1,
                                          "max": 1}
    assert s["outputs"] == 3                               # y, mx, mn
    assert s["array_nbytes"] == {"values": 8 * (2 + 2 + 2 + 1 + 2 + 1), "adjoints": 0, "tangents": 0}
    v["y"].backward(retain_graph=True)
    # adjoint buffers of what the sweep reached, leaves aside (their grads are theirs): y, sc, th, mm
    assert t.stats()["array_nbytes"]["adjoints"] == 8 * (1 + 2 + 2 + 2)
    assert t.nbytes >= t.used_nbytes >= sum(t.stats()["array_nbytes"].values())


def test_stats_merge_scalar_and_array_counts_by_name():
    with pytape.Tape() as t:
        a = pytape.Var(0.5)
        e = pytape.exp(a)
        x = pytape.Tensor([1.0, 2.0])
        f = np.exp(x) * e  # noqa: F841  (held: its instruction is counted)
    s = t.stats()
    assert s["ops"] == {"leaf": 2, "exp": 2, "mul": 1}
    assert s["array_ops"] == {"leaf": 1, "exp": 1, "mul": 1} and s["arrays"] == 3


def test_stats_of_a_scalar_tape_has_no_arrays():
    with pytape.Tape() as t:
        x = pytape.Var(3.0)
        y = x * x  # noqa: F841
    s = t.stats()
    assert s["arrays"] == 0 and s["array_ops"] == {}
    assert s["array_nbytes"] == {"values": 0, "adjoints": 0, "tangents": 0}
    assert "shape" not in t.table() and "bytes" not in t.table()


# ---- to_dot / render ---------------------------------------------------------------------------

def test_to_dot_of_a_tensor_result_labels_op_shape_bytes_and_draws_operand_edges():
    t, v = program()
    xs, ws = leaf_slot(t, "(2, 3)"), leaf_slot(t, "(3, 1)")
    mm, th, sc, y = (v[k].slot for k in ("mm", "th", "sc", "y"))
    dot = pytape.to_dot(v["y"])
    assert dot.startswith("digraph pytape {") and dot.endswith("}")
    assert f'v{mm} [label="v{mm} = matmul(v{xs}, v{ws})\\nshape (2, 1), 16 bytes\\nvalue [' in dot
    assert f'v{sc} [label="v{sc} = v{th} * 3\\nshape (2, 1), 16 bytes' in dot
    assert f'v{y} [label="v{y} = sum(v{sc})\\nshape (), 8 bytes' in dot
    assert re.search(rf'v{xs} \[label="v{xs} = leaf\\nshape \(2, 3\), 0 bytes[^\n]*fillcolor="#d6e6f5"', dot)
    assert re.search(rf'v{y} \[label=[^\n]*fillcolor="#fdd9b5"', dot)       # the output
    edges = set(re.findall(r"v(\d+) -> v(\d+);", dot))
    assert edges == {(str(xs), str(mm)), (str(ws), str(mm)), (str(mm), str(th)), (str(th), str(sc)),
                     (str(sc), str(y))}
    assert f"v{v['mx'].slot}" not in dot                       # not on y's path


def test_to_dot_of_a_tape_with_arrays_draws_every_instruction_and_its_outputs():
    t, v = program()
    dot = t.to_dot()
    assert len(re.findall(r"^  v\d+ \[label=", dot, re.M)) == len(t)
    oranges = {int(s) for s in re.findall(r'^  v(\d+) \[label=[^\n]*fillcolor="#fdd9b5"', dot, re.M)}
    assert oranges == {v["y"].slot, v["mx"].slot, v["mn"].slot}
    v["y"].backward(retain_graph=True)
    assert 'grad 1"' in pytape.to_dot(v["y"])                  # the output's adjoint after backward


def test_to_dot_max_nodes_on_arrays():
    with pytape.Tape():
        x = pytape.Tensor([1.0, 2.0])
        y = x
        for _ in range(10):
            y = np.sin(y)
    dot = pytape.to_dot(y, max_nodes=3)
    assert len(re.findall(r"^  v\d+ \[label=", dot, re.M)) == 3
    assert 'more [shape=note, label="8 more instructions not shown"]' in dot
    assert re.search(r"more -> v\d+ \[style=dashed\];", dot)


def test_to_dot_refuses_tensor_leaves_and_other_objects():
    with pytest.raises(ValueError, match="Tensor leaf or constant has no recorded graph"):
        pytape.to_dot(pytape.Tensor([1.0]))
    with pytest.raises(TypeError, match="pytape.Var or pytape.Tensor result or a pytape.Tape"):
        pytape.to_dot(np.ones(2))
    _, v = program()
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        pytape.to_dot(v["y"], max_nodes=0)


def test_render_a_tensor_result(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    _, v = program()
    path = pytape.render(v["y"], tmp_path / "arrays.svg")
    root = ET.parse(path).getroot()
    texts = " ".join(e.text or "" for e in root.iter() if e.tag.endswith("text"))
    assert f"v{v['mm'].slot} = matmul(" in texts and "shape (2, 1), 16 bytes" in texts
    titles = {e.text for e in root.iter() if e.tag.endswith("title")}
    assert f"v{v['sc'].slot}->v{v['y'].slot}" in titles


# ---- detect_anomaly: forward ---------------------------------------------------------------------

def forward_log(x):
    a = x - 0.5
    return np.log(a)  # MARK-log


def test_forward_nan_of_an_array_names_op_index_line_and_input():
    x = pytape.Tensor([0.2, 1.0])
    with pytape.Tape() as t:
        with pytape.detect_anomaly():
            with pytest.raises(FloatingPointError) as err:
                forward_log(x)
        n = len(t)
    msg = str(err.value)
    assert msg.startswith("log produced nan at index (0,) of its result (shape (2,)) at test_array_inspection.py:")
    assert f":{line_of('MARK-log', forward_log)} in forward_log()" in msg
    assert msg.endswith(f"(input {0.2 - 0.5!r})")
    # refused, not recorded: the leaf and the subtraction are there, no log
    assert n == 2 and t.stats()["array_ops"] == {"leaf": 1, "sub": 1}


def two_d_exp(x):
    return np.exp(x * 2.0)  # MARK-exp


@pytest.mark.parametrize("size", [6, 20000])   # C's values, and numpy's (watched results)
def test_forward_inf_gives_the_numpy_index_in_the_result_shape(size):
    data = np.zeros((2, size // 2))
    data[1, 2] = 400.0
    x = pytape.Tensor(data)
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            two_d_exp(x)
    msg = str(err.value)
    assert msg.startswith(f"exp produced inf at index (1, 2) of its result (shape (2, {size // 2})) at ")
    assert f":{line_of('MARK-exp', two_d_exp)} in two_d_exp()" in msg and msg.endswith("(input 800.0)")


@pytest.mark.parametrize("expr, op, index, inputs", [
    (lambda a: a @ a, "matmul", "(0, 0)", "(inputs of shapes (2, 2), (2, 2))"),
    (lambda a: np.sum(a), "sum", "()", "(input of shape (2, 2))"),
    (lambda a: a.sum(axis=1), "sum", "(0,)", "(input of shape (2, 2))"),
    (lambda a: np.prod(a, axis=0), "prod", "(1,)", "(input of shape (2, 2))"),   # 1e308 * 2
    (lambda a: np.cumsum(a, axis=1), "cumsum", "(0, 1)", "(input of shape (2, 2))"),
    (lambda a: a * np.array([2.0, 1.0]), "mul", "(0, 0)", "(inputs 1e+308, 2.0)"),
    (lambda a: a + pytape.Var(1e308), "add", "(0, 0)", "(inputs 1e+308, 1e+308)"),
])
def test_forward_inf_of_other_array_kinds(expr, op, index, inputs):
    a = pytape.Tensor([[1e308, 1e308], [1.0, 2.0]])
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError, match=rf"^{op} produced inf at index {re.escape(index)} of its result") \
                as err:
            expr(a)
    assert str(err.value).endswith(inputs)


@pytest.mark.parametrize("expr, op, index", [
    (lambda x: x * 2.0, "mul", "(1,)"),
    (lambda x: x[::-1], "view", "(1,)"),
    (lambda x: x[[2, 1]], "gather", "(1,)"),
    (lambda x: np.concatenate([x, x]), "concat", "(1,)"),
    (lambda x: np.max(x), "max", "()"),
])
def test_a_nan_leaf_is_reported_at_the_first_operation_that_produces_a_nan(expr, op, index):
    """As for Var leaves: leaves are data, the first value computed from the nan is refused."""
    x = pytape.Tensor([1.0, np.nan, 3.0])
    with pytape.detect_anomaly():
        with pytape.Tape() as t:
            with pytest.raises(FloatingPointError, match=rf"^{op} produced nan at index {re.escape(index)} "):
                expr(x)
    assert t.stats()["array_ops"] == {"leaf": 1}  # the leaf itself was placed on the tape without complaint


def test_no_false_alarm_and_the_same_results_in_anomaly_mode():
    rng = np.random.default_rng(0)
    X, W1, W2 = rng.normal(size=(8, 5)), rng.normal(size=(5, 4)), rng.normal(size=(4, 1))

    def run():
        w1, w2 = pytape.Tensor(W1), pytape.Tensor(W2)
        h = np.tanh(X @ w1)
        out = np.log(1.0 + np.exp(h @ w2)) + np.maximum(h, 0.0).sum(axis=1, keepdims=True)
        loss = np.mean(out ** 2) + np.max(w1) - np.min(w2)
        loss.backward()
        return loss.item(), w1.grad.copy(), w2.grad.copy()

    plain = run()
    with pytape.detect_anomaly():
        checked = run()
        g = pytape.grad(lambda w: np.sum(np.sin(X @ w)))(W1)
        _, jv = pytape.jvp(lambda w: np.sum(np.sin(X @ w)), (W1,), (np.ones_like(W1),))
    assert plain[0] == checked[0]
    for a, b in zip(plain[1:], checked[1:]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(g, X.T @ np.cos(X @ W1))
    np.testing.assert_allclose(jv, np.sum(np.cos(X @ W1) * (X @ np.ones_like(W1))))


def test_results_in_anomaly_mode_are_plain_handles_and_large_ones_are_watched():
    with pytape.detect_anomaly():
        with pytape.Tape() as t:
            x = pytape.Tensor(np.ones(20000))
            small = pytape.Tensor([1.0, 2.0]) * 2.0
            large = x * 2.0
    assert 0 <= small.slot < len(t) and 0 <= large.slot < len(t)
    assert small.value.tolist() == [2.0, 4.0] and large.shape == (20000,)
    assert hasattr(large, "_w") and not hasattr(small, "_w")      # as outside the mode
    here = test_results_in_anomaly_mode_are_plain_handles_and_large_ones_are_watched
    assert t._where[large.slot][1] == line_of("large = x * 2.0", here)      # its line noted
    assert t._where[small.slot][1] == line_of("small = pytape.Tensor", here)


def test_outside_anomaly_mode_nothing_is_checked():
    x = pytape.Tensor([0.2, 1.0])
    with pytape.Tape() as t:
        y = np.log(x - 0.5)                       # nan recorded
        z = np.sqrt(x - 0.2).sum()                # its derivative is inf at 0
    z.backward()
    assert math.isnan(y.value[0]) and x.grad[0] == math.inf
    assert t._where is None                       # no source line kept


def test_no_grad_values_are_not_checked_in_anomaly_mode_as_for_vars():
    x = pytape.Tensor([0.2, 1.0])
    with pytape.detect_anomaly(), pytape.no_grad():
        y = np.log(x - 0.5)                       # computed on a scratch tape, not recorded
        v = pytape.log(pytape.Var(-1.0))
        assert pytape.is_anomaly_enabled()
    assert math.isnan(y.value[0]) and not y.requires_grad and math.isnan(v.value)


# ---- detect_anomaly: reverse and tangent ------------------------------------------------------------

def reverse_sqrt():
    x = pytape.Tensor([0.0, 4.0, 1.0])
    y = np.sqrt(x) * 3.0  # MARK-sqrt
    return x, y.sum()


def test_reverse_inf_of_an_array_names_the_operation_operand_index_and_line():
    with pytape.detect_anomaly():
        x, y = reverse_sqrt()
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    msg = str(err.value)
    leaf = leaf_slot(y.tape, "(3,)")
    assert msg.startswith(f"backward through sqrt produced inf at index (0,) of the gradient of v{leaf} "
                          f"(shape (3,)) at test_array_inspection.py:")
    assert f":{line_of('MARK-sqrt', reverse_sqrt)} in reverse_sqrt()" in msg and msg.endswith("(input 0.0)")
    # nothing accumulated, the tape not consumed: outside the mode the same sweep runs
    assert x.grad.tolist() == [0.0, 0.0, 0.0] and not y.tape.consumed
    y.backward()
    assert x.grad.tolist() == [math.inf, 0.75, 1.5]


def reverse_matmul():
    a = pytape.Tensor([[1e-300, 1.0]])
    b = pytape.Tensor([[1e10], [1.0]])
    y = (a @ b) * 1e300  # MARK-mm: finite; d/da = 1e300 * b^T overflows
    return y.sum()


def test_reverse_inf_through_matmul_into_a_leaf_grad():
    with pytape.detect_anomaly():
        y = reverse_matmul()
        with pytest.raises(FloatingPointError) as err:
            y.backward()
    a = leaf_slot(y.tape, "(1, 2)")
    assert str(err.value).startswith(f"backward through matmul produced inf at index (0, 0) of the gradient of v{a} "
                                     f"(shape (1, 2)) at ")
    assert str(err.value).endswith("(inputs of shapes (1, 2), (2, 1))")


def test_reverse_inf_from_a_uniform_adjoint():
    """sum passes one number to all its operand's elements; the mul below makes it inf."""
    with pytape.detect_anomaly():
        x = pytape.Tensor([1e-300, 2e-300])
        y = (x * 1e10).sum() * 1e300  # MARK-uniform
        with pytest.raises(FloatingPointError, match=r"^backward through mul produced inf at index \(0,\) of the "
                                                     r"gradient of v\d+ \(shape \(2,\)\) at .*\(inputs 1e-300, "
                                                     r"10000000000.0\)$"):
            y.backward()


def test_reverse_inf_into_a_var_operand_of_an_array_operation():
    """A Var is a 0-d operand: its adjoint sums the array's, here past the largest double."""
    with pytape.detect_anomaly():
        x, v = pytape.Tensor([1e308, 1e308]), pytape.Var(1.0)
        y = x * v  # MARK-var
        with pytest.raises(FloatingPointError, match=r"^backward through mul produced inf at index \(\) of the "
                                                     r"gradient of v\d+ \(shape \(\)\) at .*\(inputs of shapes "
                                                     r"\(2,\), \(\)\)$"):
            y.backward(gradient=[1.0, 1.0])
    assert v.grad == 0.0 and x.grad.tolist() == [0.0, 0.0]


def test_reverse_of_operations_recorded_outside_the_mode():
    x, y = reverse_sqrt()
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"^backward through sqrt produced inf at index \(0,\) .* at an "
                                                     r"operation recorded outside detect_anomaly\(\)"):
            y.backward()


def tangent_sqrt(x):
    return np.sqrt(x).sum()  # MARK-jvp


def test_tangent_inf_of_an_array():
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            pytape.jvp(tangent_sqrt, (np.array([1.0, 0.0]),), (np.ones(2),))
    msg = str(err.value)
    assert msg.startswith("the tangent (forward mode) of sqrt is not finite (inf) at index (1,) of its tangent "
                          "(shape (2,)) at test_array_inspection.py:")
    assert f":{line_of('MARK-jvp', tangent_sqrt)} in tangent_sqrt()" in msg and msg.endswith("(input 0.0)")


def test_grad_of_a_function_names_the_line_in_it():
    with pytape.detect_anomaly():
        with pytest.raises(FloatingPointError) as err:
            pytape.grad(tangent_sqrt)(np.array([1.0, 0.0]))
    assert str(err.value).startswith("backward through sqrt produced inf at index (1,) of the gradient of v0 ")
    assert f":{line_of('MARK-jvp', tangent_sqrt)} in tangent_sqrt()" in str(err.value)
