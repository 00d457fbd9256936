"""Function transformations in the style of JAX and HIPS autograd: ``grad``,
``value_and_grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``jacobian``,
``hessian``, ``hvp``.

Each records ``f`` once on a fresh tape (its inputs become leaves) and then
runs C sweeps over that tape (pytape/program.py): a reverse sweep gives a row
of the Jacobian, a tangent sweep a column.  An argument is a pytree
(pytape/trees.py): nested tuples, lists and dicts whose leaves are real
numbers or numpy arrays of any shape (anything else raises ``TypeError``
naming the argument: ``pytape.program.as_float_array``), so numpy code such
as ``np.sum(np.sin(x) ** 2)`` differentiates unchanged.

Which arrays ``f`` gets: the first-order transformations (grad,
value_and_grad, vjp, jvp, jacobian, jacfwd, jacrev) at top level give it
``pytape.Tensor`` leaves for array arguments, numbers staying ``Var`` s
(``program.TensorRecording``: one instruction per numpy operation; a reverse
sweep seeded with an array, a tangent sweep seeded with arrays).  Object
arrays of ``Var`` s (``program.Recording``, block sweeps of up to 64 rows or
columns per pass) are used with ``elementwise=True``, for ``hessian`` and
``hvp``, when nested (pytape/nested.py), and when a Tensor recording of f
meets what only they do: a transformation or a custom primitive inside f, a
``Var`` from outside its arguments, Tensors inside numpy object arrays
(``np.array([t[0], t[1]])``); then f runs
again on object arrays.  A numpy function without an array rule raises its
``TypeError``, with a hint to pass ``elementwise=True``.  Results follow numpy shapes (a Jacobian has shape
``out.shape + in.shape``), the argument's tree, and the dtype of a float
array or numpy float scalar argument (the tape computes in float64).

Transformations compose (pytape/nested.py): with Vars among the arguments,
inside another transformation's f, or when f uses a Var from outside its
arguments, f is recorded on the outer tape and the results are Vars.

>>> import numpy as np, pytape
>>> f = lambda x: np.sum(np.sin(x) ** 2)
>>> g = pytape.grad(f)(np.array([0.5, 1.0]))
>>> np.allclose(g, np.sin(2 * np.array([0.5, 1.0])))
True
"""
import contextvars

import numpy as np

from .nested import NestedRecording, NestedTensorRecording, holds_vars, inside_transformation
from .errors import OuterVar
from .program import (ArgName, NeedsElements, Recording, TensorRecording, _pieces, as_float_array, check_argnums,
                      object_array, scalar_output)
from .tape import is_grad_enabled
from .trees import LEAF, flatten, map_leaves
from .program import _shape_probe
from .tensor import Tensor, TensorLeaf
from .array_ops import _concatenate, reshape
from .var import Var, value_of

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "jacobian", "hessian", "hvp"]


_F64 = np.dtype(np.float64)

#: True while a transformation records f on Tensors (in this thread or task):
#: a transformation called inside f then asks for object arrays (NeedsElements)
_TENSOR_F = contextvars.ContextVar("pytape_tensor_f", default=False)

#: how pytape/tensor.py's refusals of np.asarray(t) inside f and of object
#: arrays as operands begin: Tensors and Vars meeting in numpy's object arrays,
#: which the object-array recording does right (f is recorded again on it)
_TO_OBJECTS = ("numpy converted a recorded Tensor to a plain array",
               "pytape: an object array (of Vars?) cannot be an operand",
               "(custom primitives are scalar functions)")  # a primitive maps over object arrays

def tensor_recording_or_none(make, api):
    """make() (a TensorRecording of f), or None where f needs what only object
    arrays of Vars do (the caller records f again on them): a transformation
    inside f, a Var from outside f, numpy's object arrays of Tensors.  Other
    refusals of Tensors raise TypeError with the hint to pass elementwise=True."""
    token = _TENSOR_F.set(True)
    try:
        return make()
    except (NeedsElements, OuterVar):
        return None
    except TypeError as exc:
        msg = str(exc)
        if any(p in msg for p in _TO_OBJECTS):  # np.array([t0, t1]) of Tensors, Vars in a list with Tensors
            return None
        if "pytape.Tensor" in msg:
            raise TypeError(msg + _HINT.format(api=api.replace("pytape.", ""))) from exc
        raise
    finally:
        _TENSOR_F.reset(token)


_HINT = ("; pytape.{api} gave f its array arguments as pytape.Tensor (one instruction per numpy operation): "
         "pass elementwise=True to {api} to give f object arrays of Vars instead (one instruction per element, "
         "slower, any numpy function that works on objects)")


class _Call:
    """One call of a transformed f: the differentiated arguments flattened
    into array leaves (pytrees), f recorded on a fresh tape or, nested, on
    the outer one, and the way back to the arguments' trees and dtypes.

    ``rec`` is the recording (pytape.program.Recording or
    pytape.nested.NestedRecording), over one flat argument per leaf."""

    def __init__(self, f, args, argnums, api, has_aux=False, elementwise=False, tensors=True):
        single, ks = check_argnums(argnums, api, len(args))
        ks = [k % len(args) for k in ks]
        recording = is_grad_enabled()
        if not recording:  # under no_grad, Vars from outside are constants, as no_grad asks
            args = tuple(map_leaves(_plain, a) if k in ks else a for k, a in enumerate(args))
        self.single, self.groups, self.out_tree = single, [], None
        if all(type(args[k]) is float or type(args[k]) is np.ndarray and args[k].dtype == _F64 for k in ks):
            # the usual call, quickly: float64 numbers and arrays, no trees, dtypes or Vars in them
            self.groups = [(LEAF, j, 1) for j in range(len(ks))]
            self.dtypes = [None] * len(ks)
            flat = [args[k] for k in ks]
        else:
            flat, names = [], _Names(f, api)
            for k in ks:
                leaves, tree = flatten(args[k])
                names.add(k, tree)
                self.groups.append((tree, len(flat), len(leaves)))
                flat += leaves
            self.dtypes = [_float_dtype(x) for x in flat]

        def flat_f(*xs):
            full = list(args)
            for k, (tree, start, n) in zip(ks, self.groups):
                full[k] = tree.unflatten(xs[start:start + n])
            return f(*full)

        if all(tree.is_leaf for tree, _, _ in self.groups):  # no containers: f takes the arguments as they are
            target, f_args, f_argnums = f, args, tuple(ks)
            names = _Names(f, api, by_position=True)
        else:
            target, f_args, f_argnums = flat_f, flat, tuple(range(len(flat)))
        target = self._flat_output(target, has_aux)
        if recording and tensors and not elementwise and _tensor_nesting(flat):
            # inside f of a Tensor recording, or Tensor arguments: f and its derivatives recorded
            # on their tape as Tensor operations (pytape/nested.py), differentiable again
            self.nested = self.tensor = True
            self.rec = NestedTensorRecording(target, f_args, f_argnums, has_aux, api=api)
            return
        if _TENSOR_F.get():  # inside f of a Tensor recording, arguments that are not arrays: object arrays
            raise NeedsElements(f"{api} inside a transformed function")
        self.nested = recording and (inside_transformation() or holds_vars(flat) or (
            len(ks) < len(args) and holds_vars([a for j, a in enumerate(args) if j not in ks])))
        self.tensor = False
        if not self.nested and tensors and not elementwise and any(type(x) is not float and isinstance(
                x, np.ndarray) for x in flat):
            self.rec = tensor_recording_or_none(
                lambda: TensorRecording(target, f_args, f_argnums, has_aux, api=api, names=names), api)
            self.tensor = self.rec is not None
            if not self.tensor:
                self.out_tree = None
        if not self.nested and not self.tensor:
            try:
                self.rec = Recording(target, f_args, f_argnums, has_aux, api=api, sealed=recording, names=names)
            except OuterVar:  # f uses a Var from outside: record it again, on the outer tape
                self.nested = True
            except TypeError as exc:
                if _TO_OBJECTS[1] in str(exc):  # f's object arrays met a Tensor f did not make
                    raise TypeError(f"{exc}; here f combines its arguments with a pytape.Tensor from outside "
                                    f"them (a result of another tape): pass it as an argument of f, or "
                                    f"detach() it") from exc
                raise
        if self.nested:
            self.rec = NestedRecording(target, f_args, f_argnums, has_aux, api=api, names=names)

    def _flat_output(self, f, has_aux):
        """f whose output, if it holds a dict (a pytree output), comes out as
        one flat array of its leaves' elements; ``out_tree`` and
        ``out_shapes`` remember how to split results again (``unpack_out``).
        Other outputs follow numpy: a list of numbers is an array."""
        def g(*xs):
            out = f(*xs)
            aux = None
            if has_aux and isinstance(out, tuple) and len(out) == 2:
                out, aux = out
            if _holds_dict(out):
                leaves, self.out_tree = flatten(out)
                if any(isinstance(v, Tensor) for v in leaves):  # a Tensor recording: one CONCAT
                    self.out_shapes = [tuple(np.shape(_shape_probe(v))) for v in leaves]
                    parts = []
                    for v in leaves:
                        _pieces(v, parts)
                    out = _concatenate(parts)
                else:
                    arrays = [object_array(v) for v in leaves]
                    self.out_shapes = [a.shape for a in arrays]
                    out = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
            return (out, aux) if has_aux else out
        return g

    def unpack_out(self, flat, tail=()):
        """A result over the flat outputs (axis 0, then ``tail`` axes) -> f's output tree."""
        if self.out_tree is None:
            return flat
        flat = np.asarray(flat)
        parts, start = [], 0
        for shape in self.out_shapes:
            n = int(np.prod(shape, dtype=int))
            part = flat[start:start + n].reshape(tuple(shape) + tuple(tail))
            parts.append(self.rec._number(part[()]) if part.ndim == 0 else part)
            start += n
        return self.out_tree.unflatten(parts)

    def out_vector(self, u, what):
        """A cotangent shaped like f's output tree -> the flat output vector."""
        if self.out_tree is None:
            return u
        leaves = _tree_like(u, self.out_tree, what)
        parts = []
        for v, shape in zip(leaves, self.out_shapes):
            arr = np.asarray(v, dtype=object if holds_vars(v) else float)
            if arr.shape != tuple(shape):
                raise ValueError(f"{what} has a leaf of shape {arr.shape} where f's output has {tuple(shape)}")
            parts.append(arr.ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    def pack(self, per_leaf, cast=True):
        """Results per flat leaf -> the arguments' trees (one, or a tuple for
        a tuple of argnums), each leaf in its argument's float dtype."""
        if self.single and self.groups[0][0] is LEAF and self.dtypes[0] is None:
            return per_leaf[0]
        if cast and not self.nested:
            per_leaf = [_cast(r, dt) for r, dt in zip(per_leaf, self.dtypes)]
        trees = [per_leaf[start] if tree.is_leaf else tree.unflatten(per_leaf[start:start + n])
                 for tree, start, n in self.groups]
        return trees[0] if self.single else tuple(trees)

    @property
    def aux(self):
        """f's auxiliary output: numbers and numpy arrays (as in JAX), Vars only when nested."""
        return self.rec.aux if self.nested else map_leaves(_plain, self.rec.aux)


def _tensor_nesting(xs):
    """Are the leaves xs of f's differentiated arguments arrays (Tensors or
    float64 numpy arrays) of which one is a Tensor, or is f inside a Tensor
    recording's f?  Then f is recorded on the outer tape as Tensor
    operations (nested)."""
    if not xs or not all(isinstance(x, Tensor) or type(x) is np.ndarray and x.dtype == _F64 for x in xs):
        return False
    return _TENSOR_F.get() or any(isinstance(x, Tensor) and (x.requires_grad or type(x) is not TensorLeaf)
                                  for x in xs)


class _Names:
    """The name of each flat argument in messages (pytape.program.ArgName)."""

    def __init__(self, f, api, by_position=False):
        self.f, self.api, self.trees, self.by_position = f, api, [], by_position

    def add(self, k, tree):
        self.trees.append((k, tree))

    def __getitem__(self, j):
        if self.by_position:  # j is the position of an argument, passed as it is
            return ArgName(self.api, self.f, j)
        for k, tree in self.trees:
            if j < tree.size:
                return ArgName(self.api, self.f, k, tree, j)
            j -= tree.size
        raise IndexError(j)


def _holds_dict(x):
    if type(x) is dict:
        return True
    return type(x) in (list, tuple) and any(_holds_dict(v) for v in x)


def _float_dtype(x):
    """The dtype a derivative w.r.t. x is given: x's own if it is a numpy
    float array or scalar (float16, float32, ...), else None (float64)."""
    dt = getattr(x, "dtype", None)
    if isinstance(x, np.generic) and dt.kind == "f" or isinstance(x, np.ndarray) and dt.kind == "f" and dt != np.float64:
        return dt
    return None


def _cast(r, dt):
    if dt is None:
        return r
    return dt.type(r) if np.ndim(r) == 0 and not isinstance(r, np.ndarray) else np.asarray(r, dtype=dt)


def _plain(v):
    """A Var's number, an object array of Vars as a float array; anything else unchanged."""
    if isinstance(v, Var):
        return value_of(v)
    if isinstance(v, Tensor):  # as the object-array path gives: a 0-d Tensor (an element, a sum) is a float
        return float(v.value) if v.ndim == 0 else np.array(v.value)
    if isinstance(v, np.ndarray) and v.dtype == object and any(isinstance(e, Var) for e in v.flat):
        return np.vectorize(lambda e: value_of(e) if isinstance(e, Var) else e, otypes=[float])(np.asarray(v))
    return v


def _per_leaf(rec, results):
    """rec.shaped_in of each flat argument's result."""
    return [rec.shaped_in(j, r) for j, r in enumerate(results)]


def value_and_grad(f, argnums=0, has_aux=False, elementwise=False):
    """``f``'s value and gradient in one call: one recording and one reverse sweep.

    >>> import pytape
    >>> vg = pytape.value_and_grad(lambda x1, x2: pytape.log(x1) + x1 * x2 - pytape.sin(x2), argnums=(0, 1))
    >>> value, (d1, d2) = vg(2.0, 5.0)
    >>> round(value, 3), d1, round(d2, 3)
    (11.652, 5.5, 1.716)
    """
    return _value_and_grad(f, argnums, has_aux, "pytape.value_and_grad", elementwise)


def _value_and_grad(f, argnums, has_aux, api, elementwise):
    check_argnums(argnums, api)

    def wrapper(*args):
        call = _Call(f, args, argnums, api, has_aux, elementwise)
        rec = call.rec
        scalar_output(rec, "grad")
        g = call.pack(_per_leaf(rec, [r[0] for r in rec.rows(np.ones((1, 1)))]))
        value = rec.value if np.ndim(rec.value) == 0 else np.ravel(rec.value)[0]
        value = call.unpack_out(value if call.nested else float(value))
        return ((value, call.aux), g) if has_aux else (value, g)

    return wrapper


def grad(f, argnums=0, has_aux=False, elementwise=False):
    """The gradient of a scalar function ``f`` with respect to argument(s) ``argnums``.

    Like ``jax.grad``: returns a function of the same arguments; the gradient has
    the shape (and for a float argument, the type) of the argument, and for
    a pytree argument (nested tuples, lists, dicts of numbers and arrays) its
    tree; a tuple of argnums gives a tuple of gradients; ``has_aux`` lets f
    return ``(out, aux)``, and aux comes back as numbers and arrays.  f may
    return any array of size 1.  Nested (``grad(grad(f))``), or with Var
    arguments, the gradient is recorded and its entries are Vars.

    >>> import pytape
    >>> pytape.grad(lambda x: x ** 3)(2.0)
    12.0
    >>> pytape.grad(lambda x, y: x * y, argnums=1)(3.0, 4.0)
    3.0
    >>> pytape.grad(lambda p: p["w"] * p["b"])({"w": 2.0, "b": 5.0})
    {'b': 2.0, 'w': 5.0}
    """
    vg = _value_and_grad(f, argnums, has_aux, "pytape.grad", elementwise)

    def wrapper(*args):
        value, g = vg(*args)
        return (g, value[1]) if has_aux else g

    return wrapper


def _primal_tuple(xs, name):
    if not isinstance(xs, (tuple, list)):
        raise TypeError(f"pytape.jvp takes {name} as a tuple with one entry per argument of f, not "
                        f"{type(xs).__name__}: for f of one argument, jvp(f, (x,), (v,))")
    return tuple(xs)


def _vector(v, rec, j, what):
    """A tangent, cotangent or direction for flat argument j: numbers, or Vars when nested."""
    if rec.nested and holds_vars(v):
        u = np.asarray(v, dtype=object)
    else:
        u = as_float_array(v, what)
    if u.shape != rec.shapes[j]:
        raise ValueError(f"{what} has shape {u.shape}, its primal {rec.shapes[j]}")
    return u


def _tree_like(v, tree, what):
    leaves, t = flatten(v)
    if len(leaves) != tree.size:
        raise ValueError(f"{what} must have the same tree as its primal: {tree.size} leaves, not {len(leaves)}")
    return leaves


def jvp(f, primals, tangents, elementwise=False):
    """Forward mode: ``(f(*primals), J @ tangents)`` from one tangent sweep.

    ``primals`` and ``tangents`` are tuples with one entry per argument of f,
    the tangents shaped like the primals.

    >>> import pytape
    >>> value, tangent = pytape.jvp(lambda x1, x2: pytape.log(x1) + x1 * x2 - pytape.sin(x2), (2.0, 5.0), (1.0, 0.0))
    >>> round(value, 3), tangent
    (11.652, 5.5)
    """
    primals, tangents = _primal_tuple(primals, "primals"), _primal_tuple(tangents, "tangents")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp needs one tangent per primal, got {len(primals)} primals and {len(tangents)} tangents")
    call = _Call(f, primals, tuple(range(len(primals))), "pytape.jvp", elementwise=elementwise)
    rec = call.rec
    flat_t = [t for (tree, _, _), tk in zip(call.groups, tangents) for t in _tree_like(tk, tree, "a tangent")]
    out = None
    if call.tensor:  # one tangent sweep seeded on every argument
        out = rec.tangents([_vector(t, rec, j, f"tangent {j}") for j, t in enumerate(flat_t)])
        flat_t = ()
    for j, t in enumerate(flat_t):
        t = _vector(t, rec, j, f"tangent {j}")
        col = rec.columns(j, t.reshape(-1, 1))[:, 0]
        out = col if out is None else out + col
    if out is None:
        out = np.zeros(len(rec.out_slots))
    if call.out_tree is not None:
        return call.unpack_out(rec.value), call.unpack_out(out)
    return rec.value, rec.shaped_out(out)


def vjp(f, *primals, elementwise=False):
    """Reverse mode: ``(f(*primals), vjp_fn)`` with ``vjp_fn(u)`` = u @ J, one
    tuple entry per primal, from one reverse sweep over the recorded tape.

    >>> import numpy as np, pytape
    >>> value, vjp_fn = pytape.vjp(lambda x: x * 2.0, np.array([1.0, 2.0]))
    >>> vjp_fn(np.array([1.0, 10.0]))
    (array([ 2., 20.]),)
    """
    call = _Call(f, primals, tuple(range(len(primals))), "pytape.vjp", elementwise=elementwise)
    rec = call.rec

    def vjp_fn(cotangent):
        cotangent = call.out_vector(cotangent, "the cotangent")
        if call.tensor and rec.nested and isinstance(cotangent, Tensor):  # recorded: the vjp depends on it
            if tuple(cotangent.shape) != rec.out_shape:
                raise ValueError(f"the cotangent has shape {tuple(cotangent.shape)}, f's output {rec.out_shape}")
            return call.pack(_per_leaf(rec, [r[0] for r in rec.rows(reshape(cotangent, (1, -1)))]))
        if rec.nested and holds_vars(cotangent):
            u = np.asarray(cotangent, dtype=object)
        else:
            u = as_float_array(cotangent, "the cotangent")
        if u.shape != rec.out_shape:
            raise ValueError(f"the cotangent has shape {u.shape}, f's output {rec.out_shape}")
        rows = rec.rows(u.reshape(1, -1))
        return call.pack(_per_leaf(rec, [r[0] for r in rows]))

    return call.unpack_out(rec.value), vjp_fn


def _jacobian(f, argnums, mode, api, elementwise=False):
    check_argnums(argnums, api)

    def wrapper(*args):
        call = _Call(f, args, argnums, api, elementwise=elementwise)
        jac = list(call.rec.jacobian(mode))  # one block per flat argument, out.shape + in.shape
        if call.out_tree is None:
            return call.pack(jac)
        # a pytree output: for each of its leaves, the tree of blocks over the arguments (as JAX)
        per_out = [call.unpack_out(J, np.shape(J)[1:]) for J in jac]   # per argument leaf: out tree
        leaves_per_arg = [flatten(t)[0] for t in per_out]
        return call.out_tree.unflatten([call.pack([leaves[i] for leaves in leaves_per_arg])
                                        for i in range(call.out_tree.size)])

    return wrapper


def jacfwd(f, argnums=0, elementwise=False):
    """The Jacobian by forward mode: one tangent lane per input (up to 64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return _jacobian(f, argnums, "fwd", "pytape.jacfwd", elementwise)


def jacrev(f, argnums=0, elementwise=False):
    """The Jacobian by reverse mode: one adjoint lane per output (up to 64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacrev(lambda x: [x[0] * x[1], x[0] + x[1]])(np.array([2.0, 3.0]))
    array([[3., 2.],
           [1., 1.]])
    """
    return _jacobian(f, argnums, "rev", "pytape.jacrev", elementwise)


def jacobian(f, argnums=0, mode="auto", elementwise=False):
    """The Jacobian of f, shape ``out.shape + in.shape``.

    ``mode="auto"`` sweeps forward when f has fewer inputs than outputs (a
    sweep gives a column) and in reverse otherwise (a sweep gives a row): the
    classic trade-off, a Jacobian of f: R^n -> R^m costs min(n, m) sweeps.
    ``mode="fwd"`` / ``"rev"`` force one.  For a pytree argument, a tree of
    Jacobian blocks, one per leaf.

    >>> import numpy as np, pytape
    >>> pytape.jacobian(lambda x: np.array([x * 2.0, x * x]))(3.0)
    array([2., 6.])
    """
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
    return _jacobian(f, argnums, mode, "pytape.jacobian", elementwise)


def hvp(f, x, v, argnums=0, elementwise=False):
    """Hessian-vector product H v of a scalar f at x: one tangent pass and one
    reverse pass over f's tape (forward over reverse), never the full Hessian.
    ``v`` has x's shape (x's tree for a pytree x).  Array arguments reach f as
    ``pytape.Tensor`` s (one instruction per numpy operation, the sweeps through
    the array instructions in C); ``elementwise=True`` gives f object arrays
    of Vars instead, as for :func:`grad`.

    >>> import numpy as np, pytape
    >>> f = lambda x: x[0] ** 2 * x[1] + pytape.sin(x[1])
    >>> pytape.hvp(f, np.array([1.0, 2.0]), np.array([1.0, 0.0]))   # column 0 of [[2 x1, 2 x0], [2 x0, -sin x1]]
    array([4., 2.])
    """
    call = _Call(f, (x,), 0, "pytape.hvp", elementwise=elementwise)
    rec = call.rec
    vs = [_vector(u, rec, j, "v").reshape(-1) for j, u in enumerate(_tree_like(v, call.groups[0][0], "v"))]
    seeds = np.concatenate(vs).reshape(-1, 1) if vs else np.zeros((0, 1))
    col = rec.hvps(seeds)[:, 0]
    bounds = np.cumsum([0] + rec.sizes)
    return call.pack([rec.shaped_in(j, col[bounds[j]:bounds[j + 1]]) for j in range(len(rec.sizes))])


def hessian(f, argnums=0, elementwise=False):
    """The Hessian of a scalar f: shape ``in.shape + in.shape`` (for a tuple of
    argnums, a nested tuple of blocks ``in_j.shape + in_k.shape``).

    Computed as Hessian-vector products with the unit vectors: on object
    arrays of Vars (``elementwise=True``, or scalar arguments) 64 directions
    per forward-over-reverse pass, on Tensors (array arguments) one pass per
    direction through the array instructions; symmetric up to rounding.

    >>> import numpy as np, pytape
    >>> pytape.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    check_argnums(argnums, "pytape.hessian")

    def wrapper(*args):
        call = _Call(f, args, argnums, "pytape.hessian", elementwise=elementwise)
        # blocks H[j][k] per pair of flat leaves -> the trees, rows by the
        # arguments' trees and each row's blocks too (dtype: the column's leaf)
        return call.pack([call.pack(list(row)) for row in call.rec.hessian()], cast=False)

    return wrapper
