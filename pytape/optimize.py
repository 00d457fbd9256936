"""``scipy.optimize.minimize`` with derivatives from a traced tape.

f is traced once (``pytape.trace``); scipy then gets the value and gradient
from one replay and one reverse sweep per call (``jac=True``), and, for the
methods that use them, Hessians (``hess``) or Hessian-vector products
(``hessp``, forward over reverse) from the same tape.  scipy is optional:
``pip install "pytape[optimize]"``.

>>> import numpy as np, pytape.optimize
>>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
>>> res = pytape.optimize.minimize(rosen, np.zeros(5), method="BFGS")
>>> res.success, np.allclose(res.x, 1.0, atol=1e-4)
(True, True)
"""
import sys

import numpy as np

from .tracing import trace

__all__ = ["minimize"]

_HESS = {"trust-exact", "dogleg", "trust-constr"}           # take hess
_HESSP = {"newton-cg", "trust-ncg", "trust-krylov"}         # take hessp


def minimize(f, x0, method="BFGS", progress=False, **kwargs):
    """Minimize a scalar f(x) of a 1-d array x with scipy, derivatives from pytape.

    ``method`` and every other keyword go to ``scipy.optimize.minimize``;
    ``jac`` (and ``hess`` or ``hessp`` where the method uses one) come from
    the tape unless given.  ``progress=True`` prints the iteration and f to
    stderr; a ``callback`` of yours still runs.

    >>> import numpy as np, pytape.optimize
    >>> res = pytape.optimize.minimize(lambda x: np.sum((x - 3.0) ** 2), np.zeros(2), method="Newton-CG")
    >>> np.round(res.x, 6).tolist()
    [3.0, 3.0]
    """
    try:
        from scipy import optimize as so
    except ImportError:
        raise ImportError("pytape.optimize needs scipy: pip install \"pytape[optimize]\" (or pip install scipy)") from None
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a 1-d array, got shape {x0.shape}")
    fn = trace(f, x0)
    m = method.lower() if isinstance(method, str) else method
    kwargs.setdefault("jac", True)
    fun = fn.value_and_grad if kwargs["jac"] is True else fn
    if m in _HESS:
        kwargs.setdefault("hess", fn.hessian)
    if m in _HESSP and "hess" not in kwargs:
        kwargs.setdefault("hessp", fn.hvp)
    if progress:
        user = kwargs.pop("callback", None)
        state = {"k": 0}

        def callback(xk, *rest):
            state["k"] += 1
            print(f"pytape.optimize: iteration {state['k']}: f = {fn(xk):.10g}", file=sys.stderr)
            if user is not None:
                return user(xk, *rest)

        kwargs["callback"] = callback
    res = so.minimize(fun, x0, method=method, **kwargs)
    res.retraces = fn.retraces
    return res
