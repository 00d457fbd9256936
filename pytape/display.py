"""Seeing the tape: the evaluation trace as a table, statistics, the graph as DOT.

Naming: slot i of a tape is ``v{i}`` (a result ``y`` is ``v{y._i}``, the row of
the C arrays that holds it) and the k-th leaf placed on a tape is ``x{k}``.
Constants (the constant side of ``*_vc`` / ``*_cv`` instructions) print as
numbers.  An output is an instruction, other than a leaf, that no later
instruction reads.

Array instructions (``pytape.Tensor``: one per numpy operation) are named by
their operation (``exp``, ``mul``, ``sum``, ``matmul``, ``view``, ...) and
shown with their shape, operands, a summary of their values (``[min, max]``
of the finite elements, the number if there is one) and the bytes of their
buffers; a table of a tape that has them gains ``shape`` and ``bytes``
columns.

Nothing here loops in Python over the entries of a tape: op counts and
reachability come from C, which slots are read by later instructions from
numpy over chunks of rows copied from C (``CTape.rows``, with the operand
table of pytape/_native.py, and the array table's operands,
``CTape.array_args``), and only the rows shown (a table's head and tail, a
graph's nodes nearest its output) are formatted one by one.

This module also gives ``Tape`` its ``table()``, ``stats()``, ``to_dot()``,
``render()``, ``print(tape)`` and Jupyter's pictures of tapes and Vars (at
the end: the recording layer does not import inspection).

>>> import pytape
>>> with pytape.Tape() as t:
...     x = pytape.Var(3.0)
...     y = x * x + 1.0
>>> print(t)
slot  op      operands  value
  v0  leaf    x0            3  input
  v1  mul     v0, v0        9
  v2  add_vc  v1, 1        10  output
"""
import os

import numpy as np

from . import _native
from ._native import (FACT_ADJOINT_BYTES, FACT_KIND, FACT_OP, FACT_SIGN, FACT_SLOT, FACT_TANGENT_BYTES,
                      FACT_VALUE_BYTES, OP_ARRAY, OP_KINDS, OP_NAMES, OPERAND_A, OPERAND_B, array_op_name,
                      operand_is_slot)
from .tape import Tape
from .tensor import Tensor, TensorResult
from .var import Result, Var, slot_on

__all__ = ["table", "stats", "to_dot", "render"]

_KINDS = np.array(OP_KINDS, dtype=np.uint8)
_LEAF, _UNARY, _VV, _VC, _CV, _GUARD, _CUSTOM = (_native.KIND_LEAF, _native.KIND_UNARY, _native.KIND_VV,
                                                 _native.KIND_VC, _native.KIND_CV, _native.KIND_GUARD,
                                                 _native.KIND_CUSTOM)
_A_LEAF, _A_CONST = _native.ARRAY_KINDS["LEAF"], _native.ARRAY_KINDS["CONST"]
_CHUNK = 1 << 20                                # rows per copy in whole-tape scans
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}

_NEED_GRAPHVIZ = (
    "drawing a pytape graph needs the graphviz Python package and Graphviz's dot "
    "program: pip install 'pytape[viz]' (or pip install graphviz), and Graphviz "
    "itself (apt-get install graphviz, brew install graphviz or conda install graphviz)"
)
_NEED_DOT = (
    "Graphviz's dot program was not found on PATH (the graphviz Python package "
    "only drives it): install Graphviz, e.g. apt-get install graphviz, brew "
    "install graphviz or conda install graphviz (https://graphviz.org/download/)"
)


def _num(x):
    return f"{x:.6g}"


def _count(name, v, low, none_ok=False):
    """v as an int >= low (None passes with none_ok); TypeError or ValueError naming it."""
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int{' or None' if none_ok else ''}, not {type(v).__name__} ({v!r})")
    if v < low:
        raise ValueError(f"{name} must be at least {low}, got {v}")
    return int(v)


def _scan(tape):
    """(outputs, swept) of a whole tape: a bool array marking its outputs, and
    whether some adjoint is nonzero.  numpy over chunks, no loop over entries."""
    c, n = tape._c, len(tape)
    read, leaf, swept = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), False
    for start in range(0, n, _CHUNK):
        r = c.rows(start, min(n, start + _CHUNK), ("op", "a", "b", "adj"))
        op, a, b = r["op"], r["a"], r["b"]
        read[a[operand_is_slot(OPERAND_A[op], a)]] = True
        read[b[operand_is_slot(OPERAND_B[op], b)]] = True
        # leaves and guards (comparisons recorded by pytape.trace) are no outputs
        leaf[start:start + len(op)] = np.isin(_KINDS[op], (_LEAF, _GUARD))
        swept = swept or bool(r["adj"].any())
    if c.ncustom:  # custom primitives' operands: their own table
        args = c.custom_table()[1]
        read[args[args >= 0]] = True
    if c.narrays:  # array instructions' operands: the array table's; array leaves and constants are data
        args = c.array_args()
        read[args[args >= 0]] = True
        facts = c.array_facts()
        leaf[facts[np.isin(facts[:, FACT_KIND], (_A_LEAF, _A_CONST)), FACT_SLOT]] = True
    return ~read & ~leaf, swept


def _array_counts(facts):
    """{operation name: count} of array instructions (their facts), in kind
    order: numpy finds the distinct (kind, row, sign), Python names those."""
    if not len(facts):
        return {}
    keys, counts = np.unique(facts[:, [FACT_KIND, FACT_OP, FACT_SIGN]], axis=0, return_counts=True)
    out = {}
    for (kind, op, sign), n in zip(keys.tolist(), counts.tolist()):
        name = array_op_name(kind, op, sign)
        out[name] = out.get(name, 0) + n
    return out


def _by_count(counts):
    """counts (a dict) most frequent first, ties in their order."""
    return dict(sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: -kv[1]))


def _stats(tape, outputs):
    c = tape._c
    counts = c.op_counts()
    facts = c.array_facts()
    arrays = _array_counts(facts)
    ops = {OP_NAMES[k]: int(counts[k]) for k in range(len(counts)) if counts[k] and k != OP_ARRAY}
    for name, n in arrays.items():  # array instructions by their operation's name
        ops[name] = ops.get(name, 0) + n
    return {
        "instructions": len(tape),
        "leaves": c.nleaves + int((facts[:, FACT_KIND] == _A_LEAF).sum()),
        "outputs": int(outputs.sum()),
        "constants": c.nconsts,
        "ops": _by_count(ops),
        "nbytes": tape.nbytes,
        "used_nbytes": tape.used_nbytes,
        "arrays": len(facts),
        "array_ops": _by_count(arrays),
        "array_nbytes": {name: int(facts[:, col].sum()) for name, col in (
            ("values", FACT_VALUE_BYTES), ("adjoints", FACT_ADJOINT_BYTES), ("tangents", FACT_TANGENT_BYTES))},
    }


def stats(tape):
    """Facts about a tape, as a dict.

    ``instructions``: instructions recorded (``len(tape)``); ``leaves``: leaf
    instructions (Var and Tensor leaves); ``outputs``: instructions other
    than leaves and array constants that no later instruction reads;
    ``constants``: immediates in the constant pool; ``ops``: op name ->
    number of instructions, most frequent first (binary ops with a constant
    operand count as ``mul_vc``, ``sub_cv``, ...; an array instruction as its
    operation: ``exp``, ``mul``, ``sum``, ``matmul``, ``view``, ``leaf``,
    ...); ``nbytes`` / ``used_nbytes``: bytes of C memory allocated / holding
    data.  Of array instructions (``pytape.Tensor``): ``arrays``, their
    number; ``array_ops``, theirs alone by operation; ``array_nbytes``, the
    bytes the tape holds in their ``values``, ``adjoints`` and ``tangents``
    (forward mode's, and second order's tangents of adjoints; a Tensor leaf's
    value is its own array, lent to the tape, and not counted).

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> s = pytape.display.stats(t)
    >>> s["instructions"], s["leaves"], s["outputs"], s["ops"]
    (3, 1, 1, {'leaf': 1, 'add_vc': 1, 'mul': 1})
    >>> import numpy as np
    >>> with pytape.Tape() as t:
    ...     w = pytape.Tensor(np.ones((2, 3)))
    ...     y = np.exp(w).sum()
    >>> s = pytape.display.stats(t)
    >>> s["ops"], s["arrays"], s["array_nbytes"]["values"]   # the leaf lends its array
    ({'leaf': 1, 'exp': 1, 'sum': 1}, 3, 56)
    """
    return _stats(tape, _scan(tape)[0])


def _op_name(op, b):
    """The op column: the op table's name, a custom primitive's own."""
    if OP_KINDS[op] == _CUSTOM:
        return _native.custom_name(b)
    return OP_NAMES[op]


def _operands(c, op, a, b):
    """The operand column of one instruction: slots as v{i}, constants as
    numbers, a leaf as x{k} (the operand table of pytape/_native.py says which)."""
    if OP_KINDS[op] == _CUSTOM:
        return ", ".join(f"v{x}" if is_slot else _num(x) for is_slot, x in c.custom_entry(a))
    out = []
    for x, kind in ((a, OPERAND_A[op]), (b, OPERAND_B[op])):
        if kind == _native.OPERAND_LEAF:
            out.append(f"x{x}")
        elif kind == _native.OPERAND_SLOT or (kind == _native.OPERAND_SLOT_OR_CONST and x >= 0):
            out.append(f"v{x}")
        elif kind == _native.OPERAND_CONST:
            out.append(_num(c.const(x)))
        elif kind == _native.OPERAND_SLOT_OR_CONST:  # a guard's constant right side
            out.append(_num(c.const(-1 - x)))
    return ", ".join(out)


def _summary(summary, size, none="0"):
    """An array's value, adjoint or tangent in a few characters: the number
    of a one-element array, else ``[min, max]`` of its finite elements and
    how many are not finite; ``none`` where there is none (CTape.array_summary)."""
    if summary is None:
        return "[]" if size == 0 else none
    first, lo, hi, bad = summary
    if size == 1:
        return _num(first)
    text = f"[{_num(lo)}, {_num(hi)}]" if lo == lo else ""
    if bad:
        text += f"{', ' if text else ''}{bad:,} not finite"
    return text


def _shape(shape):
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def _array_row(c, i, swept, tangents):
    """The cells of array slot i after the slot: op, shape, operands, value,
    [adjoint], [tangent], bytes."""
    facts, shape, operands = c.array_entry(i)
    size = int(np.prod(shape)) if shape else 1
    nbytes = int(facts[FACT_VALUE_BYTES] + facts[FACT_ADJOINT_BYTES] + facts[FACT_TANGENT_BYTES])
    return ([array_op_name(int(facts[FACT_KIND]), int(facts[FACT_OP]), int(facts[FACT_SIGN])), _shape(shape),
             ", ".join(f"v{x}" if is_slot else _num(x) for is_slot, x in operands),
             _summary(c.array_summary(i), size, "(recycled)")]
            + [_summary(c.array_summary(i, "adjoint"), size)] * swept
            + [_summary(c.array_summary(i, "tangent"), size)] * tangents
            + [f"{nbytes:,}"])


def table(tape, max_rows=40):
    """The evaluation trace of a tape: one row per instruction.

    Columns: the slot ``v{i}``, the op's name, its operands (``x{k}`` for the
    k-th leaf), its value; then the adjoint (once a reverse sweep left a
    nonzero one) and the tangent (after ``tape.tangent_sweep``); leaves are
    marked ``input``, outputs ``output``.  A tape of more than ``max_rows``
    instructions is summarised: counts per op, memory, and the first and last
    rows (``max_rows=None`` shows every row).  Same as ``tape.table()``.

    A tape with array instructions (``pytape.Tensor``) has two more columns:
    ``shape`` after the op (``()`` for a scalar) and ``bytes`` at the end
    (of the buffers the tape holds for an array: value, adjoint, tangent; a
    Tensor leaf's value is its own array, lent).  An array's value, adjoint
    and tangent are summarised: its number if it has one element, else
    ``[min, max]`` of the finite elements, and ``n not finite`` if some are
    nan or inf.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> y.backward()
    >>> print(pytape.display.table(t))
    slot  op      operands  value  adjoint
      v0  leaf    x0            3        6  input
      v1  mul     v0, v0        9        1
      v2  add_vc  v1, 1        10        1  output
    >>> import numpy as np
    >>> with pytape.Tape() as t:
    ...     w = pytape.Tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    ...     y = (w * 2.0).sum(axis=0)
    >>> print(pytape.display.table(t))
    slot  op    shape   operands    value  bytes
      v0  leaf  (2, 3)            [-2, 3]      0  input
      v1  mul   (2, 3)  v0, 2     [-4, 6]     48
      v2  sum   (3,)    v1         [2, 3]     24  output
    """
    max_rows = _count("max_rows", max_rows, 0, none_ok=True)
    c, n = tape._c, len(tape)
    outputs, swept = _scan(tape)
    tangents = c.tangent_n > 0
    arrays = c.narrays > 0  # the shape and bytes columns
    if max_rows is None or n <= max_rows:
        spans = [(0, n)]
    else:
        head = (max_rows + 1) // 2
        spans = [(0, head), (n - (max_rows - head), n)]
    lines = [["slot", "op"] + ["shape"] * arrays + ["operands", "value"] + ["adjoint"] * swept
             + ["tangent"] * tangents + ["bytes"] * arrays + [""]]
    for start, stop in spans:
        if start:
            lines.append(f"... {start - spans[0][1]:,} instructions not shown (table(max_rows=None) shows all) ...")
        r = c.rows(start, stop)
        for j in range(stop - start):
            i, op, a, b = start + j, int(r["op"][j]), int(r["a"][j]), int(r["b"][j])
            if op == OP_ARRAY:
                cells = _array_row(c, i, swept, tangents)
                leaf = int(b) == _A_LEAF  # b: the array kind
            else:
                cells = ([_op_name(op, b)] + ["()"] * arrays + [_operands(c, op, a, b), _num(r["val"][j])]
                         + [_num(r["adj"][j])] * swept + [_num(c.tangent(i))] * tangents + [""] * arrays)
                leaf = OP_KINDS[op] == _LEAF
            lines.append([f"v{i}"] + cells + ["input" if leaf else "output" if outputs[i] else ""])
    rows = [line for line in lines if isinstance(line, list)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    left = {1, 2, 3, len(widths) - 1} if arrays else {1, 2, len(widths) - 1}  # op, [shape], operands, mark
    text = [
        line if isinstance(line, str) else "  ".join(
            s.ljust(w) if c in left else s.rjust(w) for c, (s, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    ]
    if len(spans) > 1:
        s = _stats(tape, outputs)
        text[:0] = [
            (f"Tape #{tape._serial}: {n:,} instructions (leaves {s['leaves']:,}, "
             f"outputs {s['outputs']:,}, constants {s['constants']:,})"),
            "ops: " + ", ".join(f"{name} {count:,}" for name, count in s["ops"].items()),
            f"memory: {s['nbytes']:,} bytes allocated, {s['used_nbytes']:,} used",
        ]
        if arrays:
            b = s["array_nbytes"]
            text.insert(3, f"arrays: {s['arrays']:,} instructions; bytes in values {b['values']:,}, "
                           f"adjoints {b['adjoints']:,}, tangents {b['tangents']:,}")
    return "\n".join(text)


# ---- the graph ------------------------------------------------------------------

def _row(c, i):
    """(op, a, b, value, adjoint, array) of slot i: array is CTape.array_entry's
    (facts, shape, operands) for an array instruction, else None."""
    r = c.rows(i, i + 1)
    row = tuple(r[name][0].item() for name in ("op", "a", "b", "val", "adj"))
    return row + (c.array_entry(i) if row[0] == OP_ARRAY else None,)


def _reads(row, c=None):
    """The slots an instruction reads (a guard's too: pytape.trace's comparisons)."""
    op, a, b = row[:3]
    if op == OP_ARRAY:
        return [x for is_slot, x in row[5][2] if is_slot]
    if OP_KINDS[op] == _CUSTOM:
        return [x for is_slot, x in c.custom_entry(a) if is_slot]
    return [x for x, kind in ((a, OPERAND_A[op]), (b, OPERAND_B[op]))
            if operand_is_slot(int(kind), int(x))]


def _nearest(c, starts, limit):
    """{slot: row} of at most `limit` slots nearest `starts` (breadth first
    along the operands, higher slots first within a level)."""
    rows = {i: _row(c, i) for i in starts[:limit]}
    frontier = list(rows)
    while frontier and len(rows) < limit:
        level = sorted({j for i in frontier for j in _reads(rows[i], c) if j not in rows}, reverse=True)
        level = level[:limit - len(rows)]
        rows.update((j, _row(c, j)) for j in level)
        frontier = level
    return rows


def _target(x):
    if isinstance(x, Tape):
        return x, None
    if isinstance(x, Tensor):
        if type(x) is not TensorResult:
            raise ValueError(
                "a Tensor leaf or constant has no recorded graph; draw a result computed "
                "from it (pytape.to_dot(y)) or its tape (pytape.to_dot(tape))"
            )
        return x._t, x.slot
    if isinstance(x, Var):
        if type(x) is not Result:
            raise ValueError(
                "a leaf or a constant has no recorded graph; draw a result computed "
                "from it (pytape.to_dot(y)) or its tape (pytape.to_dot(tape))"
            )
        return x.tape, slot_on(x, x.tape)
    raise TypeError(f"expected a pytape.Var or pytape.Tensor result or a pytape.Tape, not {type(x).__name__}")


def _expr(name, args):
    """``v1 * v2`` for an infix op's two operands, else ``name(args)``."""
    return f" {_INFIX[name]} ".join(args) if name in _INFIX and len(args) == 2 else f"{name}({', '.join(args)})"


def _array_label(c, i, row, grads, tangents):
    """An array instruction's node: v{i} = its operation, its shape and bytes,
    its value (and gradient, tangent) summarised as in the table."""
    facts, shape, operands = row[5]
    size = int(np.prod(shape)) if shape else 1
    name = array_op_name(int(facts[FACT_KIND]), int(facts[FACT_OP]), int(facts[FACT_SIGN]))
    args = [f"v{x}" if is_slot else _num(x) for is_slot, x in operands]
    nbytes = int(facts[FACT_VALUE_BYTES] + facts[FACT_ADJOINT_BYTES] + facts[FACT_TANGENT_BYTES])
    lines = [f"v{i} = {name}" if not args else f"v{i} = {_expr(name, args)}",
             f"shape {_shape(shape)}, {nbytes:,} bytes",
             f"value {_summary(c.array_summary(i), size, '(recycled)')}"]
    lines += [f"grad {_summary(c.array_summary(i, 'adjoint'), size)}"] * grads
    lines += [f"tangent {_summary(c.array_summary(i, 'tangent'), size)}"] * tangents
    return "\\n".join(lines)


def _label(c, i, row, grads, tangents):
    if row[5] is not None:
        return _array_label(c, i, row, grads, tangents)
    op, a, b, val, adj = row[:5]
    name, kind = _op_name(op, b), OP_KINDS[op]
    if kind == _LEAF:
        expr = f"x{a}"
    else:
        args = _operands(c, op, a, b).split(", ")
        base = name[:-3] if kind in (_VC, _CV) else name
        expr = f" {_INFIX[base]} ".join(args) if base in _INFIX else f"{base}({', '.join(args)})"
    lines = [f"v{i} = {expr}", f"value {_num(val)}"]
    lines += [f"grad {_num(adj)}"] * grads + [f"tangent {_num(c.tangent(i))}"] * tangents
    return "\\n".join(lines)


def to_dot(x, max_nodes=200):
    """Graphviz DOT text of the graph that computes ``x``.

    ``x`` is a result (a ``Var`` or ``Tensor`` recorded on a tape: the
    operations it depends on) or a ``Tape`` (every instruction on it).
    Operations are nodes, labelled ``v{i} = expression`` with their value,
    and their gradient after a backward (their tangent after a tangent
    sweep); edges carry data from operands to results; constants appear
    inline in the expressions.  An array instruction's node also gives its
    shape and bytes, and summarises its values as ``tape.table()`` does.
    Leaves are blue, outputs orange.  Of a larger graph the ``max_nodes``
    operations nearest the output are drawn, and a note node says how many
    were left out.

    >>> import pytape
    >>> with pytape.Tape():
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> print(pytape.to_dot(y))   # doctest: +ELLIPSIS
    digraph pytape {
    ...
      v1 [label="v1 = v0 * v0\\nvalue 9"];
      v2 [label="v2 = v1 + 1\\nvalue 10", style="rounded,filled", fillcolor="#fdd9b5"];
      v0 -> v1;
      v0 -> v1;
      v1 -> v2;
    }
    >>> import numpy as np
    >>> with pytape.Tape():
    ...     w = pytape.Tensor([[1.0, 2.0], [3.0, 4.0]])
    ...     y = (np.exp(w) @ w).sum()
    >>> print(pytape.to_dot(y))   # doctest: +ELLIPSIS
    digraph pytape {
    ...
      v1 [label="v1 = exp(v0)\\nshape (2, 2), 32 bytes\\nvalue [2.71828, 54.5982]"];
      v2 [label="v2 = matmul(v1, v0)\\nshape (2, 2), 32 bytes\\nvalue [24.8855, 258.564]"];
      v3 [label="v3 = sum(v2)\\nshape (), 8 bytes\\nvalue 502.322", style="rounded,filled", fillcolor="#fdd9b5"];
      v0 -> v1;
      v1 -> v2;
      v0 -> v2;
      v2 -> v3;
    }
    """
    max_nodes = _count("max_nodes", max_nodes, 1)
    tape, out = _target(x)
    c = tape._c
    if out is None:
        outputs = _scan(tape)[0]
        starts, total = np.flatnonzero(outputs)[::-1][:max_nodes].tolist(), len(tape)
    else:
        total = int(c.reach([out]).sum())
        starts, outputs = [out], {out}
    rows = _nearest(c, starts, max_nodes)
    grads = any(row[4] != 0.0 for row in rows.values())
    tangents = c.tangent_n > 0
    lines = [
        "digraph pytape {",
        # bounded layout effort: a leaf read by every step of a long chain (an
        # RNN's weight) otherwise keeps dot's crossing minimisation busy for minutes
        "  graph [nslimit=2, nslimit1=2, mclimit=0.5];",
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
        '  edge [arrowsize=0.7];',
    ]
    for i in sorted(rows):
        style = ""
        op, b, array = rows[i][0], rows[i][2], rows[i][5]
        if OP_KINDS[op] == _LEAF or (array is not None and b == _A_LEAF):
            style = ', style="rounded,filled", fillcolor="#d6e6f5"'
        elif outputs[i] if out is None else i in outputs:
            style = ', style="rounded,filled", fillcolor="#fdd9b5"'
        lines.append(f'  v{i} [label="{_label(c, i, rows[i], grads, tangents)}"{style}];')
    cut = set()
    for i in sorted(rows):
        for j in _reads(rows[i], c):
            if j in rows:
                lines.append(f"  v{j} -> v{i};")
            else:
                cut.add(i)
    if total > len(rows):
        lines.append(f'  more [shape=note, label="{total - len(rows):,} more instructions not shown"];')
        lines += [f"  more -> v{i} [style=dashed];" for i in sorted(cut)]
    lines.append("}")
    return "\n".join(lines)


def _pipe(dot, fmt):
    """The DOT text rendered by Graphviz, as bytes in format `fmt`."""
    try:
        import graphviz
    except ImportError:
        raise ImportError(_NEED_GRAPHVIZ) from None
    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RuntimeError(_NEED_DOT) from None


def render(x, filename, max_nodes=200):
    """Draw the graph of ``x`` (a result or a ``Tape``, see ``to_dot``) to a file.

    The format is the file name's extension (``.svg``, ``.png``, ``.pdf``, any
    format of Graphviz's ``dot``).  Needs the optional ``graphviz`` package and
    the ``dot`` program (``pip install 'pytape[viz]'`` and e.g. ``apt-get
    install graphviz``); raises ImportError or RuntimeError saying so when
    either is missing.  Returns the file name.

    >>> import os, tempfile, pytape
    >>> x = pytape.Var(3.0)
    >>> y = x * x + 1.0
    >>> path = os.path.join(tempfile.mkdtemp(), "graph.svg")
    >>> try:
    ...     pytape.render(y, path) == path and open(path).read().lstrip().startswith("<")
    ... except (ImportError, RuntimeError):   # without Graphviz
    ...     True
    True
    """
    filename = os.fspath(filename)
    fmt = os.path.splitext(filename)[1][1:].lower()
    if not fmt:
        raise ValueError(f"render() takes the format from the file name's extension (graph.svg, .png, .pdf): {filename!r}")
    data = _pipe(to_dot(x, max_nodes), fmt)
    with open(filename, "wb") as f:
        f.write(data)
    return filename


def repr_svg(x):
    """SVG text of ``x``'s graph for Jupyter's ``_repr_svg_``; None when there is
    nothing to draw (a leaf, an empty tape) or Graphviz is missing.

    >>> import pytape
    >>> pytape.display.repr_svg(pytape.Var(1.0)) is None   # a leaf has no graph
    True
    """
    if len(x) == 0 if isinstance(x, Tape) else type(x) is not Result:
        return None
    try:
        return _pipe(to_dot(x), "svg").decode()
    except (ImportError, RuntimeError):
        return None


# ---- the tape's and the Var's own views (installed on the classes) -----------------

def _tape_table(self, max_rows=40):
    """The evaluation trace: one row per instruction (slot ``v{i}``, op,
    operands, value; adjoint and tangent once swept); a summary with the
    head and tail rows beyond ``max_rows`` instructions (None: all rows).
    ``print(tape)`` prints it.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = pytape.sin(x) * 2.0
    >>> print(t.table())
    slot  op      operands    value
      v0  leaf    x0              3  input
      v1  sin     v0        0.14112
      v2  mul_vc  v1, 2     0.28224  output
    """
    return table(self, max_rows)


def _tape_stats(self):
    """A dict: ``instructions``, ``leaves``, ``outputs``, ``constants``,
    ``ops`` (op name -> count), ``nbytes``, ``used_nbytes`` (see
    ``pytape.display.stats``).

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = pytape.sin(x) * 2.0
    >>> t.stats()["ops"]
    {'leaf': 1, 'sin': 1, 'mul_vc': 1}
    """
    return stats(self)


def _own_output(tape, output):
    if output is not None and getattr(output, "tape", None) is not tape:
        raise ValueError("output must be a result recorded on this tape")
    return tape if output is None else output


def _tape_to_dot(self, output=None, max_nodes=200):
    """Graphviz DOT text of the graph computing ``output`` (a result recorded
    on this tape), or of the whole tape (see ``pytape.to_dot``).

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = pytape.sin(x) * 2.0
    >>> t.to_dot(y).splitlines()[0]
    'digraph pytape {'
    """
    return to_dot(_own_output(self, output), max_nodes)


def _tape_render(self, filename, output=None, max_nodes=200):
    """Draw ``to_dot(output)`` to ``filename`` (.svg, .png, .pdf) with Graphviz
    (see ``pytape.render``); returns the file name."""
    return render(_own_output(self, output), filename, max_nodes)


def _var_repr_svg(self):
    """The graph computing this Var as SVG, for Jupyter (None for leaves or without Graphviz)."""
    return repr_svg(self)


Tape.table, Tape.stats, Tape.to_dot, Tape.render = _tape_table, _tape_stats, _tape_to_dot, _tape_render
Tape.__str__ = _tape_table
Tape._repr_svg_ = Var._repr_svg_ = _var_repr_svg
for _f, _name in ((_tape_table, "table"), (_tape_stats, "stats"), (_tape_to_dot, "to_dot"), (_tape_render, "render")):
    _f.__name__, _f.__qualname__ = _name, f"Tape.{_name}"

