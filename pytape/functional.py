"""Function transformations in the style of JAX and HIPS autograd: ``grad``,
``value_and_grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``jacobian``, and
``gradcheck``.

Each records ``f`` once on a fresh tape (its inputs become leaves) and then
runs C sweeps over that tape: a reverse sweep gives a row of the Jacobian, a
tangent sweep a column, and the block sweeps take up to 64 rows or columns
per pass.  Inputs may be floats, sequences or numpy arrays of any shape; an
array reaches ``f`` as a numpy object array of ``Var`` s, so numpy code such as
``np.sum(np.sin(x) ** 2)`` differentiates unchanged.  Results follow numpy
shapes: a Jacobian has shape ``out.shape + in.shape``.

>>> import numpy as np, pytape
>>> f = lambda x: np.sum(np.sin(x) ** 2)
>>> g = pytape.grad(f)(np.array([0.5, 1.0]))
>>> np.allclose(g, np.sin(2 * np.array([0.5, 1.0])))
True
"""
import numbers

import numpy as np

from ._native import ffi, lib, raise_status
from .tape import Tape
from .var import Var, _slot

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "jacobian",
           "hessian", "hvp", "gradcheck", "gradgradcheck", "GradcheckError"]

_BLOCK = 64  # rows or columns per block sweep


class _Program:
    """A tape with its inputs and outputs: what the sweeps below need.

    ``tape``; ``sizes``, ``shapes``, ``scalar_in`` of each argument;
    ``in_slots(j)`` the slots of argument j's elements (-1: not on the tape);
    ``out_shape`` and ``out_slots`` (-1: a constant output); ``single``: one
    argument rather than a tuple.  ``_Recording`` records f to make one;
    ``pytape.trace`` makes them from compiled tapes.
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

    def rows(self, seeds):
        """seeds (q, nout) -> [(q, nin_j) per argument]: reverse sweeps, 64 per pass."""
        q = seeds.shape[0]
        results = [np.zeros((q, size)) for size in self.sizes]
        outs = np.array(self.out_slots, dtype=np.int64)
        has = outs >= 0
        ins = self.all_in_slots()
        used = ins >= 0
        if not has.any() or not used.any():
            return results
        out_slots, in_slots = np.ascontiguousarray(outs[has]), np.ascontiguousarray(ins[used])
        flat = np.zeros((q, len(ins)))
        for start in range(0, q, _BLOCK):
            block = np.ascontiguousarray(seeds[start:start + _BLOCK, has].T)  # (nout, qb)
            qb = block.shape[1]
            res = np.empty((len(in_slots), qb))
            st = lib.pt_backward_block(self.tape._p, len(out_slots), _i64(out_slots), qb, _f64(block),
                                       len(in_slots), _i64(in_slots), _f64(res))
            if st:
                raise_status(st, "backward", self.tape)
            flat[start:start + qb, used] = res.T
        bounds = np.cumsum([0] + self.sizes)
        return [flat[:, bounds[j]:bounds[j + 1]] for j in range(len(self.sizes))]

    def columns(self, j, seeds):
        """seeds (nin_j, p) for argument j -> (nout, p): tangent sweeps."""
        p = seeds.shape[1]
        result = np.zeros((len(self.out_slots), p))
        slots = np.array(self.in_slots(j), dtype=np.int64)
        used = slots >= 0
        outs = np.array(self.out_slots, dtype=np.int64)
        has = outs >= 0
        if not used.any() or not has.any():
            return result
        ins = np.ascontiguousarray(slots[used])
        out_slots = np.ascontiguousarray(outs[has])
        for start in range(0, p, _BLOCK):
            block = np.ascontiguousarray(seeds[used, start:start + _BLOCK])
            pb = block.shape[1]
            res = np.empty((len(out_slots), pb))
            st = lib.pt_tangent_block(self.tape._p, len(ins), _i64(ins), pb, _f64(block),
                                      len(out_slots), _i64(out_slots), _f64(res))
            if st:
                raise_status(st, "tangent", self.tape)
            result[has, start:start + pb] = res
        return result

    def hvps(self, seeds):
        """seeds (nin, p) over all arguments' leaves -> (nin, p) of H v: forward over reverse."""
        _scalar_output(self, "hessian")
        n, p = seeds.shape
        result = np.zeros((n, p))
        out = self.out_slots[0]
        ins = self.all_in_slots()
        used = ins >= 0
        if out < 0 or not used.any():
            return result
        in_slots = np.ascontiguousarray(ins[used])
        for start in range(0, p, _BLOCK):
            block = np.ascontiguousarray(seeds[used, start:start + _BLOCK])
            pb = block.shape[1]
            res = np.empty((len(in_slots), pb))
            st = lib.pt_hvp_block(self.tape._p, out, len(in_slots), _i64(in_slots), pb, _f64(block),
                                  ffi.NULL, _f64(res))
            if st:
                raise_status(st, "backward", self.tape)
            result[used, start:start + pb] = res
        return result

    def split(self, flat):
        """Rows of a flat (n_total, ...) array per argument."""
        bounds = np.cumsum([0] + self.sizes)
        return [flat[bounds[j]:bounds[j + 1]] for j in range(len(self.sizes))]

    def shaped_in(self, j, flat):
        """A flat derivative w.r.t. argument j in the argument's shape (float for a scalar)."""
        return float(flat[0]) if self.scalar_in[j] else np.asarray(flat).reshape(self.shapes[j])

    def pack(self, per_arg):
        return per_arg[0] if self.single else tuple(per_arg)


class _Recording(_Program):
    """f recorded once: its tape, input leaves and output slots."""

    def __init__(self, f, args, argnums, has_aux=False, guards=False):
        self.single = isinstance(argnums, int)
        self.argnums = (argnums,) if self.single else tuple(argnums)
        for k in self.argnums:
            if not -len(args) <= k < len(args):
                raise ValueError(f"argnums {k} is out of range for {len(args)} positional arguments")
        args = list(args)
        self.shapes, self.scalar_in, self.leaves = [], [], []
        self.tape = Tape()
        with self.tape:
            for k in self.argnums:
                arr = _as_float_array(args[k], f"argument {k}")
                leaves = np.empty(arr.shape, dtype=object)
                flat = [Var(v) for v in arr.ravel()]
                for idx, leaf in zip(np.ndindex(arr.shape), flat):
                    leaves[idx] = leaf
                self.shapes.append(arr.shape)
                self.scalar_in.append(np.ndim(args[k]) == 0 and not isinstance(args[k], np.ndarray))
                self.leaves.append(flat)
                args[k] = flat[0] if self.scalar_in[-1] else leaves
            self.sizes = [len(flat) for flat in self.leaves]
            self.tape._guards = guards  # pytape.trace: comparisons become guards
            try:
                out = f(*args)
            finally:
                self.tape._guards = False
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError("with has_aux=True, f must return a pair (output, aux)")
                out, self.aux = out
            self.value, self.out_shape, self.out_slots = self._outputs(out)

    def _outputs(self, out):
        """(numeric value, shape, slot of each output element or -1 for a constant)."""
        if isinstance(out, (list, tuple)) or isinstance(out, np.ndarray):
            arr = np.asarray(out, dtype=object)
        else:
            arr = np.empty((), dtype=object)
            arr[()] = out
        values = np.empty(arr.shape)
        slots = []
        for idx in np.ndindex(arr.shape):
            y = arr[idx]
            if isinstance(y, Var):
                values[idx] = y.value
                if type(y) is Var:
                    if y._t is not self.tape:
                        raise ValueError("f returned a Var recorded outside its own call; "
                                         "compute the output from f's arguments")
                    slots.append(y._i)
                elif y.requires_grad:  # f returned an input (a leaf) itself
                    slots.append(_slot(y, self.tape))
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
            serial = self.tape._serial
            cache[j] = [leaf._home[1] if leaf._home[0] == serial else -1 for leaf in self.leaves[j]]
        return cache[j]


def _as_float_array(x, what):
    if isinstance(x, Var):
        raise TypeError(f"{what} is a Var: pass numbers (x.value) to pytape.grad and friends")
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, a sequence or a numpy array of them, "
                        f"not {type(x).__name__}") from None
    return arr


def _i64(a):
    return ffi.from_buffer("int64_t[]", a)


def _f64(a):
    return ffi.from_buffer("double[]", a)


def _scalar_output(rec, name):
    if len(rec.out_slots) != 1 or rec.out_shape not in ((), (1,)):
        raise TypeError(f"{name} needs f to return a scalar, got shape {rec.out_shape}; "
                        f"use pytape.jacobian or pytape.vjp for vector outputs")


def value_and_grad(f, argnums=0, has_aux=False):
    """``f``'s value and gradient in one call: one recording and one reverse sweep.

    >>> import pytape
    >>> vg = pytape.value_and_grad(lambda x1, x2: pytape.log(x1) + x1 * x2 - pytape.sin(x2), argnums=(0, 1))
    >>> value, (d1, d2) = vg(2.0, 5.0)
    >>> round(value, 3), d1, round(d2, 3)
    (11.652, 5.5, 1.716)
    """

    def wrapper(*args):
        rec = _Recording(f, args, argnums, has_aux)
        _scalar_output(rec, "grad")
        rows = rec.rows(np.ones((1, 1)))
        g = rec.pack([rec.shaped_in(j, r[0]) for j, r in enumerate(rows)])
        value = rec.value if np.ndim(rec.value) == 0 else float(np.ravel(rec.value)[0])
        return ((value, rec.aux), g) if has_aux else (value, g)

    return wrapper


def grad(f, argnums=0, has_aux=False):
    """The gradient of a scalar function ``f`` with respect to argument(s) ``argnums``.

    Like ``jax.grad``: returns a function of the same arguments; the gradient has
    the shape (and for a float argument, the type) of the argument; a tuple of
    argnums gives a tuple of gradients; ``has_aux`` lets f return ``(out, aux)``.

    >>> import pytape
    >>> pytape.grad(lambda x: x ** 3)(2.0)
    12.0
    >>> pytape.grad(lambda x, y: x * y, argnums=1)(3.0, 4.0)
    3.0
    """
    vg = value_and_grad(f, argnums, has_aux)

    def wrapper(*args):
        value, g = vg(*args)
        return (g, value[1]) if has_aux else g

    return wrapper


def jvp(f, primals, tangents):
    """Forward mode: ``(f(*primals), J @ tangents)`` from one tangent sweep.

    ``primals`` and ``tangents`` are tuples with one entry per argument of f,
    the tangents shaped like the primals.

    >>> import pytape
    >>> value, tangent = pytape.jvp(lambda x1, x2: pytape.log(x1) + x1 * x2 - pytape.sin(x2), (2.0, 5.0), (1.0, 0.0))
    >>> round(value, 3), tangent
    (11.652, 5.5)
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp needs one tangent per primal, got {len(primals)} primals and {len(tangents)} tangents")
    rec = _Recording(f, primals, tuple(range(len(primals))))
    out = np.zeros(len(rec.out_slots))
    for j, t in enumerate(tangents):
        t = _as_float_array(t, f"tangent {j}")
        if t.shape != rec.shapes[j]:
            raise ValueError(f"tangent {j} has shape {t.shape}, its primal {rec.shapes[j]}")
        out += rec.columns(j, t.reshape(-1, 1))[:, 0]
    return rec.value, _shaped_out(rec, out)


def _shaped_out(rec, flat):
    return float(flat[0]) if rec.out_shape == () else np.asarray(flat).reshape(rec.out_shape)


def vjp(f, *primals):
    """Reverse mode: ``(f(*primals), vjp_fn)`` with ``vjp_fn(u)`` = u @ J, one
    tuple entry per primal, from one reverse sweep over the recorded tape.

    >>> import numpy as np, pytape
    >>> value, vjp_fn = pytape.vjp(lambda x: x * 2.0, np.array([1.0, 2.0]))
    >>> vjp_fn(np.array([1.0, 10.0]))
    (array([ 2., 20.]),)
    """
    rec = _Recording(f, primals, tuple(range(len(primals))))

    def vjp_fn(cotangent):
        u = _as_float_array(cotangent, "the cotangent")
        if u.shape != rec.out_shape:
            raise ValueError(f"the cotangent has shape {u.shape}, f's output {rec.out_shape}")
        rows = rec.rows(u.reshape(1, -1))
        return tuple(rec.shaped_in(j, r[0]) for j, r in enumerate(rows))

    return rec.value, vjp_fn


def _jacobian(f, argnums, mode):
    def wrapper(*args):
        rec = _Recording(f, args, argnums)
        m = len(rec.out_slots)
        n = sum(rec.sizes)
        use = mode if mode != "auto" else ("fwd" if n < m else "rev")
        if use == "rev":
            per_arg = rec.rows(np.eye(m))  # (m, n_j) each
        else:
            per_arg = [rec.columns(j, np.eye(size)) for j, size in enumerate(rec.sizes)]
        jacs = [np.asarray(J).reshape(rec.out_shape + rec.shapes[j]) for j, J in enumerate(per_arg)]
        jacs = [float(J) if J.ndim == 0 else J for J in jacs]
        return rec.pack(jacs)

    return wrapper


def jacfwd(f, argnums=0):
    """The Jacobian by forward mode: one tangent lane per input (64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return _jacobian(f, argnums, "fwd")


def jacrev(f, argnums=0):
    """The Jacobian by reverse mode: one adjoint lane per output (64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacrev(lambda x: [x[0] * x[1], x[0] + x[1]])(np.array([2.0, 3.0]))
    array([[3., 2.],
           [1., 1.]])
    """
    return _jacobian(f, argnums, "rev")


def jacobian(f, argnums=0, mode="auto"):
    """The Jacobian of f, shape ``out.shape + in.shape``.

    ``mode="auto"`` sweeps forward when f has fewer inputs than outputs (a
    sweep gives a column) and in reverse otherwise (a sweep gives a row): the
    classic trade-off, a Jacobian of f: R^n -> R^m costs min(n, m) sweeps.
    ``mode="fwd"`` / ``"rev"`` force one.

    >>> import numpy as np, pytape
    >>> pytape.jacobian(lambda x: np.array([x * 2.0, x * x]))(3.0)
    array([2., 6.])
    """
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
    return _jacobian(f, argnums, mode)


def hvp(f, x, v, argnums=0):
    """Hessian-vector product H v of a scalar f at x: one tangent pass and one
    reverse pass over f's tape (forward over reverse), never the full Hessian.

    >>> import numpy as np, pytape
    >>> f = lambda x: x[0] ** 2 * x[1] + pytape.sin(x[1])
    >>> pytape.hvp(f, np.array([1.0, 2.0]), np.array([1.0, 0.0]))   # column 0 of [[2 x1, 2 x0], [2 x0, -sin x1]]
    array([4., 2.])
    """
    rec = _Recording(f, (x,), 0)
    v = _as_float_array(v, "v")
    if v.shape != rec.shapes[0]:
        raise ValueError(f"v has shape {v.shape}, x {rec.shapes[0]}")
    return rec.shaped_in(0, rec.hvps(v.reshape(-1, 1))[:, 0])


def hessian(f, argnums=0):
    """The Hessian of a scalar f: shape ``in.shape + in.shape`` (for a tuple of
    argnums, a nested tuple of blocks ``in_j.shape + in_k.shape``).

    Computed as Hessian-vector products with the unit vectors, 64 directions
    per forward-over-reverse pass; symmetric up to rounding.

    >>> import numpy as np, pytape
    >>> pytape.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """

    def wrapper(*args):
        rec = _Recording(f, args, argnums)
        n = sum(rec.sizes)
        H = rec.hvps(np.eye(n))  # column k = H e_k; H is symmetric
        rows = rec.split(H)
        blocks = [[np.asarray(c).reshape(rec.shapes[j] + rec.shapes[k]) for k, c in enumerate(rec.split(r.T))]
                  for j, r in enumerate(rows)]
        blocks = [[float(b) if b.ndim == 0 else b for b in row] for row in blocks]
        return blocks[0][0] if rec.single else tuple(tuple(row) for row in blocks)

    return wrapper


class GradcheckError(RuntimeError):
    """The tape's derivatives and central finite differences disagree."""


def gradcheck(f, *args, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare f's Jacobian from the tape with central finite differences.

    Like ``torch.autograd.gradcheck``: returns True when every entry agrees
    (``|analytic - numeric| <= atol + rtol * |numeric|``), else raises
    ``GradcheckError`` (or returns False with ``raise_exception=False``),
    naming the worst entry: its argument and index, both values and the error.
    The check is only as good as the finite differences: use smooth points
    away from kinks, and ``eps`` suited to the scale of the inputs.

    >>> import pytape
    >>> pytape.gradcheck(lambda x, y: pytape.sin(x) * y, 0.3, 2.0)
    True
    """
    argnums = tuple(range(len(args)))
    analytic = _jacobian(f, argnums, "rev")(*args)
    base = [_as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
    worst = None
    for j in argnums:
        A = np.asarray(analytic[j], dtype=float)
        for idx in np.ndindex(base[j].shape):
            num = _central_difference(f, base, j, idx, eps, args)
            out_shape = np.shape(num)
            ana = A[(...,) + idx] if A.ndim > len(out_shape) else A
            err = np.abs(np.asarray(ana) - num)
            bound = atol + rtol * np.abs(num)
            excess = np.max(err - bound) if np.size(err) else -1.0
            if worst is None or excess > worst[0]:
                k = int(np.argmax(err - bound)) if np.size(err) > 1 else 0
                out_idx = np.unravel_index(k, out_shape) if out_shape else ()
                worst = (excess, j, idx, out_idx, np.ravel(ana)[k], np.ravel(num)[k], np.ravel(err)[k])
    if worst is None or worst[0] <= 0:
        return True
    _, j, idx, out_idx, ana, num, err = worst
    ana, num = float(ana), float(num)
    out = f"f{[int(i) for i in out_idx]}" if out_idx else "f"
    msg = (f"gradcheck failed: d {out} / d argument {j}{list(idx) if idx else ''}: "
           f"analytic {ana!r}, numeric {num!r}, error {err:.3g} (atol {atol}, rtol {rtol})")
    if raise_exception:
        raise GradcheckError(msg)
    return False


def gradgradcheck(f, *args, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check second derivatives: the Hessian of ``u . f(x)`` (u random, fixed by
    ``seed``; u = 1 for a scalar f) from the forward-over-reverse sweep, against
    central finite differences of the tape's gradient.  Returns True or raises
    ``GradcheckError`` naming the worst entry, like ``torch.autograd.gradgradcheck``.

    >>> import pytape
    >>> pytape.gradgradcheck(lambda x, y: pytape.sin(x) * y ** 3, 0.3, 2.0)
    True
    """
    out = _numbers(f(*args))
    u = np.random.default_rng(seed).uniform(0.5, 1.5, out.shape) if out.ndim else None

    def s(*xs):
        y = f(*xs)
        return np.sum(np.asarray(y, dtype=object) * u) if u is not None else y

    argnums = tuple(range(len(args)))
    rec = _Recording(s, args, argnums)
    n = sum(rec.sizes)
    analytic = rec.hvps(np.eye(n))
    base = np.concatenate([_as_float_array(a, f"argument {k}").ravel() for k, a in enumerate(args)])
    shapes = [np.shape(a) for a in args]
    scalars = [np.ndim(a) == 0 and not isinstance(a, np.ndarray) for a in args]
    g = value_and_grad(s, argnums)

    def grad_at(flat):
        parts, k = [], 0
        for shape, scalar in zip(shapes, scalars):
            size = int(np.prod(shape))
            parts.append(float(flat[k]) if scalar else flat[k:k + size].reshape(shape))
            k += size
        return np.concatenate([np.ravel(d) for d in g(*parts)[1]])

    worst = None
    for k in range(n):
        e = np.zeros(n)
        e[k] = eps
        num = (grad_at(base + e) - grad_at(base - e)) / (2 * eps)
        excess = np.abs(analytic[:, k] - num) - (atol + rtol * np.abs(num))
        i = int(np.argmax(excess))
        if worst is None or excess[i] > worst[0]:
            worst = (excess[i], i, k, analytic[i, k], num[i])
    if worst is None or worst[0] <= 0:
        return True
    _, i, k, ana, num = worst
    msg = (f"gradgradcheck failed: d2 f / d x[{i}] d x[{k}] (inputs flattened in argument order): "
           f"analytic {float(ana)!r}, numeric {float(num)!r}, error {abs(ana - num):.3g}")
    if raise_exception:
        raise GradcheckError(msg)
    return False


def _central_difference(f, base, j, idx, eps, args):
    """(f(x + eps e_idx) - f(x - eps e_idx)) / 2 eps, f evaluated on plain numbers."""
    def at(delta):
        xs = [b.copy() for b in base]
        xs[j][idx] += delta
        call = [float(x) if np.ndim(a) == 0 and not isinstance(a, np.ndarray) else x for x, a in zip(xs, args)]
        return _numbers(f(*call))

    return (at(eps) - at(-eps)) / (2 * eps)


def _numbers(out):
    """f's output as a float array (Vars by their values)."""
    arr = np.asarray(out, dtype=object)
    return np.vectorize(lambda y: y.value if isinstance(y, Var) else float(y), otypes=[float])(arr)
