"""A tape with its inputs and outputs, and the sweeps over it: the driver
that ``pytape.functional`` (grad, jacobian, hessian, ...), ``pytape.checks``
and ``pytape.trace`` share.

:class:`Program` turns derivative questions into C sweeps: a reverse sweep
gives a row of the Jacobian, a tangent sweep a column, a forward-over-reverse
sweep a Hessian-vector product, each up to 64 at a time (one block sweep per
64 seeds; fewer on a tape of more than 2^20 instructions, BLOCK_WORK).  :class:`Recording` makes a program by recording ``f`` once on a
fresh tape, its arguments' elements becoming leaves; ``pytape.trace`` makes
them from compiled tapes.

>>> import numpy as np
>>> rec = Recording(lambda x: np.sum(x ** 2), (np.array([1.0, 2.0]),), 0)
>>> rec.value, rec.rows(np.ones((1, 1)))[0].tolist()
(5.0, [[2.0, 4.0]])
"""
import numbers

import numpy as np

from . import _native
from .anomaly import explain
from .array_ops import _concatenate, _stack, reshape
from .ops import var_array
from .errors import MixedTapesError, OuterVar
from .tape import Tape, enable_grad
from .tensor import Tensor, TensorLeaf, TensorResult, _place_leaf, raw_value
from .tensor_trace import traced_arguments
from .var import Result, Var, arguments, place, slot_on, value_of

__all__ = ["Program", "Recording", "TensorRecording", "NeedsElements", "ArgName", "as_float_array", "check_argnums", "object_array", "scalar_output"]

BLOCK = 64  # rows or columns per block sweep
#: seeds x instructions of one block sweep at most: on a tape of more than
#: 2^20 instructions a pass takes fewer seeds, so that each C call stays short
#: (about 0.1-0.3 s; Ctrl-C is handled between two) and its lane arrays small
BLOCK_WORK = 1 << 26


def _width(tape):
    """Seeds per block sweep over ``tape``: BLOCK, fewer on a long tape."""
    return max(1, min(BLOCK, BLOCK_WORK // max(1, len(tape))))


class Program:
    """A tape with its inputs and outputs: what the sweeps below need.

    ``tape``; ``sizes``, ``shapes``, ``scalar_in`` of each argument;
    ``in_slots(j)`` the slots of argument j's elements (-1: not on the tape);
    ``out_shape`` and ``out_slots`` (-1: a constant output); ``single``: one
    argument rather than a tuple.
    """

    def in_slots(self, j):
        """Slots of the elements of argument j on the tape (-1: not on it)."""
        return self._in_slots[j]

    def all_in_slots(self):
        """in_slots of every argument, concatenated (cached)."""
        if "_all_in" not in self.__dict__:
            self._all_in = np.concatenate([np.array(self.in_slots(j), dtype=np.int64)
                                           for j in range(len(self.sizes))])
        return self._all_in

    def out_array(self):
        """out_slots as an int64 array (cached: the sweeps below take it at every call)."""
        if "_out_arr" not in self.__dict__:
            self._out_arr = np.array(self.out_slots, dtype=np.int64)
        return self._out_arr

    def in_array(self, j):
        """in_slots(j) as an int64 array (cached)."""
        cache = self.__dict__.setdefault("_in_arr", {})
        if j not in cache:
            cache[j] = np.array(self.in_slots(j), dtype=np.int64)
        return cache[j]

    def rows(self, seeds):
        """seeds (q, nout) -> [(q, nin_j) per argument]: reverse sweeps, up to 64 per pass."""
        q = seeds.shape[0]
        outs = self.out_array()
        has = outs >= 0
        ins = self.all_in_slots()
        used = ins >= 0
        width = _width(self.tape)
        bounds = np.cumsum([0] + self.sizes)
        if q <= width and has.all() and used.all() and len(ins):  # one pass, no copies
            with explain(self.tape):
                flat = self.tape._c.backward_block(outs, seeds.T, ins).T
            return [flat[:, bounds[j]:bounds[j + 1]] for j in range(len(self.sizes))]
        results = [np.zeros((q, size)) for size in self.sizes]
        if not has.any() or not used.any():
            return results
        out_slots, in_slots = outs[has], ins[used]
        flat = np.zeros((q, len(ins)))
        for start in range(0, q, width):
            block = seeds[start:start + width, has].T  # (nout, qb)
            with explain(self.tape):
                res = self.tape._c.backward_block(out_slots, block, in_slots)
            flat[start:start + block.shape[1], used] = res.T
        return [flat[:, bounds[j]:bounds[j + 1]] for j in range(len(self.sizes))]

    def columns(self, j, seeds):
        """seeds (nin_j, p) for argument j -> (nout, p): tangent sweeps."""
        p = seeds.shape[1]
        slots = self.in_array(j)
        used = slots >= 0
        outs = self.out_array()
        has = outs >= 0
        width = _width(self.tape)
        if p <= width and used.all() and has.all():  # one pass, no copies
            with explain(self.tape):
                return self.tape._c.tangent_block(slots, seeds, outs)
        result = np.zeros((len(self.out_slots), p))
        if not used.any() or not has.any():
            return result
        for start in range(0, p, width):
            block = seeds[used, start:start + width]
            with explain(self.tape):
                res = self.tape._c.tangent_block(slots[used], block, outs[has])
            result[has, start:start + block.shape[1]] = res
        return result

    def hvps(self, seeds):
        """seeds (nin, p) over all arguments' leaves -> (nin, p) of H v: forward over reverse."""
        scalar_output(self, "hessian")
        n, p = seeds.shape
        result = np.zeros((n, p))
        out = self.out_slots[0]
        ins = self.all_in_slots()
        used = ins >= 0
        if out < 0 or not used.any():
            return result
        width = _width(self.tape)
        if p <= width and used.all():  # one pass over every input: no copies
            with explain(self.tape):
                return self.tape._c.hvp_block(out, ins, seeds)
        for start in range(0, p, width):
            block = seeds[used, start:start + width]
            with explain(self.tape):  # anomaly mode: a nan or inf names its operation
                result[used, start:start + block.shape[1]] = self.tape._c.hvp_block(out, ins[used], block)
        return result

    #: a scalar result from an entry of a result array (a Var in pytape/nested.py)
    _number = float
    #: derivatives recorded on an outer tape, as Vars (pytape/nested.py)
    nested = False

    def shaped_in(self, j, flat):
        """A flat derivative w.r.t. argument j in the argument's shape (float for a scalar)."""
        return self._number(flat[0]) if self.scalar_in[j] else np.asarray(flat).reshape(self.shapes[j])

    def shaped_out(self, flat):
        """A flat array over the outputs in f's output shape (float for a scalar)."""
        return self._number(flat[0]) if self.out_shape == () else np.asarray(flat).reshape(self.out_shape)

    def pack(self, per_arg):
        return per_arg[0] if self.single else tuple(per_arg)

    def hessian(self):
        """The Hessian blocks: H[j][k] = d2f / dx_j dx_k, shape in_j.shape +
        in_k.shape (a float for two scalars), from Hessian-vector products
        with the unit vectors.  Entry (i, k) is component i of H e_k, the
        Jacobian of the gradient (as jax.hessian); symmetric up to rounding."""
        blocks = self.hessian_of(range(len(self.sizes)))
        return blocks[0][0] if self.single else tuple(tuple(row) for row in blocks)

    def hessian_of(self, ks):
        """The Hessian blocks [j][k] for the arguments at positions ks only:
        Hessian-vector products seeded on their elements."""
        ks = list(ks)
        bounds = np.cumsum([0] + self.sizes)
        cols = np.concatenate([np.arange(bounds[k], bounds[k + 1]) for k in ks]) if ks else np.zeros(0, int)
        seeds = np.zeros((bounds[-1], len(cols)))
        seeds[cols, np.arange(len(cols))] = 1.0
        H = self.hvps(seeds)  # column c is H e_cols[c]
        starts = np.cumsum([0] + [self.sizes[k] for k in ks])
        blocks = [[H[bounds[j]:bounds[j + 1], starts[b]:starts[b + 1]].reshape(
            tuple(self.shapes[j]) + tuple(self.shapes[k])) for b, k in enumerate(ks)] for j in ks]
        return [[self._number(b[()]) if b.ndim == 0 else b for b in row] for row in blocks]

    def jacobian(self, mode):
        """The Jacobian blocks per argument, shaped out.shape + in_j.shape,
        by reverse sweeps (mode "rev"), tangent sweeps ("fwd") or whichever
        needs fewer ("auto": a Jacobian of R^n -> R^m costs min(n, m) sweeps)."""
        if mode not in ("auto", "fwd", "rev"):
            raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
        m, n = len(self.out_slots), sum(self.sizes)
        use = mode if mode != "auto" else ("fwd" if n < m else "rev")
        if use == "rev":
            per_arg = self.rows(np.eye(m))  # (m, n_j) each
        else:
            per_arg = [self.columns(j, np.eye(size)) for j, size in enumerate(self.sizes)]
        jacs = [np.asarray(J).reshape(self.out_shape + tuple(self.shapes[j])) for j, J in enumerate(per_arg)]
        return self.pack([self._number(J[()]) if J.ndim == 0 else J for J in jacs])


class Recording(Program):
    """f recorded once: its tape, input leaves and output slots.

    With ``guards`` (pytape.trace), comparisons of Vars are recorded as guards.
    ``api`` names the caller in error messages ("argument 0 of pytape.grad(f)"),
    ``names`` (optional) each argument in them.  ``sealed`` (the function
    transformations): a Var from outside f's arguments that f uses (a closure
    over a leaf, a result of another tape) raises ``OuterVar`` instead of
    becoming a constant; pytape/functional.py then records f on the outer tape.
    """

    def __init__(self, f, args, argnums, has_aux=False, guards=False, api="pytape.grad", sealed=False,
                 names=None):
        self.single, self.argnums = check_argnums(argnums, api, len(args))
        args = list(args)
        self.shapes, self.scalar_in, self.leaves = [], [], []
        self.tape = Tape()
        with self.tape, enable_grad():  # a transformation records f even under no_grad (as torch.func)
            for k in self.argnums:
                arr = as_float_array(args[k], names[k] if names else ArgName(api, f, k))
                leaves = np.empty(arr.shape, dtype=object)
                flat = [Var(v) for v in arr.ravel()]
                for idx, leaf in zip(np.ndindex(arr.shape), flat):
                    leaves[idx] = leaf
                self.shapes.append(arr.shape)
                self.scalar_in.append(np.ndim(args[k]) == 0 and not isinstance(args[k], np.ndarray))
                self.leaves.append(flat)
                args[k] = flat[0] if self.scalar_in[-1] else var_array(leaves)
            self.sizes = [len(flat) for flat in self.leaves]
            with arguments(self.tape, [x for flat in self.leaves for x in flat], guards):
                out = _call_sealed(self.tape, f, args) if sealed else f(*args)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True, f must return a pair (output, aux)")
                out, self.aux = out
            self.value, self.out_shape, self.out_slots = self._outputs(out, sealed)

    def _outputs(self, out, sealed=False):
        """(numeric value, shape, slot of each output element or -1 for a constant)."""
        arr = object_array(out)
        values = np.empty(arr.shape)
        slots = []
        own = {id(x) for flat in self.leaves for x in flat} if sealed else ()
        for idx in np.ndindex(arr.shape):
            y = arr[idx]
            if isinstance(y, Var):
                values[idx] = value_of(y)
                if type(y) is Result:
                    if y._t is not self.tape:
                        if sealed:
                            raise OuterVar("f returned a result of another tape")
                        raise ValueError("f returned a Var recorded outside its own call; "
                                         "compute the output from f's arguments")
                    slots.append(slot_on(y, self.tape))
                elif y.requires_grad:  # f returned an input (a leaf) itself
                    if sealed and id(y) not in own:
                        raise OuterVar("f returned a leaf that is not one of its arguments")
                    place(y, self.tape)
                    slots.append(slot_on(y, self.tape))
                else:
                    slots.append(-1)
            elif isinstance(y, numbers.Real):
                values[idx] = float(y)
                slots.append(-1)  # a constant: zero derivative
            else:
                raise TypeError(f"f must return Vars or real numbers (or arrays of them), not {type(y).__name__}")
        value = float(values) if values.ndim == 0 else values
        return value, arr.shape, slots

    def in_slots(self, j):
        """Slots of the leaves of argument j on the tape (-1: f did not use it).

        Cached: the leaves are this recording's own, and a leaf keeps its slot."""
        cache = self.__dict__.setdefault("_in_slots_cache", {})
        if j not in cache:
            cache[j] = [slot_on(leaf, self.tape) for leaf in self.leaves[j]]
        return cache[j]


#: what the function API and compiled functions take as an argument
ACCEPTED = ("a real number (int, float, bool, a numpy integer, floating or bool scalar) or a list, tuple "
            "or numpy array of them")


_MASKED = np.ma.MaskedArray


class ArgName:
    """How a message names argument k of ``api(f)`` ("argument 0 of
    pytape.grad(f), at ['w']"); the text is made only when a message is."""

    __slots__ = ("api", "f", "k", "tree", "j")

    def __init__(self, api, f, k, tree=None, j=0):
        self.api, self.f, self.k, self.tree, self.j = api, f, k, tree, j

    def __str__(self):
        base = f"argument {self.k} of {self.api}({_name(self.f)})"
        return base if self.tree is None or self.tree.is_leaf else f"{base}, at {self.tree.paths()[self.j]}"



def object_array(x):
    """x (f's output, an argument) as a numpy object array: a list, tuple or
    array as numpy makes it, anything else in a 0-d array."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return np.asarray(x, dtype=object)
    arr = np.empty((), dtype=object)
    arr[()] = x
    return arr


def _call_sealed(tape, f, args):
    """f(*args) on a sealed tape: a Var from outside f raises OuterVar
    (pytape/var.py place) or MixedTapesError (mixed with a result of this
    tape), even if f caught the first."""
    tape._sealed = True
    try:
        out = f(*args)
    except MixedTapesError:
        raise OuterVar("f mixed a result of another tape with its own") from None
    finally:
        seen, tape._sealed = tape._sealed, False
    if seen == 2:
        raise OuterVar("f used a Var that is not one of its arguments")
    return out


def _name(f):
    """f's name for messages ("f" for a lambda)."""
    name = getattr(f, "__name__", "f")
    return "f" if not isinstance(name, str) or name == "<lambda>" else name


def _is_real(v):
    """True for an element the function API accepts: a real number, not a Var."""
    if isinstance(v, np.generic):
        return v.dtype.kind in "biuf"
    return isinstance(v, numbers.Real) and not isinstance(v, Var)


def _what_is(x):
    if x is None:
        return "None"
    if isinstance(x, np.ma.MaskedArray):
        return "a numpy masked array"
    if isinstance(x, np.ndarray):
        return f"a numpy array of dtype {x.dtype}"
    if isinstance(x, np.generic):
        return f"numpy.{type(x).__name__} {x!r}"
    return type(x).__name__


def as_float_array(x, what):
    """x as a float numpy array; TypeError naming ``what`` unless x is real
    numbers: ``ACCEPTED`` (a bool counts as 0 or 1, as in numpy).  None,
    strings, complex numbers, datetimes and timedeltas, masked arrays (their
    mask would be lost) and Vars are refused, never coerced.

    >>> as_float_array([1, 2.5], "x").tolist()
    [1.0, 2.5]
    >>> as_float_array(None, "argument 0 of pytape.grad(f)")
    Traceback (most recent call last):
    TypeError: argument 0 of pytape.grad(f) must be a real number (int, float, bool, ...) ..., not None
    """
    tx = type(x)
    if tx is float or tx is int or tx is bool:
        return np.asarray(x, dtype=float)
    if (tx is np.ndarray or tx is np.float64) and x.dtype.kind in "biuf":  # the usual arrays, no subclass
        return np.asarray(x, dtype=float)
    if isinstance(x, Var):
        raise TypeError(f"{what} is a Var: pass numbers (x.value) to pytape.grad and friends")
    if isinstance(x, (np.ndarray, np.generic)):
        arr = x
    elif isinstance(x, numbers.Real):  # fractions.Fraction and other real number types
        return np.asarray(float(x))
    elif isinstance(x, (list, tuple)) or hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        try:
            arr = np.asarray(x)  # no dtype: None, text, complex, datetimes show in the dtype
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} must be {ACCEPTED}; {tx.__name__} does not convert to an array "
                            f"({exc})") from None
    else:
        raise TypeError(f"{what} must be {ACCEPTED}, not {_what_is(x)}")
    if isinstance(arr, _MASKED) or (arr.ndim > 1 and isinstance(x, (list, tuple)) and any(
            isinstance(v, _MASKED) for v in x)):  # a list of masked rows loses the masks too
        raise TypeError(f"{what} is a numpy masked array: pytape would use the masked entries too; "
                        f"pass x.filled(value) or x.compressed() (or np.asarray(x) for its data)")
    kind = arr.dtype.kind
    if kind == "O":
        for v in arr.flat:
            if isinstance(v, Var):
                raise TypeError(f"{what} holds Vars: pass numbers (x.value) to pytape.grad and friends")
            if not _is_real(v):
                raise TypeError(f"{what} must be {ACCEPTED}; it holds {_what_is(v)}")
        return arr.astype(float)
    if kind not in "biuf":
        raise TypeError(f"{what} must be {ACCEPTED}, not {_what_is(arr)}")
    return np.asarray(arr, dtype=float)


def check_argnums(argnums, api, nargs=None):
    """(single, argnums as a tuple of ints) for ``argnums`` (an int or a
    sequence of ints); TypeError or ValueError naming ``api`` otherwise.
    With ``nargs``, each must name one of that many positional arguments,
    and none twice (-1 and nargs - 1 are the same argument).

    >>> check_argnums(1, "pytape.grad"), check_argnums((0, -1), "pytape.grad", 3)
    ((True, (1,)), (False, (0, -1)))
    """
    if type(argnums) is int and (nargs is None or -nargs <= argnums < nargs):  # the usual case, quickly
        return True, (argnums,)
    single = not isinstance(argnums, (tuple, list))
    ks = (argnums,) if single else tuple(argnums)
    for k in ks:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral, np.integer)):
            raise TypeError(f"argnums of {api} must be an int or a tuple of ints (positions of the arguments "
                            f"to differentiate), not {argnums!r}")
    ks = tuple(int(k) for k in ks)
    if nargs is None:
        seen = ks
    else:
        for k in ks:
            if not -nargs <= k < nargs:
                raise ValueError(f"argnums {k} is out of range for {nargs} positional arguments: pass the "
                                 f"arguments to differentiate positionally, or change argnums of {api} "
                                 f"(counted from 0; -1 is the last)")
        seen = tuple(k % nargs for k in ks)
    if len(set(seen)) != len(seen):
        raise ValueError(f"argnums {argnums!r} of {api} names an argument twice; list each argument once")
    return single, ks


def scalar_output(program, name):
    """TypeError unless the program has one output (a scalar or an array of size 1)."""
    if len(program.out_slots) != 1:
        raise TypeError(f"{name} needs f to return a scalar, got shape {program.out_shape}; "
                        f"use pytape.jacobian or pytape.vjp for vector outputs")


class NeedsElements(Exception):
    """A Tensor recording of f met something only object arrays of Vars do (a
    transformation inside f, a Var from outside f's arguments): the caller
    records f again on object arrays (pytape/functional.py)."""


class TensorRecording(Program):
    """f recorded once with its array arguments as ``pytape.Tensor`` leaves
    (one instruction per numpy operation) and its scalar arguments as Vars;
    the sweeps are ``backward`` with an array seed (a row of the Jacobian)
    and the tangent sweep with array seeds (a column), each one C call.

    The same interface as :class:`Recording`; ``out_slots`` has one entry per
    output element (all the output's slot, or -1 for a constant output),
    ``kind`` says what the output is: "array" (an array slot), "scalar" (a
    Var's slot) or "constant".

    >>> rec = TensorRecording(lambda x: np.sum(x ** 2), (np.array([1.0, 2.0]),), 0)
    >>> rec.value, rec.rows(np.ones((1, 1)))[0].tolist()
    (5.0, [[2.0, 4.0]])
    """

    def __init__(self, f, args, argnums, has_aux=False, api="pytape.grad", names=None, guards=False, data=()):
        # data: positions (in args) of array arguments recorded as constants, not leaves: inputs of
        # pytape.trace's replays whose derivatives are not asked for (a batch of training data)
        self.single, self.argnums = check_argnums(argnums, api, len(args))
        args = list(args)
        self.shapes, self.scalar_in, self.sizes, self._slots, self._is_array = [], [], [], [], []
        self._data = [False] * len(self.argnums)  # per argument: recorded as a constant (no derivatives)
        self.tape = Tape()
        if guards:  # pytape.trace: replays recompute every value in place (no buffer recycled)
            self.tape._c.keep_values()
        own_cells, var_leaves, traced = set(), [], set()
        with self.tape, enable_grad():
            for k in self.argnums:
                arr = as_float_array(args[k], names[k] if names else ArgName(api, f, k))
                scalar = np.ndim(args[k]) == 0 and not isinstance(args[k], np.ndarray)
                if scalar:
                    leaf = Var(float(arr))
                    var_leaves.append(leaf)
                else:
                    leaf = TensorLeaf._make(np.array(arr, dtype=np.float64, order="C"), k not in data)
                    self._data[len(self.shapes)] = k in data
                    leaf._seal()  # f reading its value must not place it again
                    traced.add(id(leaf))
                    h = _place_leaf(leaf, self.tape)
                    if h < 0:
                        _native.check(h, "record", self.tape._c)
                    self._slots.append(h >> _native.ID_BITS)
                own_cells.add(id(leaf._g))
                if not scalar:
                    own_cells.add(id(leaf._gs))
                self.shapes.append(arr.shape)
                self.scalar_in.append(scalar)
                self.sizes.append(arr.size)
                self._is_array.append(not scalar)
                if scalar:
                    self._slots.append(None)  # filled once placed (below)
                args[k] = leaf
            with arguments(self.tape, var_leaves, guards), traced_arguments(self.tape, traced, guards):
                out = _call_sealed(self.tape, f, args)
            vs = iter(var_leaves)
            for j, a in enumerate(self._is_array):
                if not a:
                    self._slots[j] = slot_on(next(vs), self.tape)
            if any(id(c) not in own_cells for c in self.tape._cells):
                raise TypeError(f"f uses a Tensor leaf that requires grad and is not one of its arguments "
                                f"({api} would add to its .grad): pass it as an argument (argnums) or "
                                f"detach() it")
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True, f must return a pair (output, aux)")
                out, self.aux = out
            self._outputs(out)

    def _outputs(self, out):
        out = _as_output(out)
        if isinstance(out, Tensor):
            if type(out) is TensorLeaf:
                if out.requires_grad:  # one of f's arguments returned as it is (or another leaf)
                    out = out + 0.0
                else:
                    out = np.array(raw_value(out))
            elif out._t is not self.tape:
                raise NeedsElements("f returned a Tensor recorded on another tape")
        elif isinstance(out, Var) and out.requires_grad:
            if type(out) is not Result:  # a scalar argument returned as it is
                out = out * 1.0
            if type(out) is Result and out._t is not self.tape:
                raise NeedsElements("f returned a Var recorded on another tape")
        if isinstance(out, TensorResult):
            self.kind, self._out = "array", out._i >> _native.ID_BITS
            self.out_shape = tuple(out.shape)
            v = np.array(raw_value(out))
        elif type(out) is Result:
            self.kind, self._out, self.out_shape = "scalar", slot_on(out, self.tape), ()
            v = np.asarray(value_of(out))
        else:
            self.kind, self._out = "constant", -1
            arr = object_array(out)
            for y in arr.flat:
                if not (isinstance(y, (numbers.Real, np.bool_)) or isinstance(y, Var)):
                    raise TypeError(f"f must return Vars, Tensors or real numbers (or arrays of them), "
                                    f"not {type(y).__name__}")
            v = np.vectorize(lambda y: value_of(y) if isinstance(y, Var) else float(y), otypes=[float])(arr) \
                if arr.size else np.zeros(arr.shape)
            self.out_shape = arr.shape
        self.value = float(v) if v.ndim == 0 else v
        n = int(np.prod(self.out_shape, dtype=np.int64))
        self.out_slots = [self._out] * n

    def in_slots(self, j):
        raise NotImplementedError("a Tensor recording has one slot per argument, not per element")

    def _adjoint(self, j):
        c = self.tape._c
        if not self._is_array[j]:
            return np.array([c.adjoint(self._slots[j])])
        g = _native.arr_adjoint(self.tape, c, self._slots[j], self.shapes[j])
        return np.zeros(self.sizes[j]) if g is None else g.reshape(-1)

    def rows(self, seeds):
        """seeds (q, nout) -> [(q, nin_j) per argument]: one reverse sweep per row."""
        q = seeds.shape[0]
        results = [np.zeros((q, size)) for size in self.sizes]
        if self.kind == "constant":
            return results
        c = self.tape._c
        for r in range(q):
            if not seeds[r].any():
                continue
            with explain(self.tape):
                if self.kind == "array":
                    _native.backward_array(c, self._out, np.ascontiguousarray(seeds[r], dtype=np.float64), True)
                else:
                    c.backward(self._out, float(seeds[r][0]), True)
            for j in range(len(self.sizes)):
                results[j][r] = self._adjoint(j)
        return results

    def _tangent(self, vectors):
        """The output's tangent (flat) for one tangent vector per argument (flat, or None: zero)."""
        n = len(self.out_slots)
        if self.kind == "constant":
            return np.zeros(n)
        slots, seeds, aslots, aseeds = [], [], [], []
        for j, v in enumerate(vectors):
            if v is None or self._data[j]:  # a constant argument: no tangent
                continue
            if self._is_array[j]:
                aslots.append(self._slots[j])
                aseeds.append(np.ascontiguousarray(v, dtype=np.float64).reshape(self.shapes[j]))
            else:
                slots.append(self._slots[j])
                seeds.append(float(v[0]))
        c = self.tape._c
        with explain(self.tape):
            _native.tangent_sweep_arrays(c, slots, seeds, aslots, aseeds)
        if self.kind == "scalar":
            return np.array([c.tangent(self._out)])
        d = _native.arr_tangent(self.tape, c, self._out, self.out_shape)
        return np.zeros(n) if d is None else d.reshape(-1)

    def columns(self, j, seeds):
        """seeds (nin_j, p) for argument j -> (nout, p): one tangent sweep per column."""
        p = seeds.shape[1]
        result = np.zeros((len(self.out_slots), p))
        for col in range(p):
            if seeds[:, col].any():
                vectors = [None] * len(self.sizes)
                vectors[j] = seeds[:, col]
                result[:, col] = self._tangent(vectors)
        return result

    def tangents(self, vectors):
        """J @ (tangent of every argument), flat over the outputs: one tangent sweep."""
        return self._tangent([np.asarray(v, dtype=np.float64).reshape(-1) for v in vectors])

    def hvps(self, seeds):
        """seeds (nin, p) over all arguments' elements -> (nin, p) of H v: one
        tangent sweep and one forward-over-reverse sweep per column, in C."""
        scalar_output(self, "hessian")
        n, p = seeds.shape
        result = np.zeros((n, p))
        if self.kind == "constant":
            return result
        seeds = np.asarray(seeds, dtype=np.float64)
        bounds = np.cumsum([0] + self.sizes)
        arrays = [j for j, a in enumerate(self._is_array) if a and not self._data[j]]  # constants: no tangent
        scalars = [j for j, a in enumerate(self._is_array) if not a]
        c = self.tape._c
        aslots, sizes = [self._slots[j] for j in arrays], [self.sizes[j] for j in arrays]
        direct = not scalars and p == 1 and len(arrays) == len(self.sizes)  # seeds, results in place: no copies
        for col in range(p):
            column = seeds[:, col]
            if not column.any():
                continue
            if direct:
                flat, ares = column, result[:, 0]
            else:
                flat = np.concatenate([column[bounds[j]:bounds[j + 1]] for j in arrays]) if arrays else np.zeros(0)
                ares = np.empty(flat.size)
            with explain(self.tape):
                sres = _native.hvp_arrays(c, self._out, [self._slots[j] for j in scalars],
                                          [column[bounds[j]] for j in scalars], aslots, sizes, flat, ares)
            if direct:
                continue
            for j, r in zip(scalars, sres):
                result[bounds[j], col] = r
            starts = np.cumsum([0] + sizes)
            for j, a, b in zip(arrays, starts[:-1], starts[1:]):
                result[bounds[j]:bounds[j + 1], col] = ares[a:b]
        return result


def _as_output(out):
    """f's output with lists, tuples and object arrays holding Tensors or
    Vars made one Tensor (numpy's stacking, one CONCAT); anything else as it is."""
    if not (isinstance(out, (list, tuple)) or isinstance(out, np.ndarray) and out.dtype == object):
        return out
    try:
        shape = np.shape(_shape_probe(out))
    except ValueError:  # ragged: numpy refuses it too (below, as an output)
        return out
    parts = []
    if not _pieces(out, parts):
        return out
    return reshape(_concatenate(parts), shape) if parts else np.zeros(shape)


def _pieces(out, parts):
    """out's elements in C order as 1-d pieces (Tensors, float arrays) into
    parts; True if one of them is recorded (a Tensor or a Var)."""
    if isinstance(out, Tensor):
        parts.append(reshape(out, (-1,)))
        return True
    if isinstance(out, Var):
        parts.append(_stack([out]))
        return out.requires_grad
    if isinstance(out, (list, tuple)) or isinstance(out, np.ndarray) and out.dtype == object:
        seen = False
        for y in (out.flat if isinstance(out, np.ndarray) else out):
            seen = _pieces(y, parts) or seen
        return seen
    parts.append(np.ravel(np.asarray(out, dtype=np.float64)))
    return False


def _shape_probe(out):
    """out with each Tensor replaced by a probe of its shape (numpy's shape of a nested list)."""
    if isinstance(out, (list, tuple)):
        return [_shape_probe(y) for y in out]
    if isinstance(out, np.ndarray) and out.dtype == object:
        return _shape_probe(out.tolist()) if out.ndim else _shape_probe(out[()])
    if isinstance(out, Tensor):
        return np.zeros(out.shape)
    return 0.0 if isinstance(out, Var) else out
