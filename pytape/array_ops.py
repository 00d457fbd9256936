"""numpy's surface on ``Tensor``: each numpy function maps, at record time and
once per call, onto the few array instruction kinds of csrc/pytape.h.

* Elementwise: every row of the op table (csrc/ops.def) is a numpy ufunc or
  a ``pytape`` function; ``UFUNCS`` maps numpy's ufuncs onto rows (built from
  the same table as the scalar engine's, pytape/ops.py), plus a few that are
  rows with a constant (``np.square``, ``np.reciprocal``, ...).
* Movement: any numpy function that rearranges elements is applied to a
  *probe*, an array of the operand's shape whose memory is never read: if
  numpy answers a view of it, its offset and strides are one VIEW
  instruction (transpose, swapaxes, moveaxis, slicing, broadcast_to,
  reshape, squeeze, diagonal, flip); else the same function applied to the
  element numbers (``np.arange``) gives a GATHER's indices (fancy indexing,
  take, repeat, tile, roll).
* Reductions: SUM over any axes; MAX, PROD, CUMSUM over rows after the
  reduced axes are moved last; mean, var, std, logsumexp, softmax and norms
  composed from those.
* Contractions: matmul, dot, inner, outer, tensordot, einsum: views around
  one MATMUL (a BLAS dgemm per batch).

A numpy function not in ``FUNCTIONS`` raises a TypeError that names it:
never a silent element-by-element fallback.

>>> import numpy as np, pytape
>>> x = pytape.Tensor(np.arange(6.0).reshape(2, 3))
>>> y = np.sum(np.exp(x[:, 1:]) * 2.0, axis=0)
>>> y.shape
(2,)
"""
import math
import operator

import numpy as np
from numpy.lib import stride_tricks

from . import _native
from .ops import NUMPY_NAMES, _round as _round_numbers
from .tensor import KIND, Tensor, TensorLeaf, TensorResult, _result, map1, map1_limit, map2, raw_value, record
from .var import TRACING, Var

__all__ = ["FUNCTIONS", "UFUNCS", "reshape", "transpose", "matmul", "sum", "mean", "max", "min", "prod",
           "cumsum", "var", "std", "where", "clip", "logsumexp", "softmax", "log_softmax", "einsum", "tensordot",
           "dot", "inner", "outer", "norm", "getitem", "move", "broadcast_to"]

_builtin_sum, _builtin_max, _builtin_min = sum, max, min
_OPC = _native.OPCODES


def shape_of(x):
    """The shape of an operand (Tensor, Var, number, array)."""
    if isinstance(x, Tensor):
        return x.shape
    if isinstance(x, Var):
        return ()
    return np.shape(x)


def _normalize_axes(axis, ndim, what):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim, what) if hasattr(np, "exceptions") else ValueError(
                f"{what}: axis {a} is out of bounds for array of dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: duplicate value in 'axis'")
    return tuple(out)


# ---- movement: views and gathers -------------------------------------------------------

_PROBE_BASE = np.zeros(1)
_PROBE_ADDR = _PROBE_BASE.__array_interface__["data"][0]


def _probe(shape):
    """An array of ``shape`` (C order) whose elements are never read."""
    strides = []
    s = 8
    for n in reversed(shape):
        strides.append(s)
        s *= _builtin_max(n, 1)
    return stride_tricks.as_strided(_PROBE_BASE, shape=shape, strides=tuple(reversed(strides)),
                                           writeable=False)


def move(x, fn, what, view=True):
    """fn (a numpy function that rearranges elements) applied to Tensor x:
    one VIEW instruction when fn answers a view (``view``: numpy's views
    never read the probe's elements), else one GATHER (fn applied to the
    element numbers; a copying fn must never see the probe, whose memory is
    one element)."""
    shape = shape_of(x)
    v = fn(_probe(shape)) if view else None
    if isinstance(v, np.ndarray) and v.base is not None and not v.flags.owndata and v.dtype == np.float64 \
            and _within_probe(v, shape):
        if v.shape == tuple(shape) and v.strides == _probe(shape).strides and _offset(v) == 0:
            return x if isinstance(x, Tensor) else _as_tensor(x)  # the identity: no instruction
        return record(KIND["VIEW"], [x], v.shape, [_offset(v)] + [s // 8 for s in v.strides], what)
    if view:
        raise AssertionError(f"pytape: {what} gave no view (internal error, please report)")
    idx = np.asarray(fn(np.arange(math.prod(shape), dtype=np.int64).reshape(shape)))
    return record(KIND["GATHER"], [x], idx.shape, idx.ravel(), what)


def _offset(v):
    return (v.__array_interface__["data"][0] - _PROBE_ADDR) // 8


def _within_probe(v, shape):
    """Is v a view into the probe (not a copy numpy made)?"""
    size = math.prod(shape)
    if v.size == 0:
        return True
    off = _offset(v)
    lo = off + _builtin_sum((n - 1) * s // 8 for n, s in zip(v.shape, v.strides) if s < 0)
    hi = off + _builtin_sum((n - 1) * s // 8 for n, s in zip(v.shape, v.strides) if s > 0)
    return 0 <= lo and hi < size and v.__array_interface__["data"][0] % 8 == _PROBE_ADDR % 8


def _as_tensor(x):
    return x if isinstance(x, Tensor) else TensorLeaf._make(np.array(x, dtype=np.float64), False)


def _index_key(key):
    """An index with Tensors replaced by their values (indices are not differentiated)."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if getattr(key, "_is_mask", False):  # a traced comparison (pytape/tensor_trace.py): its values, guarded
        return np.asarray(key)
    if isinstance(key, Tensor):
        return key.value
    if isinstance(key, Var):
        return int(key)
    return key


def _basic_view(shape, k):
    """The VIEW of index k (a tuple of ints and slices, no more than the
    axes) into a C-ordered array of ``shape``: (its shape, [offset] +
    strides in elements), as numpy's view of the same index has; None for an
    integer out of range (numpy's own path raises its IndexError)."""
    nd = len(shape)
    strides = [1] * nd
    for d in range(nd - 2, -1, -1):
        strides[d] = strides[d + 1] * _builtin_max(shape[d + 1], 1)
    off, out_shape, out_strides = 0, [], []
    for d, e in enumerate(k):
        n = shape[d]
        if type(e) is slice:
            start, stop, step = e.indices(n)
            m = len(range(start, stop, step))
            if m:
                off += start * strides[d]
            out_shape.append(m)
            out_strides.append(step * strides[d])
        else:
            if not -n <= e < n:
                return None
            off += (e + n if e < 0 else e) * strides[d]
    out_shape += shape[len(k):]
    out_strides += strides[len(k):]
    return tuple(out_shape), [off] + out_strides


def getitem(x, key):
    """x[key]: basic indexing as a VIEW, integer-array and boolean indexing as
    a GATHER (whose adjoint scatter-adds, so repeated indices sum)."""
    tk = type(key)
    if tk is slice or tk is int or tk is tuple and all(type(e) is slice or type(e) is int for e in key):
        # ints and slices, the usual index: the VIEW's parameters directly (numpy's probe costs ~10 us)
        k = key if tk is tuple else (key,)
        shape = tuple(shape_of(x))
        if len(k) <= len(shape):
            v = _basic_view(shape, k)
            if v is not None:
                if v[0] == shape and v[1] == _basic_view(shape, ())[1]:
                    return x  # the identity (x[:], x[()]): no instruction
                return record(KIND["VIEW"], [x], v[0], v[1], "Tensor indexing")
    key = _index_key(key)
    k = key if isinstance(key, tuple) else (key,)
    basic = all(e is None or e is Ellipsis or isinstance(e, slice) or
                isinstance(e, (int, np.integer)) and not isinstance(e, (bool, np.bool_)) for e in k)
    if basic and not any(e is Ellipsis for e in k):
        k = k + (Ellipsis,)  # an integer index then gives a 0-d view, not a number
    return move(x, lambda a: a[k], "Tensor indexing", view=basic)


def reshape(x, *shape, order="C"):
    """``np.reshape`` (C order): a VIEW."""
    if order != "C":
        raise TypeError("pytape: reshape takes order='C' only")
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return move(x, lambda a: a.reshape(shape), "reshape")


def transpose(x, axes=None):
    """``np.transpose``: a VIEW."""
    return move(x, lambda a: np.transpose(a, axes), "transpose")


def broadcast_to(x, shape):
    """``np.broadcast_to``: a VIEW whose adjoint sums over the broadcast axes."""
    return move(x, lambda a: np.broadcast_to(a, shape), "broadcast_to")


def _moving(np_fn, name, view=True):
    def f(x, *args, **kwargs):
        return move(x, lambda a: np_fn(a, *args, **kwargs), name, view)
    f.__name__ = name
    f.__doc__ = f"``np.{name}`` on a Tensor: one VIEW (or GATHER) instruction."
    return f


# ---- elementwise ---------------------------------------------------------------------

def _row(name):
    """The function of op-table row ``name`` on Tensors: one C call for a
    recorded operand (and a number), the general primitive otherwise."""
    code = _OPC[name]
    new, watched = TensorResult, _native.WATCH
    if name in _native.UNARY:
        m1 = _native.arr_map1
        limit = map1_limit(code)  # from there numpy's loop computes the value (map1)

        def unary(a):
            if type(a) is new:
                h = m1(code, a._i, limit)
                if h >= watched:  # large: watched (tensor._result)
                    return _result(a._t, h)
                if h >= 0:
                    r = new()
                    r._t = a._t
                    r._i = h
                    r._shape = None
                    return r
            return map1(code, a)
        unary.__name__ = name
        return unary
    m2, m2vc, m2cv = _native.arr_map2, _native.arr_map2_vc, _native.arr_map2_cv

    def binary(a, b):
        ta, tb = type(a), type(b)
        if ta is new:
            if tb is new:
                h = m2(code, a._i, b._i)
            elif tb is float or tb is int:
                h = m2vc(code, a._i, b)
            else:
                return map2(code, a, b)
            t = a._t
        elif tb is new and (ta is float or ta is int):
            h = m2cv(code, a, b._i)
            t = b._t
        else:
            return map2(code, a, b)
        if h >= watched:  # large: watched (tensor._result)
            return _result(t, h)
        if h >= 0:
            r = new()
            r._t = t
            r._i = h
            r._shape = None
            return r
        return map2(code, a, b)
    binary.__name__ = name
    return binary


ROWS = {name: _row(name) for name in _OPC}


def where(cond, a, b):
    """``np.where(cond, a, b)``: the op table's where_t + where_f, so the
    branch not taken gets a derivative of exactly 0 (even through a nan)."""
    if getattr(cond, "_is_mask", False):  # a traced comparison: recorded, so replays recompute it
        c = cond._t
    elif isinstance(cond, Tensor):  # an operand (pytape.less(x, 0) gives one): its derivative is 0
        c = cond
    else:
        c = np.asarray(cond)
        c = np.asarray(c, dtype=np.float64) if c.ndim else float(c)
    return map2(_OPC["where_t"], c, a) + map2(_OPC["where_f"], c, b)


def clip(x, lo=None, hi=None):
    """``np.clip``: clamp_min then clamp_max (the gradient passes at the bounds)."""
    if lo is not None:
        x = map2(_OPC["clamp_min"], x, lo)
    if hi is not None:
        x = map2(_OPC["clamp_max"], x, hi)
    return x


# ---- reductions ---------------------------------------------------------------------

def sum(x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None, _all=_native.arr_sum_all,
        _new=TensorResult):
    """``np.sum`` over ``axis`` (all by default): one SUM instruction."""
    if axis is None and type(x) is _new and not keepdims and out is None and initial is None and where is None:
        h = _all(x._i)  # a recorded array summed whole (a loss): one C call; any refusal takes the path below
        if h >= 0:
            return _result(x._t, h)
    _no_extras("sum", out=out, initial=initial, where=where)
    nd = len(shape_of(x))
    axes = _normalize_axes(axis, nd, "sum")
    flags = [1 if d in axes else 0 for d in range(nd)]
    return record(KIND["SUM"], [x], (), [int(bool(keepdims))] + flags, "sum")


def _count(x, axes):
    s = shape_of(x)
    return math.prod([s[d] for d in axes])


def mean(x, axis=None, dtype=None, out=None, keepdims=False, where=None):
    """``np.mean``: a SUM times 1/n."""
    _no_extras("mean", out=out, where=where)
    axes = _normalize_axes(axis, len(shape_of(x)), "mean")
    n = _count(x, axes)
    s = sum(x) if axis is None and not keepdims else sum(x, axes, keepdims=keepdims)  # whole: the one-call path
    return s * (1.0 / n if n else math.nan)


def _rows(x, axes, kind, what, par_tail=(), keepdims=False):
    """x with ``axes`` moved last and reduced by a rows instruction (MAX, PROD)."""
    s = shape_of(x)
    nd = len(s)
    kept = [d for d in range(nd) if d not in axes]
    perm = kept + list(axes)
    if perm != list(range(nd)):
        x = transpose(x, perm)
    r = math.prod([s[d] for d in axes])
    out = tuple(1 if d in axes else s[d] for d in range(nd)) if keepdims else tuple(s[d] for d in kept)
    return record(KIND[kind], [x], out, [r] + list(par_tail), what)


def _extremum(name, sign):
    def f(x, axis=None, out=None, keepdims=False, initial=None, where=None):
        _no_extras(name, out=out, initial=initial, where=where)
        axes = _normalize_axes(axis, len(shape_of(x)), name)
        if _count(x, axes) == 0:
            raise ValueError(f"zero-size array to reduction operation {'maximum' if sign > 0 else 'minimum'} "
                             f"which has no identity")
        return _rows(x, axes, "MAX", name, (sign,), keepdims)
    f.__name__ = name
    f.__doc__ = (f"``np.{name}`` over ``axis``: one MAX instruction (rows moved last); the adjoint goes to "
                 f"the elements equal to the {name}, shared evenly among ties.")
    return f


max = _extremum("max", 1)
min = _extremum("min", -1)


def prod(x, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``np.prod``: one PROD instruction (the adjoint of each element is the
    product of the others, exact with zeros)."""
    _no_extras("prod", out=out, initial=initial, where=where)
    axes = _normalize_axes(axis, len(shape_of(x)), "prod")
    if _count(x, axes) == 0:
        s = shape_of(x)
        shape = tuple(1 if d in axes else s[d] for d in range(len(s))) if keepdims else \
            tuple(s[d] for d in range(len(s)) if d not in axes)
        return TensorLeaf._make(np.ones(shape), False)
    return _rows(x, axes, "PROD", "prod", (), keepdims)


def cumsum(x, axis=None, dtype=None, out=None):
    """``np.cumsum``: one CUMSUM instruction along rows (the axis moved last)."""
    _no_extras("cumsum", out=out)
    s = shape_of(x)
    if axis is None:
        x = reshape(x, (-1,))
        a, nd = 0, 1
    else:
        nd = len(s)
        (a,) = _normalize_axes(axis, nd, "cumsum")
    n = shape_of(x)[a]
    if n == 0 or math.prod(shape_of(x)) == 0:
        return x * 1.0
    if a != nd - 1:
        x = move(x, lambda v: np.moveaxis(v, a, -1), "cumsum")
    y = record(KIND["CUMSUM"], [x], (), [n], "cumsum")
    return y if a == nd - 1 else move(y, lambda v: np.moveaxis(v, -1, a), "cumsum")


def var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None):
    """``np.var``: mean of squared deviations (from sums and products)."""
    _no_extras("var", out=out, where=where)
    axes = _normalize_axes(axis, len(shape_of(x)), "var")
    n = _count(x, axes)
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims=keepdims) * (1.0 / (n - ddof) if n - ddof > 0 else math.nan)


def std(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None):
    """``np.std``: the square root of ``var``."""
    return ROWS["sqrt"](var(x, axis, dtype, out, ddof, keepdims, where))


def _no_extras(name, **kwargs):
    bad = [k for k, v in kwargs.items() if v is not None]
    if bad:
        raise TypeError(f"pytape: np.{name} on a Tensor does not take {', '.join(bad)}=")


# ---- contractions -----------------------------------------------------------------------

def matmul(a, b):
    """``a @ b`` with numpy's rules (vectors, batches broadcast): one MATMUL."""
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if not sa or not sb:
        raise ValueError("matmul: Input operand does not have enough dimensions (a 0-d operand; use *)")
    A = (1,) + sa if len(sa) == 1 else sa
    B = sb + (1,) if len(sb) == 1 else sb
    m, k = A[-2:]
    k2, n = B[-2:]
    if k != k2:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc "
                         f"signature (n?,k),(k,m?)->(n?,m?) (size {k2} is different from {k})")
    batch = np.broadcast_shapes(A[:-2], B[:-2])
    nb = math.prod(batch)
    ops, flags = [], []
    for x, X, core in ((a, A, (m, k)), (b, B, (k, n))):
        xb = X[:-2]
        if math.prod(xb) == 1 and nb != 1:
            flags.append(0)
        else:
            if tuple(xb) != tuple(batch):
                x = broadcast_to(reshape(x, X), batch + core)
            flags.append(1)
        ops.append(x)
    out = tuple(batch) + ((m,) if len(sa) > 1 else ()) + ((n,) if len(sb) > 1 else ())
    return record(KIND["MATMUL"], ops, out, [nb, m, n, k, 0, 0, flags[0], flags[1]], "matmul")


def tensordot(a, b, axes=2):
    """``np.tensordot``: a's contracted axes moved last, b's first, one MATMUL."""
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if isinstance(axes, (int, np.integer)):
        xa, xb = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        xa, xb = axes
        xa = [xa] if isinstance(xa, (int, np.integer)) else list(xa)
        xb = [xb] if isinstance(xb, (int, np.integer)) else list(xb)
    xa = [d % len(sa) for d in xa] if sa else xa
    xb = [d % len(sb) for d in xb] if sb else xb
    if len(xa) != len(xb) or any(sa[i] != sb[j] for i, j in zip(xa, xb)):
        raise ValueError("shape-mismatch for sum (tensordot)")
    fa = [d for d in range(len(sa)) if d not in xa]
    fb = [d for d in range(len(sb)) if d not in xb]
    if fa + xa != list(range(len(sa))):
        a = transpose(a, fa + xa)
    if xb + fb != list(range(len(sb))):
        b = transpose(b, xb + fb)
    m = math.prod([sa[d] for d in fa])
    k = math.prod([sa[d] for d in xa])
    n = math.prod([sb[d] for d in fb])
    out = tuple(sa[d] for d in fa) + tuple(sb[d] for d in fb)
    return record(KIND["MATMUL"], [a, b], out, [1, m, n, k, 0, 0, 1, 1], "tensordot")


def dot(a, b):
    """``np.dot``: matmul for vectors and matrices, tensordot over (-1, -2) beyond."""
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return a * b
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    return tensordot(a, b, ([len(sa) - 1], [len(sb) - 2 if len(sb) > 1 else 0]))


def inner(a, b):
    """``np.inner``: contraction over the last axes."""
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return a * b
    return tensordot(a, b, ([len(sa) - 1], [len(sb) - 1]))


def outer(a, b):
    """``np.outer``: a broadcast product of the flattened operands."""
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def _einsum_parse(subscripts, n):
    if "..." in subscripts:
        raise TypeError("pytape: np.einsum with '...' is not supported on Tensors; spell the axes out")
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        ins, out = spec.split("->")
    else:
        ins = spec
        letters = ins.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = ins.split(",")
    if len(ins) != n:
        raise ValueError(f"einsum: {len(ins)} operand subscripts for {n} operands")
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscript {out!r} repeats a letter")
    return ins, out


def _einsum_one(x, spec, keep):
    """x (subscripts spec) reduced to the letters in ``keep`` (in that order):
    diagonals of repeated letters (a view), sums over letters not kept, a transpose."""
    s = shape_of(x)
    if len(spec) != len(s):
        raise ValueError(f"einsum: operand has {len(s)} dimensions, subscripts {spec!r} name {len(spec)}")
    uniq = "".join(dict.fromkeys(spec))
    if uniq != spec:  # repeated letters: the diagonal, a view whose stride is the letter's strides summed
        strides = _probe(s).strides
        for c in uniq:
            if len({n for n, e in zip(s, spec) if e == c}) > 1:
                raise ValueError(f"einsum: label {c!r} repeated with different sizes in one operand")
        shape = tuple(s[spec.index(c)] for c in uniq)
        par = [0] + [_builtin_sum(st for st, e in zip(strides, spec) if e == c) // 8 for c in uniq]
        x = record(KIND["VIEW"], [x], shape, par, "einsum")
    gone = tuple(d for d, c in enumerate(uniq) if c not in keep)
    if gone:
        x = sum(x, gone)
        uniq = "".join(c for c in uniq if c in keep)
    order = [uniq.index(c) for c in keep if c in uniq]
    if order != list(range(len(order))):
        x = transpose(x, order)
    return x, "".join(c for c in keep if c in uniq)


def _einsum_two(a, la, b, lb, out):
    """One contraction of two operands: views around one MATMUL."""
    sizes = {}
    for x, spec in ((a, la), (b, lb)):
        for c, n in zip(spec, shape_of(x)):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: size of label {c!r} is {sizes[c]} for one operand and {n} for another")
    batch = [c for c in out if c in la and c in lb]
    fa = [c for c in out if c in la and c not in lb]
    fb = [c for c in out if c in lb and c not in la]
    con = [c for c in dict.fromkeys(la) if c in lb and c not in out]
    a, _ = _einsum_one(a, la, "".join(batch + fa + con))
    b, _ = _einsum_one(b, lb, "".join(batch + con + fb))
    size = lambda cs: math.prod([sizes[c] for c in cs])
    nb, m, k, n = size(batch), size(fa), size(con), size(fb)
    mid = "".join(batch + fa + fb)
    y = record(KIND["MATMUL"], [a, b], tuple(sizes[c] for c in mid), [nb, m, n, k, 0, 0, 1, 1], "einsum")
    order = [mid.index(c) for c in out]
    return y if order == list(range(len(order))) else transpose(y, order)


def einsum(subscripts, *operands, **kwargs):
    """``np.einsum`` with explicit or implicit output: one operand by views and
    sums, two by one MATMUL between views, more pairwise from the left.

    >>> import numpy as np, pytape
    >>> a = pytape.Tensor(np.ones((2, 3))); b = np.arange(12.0).reshape(3, 4)
    >>> pytape.array_ops.einsum("ij,jk->ik", a, b).shape
    (2, 4)
    """
    kwargs.pop("optimize", None)
    _no_extras("einsum", **kwargs)
    ins, out = _einsum_parse(subscripts, len(operands))
    if len(operands) == 1:
        for c in out:
            if c not in ins[0]:
                raise ValueError(f"einsum: output label {c!r} is not in the operand's subscripts")
        y, _ = _einsum_one(operands[0], ins[0], out)
        return y
    x, lx = operands[0], ins[0]
    for k in range(1, len(operands)):
        later = "".join(ins[k + 1:]) + out
        keep = "".join(c for c in dict.fromkeys(lx + ins[k]) if c in later)
        x, lx = _einsum_two(x, lx, operands[k], ins[k], keep), keep
    y, _ = _einsum_one(x, lx, out)
    return y


# ---- composites -------------------------------------------------------------------------

def _stop(x, axis):
    """The max of x along axis (kept) as a constant, nonfinite entries 0: the
    shift of stable log-sum-exp (its derivative cancels exactly)."""
    if TRACING[0] and isinstance(x, Tensor) and x.size:  # a traced f: the max recorded, so replays shift by theirs
        return max(x, axis, keepdims=True)
    v = raw_value(x) if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    m = np.max(v, axis=axis, keepdims=True) if v.size else np.zeros_like(v)
    return np.where(np.isfinite(m), m, 0.0)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, stable (shifted by the max).

    >>> import numpy as np, pytape
    >>> x = pytape.Tensor([1000.0, 1000.0])
    >>> bool(np.isclose(float(pytape.logsumexp(x)), 1000.0 + np.log(2.0), rtol=1e-15))
    True
    """
    m = _stop(x, axis)
    r = ROWS["log"](sum(ROWS["exp"](x - m), axis, keepdims=True)) + m
    if keepdims:
        return r
    nd = len(shape_of(x))
    axes = _normalize_axes(axis, nd, "logsumexp")
    return reshape(r, tuple(n for d, n in enumerate(shape_of(r)) if d not in axes))


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (stable).

    >>> import numpy as np, pytape
    >>> np.round(pytape.softmax(pytape.Tensor([0.0, np.log(3.0)])).value, 6)
    array([0.25, 0.75])
    """
    e = ROWS["exp"](x - _stop(x, axis))
    return e / sum(e, axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis`` (stable)."""
    return x - logsumexp(x, axis, keepdims=True)


def norm(x, ord=None, axis=None, keepdims=False):
    """``np.linalg.norm`` for vector 2-, 1- and inf-norms and the Frobenius norm."""
    nd = len(shape_of(x))
    if ord in (None, 2, "fro") and (ord != 2 or axis is not None or nd == 1) and (ord != "fro" or nd == 2 or
                                                                                   axis is not None):
        return ROWS["sqrt"](sum(x * x, axis, keepdims=keepdims))
    if ord == 1 and (nd == 1 or isinstance(axis, (int, np.integer))):
        return sum(ROWS["abs"](x), axis, keepdims=keepdims)
    if ord in (np.inf, math.inf) and (nd == 1 or isinstance(axis, (int, np.integer))):
        return max(ROWS["abs"](x), axis, keepdims=keepdims)
    raise TypeError(f"pytape: np.linalg.norm(ord={ord!r}) of a {nd}-d Tensor is not supported (vector 2-, 1- and "
                    f"inf-norms and the Frobenius norm are)")


# ---- numpy's protocols ------------------------------------------------------------------

def _values(*xs):
    """The values of numpy functions without derivatives (comparisons, ...;
    their answers are new arrays): a leaf's own array is read as it is, not
    lent for writing as .value does, which would place the leaf again at its
    next use."""
    return [raw_value(x) if isinstance(x, Tensor) else x.value if isinstance(x, Var) else x for x in xs]


#: while pytape.trace records f, comparisons give recorded masks and other
#: reads of values are guarded (pytape/tensor_trace.py fills this)
TRACE_HOOKS = {}


def _on_values(np_fn):
    """A numpy function whose answer has no derivative (comparisons,
    predicates): applied to the values, a plain numpy array."""
    return lambda *xs, **kw: TRACE_HOOKS["on_values"](np_fn, xs, kw) if TRACING[0] else np_fn(*_values(*xs), **kw)


def _ufunc_table():
    table = {}
    for name in _OPC:
        uf = getattr(np, NUMPY_NAMES.get(name, name), None)
        if isinstance(uf, np.ufunc) and uf.nin == (1 if name in _native.UNARY else 2):
            table[uf] = ROWS[name]
    table.update({
        np.true_divide: ROWS["div"], np.absolute: ROWS["abs"], np.fabs: ROWS["abs"],
        np.square: lambda a: a * a, np.reciprocal: lambda a: 1.0 / a, np.positive: lambda a: a * 1.0,
        np.conjugate: lambda a: a * 1.0, np.deg2rad: lambda a: a * (math.pi / 180.0),
        np.rad2deg: lambda a: a * (180.0 / math.pi), np.radians: lambda a: a * (math.pi / 180.0),
        np.degrees: lambda a: a * (180.0 / math.pi), np.matmul: matmul,
    })
    for uf in (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal, np.isnan, np.isinf,
               np.isfinite, np.signbit, np.logical_and, np.logical_or, np.logical_not, np.logical_xor):
        table[uf] = _on_values(uf)
    return table


#: numpy ufunc -> its implementation on Tensors (method "__call__")
UFUNCS = _ufunc_table()

#: numpy ufunc reductions (np.add.reduce(t, axis)) -> the reduction
_REDUCTIONS = {np.add: sum, np.multiply: prod, np.maximum: max, np.minimum: min}


#: unary op-table rows by ufunc: (opcode, map1 limit), for _array_ufunc's
#: inline path (np.exp(t): one Python frame fewer than through UFUNCS)
_UNARY = {uf: (_OPC[name], map1_limit(_OPC[name])) for uf, name in
          ((getattr(np, NUMPY_NAMES.get(name, name), None), name) for name in _native.UNARY)
          if isinstance(uf, np.ufunc) and uf.nin == 1}


def _array_ufunc(self, ufunc, method, *inputs, _unary=_UNARY.get, _m1=_native.arr_map1, _new=TensorResult,
                 _watched=_native.WATCH, **kwargs):
    if method == "__call__" and not kwargs:  # np.exp(t), a + t: straight to the row
        row = _unary(ufunc)
        if row is not None and type(self) is _new:  # a unary ufunc's one input is self
            h = _m1(row[0], self._i, row[1])
            if h >= _watched:  # large: watched (tensor._result)
                return _result(self._t, h)
            if h >= 0:
                r = _new()
                r._t = self._t
                r._i = h
                r._shape = None
                return r
        fn = UFUNCS.get(ufunc)
        if fn is not None:
            return fn(*inputs)
    if kwargs.get("out") is not None:
        raise TypeError(f"pytape: np.{ufunc.__name__}(..., out=) cannot write into an array: a recorded result "
                        f"is a new Tensor (drop out=)")
    kwargs.pop("out", None)
    if method == "__call__":
        fn = UFUNCS.get(ufunc)
        if fn is not None and not kwargs:
            return fn(*inputs)
        if fn is not None and set(kwargs) <= {"dtype", "casting", "order", "subok"}:
            return fn(*inputs)
    elif method == "reduce" and ufunc in _REDUCTIONS and len(inputs) == 1:
        kwargs.setdefault("axis", 0)  # ufunc.reduce's default, not the functions' (all axes)
        kwargs.pop("dtype", None)  # float64 anyway; initial= and where= are refused by the reduction
        return _REDUCTIONS[ufunc](inputs[0], **kwargs)
    raise TypeError(f"pytape: np.{ufunc.__name__}{'' if method == '__call__' else '.' + method} is not "
                    f"supported on a pytape.Tensor (no derivative rule for it)")


def _concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _no_extras("concatenate", out=out)
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [reshape(a, (-1,)) for a in arrays], 0
    shapes = [tuple(shape_of(a)) for a in arrays]
    nd = len(shapes[0])
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    (ax,) = _normalize_axes(axis, nd, "concatenate")
    for s in shapes:
        if len(s) != nd or any(s[d] != shapes[0][d] for d in range(nd) if d != ax):
            raise ValueError(f"all the input array dimensions except for the concatenation axis must match "
                             f"exactly: shapes {' '.join(map(str, shapes))} along axis {ax}")
    if ax != 0:
        arrays = [move(a, lambda v: np.moveaxis(v, ax, 0), "concatenate") for a in arrays]
    moved = (_builtin_sum(s[ax] for s in shapes),) + tuple(n for d, n in enumerate(shapes[0]) if d != ax)
    y = record(KIND["CONCAT"], arrays, moved, (), "concatenate")
    return y if ax == 0 else move(y, lambda v: np.moveaxis(v, 0, ax), "concatenate")


def _stack(arrays, axis=0, out=None, dtype=None, casting=None):
    arrays = list(arrays)
    shapes = {tuple(shape_of(a)) for a in arrays}
    if len(shapes) != 1:
        raise ValueError("all input arrays must have the same shape")
    nd = len(next(iter(shapes))) + 1
    (ax,) = _normalize_axes(axis, nd, "stack")
    return _concatenate([move(a, lambda v: np.expand_dims(v, ax), "stack") for a in arrays], ax, out=out)


def _split(x, indices_or_sections, axis=0):
    s = shape_of(x)
    (ax,) = _normalize_axes(axis, len(s), "split")
    n = s[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        if n % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step)) if step else [0] * (indices_or_sections + 1)
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (slice(None),) * ax + (slice(lo, hi),)
        out.append(getitem(x, key))
    return out


def _take(a, indices, axis=None, out=None, mode="raise"):
    _no_extras("take", out=out)
    return move(a, lambda v: np.take(v, indices, axis=axis, mode=mode), "take", view=False)


def _squeeze(x, axis=None):
    return move(x, lambda v: np.squeeze(v, axis), "squeeze")


def _round(x, decimals=0, out=None):
    """``np.round`` / ``np.around``: the rule of Vars (pytape/ops.py), on the op table's rows."""
    _no_extras("round", out=out)
    return _round_numbers(x, decimals)


def _shape_fn(x):
    return tuple(shape_of(x))


#: numpy function -> its implementation on Tensors (``__array_function__``)
FUNCTIONS = {
    np.sum: sum, np.mean: mean, np.max: max, np.min: min, np.amax: max, np.amin: min, np.prod: prod,
    np.cumsum: cumsum, np.var: var, np.std: std, np.where: where, np.clip: clip,
    np.dot: dot, np.matmul: matmul, np.einsum: einsum, np.inner: inner, np.outer: outer, np.tensordot: tensordot,
    np.reshape: reshape, np.transpose: transpose, np.broadcast_to: broadcast_to,
    np.swapaxes: _moving(np.swapaxes, "swapaxes"), np.moveaxis: _moving(np.moveaxis, "moveaxis"),
    np.expand_dims: _moving(np.expand_dims, "expand_dims"), np.squeeze: _squeeze,
    np.ravel: _moving(np.ravel, "ravel"), np.flip: _moving(np.flip, "flip"),
    np.diagonal: _moving(np.diagonal, "diagonal"), np.repeat: _moving(np.repeat, "repeat", False),
    np.tile: _moving(np.tile, "tile", False), np.roll: _moving(np.roll, "roll", False), np.take: _take,
    np.round: _round, np.around: _round, np.concatenate: _concatenate, np.stack: _stack, np.split: _split, np.linalg.norm: norm,
    np.shape: _shape_fn, np.ndim: lambda x: len(shape_of(x)), np.size: lambda x, axis=None: (
        math.prod(shape_of(x)) if axis is None else shape_of(x)[axis]),
    np.isclose: _on_values(np.isclose), np.allclose: _on_values(np.allclose),
    np.array_equal: _on_values(np.array_equal), np.any: _on_values(np.any), np.all: _on_values(np.all),
    np.argmax: _on_values(np.argmax), np.argmin: _on_values(np.argmin), np.argsort: _on_values(np.argsort),
    np.nonzero: _on_values(np.nonzero), np.count_nonzero: _on_values(np.count_nonzero),
    np.zeros_like: lambda x, *a, **k: np.zeros_like(_values(x)[0], *a, **k),
    np.ones_like: lambda x, *a, **k: np.ones_like(_values(x)[0], *a, **k),
    np.empty_like: lambda x, *a, **k: np.empty_like(_values(x)[0], *a, **k),
    np.full_like: lambda x, *a, **k: np.full_like(_values(x)[0], *a, **k),
    np.result_type: lambda *xs: np.result_type(*[np.float64 if isinstance(x, Tensor) else x for x in xs]),
}


def _array_function(self, func, types, args, kwargs):
    fn = FUNCTIONS.get(func)
    if fn is None:
        raise TypeError(f"pytape: np.{func.__name__} is not supported on a pytape.Tensor (no derivative rule "
                        f"for it); see the README's list of array operations")
    return fn(*args, **kwargs)


# ---- the Tensor's operators and methods ------------------------------------------------

def _install():
    nat = _native

    def binary(code):
        op = ROWS[nat.OP_NAMES[code]]  # its number-on-the-left case is the reflected operator's fast path

        def rop(a, b):  # b op a
            return op(b, a)
        return op, rop

    for dunder, name in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div"), ("pow", "pow"),
                         ("mod", "mod"), ("floordiv", "floor_divide")):
        op, rop = binary(nat.OPCODES[name])
        setattr(Tensor, f"__{dunder}__", op)
        setattr(Tensor, f"__r{dunder}__", rop)
    neg, absolute = nat.OPCODES["neg"], nat.OPCODES["abs"]
    Tensor.__neg__ = lambda a: map1(neg, a)
    Tensor.__pos__ = lambda a: a
    Tensor.__abs__ = lambda a: map1(absolute, a)
    Tensor.__matmul__ = matmul
    Tensor.__rmatmul__ = lambda a, b: matmul(b, a)
    for dunder, uf in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                       ("eq", np.equal), ("ne", np.not_equal)):
        setattr(Tensor, f"__{dunder}__", lambda a, b, uf=uf: TRACE_HOOKS["compare"](uf, a, b) if TRACING[0]
                else uf(*_values(a, b)))
    Tensor.__getitem__ = getitem
    Tensor.T = property(transpose, doc="The transpose (reversed axes): one VIEW instruction.")
    Tensor.__array_ufunc__ = _array_ufunc
    Tensor.__array_function__ = _array_function
    # methods: every row (x.exp(), x.relu(), x.maximum(y)), numpy's names too, and numpy's array methods
    for name in _OPC:
        if name in ("where_t", "where_f", "chain"):
            continue
        for n in {name, NUMPY_NAMES.get(name, name)}:
            if not hasattr(Tensor, n):
                setattr(Tensor, n, ROWS[name])
    for n, f in (("sum", sum), ("mean", mean), ("max", max), ("min", min), ("prod", prod), ("cumsum", cumsum),
                 ("var", var), ("std", std), ("transpose", lambda x, *axes: transpose(
                     x, axes[0] if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)) else (axes or None))),
                 ("reshape", reshape), ("dot", dot), ("clip", clip), ("ravel", FUNCTIONS[np.ravel]),
                 ("flatten", FUNCTIONS[np.ravel]), ("squeeze", _squeeze), ("swapaxes", FUNCTIONS[np.swapaxes]),
                 ("take", _take)):
        setattr(Tensor, n, f)


_install()
