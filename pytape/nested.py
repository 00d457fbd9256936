"""Transformations inside transformations: ``grad(grad(f))``, a ``grad``
whose function closes over an outer ``Var``, ``jacobian(grad(f))``.

A function transformation (grad, jacobian, hessian, ...) records f on a
fresh tape of its own and answers with numbers (pytape/program.py).  When its
arguments hold Vars, when it runs inside another transformation's f, or when
f turns out to use a Var from outside its arguments (a closure over a leaf,
a result of the current tape), the numbers would be derivatives with the
outer Vars held constant: silently wrong for whoever differentiates the
result.  Then :class:`NestedRecording` records f on the outer tape instead,
and records the inner sweeps there as well, through the create_graph
machinery (pytape/higher_order.py ``adjoints``).  Its results are Vars, which
the outer transformation, or the user's ``backward()``, differentiates again,
to any depth.

Each argument of the inner f is a slot of its own (``x * 1.0`` for a Var
argument): the inner derivative is the adjoint at that slot, never mixed with
paths through the outer x, so there is no perturbation confusion.  These
sweeps run Python per recorded instruction, like ``create_graph=True``.

>>> import pytape
>>> f = lambda x: x * pytape.grad(lambda y: x + y)(x)   # x * 1: d/dx = 1, not 2
>>> pytape.grad(f)(3.0)
1.0
>>> pytape.grad(pytape.grad(lambda x: x ** 4))(2.0)    # 12 x**2
48.0
"""
import numbers

import numpy as np

from .higher_order import adjoints
from .ops import var_array
from .program import ACCEPTED, ArgName, Program, _is_real, _what_is, check_argnums, object_array, scalar_output
from .tape import current_tape, enable_grad
from .var import _ARGS, Leaf, Result, Var, arguments, place, slot_on

__all__ = ["NestedRecording", "NestedTensorRecording", "holds_vars", "inside_transformation"]


def holds_vars(x):
    """True if x is a Var that requires grad, or an array or sequence holding one."""
    tx = type(x)
    if tx is float or tx is int or tx is np.ndarray and x.dtype != object:
        return False
    if isinstance(x, Var):
        return x.requires_grad
    if isinstance(x, np.ndarray):
        return x.dtype == object and any(holds_vars(v) for v in x.flat)
    if tx is list or tx is tuple:
        return any(holds_vars(v) for v in x)
    if isinstance(x, dict):
        return any(holds_vars(v) for v in x.values())
    return False


def inside_transformation():
    """True while a function transformation records f in this thread (or
    asyncio task): an inner transformation must record on that tape."""
    return bool(_ARGS.get())


def _constant(v):
    return Leaf._make(float(v), False)


def as_var(x):
    """x as a Var: a number becomes a constant (results never change type with the point)."""
    if isinstance(x, Var):
        return x
    return _constant(0.0 if x is None else x)


def _outer_tape(args):
    """The tape the nested recording goes to: that of the Results among
    the arguments (one tape), else the current tape."""
    tapes = []
    for a in args:
        for v in (a.flat if isinstance(a, np.ndarray) else [a]):
            if type(v) is Result and v._t not in tapes:
                tapes.append(v._t)
    if len(tapes) > 1:
        raise ValueError("the arguments hold Vars recorded on different tapes; compute them on one tape")
    return tapes[0] if tapes else current_tape()


def _input(x, what):
    """A new slot for one element of an argument: ``x * 1.0`` for a Var
    that requires grad (its value, and the outer derivative flows through),
    a new leaf for a number."""
    if isinstance(x, Var):
        if x.requires_grad:
            return x * 1.0
        return Var(x.value)
    if _is_real(x):
        return Var(float(x))
    raise TypeError(f"{what} must be {ACCEPTED} or Vars; it holds {_what_is(x)}")


class NestedRecording(Program):
    """f recorded on the outer tape; rows, columns and Hessian-vector
    products recorded there too, as object arrays of Vars.

    The same interface as pytape.program.Recording, which functional.py
    uses; ``value`` is f's output itself (Vars)."""

    nested = True
    _number = staticmethod(as_var)

    def __init__(self, f, args, argnums, has_aux=False, api="pytape.grad", names=None):
        self.single, self.argnums = check_argnums(argnums, api, len(args))
        args = list(args)
        self.tape = _outer_tape([args[k] for k in self.argnums])
        self.shapes, self.scalar_in, self.leaves = [], [], []
        with self.tape, enable_grad():
            for k in self.argnums:
                what = names[k] if names else ArgName(api, f, k)
                arr = object_array(args[k])
                nodes = np.empty(arr.shape, dtype=object)
                for idx in np.ndindex(arr.shape):
                    nodes[idx] = _input(arr[idx], what)
                flat = list(nodes.ravel())
                self.shapes.append(arr.shape)
                self.scalar_in.append(arr.ndim == 0 and not isinstance(args[k], np.ndarray))
                self.leaves.append(flat)
                args[k] = flat[0] if self.scalar_in[-1] else var_array(nodes)
            self.sizes = [len(flat) for flat in self.leaves]
            inputs = [x for flat in self.leaves for x in flat]
            sealed, self.tape._sealed = self.tape._sealed, False  # an outer recording's tape: these
            try:                                                   # new leaves are not closures
                for x in inputs:
                    place(x, self.tape)
            finally:
                self.tape._sealed = sealed
            with arguments(self.tape, inputs):
                out = f(*args)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True, f must return a pair (output, aux)")
                out, self.aux = out
            self._outputs(out)
        self._in = [slot_on(x, self.tape) for flat in self.leaves for x in flat]

    def _outputs(self, out):
        arr = object_array(out)
        slots = []
        for idx in np.ndindex(arr.shape):
            y = arr[idx]
            if type(y) is Result:
                if y._t is not self.tape:
                    raise ValueError("f returned a Var recorded on another tape than its arguments; compute "
                                     "the output from f's arguments")
                slots.append(slot_on(y, self.tape))
            elif isinstance(y, Var) and y.requires_grad:
                place(y, self.tape)
                slots.append(slot_on(y, self.tape))
            elif isinstance(y, (Var, numbers.Real)):
                slots.append(-1)
            else:
                raise TypeError(f"f must return Vars or real numbers (or arrays of them), not {type(y).__name__}")
        self.out_shape, self.out_slots = arr.shape, slots
        self.value = arr[()] if arr.ndim == 0 else arr

    def in_slots(self, j):
        start = sum(self.sizes[:j])
        return self._in[start:start + self.sizes[j]]

    def _sweep(self, outs, seeds):
        """Adjoints of every input for seeds on output slots, recorded: a flat list of Vars."""
        pairs = [(s, g) for s, g in zip(outs, seeds) if s >= 0 and (isinstance(g, Var) or g != 0.0)]
        if not pairs:
            return [_constant(0.0)] * len(self._in)
        with self.tape, enable_grad():
            adj = adjoints(self.tape, [s for s, _ in pairs], [g for _, g in pairs], self._in)
        return [as_var(g) for g in adj]

    def rows(self, seeds):
        """seeds (q, nout) -> [(q, nin_j) object arrays per argument]: recorded reverse sweeps."""
        flat = np.array([self._sweep(self.out_slots, list(row)) for row in seeds], dtype=object)
        flat = flat.reshape(len(seeds), len(self._in))
        bounds = np.cumsum([0] + self.sizes)
        return [flat[:, bounds[j]:bounds[j + 1]] for j in range(len(self.sizes))]

    def columns(self, j, seeds):
        """seeds (nin_j, p) -> (nout, p): J times the seeds, J from recorded reverse sweeps."""
        if "_jac" not in self.__dict__:
            self._jac = self.rows(np.eye(len(self.out_slots)))
        with self.tape, enable_grad():
            return np.dot(self._jac[j], np.asarray(seeds, dtype=object))

    def hvps(self, seeds):
        """seeds (nin, p) -> (nin, p) of H v: the gradient recorded, then one
        recorded reverse sweep of (gradient . v) per column."""
        scalar_output(self, "hessian")
        if "_grad" not in self.__dict__:
            self._grad = self._sweep(self.out_slots, [1.0])
        n, p = seeds.shape
        result = np.empty((n, p), dtype=object)
        for c in range(p):
            with self.tape, enable_grad():
                s = sum(g * v for g, v in zip(self._grad, seeds[:, c]) if isinstance(v, Var) or v != 0.0)
            if isinstance(s, Var) and s.requires_grad:
                place(s, self.tape)
                result[:, c] = self._sweep([slot_on(s, self.tape)], [1.0])
            else:
                result[:, c] = [_constant(0.0)] * n
        return result


# ---- Tensors: transformations inside transformations on array tapes -----------------------

class NestedTensorRecording(Program):
    """f recorded on the outer tape with its array arguments as Tensors (one
    instruction per numpy operation); its derivatives recorded there too, as
    Tensor operations (pytape/array_adjoints.py), so that the outer
    transformation, or the user's ``backward()``, differentiates them again.

    Each argument is a slot of its own (``x * 1.0``), as in NestedRecording.
    ``rows`` are recorded reverse sweeps; ``columns`` and ``tangents`` (jvp,
    jacfwd) two of them per direction (J v as the vjp of a vjp); ``hvps``
    are recorded reverse sweeps of (gradient . v).

    >>> import numpy as np, pytape
    >>> f = lambda x: np.sum(x ** 3)
    >>> pytape.grad(lambda x: np.sum(pytape.grad(f)(x)))(np.array([1.0, 2.0]))   # 6 x
    array([ 6., 12.])
    """

    nested = True
    tensor = True

    def __init__(self, f, args, argnums, has_aux=False, api="pytape.grad", names=None):
        from .array_ops import ROWS
        from .program import _as_output
        from .tensor import Tensor, TensorLeaf, TensorResult, tape_of
        self.single, self.argnums = check_argnums(argnums, api, len(args))
        args = list(args)
        self.tape = tape_of([args[k] for k in self.argnums])
        self.shapes, self.scalar_in, self.sizes = [], [], []
        self._Tensor = Tensor
        mul = ROWS["mul"]
        with self.tape, enable_grad():
            inputs = []
            for k in self.argnums:
                a = args[k]
                x = a if isinstance(a, Tensor) else TensorLeaf._make(np.array(a, dtype=np.float64), False)
                x = mul(x, 1.0)  # a slot of its own: the inner derivative is the adjoint here
                inputs.append(x)
                self.shapes.append(tuple(x.shape))
                self.scalar_in.append(False)
                self.sizes.append(int(np.prod(x.shape, dtype=np.int64)))
                args[k] = x
            out = f(*args)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True, f must return a pair (output, aux)")
                out, self.aux = out
            out = _as_output(out)
        self._in = [x.slot for x in inputs]
        if isinstance(out, TensorResult) and out._t is self.tape or isinstance(out, Result) and out._t is self.tape:
            self._out = out.slot if isinstance(out, TensorResult) else slot_on(out, self.tape)
            self.out_shape = tuple(out.shape) if isinstance(out, Tensor) else ()
        elif isinstance(out, (TensorResult, Result)):
            raise ValueError("f returned a value recorded on another tape than its arguments; compute the output "
                             "from f's arguments")
        else:
            self._out = -1
            self.out_shape = tuple(out.shape) if isinstance(out, Tensor) else tuple(np.shape(out))
        self.value = out
        n = int(np.prod(self.out_shape, dtype=np.int64))
        self.out_slots = [self._out] * n

    def _number(self, v):
        return v

    def shaped_in(self, j, flat):
        from .array_ops import reshape
        return reshape(flat, self.shapes[j]) if isinstance(flat, self._Tensor) else np.reshape(flat, self.shapes[j])

    def shaped_out(self, flat):
        from .array_ops import reshape
        return reshape(flat, self.out_shape) if isinstance(flat, self._Tensor) else np.reshape(flat, self.out_shape)

    def _adjoints(self, seed):
        """The recorded adjoints of every argument (flat Tensors) for one seed over the outputs."""
        from .array_adjoints import tensor_adjoints
        from .array_ops import reshape
        if self._out < 0:
            return [np.zeros(n) for n in self.sizes]
        with self.tape, enable_grad():
            if isinstance(seed, self._Tensor):
                seed = reshape(seed, self.out_shape)
            else:
                seed = np.asarray(seed, dtype=np.float64).reshape(self.out_shape)
            adj = tensor_adjoints(self.tape, [self._out], [seed], self._in)
            return [np.zeros(n) if a is None else reshape(a, (-1,)) for a, n in zip(adj, self.sizes)]

    def rows(self, seeds):
        """seeds (q, nout) -> [(q, nin_j) per argument]: one recorded reverse sweep per row."""
        from .array_ops import _stack
        per_row = [self._adjoints(seeds[r]) for r in range(len(seeds))]
        with self.tape, enable_grad():
            return [_stack([row[j] for row in per_row]) for j in range(len(self.sizes))]

    def columns(self, j, seeds):
        """seeds (nin_j, p) -> (nout, p): J_j @ seeds, two recorded reverse
        sweeps per column: w(u) = u J is linear in a cotangent u (a slot of
        its own), and J v is the adjoint of u in w(u) . v."""
        from .array_adjoints import tensor_adjoints
        from .array_ops import ROWS, _stack, reshape, sum as tsum
        from .tensor import TensorLeaf
        seeds = np.asarray(seeds, dtype=np.float64)
        cols = []
        for c in range(seeds.shape[1]):
            if self._out < 0:
                cols.append(np.zeros(len(self.out_slots)))
                continue
            with self.tape, enable_grad():
                u = ROWS["mul"](TensorLeaf._make(np.zeros(self.out_shape), False), 1.0)  # any value: w is linear in u
                (w,) = tensor_adjoints(self.tape, [self._out], [u], [self._in[j]])
                if w is None:
                    cols.append(np.zeros(len(self.out_slots)))
                    continue
                s = tsum(w * seeds[:, c].reshape(self.shapes[j]))
                (jv,) = tensor_adjoints(self.tape, [s.slot], [np.ones(())], [u.slot])
                cols.append(np.zeros(len(self.out_slots)) if jv is None else reshape(jv, (-1,)))
        with self.tape, enable_grad():
            return _stack(cols, axis=1)

    def tangents(self, vectors):
        """J @ (every argument's tangent), flat over the outputs."""
        out = None
        for j, v in enumerate(vectors):
            c = self.columns(j, np.reshape(v, (-1, 1)))[:, 0]
            out = c if out is None else out + c
        return out

    def hvps(self, seeds):
        """seeds (nin, p) -> (nin, p) of H v: the gradient recorded, then one
        recorded reverse sweep of (gradient . v) per column."""
        from .array_adjoints import tensor_adjoints
        from .array_ops import _concatenate, _stack, sum as tsum
        scalar_output(self, "hessian")
        if "_grad" not in self.__dict__:
            self._grad = self._adjoints(np.ones(self.out_shape))
        bounds = np.cumsum([0] + self.sizes)
        cols = []
        for c in range(seeds.shape[1]):
            with self.tape, enable_grad():
                s = None
                for j, g in enumerate(self._grad):
                    if isinstance(g, self._Tensor):
                        t = tsum(g * seeds[bounds[j]:bounds[j + 1], c])
                        s = t if s is None else s + t
                if s is None:
                    cols.append(np.zeros(bounds[-1]))
                    continue
                adj = tensor_adjoints(self.tape, [s.slot], [np.ones(())], self._in)
                parts = [np.zeros(n) if a is None else a.reshape(-1) for a, n in zip(adj, self.sizes)]
                cols.append(_concatenate(parts))
        with self.tape, enable_grad():
            return _stack(cols, axis=1)

    def jacobian(self, mode):
        """The Jacobian blocks per argument (out.shape + in_j.shape) from recorded reverse sweeps."""
        from .array_ops import reshape
        if mode not in ("auto", "fwd", "rev"):
            raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
        per_arg = self.rows(np.eye(len(self.out_slots)))
        with self.tape, enable_grad():
            return self.pack([reshape(J, self.out_shape + tuple(self.shapes[j])) for j, J in enumerate(per_arg)])
