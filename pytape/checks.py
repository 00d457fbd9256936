"""Checks of the tape's derivatives against central finite differences:
``gradcheck`` (first derivatives) and ``gradgradcheck`` (second), like
``torch.autograd.gradcheck`` and ``gradgradcheck``.

>>> import pytape
>>> pytape.gradcheck(lambda x: pytape.exp(x) * x, 0.5), pytape.gradgradcheck(lambda x: pytape.exp(x) * x, 0.5)
(True, True)
"""
import numpy as np

from .errors import GradcheckError
from .functional import value_and_grad
from .program import Recording, as_float_array
from .var import Var

__all__ = ["gradcheck", "gradgradcheck"]


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
    analytic = Recording(f, args, argnums, api="pytape.gradcheck").jacobian("rev")
    base = [as_float_array(a, f"argument {k}") for k, a in enumerate(args)]
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
    rec = Recording(s, args, argnums, api="pytape.gradgradcheck")
    n = sum(rec.sizes)
    analytic = rec.hvps(np.eye(n))
    base = np.concatenate([as_float_array(a, f"argument {k}").ravel() for k, a in enumerate(args)])
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
