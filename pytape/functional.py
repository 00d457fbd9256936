"""Function transformations in the style of JAX and HIPS autograd: ``grad``,
``value_and_grad``, ``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``jacobian``,
``hessian``, ``hvp``.

Each records ``f`` once on a fresh tape (its inputs become leaves) and then
runs C sweeps over that tape (pytape/program.py): a reverse sweep gives a row
of the Jacobian, a tangent sweep a column, and the block sweeps take up to 64
rows or columns per pass.  Inputs may be floats, sequences or numpy arrays of
any shape, of real numbers (anything else raises ``TypeError`` naming the
argument: ``pytape.program.as_float_array``); an array reaches ``f`` as a numpy object array of ``Var`` s, so
numpy code such as ``np.sum(np.sin(x) ** 2)`` differentiates unchanged.
Results follow numpy shapes: a Jacobian has shape ``out.shape + in.shape``.

>>> import numpy as np, pytape
>>> f = lambda x: np.sum(np.sin(x) ** 2)
>>> g = pytape.grad(f)(np.array([0.5, 1.0]))
>>> np.allclose(g, np.sin(2 * np.array([0.5, 1.0])))
True
"""
import numpy as np

from .program import Recording, as_float_array, check_argnums, scalar_output

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacfwd", "jacrev", "jacobian", "hessian", "hvp"]


def value_and_grad(f, argnums=0, has_aux=False):
    """``f``'s value and gradient in one call: one recording and one reverse sweep.

    >>> import pytape
    >>> vg = pytape.value_and_grad(lambda x1, x2: pytape.log(x1) + x1 * x2 - pytape.sin(x2), argnums=(0, 1))
    >>> value, (d1, d2) = vg(2.0, 5.0)
    >>> round(value, 3), d1, round(d2, 3)
    (11.652, 5.5, 1.716)
    """
    return _value_and_grad(f, argnums, has_aux, "pytape.value_and_grad")


def _value_and_grad(f, argnums, has_aux, api):
    check_argnums(argnums, api)

    def wrapper(*args):
        rec = Recording(f, args, argnums, has_aux, api=api)
        scalar_output(rec, "grad")
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
    vg = _value_and_grad(f, argnums, has_aux, "pytape.grad")

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
    for name, xs in (("primals", primals), ("tangents", tangents)):
        if not isinstance(xs, (tuple, list)):
            raise TypeError(f"pytape.jvp takes {name} as a tuple with one entry per argument of f, not "
                            f"{type(xs).__name__}: for f of one argument, jvp(f, (x,), (v,))")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp needs one tangent per primal, got {len(primals)} primals and {len(tangents)} tangents")
    rec = Recording(f, primals, tuple(range(len(primals))), api="pytape.jvp")
    out = np.zeros(len(rec.out_slots))
    for j, t in enumerate(tangents):
        t = as_float_array(t, f"tangent {j}")
        if t.shape != rec.shapes[j]:
            raise ValueError(f"tangent {j} has shape {t.shape}, its primal {rec.shapes[j]}")
        out += rec.columns(j, t.reshape(-1, 1))[:, 0]
    return rec.value, rec.shaped_out(out)


def vjp(f, *primals):
    """Reverse mode: ``(f(*primals), vjp_fn)`` with ``vjp_fn(u)`` = u @ J, one
    tuple entry per primal, from one reverse sweep over the recorded tape.

    >>> import numpy as np, pytape
    >>> value, vjp_fn = pytape.vjp(lambda x: x * 2.0, np.array([1.0, 2.0]))
    >>> vjp_fn(np.array([1.0, 10.0]))
    (array([ 2., 20.]),)
    """
    rec = Recording(f, primals, tuple(range(len(primals))), api="pytape.vjp")

    def vjp_fn(cotangent):
        u = as_float_array(cotangent, "the cotangent")
        if u.shape != rec.out_shape:
            raise ValueError(f"the cotangent has shape {u.shape}, f's output {rec.out_shape}")
        rows = rec.rows(u.reshape(1, -1))
        return tuple(rec.shaped_in(j, r[0]) for j, r in enumerate(rows))

    return rec.value, vjp_fn


def _jacobian(f, argnums, mode, api):
    check_argnums(argnums, api)

    def wrapper(*args):
        return Recording(f, args, argnums, api=api).jacobian(mode)

    return wrapper


def jacfwd(f, argnums=0):
    """The Jacobian by forward mode: one tangent lane per input (up to 64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return _jacobian(f, argnums, "fwd", "pytape.jacfwd")


def jacrev(f, argnums=0):
    """The Jacobian by reverse mode: one adjoint lane per output (up to 64 per sweep).

    >>> import numpy as np, pytape
    >>> pytape.jacrev(lambda x: [x[0] * x[1], x[0] + x[1]])(np.array([2.0, 3.0]))
    array([[3., 2.],
           [1., 1.]])
    """
    return _jacobian(f, argnums, "rev", "pytape.jacrev")


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
    return _jacobian(f, argnums, mode, "pytape.jacobian")


def hvp(f, x, v, argnums=0):
    """Hessian-vector product H v of a scalar f at x: one tangent pass and one
    reverse pass over f's tape (forward over reverse), never the full Hessian.

    >>> import numpy as np, pytape
    >>> f = lambda x: x[0] ** 2 * x[1] + pytape.sin(x[1])
    >>> pytape.hvp(f, np.array([1.0, 2.0]), np.array([1.0, 0.0]))   # column 0 of [[2 x1, 2 x0], [2 x0, -sin x1]]
    array([4., 2.])
    """
    rec = Recording(f, (x,), 0, api="pytape.hvp")
    v = as_float_array(v, "v")
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
    check_argnums(argnums, "pytape.hessian")

    def wrapper(*args):
        return Recording(f, args, argnums, api="pytape.hessian").hessian()

    return wrapper
