"""``scipy.optimize.minimize`` with derivatives from a traced tape.

f is traced once (``pytape.trace``); scipy then gets the value and gradient
from one replay and one reverse sweep per call (``jac=True``), and, for the
methods that use them, Hessians (``hess``) or Hessian-vector products
(``hessp``, forward over reverse) from the same tape.  scipy is optional:
``pip install "pytape[optimize]"``.

Constraints (``trust-constr``, ``SLSQP``): a ``scipy.optimize.NonlinearConstraint``
given without ``jac``, or an old-style dict ``{"type": "eq" | "ineq", "fun": g}``
without one, gets the constraint's Jacobian from its own traced tape, and for
``trust-constr`` the Hessian of the Lagrangian term ``v . g(x)`` too (from a
tape of ``v . g(x)`` with v as data).  With ``sparse=True`` (the default for
``trust-constr`` from ``SPARSE_FROM`` variables up) these are
``scipy.sparse`` matrices from the sparsity pattern, colourings and
compressed sweeps (pytape/sparse.py), as is the objective's Hessian: a
problem of 10^4 variables with banded structure costs a few sweeps per
derivative instead of 10^4.

>>> import numpy as np, pytape.optimize
>>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
>>> res = pytape.optimize.minimize(rosen, np.zeros(5), method="BFGS")
>>> res.success, np.allclose(res.x, 1.0, atol=1e-4)
(True, True)
"""
import sys

import numpy as np

from .sparse import entries
from .tracing import trace

__all__ = ["minimize", "ipopt", "SPARSE_FROM"]

#: ``sparse=None`` (the default) takes sparse derivatives for trust-constr from this many variables
SPARSE_FROM = 200

_HESS = {"trust-exact", "dogleg", "trust-constr"}           # take hess
_HESSP = {"newton-cg", "trust-ncg", "trust-krylov"}         # take hessp


def minimize(f, x0, method="BFGS", progress=False, sparse=None, **kwargs):
    """Minimize a scalar f(x) of a 1-d array x with scipy, derivatives from pytape.

    ``method`` and every other keyword go to ``scipy.optimize.minimize``;
    ``jac`` (and ``hess`` or ``hessp`` where the method uses one) come from
    the tape unless given, and so do the derivatives of ``constraints``
    given without them (see the module's text).  ``sparse``: sparse
    Hessians and constraint Jacobians (``trust-constr``; None: from
    ``SPARSE_FROM`` variables).  ``progress=True`` prints the iteration and
    f to stderr; a ``callback`` of yours still runs.

    >>> import numpy as np, pytape.optimize
    >>> res = pytape.optimize.minimize(lambda x: np.sum((x - 3.0) ** 2), np.zeros(2), method="Newton-CG")
    >>> np.round(res.x, 6).tolist()
    [3.0, 3.0]

    With a constraint (the nearest point to (2, 1) on the unit circle):

    >>> from scipy.optimize import NonlinearConstraint
    >>> circle = NonlinearConstraint(lambda x: x[0] ** 2 + x[1] ** 2, 1.0, 1.0)
    >>> res = pytape.optimize.minimize(lambda x: (x[0] - 2) ** 2 + (x[1] - 1) ** 2, np.array([1.0, 0.0]),
    ...                                method="trust-constr", constraints=[circle])
    >>> np.round(res.x, 6).tolist() == np.round(np.array([2.0, 1.0]) / np.sqrt(5.0), 6).tolist()
    True
    """
    try:
        from scipy import optimize as so
    except ImportError:
        raise ImportError("pytape.optimize needs scipy: pip install \"pytape[optimize]\" (or pip install scipy)") from None
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a 1-d array, got shape {x0.shape}")
    m = method.lower() if isinstance(method, str) else method
    if sparse is None:
        sparse = m == "trust-constr" and len(x0) >= SPARSE_FROM
    if sparse and m != "trust-constr":
        raise ValueError(f"sparse=True takes method='trust-constr' (the scipy method that uses sparse "
                         f"derivatives), not {method!r}")
    fn = trace(f, x0, elementwise=True) if sparse else trace(f, x0)
    kwargs.setdefault("jac", True)
    fun = fn.value_and_grad if kwargs["jac"] is True else fn
    if m in _HESS:
        kwargs.setdefault("hess", fn.sparse_hessian if sparse else fn.hessian)
    if m in _HESSP and "hess" not in kwargs:
        kwargs.setdefault("hessp", fn.hvp)
    if kwargs.get("constraints") is not None:
        kwargs["constraints"] = _constraints(kwargs["constraints"], x0, m, sparse, so)
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


def _constraints(cons, x0, method, sparse, so):
    """The constraints with the tape's derivatives where they have none."""
    one = isinstance(cons, (dict, so.NonlinearConstraint, so.LinearConstraint))
    out = [_constraint(c, x0, method, sparse, so) for c in ([cons] if one else list(cons))]
    return out[0] if one else out


def _vector_fun(g):
    """g with its output as a 1-d array (a scalar constraint gives one entry)."""
    def h(*args):
        y = g(*args)
        return y.reshape(-1) if isinstance(y, np.ndarray) else np.array([y], dtype=object).reshape(-1)
    return h


def _constraint(c, x0, method, sparse, so):
    if isinstance(c, dict):  # SLSQP's and COBYLA's form
        if "jac" in c or method == "cobyla":
            return c
        args = tuple(c.get("args", ()))
        gt = trace(_vector_fun(c["fun"]), x0, *args, argnums=0)  # scipy passes the same args at every call
        return dict(c, jac=lambda x, *a: np.atleast_2d(gt.jacobian(x, *a)), args=args)
    if not isinstance(c, so.NonlinearConstraint) or not isinstance(c.jac, str):
        return c  # linear, or with derivatives of its own
    g = _vector_fun(c.fun)
    y0 = np.asarray(c.fun(x0), dtype=float).reshape(-1)
    gt = trace(g, x0, elementwise=True) if sparse else trace(g, x0)
    jac = gt.sparse_jacobian if sparse else (lambda x: np.atleast_2d(gt.jacobian(x)))
    hess = c.hess
    if method == "trust-constr" and not callable(hess):
        lag = trace(lambda x, v: np.dot(v, g(x)), x0, np.ones(len(y0)), argnums=0, elementwise=bool(sparse))
        hess = lag.sparse_hessian if sparse else lag.hessian
    return so.NonlinearConstraint(c.fun, c.lb, c.ub, jac=jac, hess=hess, keep_feasible=c.keep_feasible,
                                  finite_diff_rel_step=c.finite_diff_rel_step,
                                  finite_diff_jac_sparsity=c.finite_diff_jac_sparsity)


class _IpoptProblem:
    """cyipopt's callbacks from pytape tapes: the objective's value and
    gradient, the constraints' values and sparse Jacobian, and the sparse
    Hessian of the Lagrangian  sigma f(x) + lambda . g(x)  (lower triangle)."""

    def __init__(self, f, g, x0, m):
        self.fn = trace(f, x0, elementwise=True)
        self.m = m
        if m:
            self.gt = trace(g, x0, elementwise=True)
            J = self.gt.jacobian_sparsity(x0).tocoo()
            self._jac = (J.row.astype(np.int64), J.col.astype(np.int64))
        self.lag = trace(lambda x, s, lam: s * f(x) + (np.dot(lam, g(x)) if m else 0.0), x0, 1.0, np.ones(m),
                         argnums=0, elementwise=True)
        rows, cols = entries(self.lag.hessian_sparsity(x0, 1.0, np.ones(m)))
        self._lower = rows >= cols  # IPOPT takes the lower triangle, in the pattern's CSR order
        self._hess = (rows[self._lower], cols[self._lower])
        self.iterations = 0

    def objective(self, x):
        return self.fn(x)

    def gradient(self, x):
        return self.fn.gradient(x)

    def constraints(self, x):
        return np.asarray(self.gt(x), dtype=float).reshape(-1) if self.m else np.zeros(0)

    def jacobianstructure(self):
        return self._jac if self.m else (np.zeros(0, np.int64), np.zeros(0, np.int64))

    def jacobian(self, x):
        return self.gt.sparse_jacobian(x).data if self.m else np.zeros(0)

    def hessianstructure(self):
        return self._hess

    def hessian(self, x, lagrange, obj_factor):
        return self.lag.sparse_hessian(x, obj_factor, np.asarray(lagrange, dtype=float)).data[self._lower]

    def intermediate(self, *args):
        self.iterations = int(args[1])
        return True


def ipopt(f, x0, constraints=(), bounds=None, options=None):
    """Minimize f(x) with IPOPT (through cyipopt), derivatives from pytape:
    the gradient, the constraints' sparse Jacobian and the sparse Hessian of
    the Lagrangian, each from a traced tape (patterns and colourings found
    once; pytape/sparse.py).

    ``constraints``: ``scipy.optimize.NonlinearConstraint`` objects (their
    ``fun``, ``lb``, ``ub``; their own derivatives are not used), or one.
    ``bounds``: a sequence of (low, high) pairs (None for no bound), or a
    ``scipy.optimize.Bounds``.  ``options``: IPOPT's options
    (``{"max_iter": 100, "tol": 1e-10}``; ``print_level`` is 0 unless given).
    Returns a ``scipy.optimize.OptimizeResult`` (``x``, ``fun``, ``success``,
    ``status``, ``message``, ``nit``, ``info``: cyipopt's).  Needs cyipopt,
    which needs the IPOPT library (Debian: ``apt install coinor-libipopt-dev
    liblapack-dev libblas-dev``, then ``pip install cyipopt``).
    """
    try:
        import cyipopt
    except ImportError:
        raise ImportError("pytape.optimize.ipopt needs cyipopt, which needs the IPOPT library: on Debian or Ubuntu "
                          "apt install coinor-libipopt-dev liblapack-dev libblas-dev, then pip install cyipopt "
                          "(or conda install -c conda-forge cyipopt)") from None
    from scipy import optimize as so
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be a 1-d array, got shape {x0.shape}")
    cons = [constraints] if isinstance(constraints, so.NonlinearConstraint) else list(constraints)
    for c in cons:
        if not isinstance(c, so.NonlinearConstraint):
            raise TypeError(f"pytape.optimize.ipopt takes scipy.optimize.NonlinearConstraint constraints, not "
                            f"{type(c).__name__}")
    funs = [_vector_fun(c.fun) for c in cons]
    sizes = [len(np.asarray(c.fun(x0), dtype=float).reshape(-1)) for c in cons]
    m = sum(sizes)

    def g(x):
        return np.concatenate([h(x) for h in funs]) if funs else np.zeros(0)
    cl = np.concatenate([np.broadcast_to(np.asarray(c.lb, dtype=float), (k,)) for c, k in zip(cons, sizes)]
                        ) if cons else np.zeros(0)
    cu = np.concatenate([np.broadcast_to(np.asarray(c.ub, dtype=float), (k,)) for c, k in zip(cons, sizes)]
                        ) if cons else np.zeros(0)
    n = len(x0)
    if bounds is None:
        lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
    elif isinstance(bounds, so.Bounds):
        lb, ub = np.broadcast_to(bounds.lb, (n,)).astype(float), np.broadcast_to(bounds.ub, (n,)).astype(float)
    else:
        pairs = list(bounds)
        lb = np.array([-np.inf if lo is None else lo for lo, _ in pairs], dtype=float)
        ub = np.array([np.inf if hi is None else hi for _, hi in pairs], dtype=float)
    prob = _IpoptProblem(f, g, x0, m)
    nlp = cyipopt.Problem(n=n, m=m, problem_obj=prob, lb=lb, ub=ub, cl=cl, cu=cu)
    opts = {"print_level": 0, "sb": "yes"}
    opts.update(options or {})
    for key, value in opts.items():
        nlp.add_option(key, value)
    x, info = nlp.solve(x0)
    nlp.close()
    status = int(info["status"])
    msg = info["status_msg"]
    return so.OptimizeResult(x=x, fun=float(info["obj_val"]), success=status in (0, 1), status=status,
                             message=msg.decode() if isinstance(msg, bytes) else str(msg), nit=prob.iterations,
                             info=info)

