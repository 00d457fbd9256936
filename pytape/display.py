"""Seeing the tape: the evaluation trace as a table, statistics, the graph as DOT.

Naming: slot i of a tape is ``v{i}`` (a result ``y`` is ``v{y._i}``, the row of
the C arrays that holds it) and the k-th leaf placed on a tape is ``x{k}``.
Constants (the constant side of ``*_vc`` / ``*_cv`` instructions) print as
numbers.  An output is an instruction, other than a leaf, that no later
instruction reads.

Nothing here loops in Python over the entries of a tape: op counts and
reachability come from C, which slots are read by later instructions from
numpy over chunks copied with ``pt_tape_copy``, and only the rows shown (a
table's head and tail, a graph's nodes nearest its output) are formatted one
by one.

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

from ._native import OP_KINDS, OP_NAMES, ffi, lib, raise_status
from .tape import Tape
from .var import Var

__all__ = ["table", "stats", "to_dot", "render"]

_KINDS = np.array(OP_KINDS, dtype=np.uint8)
_LEAF, _UNARY, _VV, _VC, _CV = (lib.PT_KIND_LEAF, lib.PT_KIND_UNARY, lib.PT_KIND_VV,
                                lib.PT_KIND_VC, lib.PT_KIND_CV)
_READS_A = np.isin(_KINDS, (_UNARY, _VV, _VC, lib.PT_KIND_GUARD))  # by opcode: operand a is a slot
_READS_B = np.isin(_KINDS, (_VV, _CV))          # by opcode: operand b is a slot
_CHUNK = 1 << 20                                # rows per copy in whole-tape scans
_COLUMNS = (("op", np.uint16, "uint16_t[]"), ("a", np.int32, "int32_t[]"),
            ("b", np.int32, "int32_t[]"), ("val", np.float64, "double[]"),
            ("adj", np.float64, "double[]"))
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


def _copy(p, start, stop, columns=("op", "a", "b", "val", "adj")):
    """Rows [start, stop) of a tape as numpy arrays: one C copy."""
    m = max(0, stop - start)
    rows = {name: np.empty(m, dtype) for name, dtype, _ in _COLUMNS if name in columns}
    if m:
        st = lib.pt_tape_copy(p, start, stop, *[
            ffi.from_buffer(ctype, rows[name]) if name in rows else ffi.NULL for name, _, ctype in _COLUMNS
        ])
        if st < 0:  # adjoints are the owner thread's to read
            raise_status(st, "record")
    return rows


def _scan(tape):
    """(outputs, swept) of a whole tape: a bool array marking its outputs, and
    whether some adjoint is nonzero.  numpy over chunks, no loop over entries."""
    p, n = tape._p, len(tape)
    read, leaf, swept = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), False
    for start in range(0, n, _CHUNK):
        r = _copy(p, start, min(n, start + _CHUNK), ("op", "a", "b", "adj"))
        read[r["a"][_READS_A[r["op"]]]] = True
        read[r["b"][_READS_B[r["op"]]]] = True
        guard = _KINDS[r["op"]] == lib.PT_KIND_GUARD
        read[r["b"][guard & (r["b"] >= 0)]] = True  # a guard's right side, when a slot
        # leaves and guards (comparisons recorded by pytape.trace) are no outputs
        leaf[start:start + len(r["op"])] = (_KINDS[r["op"]] == _LEAF) | guard
        swept = swept or bool(r["adj"].any())
    return ~read & ~leaf, swept


def _stats(tape, outputs):
    counts = np.zeros(lib.pt_num_ops(), dtype=np.int64)
    lib.pt_tape_op_counts(tape._p, ffi.from_buffer("int64_t[]", counts))
    return {
        "instructions": len(tape),
        "leaves": lib.pt_tape_nleaves(tape._p),
        "outputs": int(outputs.sum()),
        "constants": lib.pt_tape_nconsts(tape._p),
        "ops": {OP_NAMES[k]: int(counts[k]) for k in np.argsort(-counts, kind="stable") if counts[k]},
        "nbytes": tape.nbytes,
        "used_nbytes": tape.used_nbytes,
    }


def stats(tape):
    """Facts about a tape, as a dict.

    ``instructions``: instructions recorded (``len(tape)``); ``leaves``: leaf
    instructions; ``outputs``: instructions other than leaves that no later
    instruction reads; ``constants``: immediates in the constant pool;
    ``ops``: op name -> number of instructions, most frequent first (binary
    ops with a constant operand count as ``mul_vc``, ``sub_cv``, ...);
    ``nbytes`` / ``used_nbytes``: bytes of C memory allocated / holding data.

    >>> import pytape
    >>> with pytape.Tape() as t:
    ...     x = pytape.Var(3.0)
    ...     y = x * x + 1.0
    >>> s = pytape.display.stats(t)
    >>> s["instructions"], s["leaves"], s["outputs"], s["ops"]
    (3, 1, 1, {'leaf': 1, 'add_vc': 1, 'mul': 1})
    """
    return _stats(tape, _scan(tape)[0])


def _operands(p, op, a, b):
    """The operand column of one instruction: slots as v{i}, constants as numbers."""
    kind = OP_KINDS[op]
    if kind == _LEAF:
        return f"x{a}"
    if kind == lib.PT_KIND_GUARD:  # a comparison recorded by pytape.trace
        return f"v{a}, {f'v{b}' if b >= 0 else _num(lib.pt_tape_const(p, -1 - b))}"
    if kind == _UNARY:
        return f"v{a}"
    if kind == _VV:
        return f"v{a}, v{b}"
    if kind == _VC:
        return f"v{a}, {_num(lib.pt_tape_const(p, b))}"
    return f"{_num(lib.pt_tape_const(p, a))}, v{b}"


def table(tape, max_rows=40):
    """The evaluation trace of a tape: one row per instruction.

    Columns: the slot ``v{i}``, the op's name, its operands (``x{k}`` for the
    k-th leaf), its value; then the adjoint (once a reverse sweep left a
    nonzero one) and the tangent (after ``tape.tangent_sweep``); leaves are
    marked ``input``, outputs ``output``.  A tape of more than ``max_rows``
    instructions is summarised: counts per op, memory, and the first and last
    rows (``max_rows=None`` shows every row).  Same as ``tape.table()``.

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
    """
    p, n = tape._p, len(tape)
    outputs, swept = _scan(tape)
    tangents = lib.pt_tape_tangent_n(p) > 0
    if max_rows is None or n <= max_rows:
        spans = [(0, n)]
    else:
        head = (max_rows + 1) // 2
        spans = [(0, head), (n - (max_rows - head), n)]
    lines = [["slot", "op", "operands", "value"] + ["adjoint"] * swept + ["tangent"] * tangents + [""]]
    for start, stop in spans:
        if start:
            lines.append(f"... {start - spans[0][1]:,} instructions not shown (table(max_rows=None) shows all) ...")
        r = _copy(p, start, stop)
        for j in range(stop - start):
            i, op, a, b = start + j, int(r["op"][j]), int(r["a"][j]), int(r["b"][j])
            lines.append(
                [f"v{i}", OP_NAMES[op], _operands(p, op, a, b), _num(r["val"][j])]
                + [_num(r["adj"][j])] * swept
                + [_num(lib.pt_tangent(p, i))] * tangents
                + ["input" if OP_KINDS[op] == _LEAF else "output" if outputs[i] else ""]
            )
    rows = [line for line in lines if isinstance(line, list)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    left = {1, 2, len(widths) - 1}  # op, operands, mark
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
    return "\n".join(text)


# ---- the graph ------------------------------------------------------------------

def _row(p, i):
    """(op, a, b, value, adjoint) of slot i."""
    r = _copy(p, i, i + 1)
    return tuple(r[name][0].item() for name in ("op", "a", "b", "val", "adj"))


def _reads(row):
    op, a, b = row[:3]
    kind = OP_KINDS[op]
    return [a] * (kind in (_UNARY, _VV, _VC)) + [b] * (kind in (_VV, _CV))


def _nearest(p, starts, limit):
    """{slot: row} of at most `limit` slots nearest `starts` (breadth first
    along the operands, higher slots first within a level)."""
    rows = {i: _row(p, i) for i in starts[:limit]}
    frontier = list(rows)
    while frontier and len(rows) < limit:
        level = sorted({j for i in frontier for j in _reads(rows[i]) if j not in rows}, reverse=True)
        level = level[:limit - len(rows)]
        rows.update((j, _row(p, j)) for j in level)
        frontier = level
    return rows


def _target(x):
    if isinstance(x, Tape):
        return x, None
    if isinstance(x, Var):
        if x.tape is None:
            raise ValueError(
                "a leaf or a constant has no recorded graph; draw a result computed "
                "from it (pytape.to_dot(y)) or its tape (pytape.to_dot(tape))"
            )
        return x.tape, x._i
    raise TypeError(f"expected a pytape.Var result or a pytape.Tape, not {type(x).__name__}")


def _label(p, i, row, grads, tangents):
    op, a, b, val, adj = row
    name, kind = OP_NAMES[op], OP_KINDS[op]
    if kind == _LEAF:
        expr = f"x{a}"
    else:
        args = _operands(p, op, a, b).split(", ")
        base = name[:-3] if kind in (_VC, _CV) else name
        expr = f" {_INFIX[base]} ".join(args) if base in _INFIX else f"{base}({', '.join(args)})"
    lines = [f"v{i} = {expr}", f"value {_num(val)}"]
    lines += [f"grad {_num(adj)}"] * grads + [f"tangent {_num(lib.pt_tangent(p, i))}"] * tangents
    return "\\n".join(lines)


def to_dot(x, max_nodes=200):
    """Graphviz DOT text of the graph that computes ``x``.

    ``x`` is a result (a ``Var`` recorded on a tape: the operations it depends
    on) or a ``Tape`` (every instruction on it).  Operations are nodes, labelled
    ``v{i} = expression`` with their value, and their gradient after a
    backward (their tangent after a tangent sweep); edges carry data from
    operands to results; constants appear inline in the expressions.  Leaves
    are blue, outputs orange.  Of a larger graph the ``max_nodes`` operations
    nearest the output are drawn, and a note node says how many were left out.

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
    """
    tape, out = _target(x)
    p = tape._p
    if out is None:
        outputs = _scan(tape)[0]
        starts, total = np.flatnonzero(outputs)[::-1][:max_nodes].tolist(), len(tape)
    else:
        mark = np.empty(out + 1, dtype=np.uint8)
        total = lib.pt_tape_reach(p, out, ffi.from_buffer("uint8_t[]", mark))
        starts, outputs = [out], {out}
    rows = _nearest(p, starts, max_nodes)
    grads = any(row[4] != 0.0 for row in rows.values())
    tangents = lib.pt_tape_tangent_n(p) > 0
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
        if OP_KINDS[rows[i][0]] == _LEAF:
            style = ', style="rounded,filled", fillcolor="#d6e6f5"'
        elif outputs[i] if out is None else i in outputs:
            style = ', style="rounded,filled", fillcolor="#fdd9b5"'
        lines.append(f'  v{i} [label="{_label(p, i, rows[i], grads, tangents)}"{style}];')
    cut = set()
    for i in sorted(rows):
        for j in _reads(rows[i]):
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
    if len(x) == 0 if isinstance(x, Tape) else x.tape is None:
        return None
    try:
        return _pipe(to_dot(x), "svg").decode()
    except (ImportError, RuntimeError):
        return None
