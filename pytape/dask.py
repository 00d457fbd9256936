"""Compiled functions on Dask arrays: values and gradients of many points,
lazily, chunk by chunk, on whatever Dask runs on (threads, processes, a
``dask.distributed`` cluster).

A compiled function (``pytape.trace``) replays a batch of points (a leading
batch axis) in C.  Given ``dask.array`` arguments chunked along that axis,
its methods return lazy dask arrays instead: each chunk of points is one
batch replay on a worker.  The compiled function is one node of the graph,
so it travels to each worker once (pickled: its tape, as
``fn.to_bytes()``, and f by cloudpickle, so that a worker can trace a
branch it meets), not once per chunk; a chunk replays on one thread,
leaving the parallelism to Dask.

``fn(dX)``, ``fn.gradient(dX)`` and ``fn.value_and_grad(dX)`` of a compiled
function take dask arrays directly (:func:`map_value`, :func:`map_gradient`,
:func:`map_value_and_grad` here do the work); every argument has the batch
axis first, chunked alike (numpy arguments are wrapped with those chunks),
and is rechunked to whole points.  Dask is optional: ``pip install
"pytape[dask]"`` (``dask[array]``; ``dask[distributed]`` for clusters).

>>> import numpy as np, dask.array as da, pytape
>>> fn = pytape.trace(lambda x: np.sum(x ** 2), np.zeros(3))
>>> dX = da.from_array(np.arange(12.0).reshape(4, 3), chunks=(2, 3))
>>> fn.gradient(dX)
dask.array<..., shape=(4, 3), dtype=float64, chunksize=(2, 3), chunktype=numpy.ndarray>
>>> fn.gradient(dX).compute().tolist()
[[0.0, 2.0, 4.0], [6.0, 8.0, 10.0], [12.0, 14.0, 16.0], [18.0, 20.0, 22.0]]
"""
import uuid

import numpy as np

__all__ = ["map_value", "map_gradient", "map_value_and_grad", "is_dask"]


def is_dask(args):
    """True if one of args is a dask array (duck-typed: no import of dask)."""
    return any(hasattr(a, "__dask_graph__") and hasattr(a, "chunks") for a in args)


def _dask_array():
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise ImportError("pytape's Dask support needs dask: pip install \"pytape[dask]\" "
                          "(or pip install \"dask[array]\")") from None
    return dask, da


class _Shipped:
    """The compiled function as the graph carries it: pickled once per worker
    (its tape; f too, by cloudpickle where installed, so that a worker can
    trace a branch it meets).  ``arrivals`` counts the copies this process
    received."""

    arrivals = 0

    def __init__(self, fn):
        self.fn = fn

    def __getstate__(self):
        state = {"fn": self.fn, "f": None}
        try:
            import cloudpickle
            state["f"] = cloudpickle.dumps(self.fn._f)
        except Exception:  # no cloudpickle, or f does not pickle: the copy replays, and raises on a new branch
            pass
        return state

    def __setstate__(self, state):
        self.fn = state["fn"]
        if self.fn._f is None and state["f"] is not None:
            import cloudpickle
            self.fn._f = cloudpickle.loads(state["f"])
        type(self).arrivals += 1


def _prepare(fn, args, what):
    """(dask module, da, the arguments as 2-d dask arrays (points, size), the shapes)."""
    dask, da = _dask_array()
    if not args:
        raise TypeError(f"fn.{what}() on dask arrays needs arguments with a batch axis")
    first = next(a for a in args if hasattr(a, "__dask_graph__"))
    if first.ndim < 1:
        raise ValueError(f"fn.{what}(): a dask argument needs a leading batch axis")
    if not fn._tapes:  # the decorator form: trace at the first point
        fn._trace(tuple(np.asarray(a[0]) if hasattr(a, "__dask_graph__") else np.asarray(a)[0] for a in args))
    c = fn._tapes[0]
    if len(args) != len(c.shapes):
        raise TypeError(f"the traced function takes {len(c.shapes)} arguments, got {len(args)}")
    points, chunks = first.shape[0], first.chunks[0]
    flat = []
    for k, (a, shape, size) in enumerate(zip(args, c.shapes, c.sizes)):
        a = a if hasattr(a, "__dask_graph__") else da.from_array(np.asarray(a, dtype=float), chunks=-1)
        if a.shape != (points,) + tuple(shape):
            raise ValueError(f"argument {k} has shape {a.shape}; with a batch axis of {points} points the traced "
                             f"function takes {(points,) + tuple(shape)}")
        whole = a.astype(float).rechunk((chunks,) + (-1,) * len(shape))  # whole points in every chunk
        flat.append(whole.reshape(points, size))
    return dask, da, flat, c


def _run_block(shipped, what, *blocks):
    """One chunk of points, (points, size) per argument: values, gradients or both, (points, columns)."""
    X = np.ascontiguousarray(np.concatenate(blocks, axis=1))
    Y, G = shipped.fn._run(X, what != "value", threads=1)  # Dask runs the chunks in parallel
    return Y if what == "value" else G if what == "grad" else np.concatenate([Y, G], axis=1)


def _blocks(fn, args, what):
    """The chunks' results as one lazy (points, columns) array: the values, the
    gradients ("grad") or both ("both", the value first)."""
    dask, da, flat, c = _prepare(fn, args, what)
    if what != "value" and (len(c.out_slots) != 1 or c.out_shape not in ((), (1,))):
        raise TypeError(f"the gradient needs a scalar output, f returns shape {c.out_shape}; use jacobian")
    columns = {"value": len(c.out_slots), "grad": c.nin, "both": 1 + c.nin}[what]
    if not hasattr(fn, "_dask_name"):
        fn._dask_name = f"pytape-compiled-{uuid.uuid4().hex}"
    # one node of the graph (named: no hashing of the tape), shipped once to each worker
    shipped = dask.delayed(_Shipped(fn), name=f"{fn._dask_name}-{fn.retraces}", traverse=False)
    R = da.map_blocks(_run_block, shipped, what, *flat, chunks=(flat[0].chunks[0], (columns,)), dtype=float,
                      meta=np.empty((0, 0)))
    return R, c, flat[0].shape[0]


def _split_grads(fn, R, c, points, start):
    """The gradient columns of R from column `start`, per argument in its shape (fn's argnums)."""
    out, col = [], start
    for shape, size in zip(c.shapes, c.sizes):
        out.append(R[:, col:col + size].reshape((points,) + tuple(shape)))
        col += size
    return fn._pick(c, out)


def map_value(fn, *args):
    """f at every point of dask arrays (batch axis first): a lazy dask array,
    shape (points,) + f's output shape.  As ``fn(*args)``.

    >>> import numpy as np, dask.array as da, pytape
    >>> fn = pytape.trace(lambda x: x * 2.0, np.zeros(2))
    >>> map_value(fn, da.ones((3, 2), chunks=(1, 2))).compute().tolist()
    [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]
    """
    R, c, points = _blocks(fn, args, "value")
    return R[:, 0] if c.out_shape == () else R.reshape((points,) + tuple(c.out_shape))


def map_gradient(fn, *args):
    """The gradient at every point: lazy dask arrays shaped like the
    arguments (a tuple for several, or those of ``argnums``).  As ``fn.gradient``.

    >>> import numpy as np, dask.array as da, pytape
    >>> fn = pytape.trace(lambda x: np.sum(x ** 3), np.zeros(2))
    >>> map_gradient(fn, da.ones((3, 2), chunks=(2, 2))).compute().tolist()
    [[3.0, 3.0], [3.0, 3.0], [3.0, 3.0]]
    """
    R, c, points = _blocks(fn, args, "grad")
    return _split_grads(fn, R, c, points, 0)


def map_value_and_grad(fn, *args):
    """(values (points,), gradients): one replay and one reverse sweep per point,
    both lazy and computed together.  As ``fn.value_and_grad``."""
    R, c, points = _blocks(fn, args, "both")
    return R[:, 0], _split_grads(fn, R, c, points, 1)
