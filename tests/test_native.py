"""The boundary (pytape/_native.py): every C status becomes its exception, the
operand table agrees with C, and CTape's copies and sweeps keep their shapes."""
import pathlib
import re
import threading

import numpy as np
import pytest

import pytape
from pytape import _native
from pytape._native import CTape, check, lib
from pytape.errors import MixedTapesError, TapeConsumedError, TapeFormatError, TapeThreadError

HEADER = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "pytape.h"


def statuses():
    """Every PT_E_* status named in csrc/pytape.h, with its value."""
    text = HEADER.read_text()
    enum = text[text.index("enum pt_status"):]
    enum = enum[:enum.index("};")]
    return {name: int(value) for name, value in re.findall(r"(PT_E_\w+)\s*=\s*(-?\d+)", enum)}


# each status: (what, the exception, a phrase its message must contain)
EXPECTED = {
    "PT_E_NOMEM": [("record", MemoryError, "growing the tape; the tape is unchanged"),
                   ("backward", MemoryError, "backward() can be retried")],
    "PT_E_CONSUMED": [("record", TapeConsumedError, "retain_graph=True"),
                      ("backward", TapeConsumedError, "has already run through this tape")],
    "PT_E_THREAD": [("record", TapeThreadError, "records each thread on its own tape")],
    "PT_E_NOGRAD": [("record", RuntimeError, "internal error")],
    "PT_E_SLOT": [("record", IndexError, "slot outside the tape")],
    "PT_E_OP": [("record", ValueError, "opcode of the wrong kind"),
                ("load", TapeFormatError, "break the tape's invariants")],
    "PT_E_FULL": [("record", MemoryError, "2**31 - 1 slots")],
    "PT_E_ANOMALY": [("record", FloatingPointError, "anomaly mode")],
    "PT_E_NONFINITE": [("record", FloatingPointError, "anomaly mode")],
    "PT_E_GUARD": [("record", RuntimeError, "internal error")],
    "PT_E_HANDLE": [("record", RuntimeError, "internal error")],
    "PT_E_TAPES": [("record", MixedTapesError, "recorded on different tapes")],  # a ValueError
    "PT_E_CALLBACK": [("backward", _native.CustomRuleError, "custom primitive's rule failed")],
    "PT_E_BUSY": [("backward", RuntimeError, "tape whose sweep is calling it")],
    "PT_E_SHAPE": [("record", ValueError, "shapes or parameters do not fit")],
    "PT_E_ARRAY": [("backward", NotImplementedError, "holds array operations")],
    "PT_E_LARGE": [("record", RuntimeError, "internal error")],  # the Tensor layer falls back, never raises it
    "PT_E_DENSE": [("Hessian", MemoryError, "too dense for sparsity detection")],
}


def test_every_status_of_the_header_has_its_exception():
    codes = statuses()
    assert set(codes) == set(EXPECTED), "a status was added to pytape.h: give it an exception and a test here"
    for name, value in codes.items():
        assert getattr(lib, name) == value
        for what, exc, phrase in EXPECTED[name]:
            with pytest.raises(exc) as err:
                check(value, what)
            assert phrase in str(err.value), (name, what, str(err.value))
            assert type(err.value) is exc or name == "PT_E_NONFINITE"


def test_unknown_status_and_success():
    assert check(0) == 0 and check(7) == 7  # non-negative: a slot or a handle, returned
    with pytest.raises(RuntimeError, match="unexpected status -999"):
        check(-999)


def test_thread_error_names_the_owner_thread():
    t = CTape()
    with pytest.raises(TapeThreadError, match=f"recorded by thread {threading.get_ident()}"):
        check(lib.PT_E_THREAD, "record", t)


def test_nonfinite_sweep_carries_the_instruction_for_anomaly_messages():
    with pytape.Tape() as tape:
        x = pytape.Var(0.0)
        y = pytape.sqrt(x) * 2.0
    with pytape.detect_anomaly():
        with pytest.raises(_native.NonFiniteError) as err:
            tape._c.backward(y.slot, 1.0, True)
    assert err.value.instruction == y.slot - 1 and err.value.sweep == "backward"  # sqrt's adjoint is inf
    assert isinstance(err.value, FloatingPointError)


def test_real_failures_raise_through_check():
    x = pytape.Var(2.0)
    y = x * x
    y.backward()
    with pytest.raises(TapeConsumedError, match="has already run through this tape"):
        y.tape._c.backward(y.slot, 1.0, False)
    with pytest.raises(TapeFormatError):
        CTape.load([0], [0], [0], [0.0], [])  # opcode 0 is reserved: never a valid instruction


@pytest.mark.parametrize("a, b", [(0, _native.ARRAY_KINDS["MAP1"]), (0, 0), (5, 1)])
def test_a_loaded_tape_never_holds_array_instructions(a, b):
    # array instructions are never saved (their table is not): a file claiming one is refused, whatever
    # its operands, rather than loaded as a tape whose sweeps would read an array table it lacks
    with pytest.raises(TapeFormatError):
        CTape.load([1, _native.OP_ARRAY], [0, a], [0, b], [1.0, 1.0], [1.0])


# ---- the operand table ------------------------------------------------------------

def test_operand_table_by_kind():
    # C's table (exported as pt_operand, read at import) against what each kind of instruction holds
    for op, kind in enumerate(_native.OP_KINDS):
        a, b = _native.OPERAND_A[op], _native.OPERAND_B[op]
        want = {
            _native.KIND_LEAF: (_native.OPERAND_LEAF, _native.OPERAND_NONE),
            _native.KIND_UNARY: (_native.OPERAND_SLOT, _native.OPERAND_NONE),
            _native.KIND_VV: (_native.OPERAND_SLOT, _native.OPERAND_SLOT),
            _native.KIND_VC: (_native.OPERAND_SLOT, _native.OPERAND_CONST),
            _native.KIND_CV: (_native.OPERAND_CONST, _native.OPERAND_SLOT),
            _native.KIND_GUARD: (_native.OPERAND_SLOT, _native.OPERAND_SLOT_OR_CONST),
            _native.KIND_CUSTOM: (_native.OPERAND_CUSTOM, _native.OPERAND_PRIMITIVE),
            _native.KIND_ARRAY: (_native.OPERAND_ARRAY, _native.OPERAND_ARRAY_KIND),
        }.get(kind, (_native.OPERAND_NONE, _native.OPERAND_NONE))
        assert (a, b) == want, _native.OP_NAMES[op]
    assert lib.pt_operand(_native.NUM_OPS, 0) == lib.pt_operand(-1, 1) == _native.OPERAND_NONE  # no such opcode


def test_operand_table_agrees_with_c_reachability():
    """Slots read per the Python table, walked back from the output, are
    exactly the slots C's reachability marks (guards included)."""
    fn_tape = pytape.trace(lambda x: (pytape.sin(x[0]) * 2.0 + (1.0 - x[1]) * x[0]) if x[0] > x[1] else x[1],
                           np.array([2.0, 1.0]), elementwise=True).tape
    with pytape.Tape() as t:
        u, v = pytape.Var(1.5), pytape.Var(-0.5)
        y = pytape.atan2(u * 3.0, 2.0 - v) + pytape.relu(u) * v
    for tape, out in ((t, y.slot), (fn_tape, len(fn_tape) - 1)):
        rows = tape._c.rows(0, out + 1, ("op", "a", "b"))
        mark = np.zeros(out + 1, dtype=bool)
        mark[out] = True
        for i in range(out, -1, -1):
            if not mark[i]:
                continue
            op, a, b = int(rows["op"][i]), int(rows["a"][i]), int(rows["b"][i])
            for x, kind in ((a, _native.OPERAND_A[op]), (b, _native.OPERAND_B[op])):
                if _native.operand_is_slot(int(kind), x):
                    mark[x] = True
        assert np.array_equal(mark, tape._c.reach([out]))


# ---- CTape -------------------------------------------------------------------------

def test_ctape_copies_and_block_sweeps_keep_numpy_shapes():
    with pytape.Tape() as t:
        x = [pytape.Var(float(k + 1)) for k in range(3)]
        ys = [x[0] * x[1], x[1] * x[2] + 1.0]
    c = t._c
    ins = [pytape.var.slot_on(v, t) for v in x]
    outs = [y.slot for y in ys]
    rows = c.rows(0, len(c))
    assert set(rows) == {"op", "a", "b", "val", "adj"} and all(len(r) == len(c) for r in rows.values())
    assert rows["val"][outs].tolist() == [2.0, 7.0]
    J = c.backward_block(outs, np.eye(2), ins)            # (nin, q): column k = row k of J
    assert J.T.tolist() == [[2.0, 1.0, 0.0], [0.0, 3.0, 2.0]]
    assert c.tangent_block(ins, np.eye(3), outs).tolist() == J.T.tolist()
    assert c.consts().tolist() == [1.0] and c.nconsts == 1 and c.nleaves == 3
    counts = c.op_counts()
    assert counts[_native.OP_NAMES.index("mul")] == 2 and counts.sum() == len(c)


def test_handles_name_slot_and_tape():
    t = CTape(register=True)
    assert 0 < t.id < 2 ** _native.ID_BITS
    h = t.leaf(1.0, _native.new_grad_cell())
    assert _native.slot_of_handle(h) == 0 and h == t.handle(0)
    assert _native.handle_value(h) == 1.0
    u = CTape()  # not registered: its handles carry id 0, and the handle accessors answer nan
    hu = u.leaf(4.0, _native.new_grad_cell())
    assert u.id == 0 and hu == 0 and np.isnan(_native.handle_value(hu))
