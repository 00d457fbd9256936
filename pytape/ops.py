"""The primitive functions of the ``pytape`` namespace, one per op-table row.

Each takes ``Var`` s or real numbers.  With a ``Var`` operand it records one
instruction and returns a ``Var``; with plain numbers (Python or numpy
scalars) it returns a plain float; with a numpy array it applies elementwise.
Values outside a function's domain follow IEEE/numpy (``log(-1.0)`` is nan).

>>> import pytape
>>> x = pytape.Var(0.5)
>>> y = pytape.sin(x) * pytape.exp(x)
>>> y.backward()
>>> abs(x.grad - (0.8775825618903728 + 0.479425538604203) * 1.6487212707001282) < 1e-12
True
>>> pytape.sqrt(4.0)
2.0
"""
from .var import FUNCTIONS, Var

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
}

for _name, _f in FUNCTIONS.items():
    _value, _deriv = _DOCS[_name]
    _args = "x" if _f.__code__.co_argcount == 1 else "a, b"
    _f.__doc__ = (
        f"{_name}({_args}): {_value}.\n\n"
        f"Derivative: {_deriv}.  Takes Vars or real numbers (then returns a float).\n\n"
        f">>> import pytape\n>>> isinstance(pytape.{_name}(pytape.Var(0.5){', 2.0' if _args != 'x' else ''}), pytape.Var)\nTrue\n"
    )
    _f.__module__ = __name__
    globals()[_name] = _f

power = FUNCTIONS["pow"]
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2  # noqa: F821 (numpy names)
arcsinh, arccosh, arctanh = asinh, acosh, atanh  # noqa: F821


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


# `from pytape import *` must not shadow the builtins abs and pow: reach those
# as pytape.abs and pytape.pow (or pytape.power)
__all__ = sorted(set(FUNCTIONS) - {"abs", "pow"}) + [
    "power", "clip", "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh"]
