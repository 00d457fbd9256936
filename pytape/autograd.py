"""PyTorch-style gradients of recorded graphs: ``pytape.autograd.grad``.

>>> import pytape
>>> x = pytape.Var(3.0)
>>> y = x ** 2
>>> pytape.autograd.grad(y, x)
(6.0,)
"""
import numbers

import numpy as np

from . import _native
from .anomaly import explain
from .higher_order import adjoints, zero_of
from .errors import TapeConsumedError
from .tensor import Tensor, TensorLeaf, TensorResult, raw_value
from .var import Leaf, Result, Var, _real, leaf_slots, slot_on

__all__ = ["grad"]


def _as_tuple(xs, what):
    if isinstance(xs, Var):
        return (xs,), True
    if isinstance(xs, np.ndarray):
        xs = list(xs.ravel())
    try:
        xs = tuple(xs)
    except TypeError:
        raise TypeError(f"{what} must be a Var or a sequence of Vars, not {type(xs).__name__}") from None
    for x in xs:
        if not isinstance(x, Var):
            raise TypeError(f"{what} must be Vars, got {type(x).__name__}")
    return xs, False


def _seeds(outputs, grad_outputs, keep_vars=False):
    """Flat outputs and their seeds; an array of outputs needs grad_outputs.
    With ``keep_vars`` (create_graph) a Var seed stays a Var, so the gradients
    depend on it as in PyTorch; otherwise seeds are numbers."""
    if isinstance(outputs, np.ndarray) and outputs.ndim > 0:
        if grad_outputs is None:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; these outputs have shape "
                f"{outputs.shape}: pass grad_outputs (d loss / d output) of that shape")
        g = np.asarray(grad_outputs, dtype=object if keep_vars else float)
        if g.shape != outputs.shape:
            raise ValueError(f"grad_outputs has shape {g.shape}, outputs {outputs.shape}")
        return list(outputs.ravel()), [_seed(v, keep_vars) for v in g.ravel()]
    outs, _ = _as_tuple(outputs, "outputs")
    if grad_outputs is None:
        return list(outs), [1.0] * len(outs)
    if isinstance(grad_outputs, (numbers.Real, Var, np.generic)) or np.ndim(grad_outputs) == 0:
        gs = [grad_outputs]
    else:  # one entry per output, as in PyTorch: also [g] for a single output
        gs = list(np.ravel(grad_outputs)) if isinstance(grad_outputs, np.ndarray) else list(grad_outputs)
    if len(gs) != len(outs):
        raise ValueError(f"grad_outputs has {len(gs)} entries for {len(outs)} outputs")
    return list(outs), [1.0 if g is None else _seed(g, keep_vars) for g in gs]


def _seed(g, keep_vars):
    return g if keep_vars and isinstance(g, Var) else _real(g, "grad_outputs")


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Sum of d(outputs)/d(inputs), weighted by grad_outputs, like ``torch.autograd.grad``.

    Returns one float per input (``None`` for an input the outputs do not
    depend on, with ``allow_unused=True``; otherwise that raises).  Unlike
    ``backward()`` it accumulates nothing into ``.grad``.  The tape is consumed
    unless ``retain_graph`` (default: ``create_graph``).  ``inputs`` may be
    leaves or intermediate results.  ``grad_outputs``: one entry per output
    (a number or a sequence of one for a single output; None entries count
    as 1).  With ``create_graph=True`` the gradients are Vars recorded on the
    same tape (the reverse sweep itself recorded as instructions), at every
    point and for every used input, so they can be differentiated again, to
    any order, with respect to any used input (0 where they do not depend on
    it).  Inside the f of a function transformation (``pytape.grad(f)``) on
    f's own recording, the sweep is always recorded, so the transformation
    differentiates through it.

    >>> import pytape
    >>> x1, x2 = pytape.Var(2.0), pytape.Var(5.0)
    >>> y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    >>> d1, d2 = pytape.autograd.grad(y, [x1, x2])
    >>> d1, round(d2, 3)
    (5.5, 1.716)

    On Tensors (any output or input a ``pytape.Tensor``) the gradients are
    numpy arrays shaped like the inputs, or with ``create_graph=True``
    Tensors recorded on the tape as array instructions
    (pytape/array_adjoints.py); ``grad_outputs`` gives one array per output
    shaped like it (None: 1 for a one-element output).  The leaves' ``.grad``
    stay as they are.

    >>> import numpy as np
    >>> x = pytape.Tensor(np.array([1.0, 2.0]))
    >>> (g,) = pytape.autograd.grad((x ** 3).sum(), x, create_graph=True)
    >>> g.value, pytape.autograd.grad(g.sum(), x)[0]
    (array([ 3., 12.]), array([ 6., 12.]))
    """
    if _any_tensor(outputs) or _any_tensor(inputs):
        return _tensor_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused)
    if not create_graph and _inside_f(outputs):
        create_graph = True  # inside a transformation's f: recorded, so that the transformation sees it
    if retain_graph is None:
        retain_graph = create_graph
    outs, seeds = _seeds(outputs, grad_outputs, keep_vars=create_graph)
    ins, _ = _as_tuple(inputs, "inputs")
    tapes = {id(y._t): y._t for y in outs if type(y) is Result}
    if len(tapes) > 1:
        raise ValueError("the outputs were recorded on different tapes")
    results = [0.0] * len(ins)
    used = [False] * len(ins)
    # outputs that are leaves themselves: d(leaf)/d(leaf) = 1
    for y, s in zip(outs, seeds):
        if type(y) is Leaf:
            for k, x in enumerate(ins):
                if x is y:
                    results[k] += s
                    used[k] = True
    if tapes:
        tape = next(iter(tapes.values()))
        _refuse_consumed(tape)
        if create_graph:
            _sweep_recorded(tape, outs, seeds, ins, results, used)
        else:
            _sweep(tape, outs, seeds, ins, results, used)
        if not retain_graph:
            tape._c.consume()
            tape._consumed = True
    for k, x in enumerate(ins):
        if create_graph and used[k] and not isinstance(results[k], Var):
            results[k] = results[k] + zero_of(x)  # an output that is the input itself: a Var too
        if not used[k]:
            if not allow_unused:
                raise RuntimeError(
                    f"inputs[{k}] was not used to compute the outputs; pass allow_unused=True "
                    f"to get None for it")
            results[k] = None
    return tuple(results)


def _refuse_consumed(tape):
    if tape._consumed:
        raise TapeConsumedError(
            "backward() or autograd.grad() has already run through this tape and released it; "
            "pass retain_graph=True to the earlier call")


def _inside_f(outputs):
    """True if outputs were recorded on a tape that a function transformation
    (not pytape.trace) records f on now: their gradient is part of f."""
    ys = list(outputs.ravel()) if isinstance(outputs, np.ndarray) else (
        [outputs] if isinstance(outputs, Var) else list(outputs) if isinstance(outputs, (list, tuple)) else [])
    return any(type(y) in (Result, TensorResult) and y._t._transforming and not y._t._guards for y in ys)


def _reached(tape, out_slots, ins):
    """(k, slot) for every slot of every input k that the outputs depend on
    (a leaf may have several slots on a tape: its gradient sums them): from
    the tape's reachability in C, not from adjoint values (a zero adjoint, as
    behind relu at a negative input, still means "used")."""
    mark = tape._c.reach([i for i, _ in out_slots])
    return [(k, s) for k, slots in enumerate(leaf_slots(ins, tape)) for s in slots if s < len(mark) and mark[s]]


def _out_slots(tape, outs, seeds):
    return [(slot_on(y, tape), s) for y, s in zip(outs, seeds) if type(y) is Result]


def _sweep(tape, outs, seeds, ins, results, used):
    tape._refuse_while_traced("autograd.grad() without create_graph")
    out_slots = _out_slots(tape, outs, seeds)
    if not out_slots:
        return
    pairs = _reached(tape, out_slots, ins)
    if not pairs:
        return
    with explain(tape):  # anomaly mode: a nan names its operation and line
        res = tape._c.backward_block([i for i, _ in out_slots], [[s] for _, s in out_slots], [s for _, s in pairs])
    for (k, _), g in zip(pairs, res[:, 0]):
        results[k] += float(g)
        used[k] = True


def _sweep_recorded(tape, outs, seeds, ins, results, used):
    out_slots = _out_slots(tape, outs, seeds)
    if not out_slots:
        return
    pairs = _reached(tape, out_slots, ins)
    adj = adjoints(tape, [i for i, _ in out_slots], [s for _, s in out_slots], [s for _, s in pairs])
    for (k, _), g in zip(pairs, adj):  # a Var for every reached input
        results[k] = g if not used[k] else results[k] + g
        used[k] = True


# ---- Tensors ---------------------------------------------------------------------------

def _any_tensor(xs):
    if isinstance(xs, Tensor):
        return True
    return isinstance(xs, (list, tuple)) and any(isinstance(x, Tensor) for x in xs)


def _listed(xs, what):
    xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    for x in xs:
        if not isinstance(x, (Tensor, Var)):
            raise TypeError(f"{what} must be Tensors or Vars, got {type(x).__name__}")
    return xs


def _tensor_slots(x, tape):
    """x's slots on ``tape`` ([]: not there): a result's own; every placement
    of a leaf there (a Tensor leaf whose value was handed out for writing is
    placed again: its gradient sums the slots, as backward() does)."""
    if isinstance(x, TensorResult):
        return [x.slot] if x._t is tape else []
    if isinstance(x, TensorLeaf):
        if x._g is None:
            raise RuntimeError("an input of autograd.grad does not require grad (a constant Tensor): its "
                               "derivative is not recorded")
        return tape._c.array_leaf_slots([x._g])[0]
    return leaf_slots([x], tape)[0]


def _tensor_seeds(outs, grad_outputs, create_graph):
    if grad_outputs is None:
        gs = [None] * len(outs)
    else:
        gs = list(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
        if len(gs) != len(outs):
            raise ValueError(f"grad_outputs has {len(gs)} entries for {len(outs)} outputs")
    seeds = []
    for y, g in zip(outs, gs):
        shape = tuple(y.shape) if isinstance(y, Tensor) else ()  # not .value: a leaf's copies its array
        if g is None:
            if int(np.prod(shape, dtype=np.int64)) != 1:
                raise RuntimeError(f"grad can be implicitly created only for one-element outputs; this output "
                                   f"has shape {shape}: pass grad_outputs (d loss / d output) of that shape")
            g = np.ones(shape)
        elif create_graph and isinstance(g, (Tensor, Var)):
            gshape = tuple(g.shape) if isinstance(g, Tensor) else ()
            if gshape != shape:
                raise ValueError(f"grad_outputs has an entry of shape {gshape} for an output "
                                 f"of shape {shape}")
            seeds.append(g)
            continue
        g = np.asarray(raw_value(g) if isinstance(g, Tensor) else g.value if isinstance(g, Var) else g)
        if g.dtype.kind not in "biuf":
            raise TypeError(f"grad_outputs takes real numbers, not dtype {g.dtype}")
        g = np.array(g, dtype=np.float64)
        if g.shape != shape:
            raise ValueError(f"grad_outputs has an entry of shape {g.shape} for an output of shape {shape}")
        seeds.append(g)  # a fresh C-ordered copy (ascontiguousarray would make a 0-d array 1-d)
    return seeds


def _tensor_grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused):
    """autograd.grad where outputs or inputs are Tensors (see grad)."""
    from .array_adjoints import tensor_adjoints
    outs, ins = _listed(outputs, "outputs"), _listed(inputs, "inputs")
    if not create_graph and _inside_f(outs):
        create_graph = True
    if retain_graph is None:
        retain_graph = create_graph
    seeds = _tensor_seeds(outs, grad_outputs, create_graph)
    recorded = [(y, g) for y, g in zip(outs, seeds) if isinstance(y, (TensorResult, Result))]
    tapes = {id(y._t): y._t for y, _ in recorded}
    if len(tapes) > 1:
        raise ValueError("the outputs were recorded on different tapes")
    results = [None] * len(ins)
    for y, g in zip(outs, seeds):  # an output that is an input itself: d(x)/d(x) = 1
        for k, x in enumerate(ins):
            if x is y:
                results[k] = g if results[k] is None else results[k] + g
    if tapes:
        tape = next(iter(tapes.values()))
        _refuse_consumed(tape)
        out_slots = [y.slot if isinstance(y, TensorResult) else slot_on(y, tape) for y, _ in recorded]
        mark = tape._c.reach(out_slots)
        # per input, its slots the outputs reach
        in_slots = [[s for s in _tensor_slots(x, tape) if s < len(mark) and mark[s]] for x in ins]
        flat = sorted({s for slots in in_slots for s in slots})
        if create_graph:
            from .tape import enable_grad
            with tape, enable_grad():
                adj = dict(zip(flat, tensor_adjoints(tape, out_slots, [g for _, g in recorded], flat)))
        else:
            tape._refuse_while_traced("autograd.grad() without create_graph")
            adj = {}
            for s, (y, g) in zip(out_slots, recorded):
                with explain(tape):
                    _native.backward_adjoints(tape._c, s, g if isinstance(y, TensorResult) else float(g))
                for si in flat:
                    if tape._c.op_at(si) == _native.OP_ARRAY:
                        shape = tape._c.array_entry(si)[1]
                        a = _native.arr_adjoint(tape, tape._c, si, shape)
                        a = np.zeros(shape) if a is None else a
                    else:
                        a = tape._c.adjoint(si)
                    adj[si] = a if si not in adj else adj[si] + a
        for k, slots in enumerate(in_slots):
            for si in slots:
                results[k] = adj[si] if results[k] is None else results[k] + adj[si]
        if not retain_graph:
            tape._c.consume()
            tape._consumed = True
    for k, r in enumerate(results):
        if r is None and not allow_unused:
            raise RuntimeError(f"inputs[{k}] was not used to compute the outputs; pass allow_unused=True "
                               f"to get None for it")
    return tuple(results)
