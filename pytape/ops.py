"""The primitive functions of the ``pytape`` namespace, one per op-table row,
and numpy's names for them.

Each takes ``Var`` s or real numbers.  With a ``Var`` operand it records one
instruction and returns a ``Var``; with plain numbers (Python or numpy
scalars) it returns a plain float; with a numpy array it applies elementwise.
Values outside a function's domain follow IEEE/numpy (``log(-1.0)`` is nan).

numpy works on ``Var`` s through one table, ``NUMPY_NAMES``: numpy's name of
each primitive is also a function here (``pytape.arcsin``), a ``Var`` method
(numpy calls ``a[i].arcsin()`` on object arrays) and the ufunc a ``Var``
answers (``np.arcsin(x)``).  Also here: numpy's functions that numpy itself
does not run on object arrays of ``Var`` s (``isfinite``, ``isclose``,
``nan_to_num``, ``sinc``, ...), which a bare ``Var`` answers through
``Var.__array_function__``, and the attributes numpy's Python code asks of a
scalar (``shape``, ``dtype``, ``real``, ...).  README.md, "numpy functions on
Vars", lists what works and what raises.

>>> import pytape
>>> x = pytape.Var(0.5)
>>> y = pytape.sin(x) * pytape.exp(x)
>>> y.backward()
>>> abs(x.grad - (0.8775825618903728 + 0.479425538604203) * 1.6487212707001282) < 1e-12
True
>>> pytape.sqrt(4.0)
2.0
"""
import math
import operator

import numpy as np

from .recording import FUNCTIONS, map_objects, objects
from .tensor import Tensor
from .var import Var

# (formula of the value, derivative) for each primitive's docstring
_DOCS = {
    "neg": ("-x", "-1"),
    "abs": ("|x|", "sign(x), 0 at x = 0"),
    "sqrt": ("sqrt(x)", "1 / (2 sqrt(x)), inf at 0"),
    "cbrt": ("x ** (1/3), real for x < 0", "1 / (3 cbrt(x)**2)"),
    "exp": ("e ** x", "e ** x"),
    "exp2": ("2 ** x", "ln 2 * 2 ** x"),
    "expm1": ("e ** x - 1, accurate near 0", "e ** x"),
    "log": ("natural logarithm", "1 / x"),
    "log2": ("base-2 logarithm", "1 / (x ln 2)"),
    "log10": ("base-10 logarithm", "1 / (x ln 10)"),
    "log1p": ("log(1 + x), accurate near 0", "1 / (1 + x)"),
    "sin": ("sine", "cos(x)"),
    "cos": ("cosine", "-sin(x)"),
    "tan": ("tangent", "1 + tan(x)**2"),
    "asin": ("arcsine", "1 / sqrt(1 - x**2)"),
    "acos": ("arccosine", "-1 / sqrt(1 - x**2)"),
    "atan": ("arctangent", "1 / (1 + x**2)"),
    "sinh": ("hyperbolic sine", "cosh(x)"),
    "cosh": ("hyperbolic cosine", "sinh(x)"),
    "tanh": ("hyperbolic tangent", "1 - tanh(x)**2"),
    "asinh": ("inverse hyperbolic sine", "1 / sqrt(x**2 + 1)"),
    "acosh": ("inverse hyperbolic cosine", "1 / sqrt(x**2 - 1)"),
    "atanh": ("inverse hyperbolic tangent", "1 / (1 - x**2)"),
    "sigmoid": ("1 / (1 + e ** -x)", "sigmoid(x) (1 - sigmoid(x))"),
    "relu": ("max(x, 0)", "1 if x > 0 else 0 (0 at x = 0)"),
    "softplus": ("log(1 + e ** x), without overflow", "sigmoid(x)"),
    "erf": ("error function", "2/sqrt(pi) e ** (-x**2)"),
    "erfc": ("complementary error function 1 - erf(x)", "-2/sqrt(pi) e ** (-x**2)"),
    "add": ("a + b", "(1, 1)"),
    "sub": ("a - b", "(1, -1)"),
    "mul": ("a * b", "(b, a)"),
    "div": ("a / b", "(1/b, -a/b**2)"),
    "pow": ("a ** b", "(b a**(b-1), a**b ln a); 0 for b == 0, resp. a == 0 and b >= 0"),
    "atan2": ("angle of the point (b, a)", "(b, -a) / (a**2 + b**2)"),
    "hypot": ("sqrt(a**2 + b**2)", "(a, b) / hypot(a, b); (0, 0) at the origin"),
    "minimum": ("the smaller of a and b", "1 to the smaller, 0.5 each on a tie"),
    "maximum": ("the larger of a and b", "1 to the larger, 0.5 each on a tie"),
    "clamp_min": ("max(a, b) with b a lower bound", "(1 if a >= b, 1 if a < b)"),
    "clamp_max": ("min(a, b) with b an upper bound", "(1 if a <= b, 1 if a > b)"),
    "less": ("1.0 if a < b else 0.0, a condition for pytape.where", "(0, 0)"),
    "less_equal": ("1.0 if a <= b else 0.0, a condition for pytape.where", "(0, 0)"),
    "equal": ("1.0 if a == b else 0.0, a condition for pytape.where", "(0, 0)"),
    "not_equal": ("1.0 if a != b else 0.0, a condition for pytape.where", "(0, 0)"),
    "where_t": ("b if a != 0 else -0.0, half of pytape.where", "(0, 1 if a != 0 else 0)"),
    "where_f": ("-0.0 if a != 0 else b, half of pytape.where", "(0, 1 if a == 0 else 0)"),
    "sign": ("-1.0, 0.0 or 1.0 by the sign of x, nan at nan (numpy's sign)", "0"),
    "floor": ("the largest integer <= x", "0"),
    "ceil": ("the smallest integer >= x", "0"),
    "round": ("the nearest integer, halves to even (numpy's rint and round, torch.round)", "0"),
    "trunc": ("x rounded toward 0", "0"),
    "mod": ("a % b, the remainder with the sign of b (Python's %, numpy's mod and remainder)",
            "(1, -(a // b)), as numpy's floor_divide and torch.remainder define it"),
    "fmod": ("the remainder with the sign of a (C's fmod, numpy's fmod)", "(1, -trunc(a / b))"),
    "floor_divide": ("a // b, the largest integer <= a / b (Python's //, numpy's floor_divide)", "(0, 0)"),
    "logaddexp": ("log(e**a + e**b), without overflow", "(e**a, e**b) / (e**a + e**b), 0.5 each at a == b"),
    "logaddexp2": ("log2(2**a + 2**b), without overflow", "(2**a, 2**b) / (2**a + 2**b), 0.5 each at a == b"),
    "chain": ("a * b, but 0 where a or b is 0 (even times inf or nan), the product create_graph records",
              "(b, a)"),
}
#: rows that are parts of other functions: pytape.ops.NAME, not pytape.NAME
_PARTS = {"where_t", "where_f", "chain"}

for _name, _f in FUNCTIONS.items():
    # a new row of ops.def works without an entry here; the entry adds words
    _value, _deriv = _DOCS.get(_name, (_name, "the derivative columns of its row in csrc/ops.def"))
    _args = "x" if _f.__code__.co_argcount == 1 else "a, b"
    _f.__doc__ = (
        f"{_name}({_args}): {_value}.\n\n"
        f"Derivative: {_deriv}.  Takes Vars or real numbers (then returns a float).\n\n"
        f">>> import pytape\n>>> isinstance(pytape.{'ops.' if _name in _PARTS else ''}{_name}(pytape.Var(0.5){', 2.0' if _args != 'x' else ''}), pytape.Var)\nTrue\n"
    )
    _f.__module__ = __name__
    globals()[_name] = _f


def clip(x, lo=None, hi=None):
    """clip(x, lo, hi): x limited to [lo, hi] (None: no bound on that side).

    Like ``torch.clamp``: the gradient reaches x where lo <= x <= hi (bounds
    included) and reaches a ``Var`` bound where x is beyond it.

    >>> import pytape
    >>> x = pytape.Var(2.0)
    >>> y = pytape.clip(x, 0.0, 1.0); y.value
    1.0
    >>> y.backward(); x.grad
    0.0
    """
    if lo is not None:
        x = clamp_min(x, lo)  # noqa: F821
    if hi is not None:
        x = clamp_max(x, hi)  # noqa: F821
    if not isinstance(x, Var) and lo is None and hi is None:
        x = float(x)
    return x


def greater(a, b):
    """greater(a, b): 1.0 if a > b else 0.0, a condition for ``pytape.where``
    (recorded as ``less(b, a)``; derivative 0).

    >>> import pytape
    >>> pytape.greater(pytape.Var(2.0), 1.0).value
    1.0
    """
    return less(b, a)  # noqa: F821


def greater_equal(a, b):
    """greater_equal(a, b): 1.0 if a >= b else 0.0, a condition for ``pytape.where``
    (recorded as ``less_equal(b, a)``; derivative 0).

    >>> import pytape
    >>> pytape.greater_equal(pytape.Var(1.0), 1.0).value
    1.0
    """
    return less_equal(b, a)  # noqa: F821


def where(cond, a, b):
    """where(cond, a, b): ``a`` where ``cond`` holds (is nonzero), else ``b``,
    recorded as instructions, without a Python branch.

    Build ``cond`` with ``pytape.less``, ``less_equal``, ``greater``,
    ``greater_equal``, ``equal``, ``not_equal`` (Vars holding 1.0 or 0.0), not
    with ``<``: Python's comparisons give a bool, which picks a branch now and,
    under ``pytape.trace``, becomes a guard.  A tape with ``where`` stays valid at
    every input: a replay recomputes the condition.  The gradient sends exactly 0
    to the branch not taken, even where that branch's own derivative is inf or
    nan (``where(greater(x, 0), sqrt(x), 0.0)`` has gradient 0 at x <= 0, where
    ``torch.where`` gives nan).  With a bool
    or a number as ``cond``, nothing is recorded for the choice.  Arrays work
    elementwise, with numpy broadcasting.

    >>> import pytape
    >>> x = pytape.Var(0.0)
    >>> y = pytape.where(pytape.greater(x, 0.0), pytape.sqrt(x), 0.0)
    >>> y.backward(); y.value, x.grad
    (0.0, 0.0)
    """
    if any(isinstance(z, Tensor) for z in (cond, a, b)):  # arrays on the tape: np.where's where_t + where_f
        return Tensor.__array_function__(None, np.where, (Tensor,), (cond, a, b), {})
    if any(isinstance(z, np.ndarray) and z.ndim > 0 for z in (cond, a, b)):
        return map_objects(where, cond, a, b)
    if isinstance(cond, Var) and (cond.requires_grad or not cond.is_leaf):
        return where_t(cond, a) + where_f(cond, b)  # noqa: F821
    return a if float(cond) != 0.0 else b


_COMPARISONS = {"<": less, "<=": less_equal, ">": greater, ">=": greater_equal,  # noqa: F821
                "==": equal, "!=": not_equal}  # noqa: F821


def cond_select(left, cmp, right, if_true, if_false):
    """cond_select(left, cmp, right, if_true, if_false): ``where(left cmp right,
    if_true, if_false)``, cmp one of ``"<" "<=" ">" ">=" "==" "!="`` (CppAD's
    CondExp, CasADi's if_else): branch-free, with exactly zero gradient to the
    branch not taken.

    >>> import pytape
    >>> fn = pytape.trace(lambda x: pytape.cond_select(x, ">", 0.0, pytape.sqrt(x), 0.0), 4.0)
    >>> fn(9.0), fn.gradient(-1.0), fn.retraces
    (3.0, 0.0, 0)
    """
    try:
        compare = _COMPARISONS[cmp]
    except (KeyError, TypeError):
        raise ValueError(f"cmp must be one of {sorted(_COMPARISONS)}, not {cmp!r}") from None
    return where(compare(left, right), if_true, if_false)


# ---- numpy's names -----------------------------------------------------------------

#: numpy's name of each primitive whose name differs (pytape name -> numpy name)
NUMPY_NAMES = {
    "asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2", "asinh": "arcsinh",
    "acosh": "arccosh", "atanh": "arctanh", "abs": "absolute", "neg": "negative", "pow": "power",
    "sub": "subtract", "mul": "multiply", "div": "divide", "mod": "remainder", "round": "rint",
}
# ---- numpy's predicates and helpers that are not rows ---------------------------------

def _each(f, x, *more):
    """f elementwise into a bool array if x is an array, else f(x)."""
    if isinstance(x, np.ndarray) and x.ndim > 0 or any(isinstance(m, np.ndarray) and m.ndim > 0 for m in more):
        return map_objects(f, x, *more).astype(bool)
    return f(x, *more)


def _isnan1(x):
    return x != x if isinstance(x, Var) else bool(np.isnan(x))


def _isinf1(x):
    return x == math.inf or x == -math.inf if isinstance(x, Var) else bool(np.isinf(x))


def isnan(x):
    """isnan(x): True where x is nan (``np.isnan``, also on arrays of Vars).

    A predicate on the value: under ``pytape.trace`` it is recorded as the
    guards of Var comparisons (``x != x``), so a replay where it flips traces f
    again.

    >>> import pytape, numpy as np
    >>> pytape.isnan(pytape.Var(float("nan"))), np.isnan(pytape.Var(1.0))
    (True, False)
    """
    return _each(_isnan1, x)


def isinf(x):
    """isinf(x): True where x is +inf or -inf (``np.isinf``, also on arrays of Vars).

    >>> import pytape, numpy as np
    >>> pytape.isinf(np.array([pytape.Var(1.0), pytape.Var(-np.inf)])).tolist()
    [False, True]
    """
    return _each(_isinf1, x)


def isfinite(x):
    """isfinite(x): True where x is neither nan nor infinite (``np.isfinite``,
    also on arrays of Vars).

    >>> import pytape, numpy as np
    >>> np.isfinite(pytape.Var(2.0)), pytape.isfinite(pytape.Var(np.inf))
    (True, False)
    """
    return _each(lambda v: not _isnan1(v) and not _isinf1(v), x)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """isclose(a, b): numpy's ``isclose`` on Vars and arrays of Vars
    (``|a - b| <= atol + rtol |b|``, equal infinities are close), a bool or a
    bool array; ``np.isclose`` on a Var comes here.

    >>> import pytape
    >>> pytape.isclose(pytape.Var(1.0), 1.0 + 1e-9)
    True
    """
    def close(x, y):
        if (x == y) if isinstance(x, Var) or isinstance(y, Var) else bool(np.equal(x, y)):
            return True
        if equal_nan and _isnan1(x) and _isnan1(y):
            return True
        if _isnan1(x) or _isnan1(y) or _isinf1(x) or _isinf1(y):
            return False
        return bool(abs(x - y) <= atol + rtol * abs(y))
    return _each(close, a, b)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """allclose(a, b): True if ``isclose`` holds everywhere (``np.allclose`` on Vars
    and arrays of Vars; numpy's own refuses an object array as ``b``).

    >>> import pytape, numpy as np
    >>> pytape.allclose(np.array([pytape.Var(1.0), pytape.Var(2.0)]), [1.0, 2.0])
    True
    """
    return bool(np.all(isclose(a, b, rtol, atol, equal_nan)))


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """nan_to_num(x): nan replaced by ``nan``, +-inf by ``posinf`` / ``neginf``
    (default: the largest finite doubles), elementwise on arrays of Vars
    (``np.nan_to_num`` returns object arrays unchanged; on a Var it comes here).

    The derivative is 1 where x is kept and 0 where it is replaced (as
    ``torch.nan_to_num``).  Which elements are replaced is read from the values:
    under ``pytape.trace`` guards, like a comparison.

    >>> import pytape, numpy as np
    >>> pytape.nan_to_num(np.array([pytape.Var(np.nan), pytape.Var(2.0)])).tolist()
    [0.0, Var(2.0, grad=0.0)]
    """
    big = np.finfo(np.float64).max
    pos = big if posinf is None else float(posinf)
    neg = -big if neginf is None else float(neginf)

    def one(v):
        if not isinstance(v, Var):
            return float(np.nan_to_num(np.float64(v), nan=nan, posinf=pos, neginf=neg))
        if v != v:
            return float(nan)
        if v == math.inf:
            return pos
        if v == -math.inf:
            return neg
        return v
    if isinstance(x, np.ndarray) and x.ndim > 0:
        if x.dtype != object:
            return np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
        return map_objects(one, x)
    return one(x)


def angle(z, deg=False):
    """angle(z): the angle of a real number as a point of the complex plane, 0
    for z >= +0.0 and pi for z <= -0.0 (``np.angle`` on a Var comes here),
    recorded as ``atan2(0.0, z)``: derivative 0.

    >>> import pytape, numpy as np
    >>> np.angle(pytape.Var(-2.0)).value == np.pi, pytape.angle(pytape.Var(2.0), deg=True).value
    (True, 0.0)
    """
    a = atan2(0.0, z)  # noqa: F821
    return a * (180.0 / math.pi) if deg else a


def sinc(x):
    """sinc(x): sin(pi x) / (pi x), 1 at 0 (``np.sinc``; on a Var ``np.sinc``
    comes here, and arrays with a 0, where numpy's own fails on Vars, work).

    The derivative is (cos(pi x) - sinc(x)) / x, 0 at x = 0.  Whether x is 0
    is read from the value (under ``pytape.trace`` a guard).

    >>> import pytape, numpy as np
    >>> np.sinc(pytape.Var(0.0)), abs(pytape.sinc(pytape.Var(0.5)).value - 2 / np.pi) < 1e-15
    (1.0, True)
    """
    def one(v):
        if not isinstance(v, Var):
            return float(np.sinc(v))
        if v == 0.0:
            return 1.0
        y = v * math.pi
        return sin(y) / y  # noqa: F821
    if isinstance(x, np.ndarray) and x.ndim > 0:
        return map_objects(one, x) if x.dtype == object else np.sinc(x)
    return one(x)


def _round(a, decimals=0, out=None):
    """np.round(x, decimals) on a Var: numpy's rule, rint of a scaled number."""
    if out is not None:
        return NotImplemented
    if decimals == 0:
        return FUNCTIONS["round"](a)
    if decimals > 0:
        return FUNCTIONS["round"](a * 10.0 ** decimals) / 10.0 ** decimals
    return FUNCTIONS["round"](a / 10.0 ** -decimals) * 10.0 ** -decimals


#: numpy functions that are not rows of the op table, built from rows
NUMPY_EXTRA = {
    "conjugate": lambda a: a, "isnan": isnan, "isinf": isinf, "isfinite": isfinite,
    "fabs": FUNCTIONS["abs"], "fmax": FUNCTIONS["maximum"], "fmin": FUNCTIONS["minimum"],
    "deg2rad": lambda a: a * (math.pi / 180.0), "rad2deg": lambda a: a * (180.0 / math.pi),
    "square": lambda a: a * a, "reciprocal": lambda a: 1.0 / a, "positive": lambda a: +a,
}
NUMPY_EXTRA["radians"], NUMPY_EXTRA["degrees"] = NUMPY_EXTRA["deg2rad"], NUMPY_EXTRA["rad2deg"]
#: numpy's comparisons are Python's on Vars: a bool from the values (and a
#: guard while pytape.trace records), not the op table's 1.0 / 0.0 conditions
NUMPY_COMPARISONS = {"less": operator.lt, "less_equal": operator.le, "greater": operator.gt,
                     "greater_equal": operator.ge, "equal": operator.eq, "not_equal": operator.ne}

# these are operators, not methods
_BINARY_METHODS = {"add", "sub", "mul", "div", "pow", "mod", "floor_divide"}
_MODULE_ALIASES = {"arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh", "power"}
_UFUNCS = {getattr(np, name): f for name, f in NUMPY_COMPARISONS.items()}
for _name, _f in list(FUNCTIONS.items()) + list(NUMPY_EXTRA.items()):
    _np_name = NUMPY_NAMES.get(_name, _name)
    _uf = getattr(np, _np_name, None)
    if isinstance(_uf, np.ufunc):
        _UFUNCS.setdefault(_uf, _f)          # np.sin(x), np.maximum(x, y), ...
    if _name not in _BINARY_METHODS:
        setattr(Var, _np_name, _f)           # x.arcsin(), called by np.arcsin(object_array)
    if _np_name in _MODULE_ALIASES:
        globals()[_np_name] = _f             # pytape.arcsin, pytape.power, ...
_UFUNCS[np.divmod] = lambda a, b: (a // b, a % b)
#: reductions of one scalar that give the scalar itself (np.sum(x) and friends)
_REDUCE_SELF = {np.add, np.multiply, np.maximum, np.minimum, np.fmax, np.fmin}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """numpy ufuncs on Vars: np.exp(x), np.float64(2) * x, array * x.

    Ufuncs on object arrays of Vars call the Vars' methods without coming
    here (np.sin(a) calls a[i].sin()); this handles a Var as an operand.
    """
    if method == "reduce" and len(inputs) == 1 and inputs[0] is self and ufunc in _REDUCE_SELF:
        return self  # np.sum(x), np.prod(x), np.max(x) of a scalar: x itself
    fn = _UFUNCS.get(ufunc)
    if method != "__call__" or fn is None:
        return NotImplemented
    out = kwargs.get("out")
    if kwargs and (set(kwargs) != {"out"} or not (isinstance(out, tuple) and len(out) == 1 and isinstance(
            out[0], np.ndarray) and out[0].dtype == object)):
        return NotImplemented  # only out= an object array (numpy's np.var passes one) is understood
    if any(isinstance(x, np.ndarray) for x in inputs):  # elementwise, into an object array
        return ufunc(*[objects(x) for x in inputs], **kwargs)
    # numpy's real scalars as floats; others (complex, datetimes) go on as they are, and are refused
    r = fn(*[float(x) if isinstance(x, np.generic) and x.dtype.kind in "biuf" else x for x in inputs])
    if out is not None:
        out[0][...] = r
        return out[0]
    return r


Var.__array_ufunc__ = _array_ufunc

def _of_one_element(func):
    """np.var, np.std of a bare Var: numpy's code on a one-element object array
    (on a 0-d one it asks ufuncs for an array where a Var answers a Var)."""
    def f(a, axis=None, *args, **kwargs):
        return func(objects(a).reshape(1) if axis is None else objects(a), axis, *args, **kwargs)
    return f


#: numpy functions (not ufuncs) that a bare Var answers with pytape's own;
#: any other numpy function runs numpy's code on it
_ARRAY_FUNCTIONS = {np.nan_to_num: nan_to_num, np.angle: angle, np.isclose: isclose, np.allclose: allclose,
                    np.round: _round, np.around: _round, np.sinc: sinc,
                    np.var: _of_one_element(np.var), np.std: _of_one_element(np.std)}


def _array_function(self, func, types, args, kwargs):
    """numpy functions on a bare Var (``np.nan_to_num(x)``, ``np.angle(x)``):
    pytape's implementation where it has one, else numpy's code.  numpy asks
    this of a Var passed as an argument only, never of the elements of an
    object array."""
    f = _ARRAY_FUNCTIONS.get(func)
    if f is not None:
        r = f(*args, **kwargs)
        if r is not NotImplemented:
            return r
    implementation = getattr(func, "_implementation", None)  # numpy's own code, undispatched
    return NotImplemented if implementation is None else implementation(*args, **kwargs)


Var.__array_function__ = _array_function

# a Var is a scalar to numpy's Python code (np.sinc, np.var ask for these):
# a 0-d object array's shape, size and dtype, a real number's parts
Var.shape, Var.ndim, Var.size, Var.dtype = (), 0, 1, np.dtype(object)
Var.real = property(lambda self: self, doc="The Var itself: a Var is a real number.")
Var.imag = property(lambda self: 0.0, doc="0.0: a Var is a real number.")
Var.conj = Var.conjugate

# `from pytape import *` must not shadow the builtins abs, pow and round: reach
# those as pytape.abs, pytape.pow (or pytape.power), pytape.round; where_t and where_f are
# where's halves
__all__ = sorted(set(FUNCTIONS) - {"abs", "pow", "round"} - _PARTS) + [
    "power", "clip", "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    "greater", "greater_equal", "where", "cond_select", "isnan", "isinf", "isfinite", "isclose", "allclose",
    "nan_to_num", "angle", "sinc"]


# ---- the object arrays the function transformations give f ---------------------------

def gradient(f, *varargs, axis=None, edge_order=1):
    """gradient(f): ``np.gradient`` of an array of Vars, differentiable: central
    differences inside, one-sided ones (``edge_order`` 1 or 2) at the ends,
    with uniform spacings (a number per axis, default 1).  ``np.gradient`` on
    the arrays that pytape.grad and friends give f with ``elementwise=True``
    comes here.

    >>> import pytape, numpy as np
    >>> pytape.jacobian(np.gradient, elementwise=True)(np.array([1.0, 2.0, 4.0]))
    array([[-1. ,  1. ,  0. ],
           [-0.5,  0. ,  0.5],
           [ 0. , -1. ,  1. ]])
    """
    f = np.asarray(f, dtype=object)
    axes = tuple(range(f.ndim)) if axis is None else tuple(np.atleast_1d(axis))
    if len(varargs) == 0:
        hs = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        hs = [varargs[0]] * len(axes)
    else:
        hs = list(varargs)
    if len(hs) != len(axes) or any(np.ndim(h) != 0 for h in hs):
        raise TypeError("pytape.gradient (np.gradient of Vars) takes uniform spacings: one number per axis; "
                        "for coordinate arrays write the differences with Var arithmetic")
    if edge_order not in (1, 2):
        raise ValueError("edge_order must be 1 or 2")
    out = []
    for ax, h in zip(axes, hs):
        n = f.shape[ax]
        if n < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, "
                             "at least (edge_order + 1) elements are required.")
        g = np.empty_like(f)

        def at(i, arr=f, ax=ax):
            idx = [slice(None)] * arr.ndim
            idx[ax] = i
            return arr[tuple(idx)]

        def put(i, v, ax=ax):
            idx = [slice(None)] * g.ndim
            idx[ax] = i
            g[tuple(idx)] = v
        put(slice(1, -1), (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h))
        if edge_order == 1:
            put(0, (at(1) - at(0)) / h)
            put(-1, (at(-1) - at(-2)) / h)
        else:
            put(0, (-1.5 * at(0) + 2.0 * at(1) - 0.5 * at(2)) / h)
            put(-1, (0.5 * at(-3) - 2.0 * at(-2) + 1.5 * at(-1)) / h)
        out.append(g.view(VarArray))
    return out[0] if len(out) == 1 else tuple(out)


class VarArray(np.ndarray):
    """The object array of Vars that the function transformations give f for
    an array argument when they record it element by element (``hessian``,
    ``hvp``, nested calls, ``elementwise=True``; otherwise f gets a
    ``pytape.Tensor``): a numpy array (``isinstance(x, np.ndarray)``), with
    one difference.  numpy's functions that would mishandle
    an object array, silently (``np.nan_to_num`` returns it unchanged) or by
    converting Vars to floats (``np.gradient``), or that refuse one
    (``np.isfinite``, ``np.logaddexp``), come to pytape's own; ufuncs and
    functions keep the type, so arrays computed from it do the same.

    >>> import pytape, numpy as np
    >>> pytape.grad(lambda x: np.sum(np.nan_to_num(x) * 3.0), elementwise=True)(np.array([np.nan, 2.0])).tolist()
    [0.0, 3.0]
    """

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _OBJECT_UFUNCS.get(ufunc)
        if fn is not None and method == "__call__" and not kwargs:
            return _wrap(fn(*[_plain(x) for x in inputs]))
        inputs = [x.view(np.ndarray) if type(x) is VarArray else x for x in inputs]
        if kwargs and "out" in kwargs:
            kwargs["out"] = tuple(_plain(x) for x in kwargs["out"])
        r = (ufunc(*inputs, **kwargs) if method == "__call__" else getattr(ufunc, method)(*inputs, **kwargs))
        return r.view(VarArray) if type(r) is np.ndarray and r.dtype == object else _wrap(r)

    def __array_function__(self, func, types, args, kwargs):
        fn = _OBJECT_FUNCTIONS.get(func)
        if fn is not None:
            return _wrap(fn(*args, **kwargs))
        implementation = getattr(func, "_implementation", None)
        if implementation is None:
            return NotImplemented
        return _wrap(implementation(*args, **kwargs))


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, VarArray) else x


def _wrap(r):
    """A result of an operation on a VarArray: object arrays stay VarArrays."""
    if type(r) is np.ndarray and r.dtype == object:
        return r.view(VarArray)
    if type(r) is tuple:
        return tuple(_wrap(v) for v in r)
    return r


def var_array(a):
    """An object array of Vars as the VarArray the transformations give f."""
    return a.view(VarArray)


#: ufuncs numpy's object loop lacks (or answers with Python ints, not recorded
#: ops): the primitive numpy's table above gives each, elementwise; the
#: predicates answer a bool array themselves
_OBJECT_UFUNCS = {uf: (lambda *xs, fn=_UFUNCS[uf]: map_objects(fn, *xs))
                  for uf in (np.logaddexp, np.logaddexp2, np.fmod, np.arctan2, np.sign, np.floor, np.ceil, np.trunc)}
_OBJECT_UFUNCS.update({np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite})
#: numpy functions with pytape's own version for object arrays of Vars
_OBJECT_FUNCTIONS = {np.nan_to_num: nan_to_num, np.angle: lambda z, deg=False: map_objects(
    lambda v: angle(v, deg), z), np.isclose: isclose, np.allclose: allclose, np.sinc: sinc, np.gradient: gradient}
