"""``pytape.checkpoint(f)``: a block whose intermediates are not kept (as
``jax.checkpoint`` / ``torch.utils.checkpoint``).

Called with a ``pytape.Tensor`` among its arguments, the checkpointed
function is one instruction on the tape (a custom primitive on arrays,
csrc/array_custom.c): its value is computed by recording ``f`` on a scratch
tape of constants that is freed at once, and the reverse sweep, when it
reaches the instruction, records ``f`` again from the block's inputs (kept
on the tape, as every operand is) and runs its vjp there (forward mode: its
jvp; forward over reverse: its Hessian-vector product).  Memory: the inputs and output of each block instead of every
intermediate; time: one more forward pass of the block per sweep.

>>> import numpy as np, pytape
>>> step = pytape.checkpoint(lambda x: x + 0.1 * np.sin(x))
>>> x = pytape.Tensor(np.linspace(0.0, 1.0, 5))
>>> y = x
>>> for _ in range(10):
...     y = step(y)                       # one instruction per call
>>> np.sum(y).backward()
>>> def plain(v):
...     for _ in range(10):
...         v = v + 0.1 * np.sin(v)
...     return np.sum(v)
>>> bool(np.array_equal(x.grad, pytape.grad(plain)(np.linspace(0.0, 1.0, 5))))
True
"""
import functools

import numpy as np

from .custom import Primitive
from .tape import Tape, enable_grad
from .tensor import Tensor

__all__ = ["checkpoint"]


def _constants(xs):
    return [Tensor(x, requires_grad=False) if isinstance(x, np.ndarray) else x for x in xs]


def _tangents(xs, tangents):
    """Each argument's tangent, zero (of its shape) where there is none."""
    return tuple(t if t is not None else np.zeros(np.shape(x)) if isinstance(x, np.ndarray) else 0.0
                 for x, t in zip(xs, tangents))


def _output(out, f):
    if isinstance(out, Tensor):
        return np.array(out.value)
    if isinstance(out, (tuple, list, dict)):
        raise TypeError(f"pytape.checkpoint: {getattr(f, '__name__', 'f')} must return one Tensor or number, "
                        f"not a {type(out).__name__} (several outputs are not supported yet)")
    try:
        return np.array(out.value if hasattr(out, "value") else out, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"pytape.checkpoint: {getattr(f, '__name__', 'f')} must return one Tensor or number, "
                        f"not {type(out).__name__}") from None


def checkpoint(f):
    """``f`` with its intermediates recomputed in the reverse sweep instead of
    kept: one instruction on the tape per call with Tensor arguments
    (anything else calls ``f`` as it is).  ``f`` returns one Tensor (or a
    number); its arguments may be Tensors, Vars, numbers and numpy arrays
    (constants).  Gradients equal those of ``f`` recorded in place (the same
    kernels on the same values); a chain of checkpointed blocks keeps the
    blocks' inputs and outputs only.  Second order (``hessian``, ``hvp``)
    recomputes each block's Hessian-vector product the same way.

    >>> import numpy as np, pytape
    >>> block = pytape.checkpoint(lambda x, w: np.tanh(x @ w))
    >>> w = pytape.Tensor(np.eye(2) * 0.5)
    >>> out = np.sum(block(np.ones((3, 2)), w))
    >>> out.backward(); w.grad.shape
    (2, 2)
    """
    if not callable(f):
        raise TypeError(f"pytape.checkpoint takes a function, not {type(f).__name__}")

    def value(*xs):
        with enable_grad(), Tape():  # a scratch tape of constants, freed on return
            return _output(f(*_constants(xs)), f)

    value.__name__ = value.__qualname__ = f"checkpoint({getattr(f, '__qualname__', 'f')})"
    prim = Primitive(value, arrays=True)

    def vjp_all(ans, xs, g):
        from .functional import vjp
        with enable_grad():
            _, back = vjp(f, *xs)
            return back(g)  # a tuple: one share per argument

    def jvp_all(ans, xs, tangents):
        from .functional import jvp
        with enable_grad():
            return jvp(f, tuple(xs), _tangents(xs, tangents))[1]

    def hvp_all(ans, xs, g, tangents):
        """The second-order terms: the Hessian of <g, f(args)> along the tangents (forward over reverse)."""
        from .functional import hvp
        gc = np.array(g)
        with enable_grad():
            return hvp(lambda a: np.sum(gc * f(*a)), tuple(xs), _tangents(xs, tangents))

    prim._vjp_all, prim._jvp_all, prim._hvp_all = vjp_all, jvp_all, hvp_all

    @functools.wraps(f)
    def checkpointed(*args):
        if any(isinstance(x, Tensor) for x in args):
            return prim(*args)
        return f(*args)

    return checkpointed
