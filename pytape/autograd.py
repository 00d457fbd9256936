"""PyTorch-style gradients of recorded graphs: ``pytape.autograd.grad``.

>>> import pytape
>>> x = pytape.Var(3.0)
>>> y = x ** 2
>>> pytape.autograd.grad(y, x)
(6.0,)
"""
import numpy as np

from .anomaly import explain
from .higher_order import adjoints
from .errors import TapeConsumedError
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
    outs, single = _as_tuple(outputs, "outputs")
    if grad_outputs is None:
        return list(outs), [1.0] * len(outs)
    gs = [grad_outputs] if single or isinstance(grad_outputs, (int, float, Var)) else list(grad_outputs)
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
    leaves or intermediate results.  With ``create_graph=True`` the gradients
    are Vars recorded on the same tape (the reverse sweep itself recorded as
    instructions), so they can be differentiated again, to any order.  Inside
    the f of a function transformation (``pytape.grad(f)``) on f's own
    recording, the sweep is always recorded, so the transformation
    differentiates through it.

    >>> import pytape
    >>> x1, x2 = pytape.Var(2.0), pytape.Var(5.0)
    >>> y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    >>> d1, d2 = pytape.autograd.grad(y, [x1, x2])
    >>> d1, round(d2, 3)
    (5.5, 1.716)
    """
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
        if tape._consumed:
            raise TapeConsumedError(
                "backward() or autograd.grad() has already run through this tape and released it; "
                "pass retain_graph=True to the earlier call")
        if create_graph:
            _sweep_recorded(tape, outs, seeds, ins, results, used)
        else:
            _sweep(tape, outs, seeds, ins, results, used)
        if not retain_graph:
            tape._c.consume()
            tape._consumed = True
    for k, x in enumerate(ins):
        if not used[k]:
            if not allow_unused:
                raise RuntimeError(
                    f"inputs[{k}] was not used to compute the outputs; pass allow_unused=True "
                    f"to get None for it")
            results[k] = None
    return tuple(results)


def _inside_f(outputs):
    """True if outputs were recorded on a tape that a function transformation
    (not pytape.trace) records f on now: their gradient is part of f."""
    ys = list(outputs.ravel()) if isinstance(outputs, np.ndarray) else (
        [outputs] if isinstance(outputs, Var) else list(outputs) if isinstance(outputs, (list, tuple)) else [])
    return any(type(y) is Result and y._t._transforming and not y._t._guards for y in ys)


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
    for (k, _), g in zip(pairs, adj):
        if g is None:
            g = 0.0  # reached, but every path multiplies its adjoint away
        results[k] = g if not used[k] else results[k] + g
        used[k] = True
