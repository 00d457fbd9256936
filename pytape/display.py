"""Seeing the tape: the evaluation trace as a table, statistics, the graph as DOT.

Naming: slot i of a tape is ``v{i}`` (a result ``y`` is ``v{y._i}``, the row of
the C arrays that holds it) and the k-th leaf placed on a tape is ``x{k}``.
Constants (the constant side of ``*_vc`` / ``*_cv`` instructions) print as
numbers.  An output is an instruction, other than a leaf, that no later
instruction reads.

Nothing here loops in Python over the entries of a tape: op counts and
reachability come from C, which slots are read by later instructions from
numpy over chunks of rows copied from C (``CTape.rows``, with the operand
table of pytape/_native.py), and only the rows shown (a table's head and
tail, a graph's nodes nearest its output) are formatted one by one.

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
from ._native import OP_KINDS, OP_NAMES, OPERAND_A, OPERAND_B, operand_is_slot
from .tape import Tape
from .var import Result, Var, slot_on

__all__ = ["table", "stats", "to_dot", "render"]

_KINDS = np.array(OP_KINDS, dtype=np.uint8)
_LEAF, _UNARY, _VV, _VC, _CV, _GUARD, _CUSTOM = (_native.KIND_LEAF, _native.KIND_UNARY, _native.KIND_VV,
                                                 _native.KIND_VC, _native.KIND_CV, _native.KIND_GUARD,
                                                 _native.KIND_CUSTOM)
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
    return ~read & ~leaf, swept


def _stats(tape, outputs):
    counts = tape._c.op_counts()
    return {
        "instructions": len(tape),
        "leaves": tape._c.nleaves,
        "outputs": int(outputs.sum()),
        "constants": tape._c.nconsts,
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
    max_rows = _count("max_rows", max_rows, 0, none_ok=True)
    c, n = tape._c, len(tape)
    outputs, swept = _scan(tape)
    tangents = c.tangent_n > 0
    if max_rows is None or n <= max_rows:
        spans = [(0, n)]
    else:
        head = (max_rows + 1) // 2
        spans = [(0, head), (n - (max_rows - head), n)]
    lines = [["slot", "op", "operands", "value"] + ["adjoint"] * swept + ["tangent"] * tangents + [""]]
    for start, stop in spans:
        if start:
            lines.append(f"... {start - spans[0][1]:,} instructions not shown (table(max_rows=None) shows all) ...")
        r = c.rows(start, stop)
        for j in range(stop - start):
            i, op, a, b = start + j, int(r["op"][j]), int(r["a"][j]), int(r["b"][j])
            lines.append(
                [f"v{i}", _op_name(op, b), _operands(c, op, a, b), _num(r["val"][j])]
                + [_num(r["adj"][j])] * swept
                + [_num(c.tangent(i))] * tangents
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

def _row(c, i):
    """(op, a, b, value, adjoint) of slot i."""
    r = c.rows(i, i + 1)
    return tuple(r[name][0].item() for name in ("op", "a", "b", "val", "adj"))


def _reads(row, c=None):
    """The slots an instruction reads (a guard's too: pytape.trace's comparisons)."""
    op, a, b = row[:3]
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
    if isinstance(x, Var):
        if type(x) is not Result:
            raise ValueError(
                "a leaf or a constant has no recorded graph; draw a result computed "
                "from it (pytape.to_dot(y)) or its tape (pytape.to_dot(tape))"
            )
        return x.tape, slot_on(x, x.tape)
    raise TypeError(f"expected a pytape.Var result or a pytape.Tape, not {type(x).__name__}")


def _label(c, i, row, grads, tangents):
    op, a, b, val, adj = row
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
        if OP_KINDS[rows[i][0]] == _LEAF:
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

