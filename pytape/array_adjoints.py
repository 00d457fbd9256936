"""``create_graph`` on array tapes: the reverse sweep over array instructions
recorded as Tensor operations, so that gradients of array programs can be
differentiated again, to any order (``pytape.autograd.grad(...,
create_graph=True)`` on Tensors, ``grad(grad(f))`` of numpy code).

For each instruction between the inputs and the outputs (``pt_tape_paths``:
those that depend on an input and that an output depends on), last first,
its adjoint ``g`` (a Tensor on the same tape) is passed to its operands by
the kind's vector-Jacobian product, written with the kinds themselves:

==========  ==========================================================
MAP1/MAP2   ``chain(d, g)`` (the zero-factor product of the sweeps) with
            ``d`` the op-table row's derivative column as Tensor operations
            (pytape/array_rules.py), summed over broadcast axes
SUM         g reshaped and broadcast back (a VIEW)
VIEW        the reshape back, or a SCATTER of g to the viewed elements
GATHER      a SCATTER (repeated indices add up)
SCATTER     a GATHER
CONCAT      each operand's piece of g (VIEWs)
CUMSUM      the reversed cumulative sum of g
MAX         g shared evenly among the elements equal to the result (a
            recorded comparison: piecewise constant)
PROD        g times the product of the other elements of the row
MATMUL      two MATMULs with the transposition flags of csrc/pytape.h,
            summed over a broadcast batch
scalar ops  the scalar rules of pytape/higher_order.py times g
==========  ==========================================================

Each rule records ordinary instructions, so the C sweeps (and this sweep
again) differentiate the result: a Hessian-vector product by double
backward costs a few array instructions per instruction of f, not one per
element.  Python runs once per instruction of f (as PyTorch's double
backward runs its graph); the first-order ``backward()`` stays one C loop.

>>> import numpy as np, pytape
>>> x = pytape.Tensor(np.array([1.0, 2.0]))
>>> (g,) = pytape.autograd.grad((x ** 3).sum(), [x], create_graph=True)   # 3 x**2
>>> (h,) = pytape.autograd.grad(g.sum(), [x])                             # 6 x
>>> h
array([ 6., 12.])
"""
import math

import numpy as np

from . import _native, array_ops
from .array_ops import KIND, ROWS, broadcast_to, record, reshape
from .higher_order import _RULES as _SCALAR_RULES, _constant
from .tensor import Tensor, TensorLeaf, _result
from .var import Var, result

__all__ = ["tensor_adjoints", "PROD_ROW_LIMIT"]

_ARRAY = _native.OP_ARRAY
_K = {v: k for k, v in _native.ARRAY_KINDS.items()}
#: PROD's adjoint multiplies the other elements of each row: rows x r x r
#: elements recorded; above this many, create_graph through np.prod refuses
PROD_ROW_LIMIT = 1 << 24


class _Sweep:
    """One recorded reverse sweep over ``tape`` (see the module's docstring)."""

    def __init__(self, tape):
        self.tape, self.c = tape, tape._c
        self.acc = {}
        self._nodes, self._shapes = {}, {}

    # ---- the tape's slots as Tensors, Vars and constants ----------------------------------
    def node(self, s):
        """Slot s as a Tensor (an array instruction) or a Var (a scalar one)."""
        n = self._nodes.get(s)
        if n is None:
            if self.c.op_at(s) == _ARRAY:
                n = _result(self.tape, self.c.handle(s))  # not watched: the original result owns the slot
            else:
                n = result(self.tape, s)
            self._nodes[s] = n
        return n

    def operand(self, is_slot, x):
        """An array instruction's operand for a derivative rule: a Tensor (a
        scalar slot as a 0-d Tensor), or a float for a constant."""
        if not is_slot:
            return float(x)
        n = self.node(x)
        return ROWS["add"](_neg_zero(), n) if isinstance(n, Var) else n  # -0.0 + v is v, bit for bit

    def add(self, s, term):
        old = self.acc.get(s)
        self.acc[s] = term if old is None else old + term

    # ---- the sweep ----------------------------------------------------------------------------
    def run(self, slots):
        for i in reversed(slots):
            g = self.acc.get(i)
            if g is None:
                continue
            if self.c.op_at(i) == _ARRAY:
                self.array(i, g)
            else:
                self.scalar(i, g)

    def array(self, i, g):
        facts, shape, operands = self.c.array_entry(i)
        kind = _K[int(facts[_native.FACT_KIND])]
        if kind in ("LEAF", "CONST"):
            return
        par = self.c.array_params(i)
        getattr(self, "_" + kind.lower())(i, g, facts, tuple(shape), operands, par)

    def _shape(self, is_slot, s):
        if not is_slot:
            return ()
        shape = self._shapes.get(s)
        if shape is None:
            shape = self._shapes[s] = tuple(self.c.array_entry(s)[1]) if self.c.op_at(s) == _ARRAY else ()
        return shape

    def _give(self, is_slot, s, term):
        """Add term (shaped like s, or to be summed to it) to slot s's adjoint (None: nothing)."""
        if term is not None and is_slot and self.wanted(s):
            self.add(s, _unbroadcast(term, self._shape(True, s)))

    def wanted(self, s):
        return s in self.on_path

    # ---- kinds ----------------------------------------------------------------------------------
    def _map1(self, i, g, facts, shape, operands, par):
        (sa, a), = operands
        if sa and self.wanted(a):
            da, _ = _map_rule(int(facts[_native.FACT_OP]))
            self._give(True, a, _chain(da(self.operand(True, a), None, self.node(i)), g))

    def _map2(self, i, g, facts, shape, operands, par):
        (sa, a), (sb, b) = operands
        need_a, need_b = sa and self.wanted(a), sb and self.wanted(b)
        if not (need_a or need_b):
            return
        da, db = _map_rule(int(facts[_native.FACT_OP]))
        va, vb, y = self.operand(sa, a), self.operand(sb, b), self.node(i)
        if need_a:
            self._give(True, a, _chain(da(va, vb, y), g))
        if need_b:
            self._give(True, b, _chain(db(va, vb, y), g))

    def _sum(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        xs = self._shape(sx, x)
        kept = tuple(1 if par[1 + d] else n for d, n in enumerate(xs))
        self._give(sx, x, broadcast_to(reshape(g, kept), xs) if xs else g)

    def _view(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        xs = self._shape(sx, x)
        idx = _view_indices(shape, par)
        if idx.size == math.prod(xs) and np.array_equal(idx, np.arange(idx.size)):
            self._give(sx, x, reshape(g, xs))  # a reshape: reshaped back
        else:
            self._give(sx, x, _scatter(g, idx, xs))

    def _gather(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        self._give(sx, x, _scatter(g, par, self._shape(sx, x)))

    def _scatter(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        self._give(sx, x, record(KIND["GATHER"], [g], self._shape(sx, x), par, "create_graph"))

    def _concat(self, i, g, facts, shape, operands, par):
        flat, at = reshape(g, (-1,)), 0
        for sx, x in operands:
            xs = self._shape(sx, x)
            n = math.prod(xs)
            if sx and self.wanted(x):
                self._give(True, x, reshape(flat[at:at + n], xs))
            at += n

    def _cumsum(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        r = int(par[0])
        rev = reshape(g, (-1, r))[:, ::-1]
        back = record(KIND["CUMSUM"], [rev], (), [r], "create_graph")[:, ::-1]
        self._give(sx, x, reshape(back, shape))

    def _max(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        xs, r = self._shape(sx, x), int(par[0])
        X = reshape(self.node(x), (-1, r))
        hit = ROWS["equal"](X, reshape(self.node(i), (-1, 1)))  # 0/1, recorded: derivative 0
        share = hit / array_ops.sum(hit, 1, keepdims=True)      # ties share evenly, as the C sweep
        self._give(sx, x, reshape(reshape(g, (-1, 1)) * share, xs))

    def _prod(self, i, g, facts, shape, operands, par):
        (sx, x), = operands
        xs, r = self._shape(sx, x), int(par[0])
        rows = math.prod(xs) // r if r else 0
        if rows * r * r > PROD_ROW_LIMIT:
            raise NotImplementedError(
                f"create_graph=True through np.prod over rows of {r} elements ({rows} rows): its recorded adjoint "
                f"takes rows x r x r = {rows * r * r} elements, more than pytape.array_adjoints.PROD_ROW_LIMIT; "
                f"write the product as exp(sum(log(x))) where x > 0, or reduce fewer elements at a time")
        X = broadcast_to(reshape(self.node(x), (rows, 1, r)), (rows, r, r))
        others = record(KIND["PROD"], [array_ops.where(np.eye(r), 1.0, X)], (rows, r), [r], "create_graph")
        self._give(sx, x, reshape(reshape(g, (-1, 1)) * others, xs))

    def _matmul(self, i, g, facts, shape, operands, par):
        """y[b] = op(x0[b]) @ op(x1[b]) (csrc/pytape.h: MATMUL's parameters)."""
        (s0, x0), (s1, x1) = operands
        nb, m, n, k, ta, tb, ba, bb = (int(p) for p in par)
        G = reshape(g, (nb, m, n))
        if s0 and self.wanted(x0):  # d op(x0) = G op(x1)^T, stored as x0 is (transposed if ta)
            if not ta:
                d = record(KIND["MATMUL"], [G, self.node(x1)], (nb, m, k), [nb, m, k, n, 0, 1 - tb, 1, bb], "matmul")
            else:
                d = record(KIND["MATMUL"], [self.node(x1), G], (nb, k, m), [nb, k, m, n, tb, 1, bb, 1], "matmul")
            self._give(True, x0, _batch_back(d, ba, nb, self._shape(True, x0)))
        if s1 and self.wanted(x1):  # d op(x1) = op(x0)^T G, stored as x1 is (transposed if tb)
            if not tb:
                d = record(KIND["MATMUL"], [self.node(x0), G], (nb, k, n), [nb, k, n, m, 1 - ta, 0, ba, 1], "matmul")
            else:
                d = record(KIND["MATMUL"], [G, self.node(x0)], (nb, n, k), [nb, n, k, m, 1, ta, 1, ba], "matmul")
            self._give(True, x1, _batch_back(d, bb, nb, self._shape(True, x1)))

    def _custom(self, i, g, facts, shape, operands, par):
        """A custom primitive on arrays: its vjp rules called with Tensors (and
        Vars), so what they compute is recorded; checkpoint's records its
        block again from the operands and sweeps it (a nested vjp)."""
        from .custom import _ARRAY_CALLS, _array_rule
        p, specs, yshape, shapes, consts = _ARRAY_CALLS[int(par[0])]
        xs = [c if j is None else self.node(operands[j][1]) for j, c in zip(specs, consts)]
        y = self.node(i)
        if p._vjp_all is not None:
            shares = p._vjp_all(y, xs, g)
        else:
            shares = [_array_rule(p, k, "vjp")(y, *xs)(g) if j is not None and self.wanted(operands[j][1]) else None
                      for k, j in enumerate(specs)]
        for k, j in enumerate(specs):
            if j is None or shares[k] is None:
                continue
            s = operands[j][1]
            share = shares[k]
            if not isinstance(share, (Tensor, Var)):
                share = TensorLeaf._make(np.array(share, dtype=np.float64), False)  # a constant share
            self._give(True, s, share)

    # ---- scalar instructions (a mixed tape) -------------------------------------------------
    def scalar(self, i, g):
        rows = self.c.rows(i, i + 1, ("op", "a", "b"))
        code, a, b = int(rows["op"][0]), int(rows["a"][0]), int(rows["b"][0])
        kind = _native.OP_KINDS[code]
        if kind == _native.KIND_CUSTOM:
            raise NotImplementedError("create_graph=True through a scalar custom primitive on a tape with array "
                                      "instructions: compute it on Vars (elementwise=True)")
        if kind not in (_native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC, _native.KIND_CV):
            return  # LEAF, GUARD
        da, db = _SCALAR_RULES[code]
        ka, kb = _native.OPERAND_A[code], _native.OPERAND_B[code]
        va = self.node(a) if ka == _native.OPERAND_SLOT else _constant(self.c.const(a))
        vb = (self.node(b) if kb == _native.OPERAND_SLOT else
              _constant(self.c.const(b)) if kb == _native.OPERAND_CONST else None)
        y = self.node(i)
        if ka == _native.OPERAND_SLOT and self.wanted(a):
            self._give(True, a, _chain(da(va, vb, y), g))
        if kb == _native.OPERAND_SLOT and self.wanted(b):
            self._give(True, b, _chain(db(va, vb, y), g))


def _neg_zero():
    return TensorLeaf._make(np.array(-0.0), False)


def _chain(d, g):
    """d * g by the sweeps' zero-factor rule (pt_chain: 0 where either is 0,
    even times inf or nan), recorded; d a Tensor, a Var or a number (None:
    nothing passes on, as for a derivative that is the number 0)."""
    if isinstance(d, (Tensor, Var)) or np.ndim(d):  # an array of numbers: a constant operand
        return ROWS["chain"](d, g)
    d = float(d)
    if d == 0.0:
        return None
    return g if d == 1.0 else -g if d == -1.0 else g * d


def _unbroadcast(term, shape):
    """term summed over the axes numpy's broadcasting added or stretched, to ``shape``."""
    ts = tuple(term.shape) if isinstance(term, Tensor) else ()
    if ts == tuple(shape):
        return term
    lead = len(ts) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + d for d, n in enumerate(shape) if n == 1 and ts[lead + d] != 1)
    s = array_ops.sum(term, axes) if axes else term
    return reshape(s, shape) if tuple(s.shape) != tuple(shape) else s


def _view_indices(shape, par):
    """The flat operand index of every element of a VIEW (y[j] = x[off + sum_d j_d stride_d])."""
    idx = np.full(shape, int(par[0]), dtype=np.int64)
    for d, n in enumerate(shape):
        step = np.arange(n, dtype=np.int64) * int(par[1 + d])
        idx += step.reshape((n,) + (1,) * (len(shape) - d - 1))
    return idx.ravel()


def _scatter(g, idx, shape):
    """A SCATTER of g's elements to flat indices idx of an array of ``shape``."""
    return record(KIND["SCATTER"], [g], tuple(shape), np.asarray(idx, dtype=np.int64).ravel(), "create_graph")


def _batch_back(d, batched, nb, shape):
    """A MATMUL operand's adjoint blocks (nb, r, c) -> the operand's shape,
    summed over the batch where the operand was one block for all."""
    if not batched and nb != 1:
        d = array_ops.sum(d, 0)
    return reshape(d, shape)


def _map_rule(code):
    from .array_rules import tensor_rule
    return tensor_rule(code)


def tensor_adjoints(tape, outs, seeds, ins):
    """Adjoints of slots ``ins`` for seeds (Tensors or arrays shaped like the
    outputs) on output slots ``outs``, every step recorded on ``tape`` as
    Tensor operations: a Tensor (a Var for a scalar slot's adjoint of a
    scalar sweep) per input the outputs reach, None for one they do not.

    Each result depends on its input (a -0.0 added that depends on it: its
    derivative is 0), so it can be differentiated again with respect to it
    even where the derivative is constant.

    >>> import numpy as np, pytape
    >>> from pytape.array_adjoints import tensor_adjoints
    >>> x = pytape.Tensor(np.array([1.0, 2.0])) * 1.0     # a recorded input: its slot
    >>> y = (x * x).sum()
    >>> with y._t:
    ...     (g,) = tensor_adjoints(y._t, [y.slot], [1.0], [x.slot])
    >>> g.value
    array([2., 4.])
    """
    sw = _Sweep(tape)
    slots = tape._c.paths(list(ins), list(outs))
    sw.on_path = set(slots.tolist())
    for s, g in zip(outs, seeds):
        if s in sw.on_path:
            sw.add(s, _as_seed(g, sw._shape(True, s)))
    sw.run(slots)
    res = []
    for s in ins:
        if s not in sw.on_path:
            res.append(None)
            continue
        g = sw.acc.get(s)
        x = sw.node(s)
        z = ROWS["where_t"](0.0, x)  # -0.0 that depends on x, derivative 0 (higher_order.zero_of)
        res.append(z if g is None else g + z)
    return res


def _as_seed(g, shape):
    if isinstance(g, (Tensor, Var)):
        return g
    a = np.asarray(g, dtype=np.float64)
    return TensorLeaf._make(np.array(np.broadcast_to(a, shape)), False)
