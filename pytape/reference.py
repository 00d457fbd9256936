"""Pure-Python reference engine for pytape (scalar reverse-mode automatic differentiation).

This module is the independent oracle that pytape's C tape engine is tested
against and the baseline for its benchmarks.  It deliberately shares no code
with the rest of pytape and imports only the standard library.

The design is micrograd's: every operation creates a :class:`Value` node that
holds ``data``, ``grad``, its operands ``_prev``, an operation name ``_op`` and a
``_backward`` closure adding ``local derivative * out.grad`` into the operands'
``grad``.  :meth:`Value.backward` sorts the graph topologically with an explicit
stack (no recursion, so chains of millions of operations work) and runs the
closures in reverse order.  Every operation keeps its value rule right beside
its derivative rule.

Conventions (pytape's, following PyTorch and IEEE-754/numpy):

* Outside a function's domain the result is the IEEE/numpy one and nothing
  raises: ``log(0) == -inf``, ``sqrt(-1)`` is nan, ``1/Value(0.0)`` is inf,
  ``exp(1000) == inf``.  Gradients are propagated with plain IEEE arithmetic
  (a nan adjoint propagates), except that a node whose gradient is exactly
  zero is skipped and a zero local derivative passes nothing on, so
  ``0 * inf`` never turns into a nan gradient.
* At kinks: ``relu'(0) == 0``, ``abs'(0) == 0``, ties of ``maximum``/``minimum``
  split the gradient 0.5/0.5, ``clip`` passes gradient 1 to ``x`` on its closed
  interval ``[lo, hi]``, ``atan2'`` and ``hypot'`` are 0 at the origin, and for ``y = a**b``
  ``dy/da == 0`` when ``b == 0`` and ``dy/db == 0`` when ``a == 0 and b >= 0``.
  At a nan operand PyTorch's gradients: ``relu'(nan) == 1``, both operands of
  ``maximum``/``minimum`` get 1, ``clip`` gives 0.
* Derivative formulas are scaled where the textbook one would overflow,
  underflow or cancel on the way (``atan2`` at 1e-160, ``tanh'`` for large
  ``|x|``), like pytape's C rules, so both stay accurate at extreme operands.

Example, y = ln(x1) + x1*x2 - sin(x2) at (2, 5):

>>> x1, x2 = Value(2.0), Value(5.0)
>>> y = log(x1) + x1 * x2 - sin(x2)
>>> y.backward()
>>> print(f"{y.data:.3f} {x1.grad:.3f} {x2.grad:.3f}")
11.652 5.500 1.716

The module-level functions also accept plain numbers and then return a float:

>>> exp(0), log(0), sqrt(-1.0), atanh(1)
(1.0, -inf, nan, inf)
"""

import builtins
import functools
import math
import numbers

__all__ = [
    'Value',
    'sqrt', 'cbrt', 'exp', 'exp2', 'expm1', 'log', 'log2', 'log10', 'log1p',
    'sin', 'cos', 'tan', 'asin', 'acos', 'atan', 'atan2',
    'sinh', 'cosh', 'tanh', 'asinh', 'acosh', 'atanh',
    'sigmoid', 'relu', 'softplus', 'erf', 'erfc', 'abs',
    'hypot', 'minimum', 'maximum', 'clip',
    'sign', 'floor', 'ceil', 'round', 'trunc', 'mod', 'fmod', 'floor_divide', 'logaddexp', 'logaddexp2',
    'less', 'less_equal', 'greater', 'greater_equal', 'equal', 'not_equal', 'where',
]

_INF, _NAN = math.inf, math.nan
_LN2, _LN10 = math.log(2.0), math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# ---------------------------------------------------------------- helpers

def _real(x):
    """float(x) for a real number (int, float, bool, Fraction, numpy scalar); else TypeError."""
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"expected a Value or a real number, got {type(x).__name__}")


def _as_value(x):
    """x itself if it is a Value, a constant Value for a real number, else TypeError."""
    return x if isinstance(x, Value) else Value(_real(x))


def _const(x):
    """Like _as_value, but None for a non-numeric operand (binary dunders return NotImplemented)."""
    if isinstance(x, Value):
        return x
    return Value(float(x)) if isinstance(x, numbers.Real) else None


def _data(x):
    """The number to compare against: x.data, float(x), or NotImplemented."""
    if isinstance(x, Value):
        return x.data
    return float(x) if isinstance(x, numbers.Real) else NotImplemented


def _chain(d, g):
    """One chain-rule term d * g, but 0 when either factor is 0: a zero local
    derivative passes nothing on, even an infinite or nan adjoint (so the
    branch where() did not take gets exactly 0), as in pytape's C sweeps."""
    return 0.0 if d == 0.0 or g == 0.0 else d * g


def _noop():
    pass


def _div(a, b):
    """IEEE a / b: x/0.0 is +-inf, 0/0 and nan/0 are nan (Python raises ZeroDivisionError)."""
    if b == 0:
        if a == 0 or a != a:
            return _NAN
        return math.copysign(_INF, a) * math.copysign(1.0, b)
    return a / b


def _is_odd_integer(b):
    return math.isfinite(b) and b % 2 == 1


def _pow(a, b):
    """IEEE pow: 0**-1 is inf, (-8)**(1/3) is nan, overflow is +-inf (math.pow raises)."""
    try:
        return math.pow(a, b)
    except OverflowError:
        return -_INF if a < 0 and _is_odd_integer(b) else _INF
    except ValueError:  # 0 ** negative, or negative ** non-integer
        if a == 0:
            return math.copysign(_INF, a) if _is_odd_integer(b) else _INF
        return _NAN


def _atan2_d(n, a, b):
    """n / (a*a + b*b), through hypot where the sum under- or overflows (of
    operands scaled up by 2**600 where they are tiny)."""
    s = a * a + b * b
    if 2.2250738585072014e-308 <= s <= 1.7976931348623157e+308:
        return n / s
    if s < 2.2250738585072014e-308:
        h = math.hypot(a * 2.0 ** 600, b * 2.0 ** 600)
        return 0.0 if h == 0 else n * 2.0 ** 600 / h * 2.0 ** 600 / h
    h = hypot(a, b)
    return _div(_div(n, h), h)


def _hypot_d(n, a, b, y):
    """n / y, y = hypot(a, b); from operands scaled up by 2**600 where y is subnormal."""
    if y >= 2.2250738585072014e-308:
        return n / y
    return 0.0 if y == 0 else n * 2.0 ** 600 / math.hypot(a * 2.0 ** 600, b * 2.0 ** 600)


def _sech2(x):
    """1 - tanh(x)**2 for large |x|, where 1 - y*y would keep no digit of y."""
    e = math.exp(-2.0 * builtins.abs(x))
    return 4.0 * e / ((1.0 + e) * (1.0 + e))


def _div_db(a, b, y):
    """d(a/b)/db = -y/b, y = a/b; scaled by 2**600 where y is subnormal or 0."""
    if builtins.abs(y) >= 2.2250738585072014e-308 or not builtins.abs(a) < 1.0 or b == 0:
        return _div(-y, b)
    return -(a * 2.0 ** 600 / b) / b * 2.0 ** -600


def _pow_times(c, a, e):
    """c * a**e, through logarithms where a**e alone over- or underflows."""
    p = _pow(a, e)
    m = builtins.abs(p)
    if (2.2250738585072014e-308 <= m <= 1.7976931348623157e+308 or p != p or c == 0
            or not 0.0 < builtins.abs(a) <= 1.7976931348623157e+308):
        return c * p
    lg = math.log(builtins.abs(c)) + e * math.log(builtins.abs(a))
    return math.copysign(1.0, c) * math.copysign(1.0, p) * exp(lg)


# ---------------------------------------------------------------- the node

class Value:
    """A scalar node of the computation graph.

    ``data`` is the value and ``grad`` the accumulated adjoint (both plain,
    assignable attributes); ``_prev`` is the tuple of operands, ``_op`` the
    operation name and ``_backward`` the closure of the reverse sweep.

    Arithmetic (``+ - * / **``, unary ``-`` and ``+``, ``abs()``) mixes Values
    and real numbers (including numpy scalars) in either position; numbers
    become constant Values.  Other operands raise TypeError.  Comparisons
    compare ``data`` and return bool; Values hash by identity.

    >>> a = Value(3.0, label='a')
    >>> b = a * a + 2 * a
    >>> b
    Value(data=15.0, grad=0.0)
    >>> b.backward()
    >>> a.grad
    8.0
    >>> a < 4, a == Value(3), bool(Value(0.0)), float(a)
    (True, True, False, 3.0)
    """

    __slots__ = ('data', 'grad', '_prev', '_op', '_backward', 'label', '__weakref__')
    __hash__ = object.__hash__   # identity, although __eq__ compares data

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = data if type(data) is float else _real(data)
        self.grad = 0.0
        self._prev = tuple(_children)
        self._op = _op
        self._backward = _noop
        self.label = label

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    # ---- arithmetic: value rule, then derivative rule

    def __add__(self, other):
        other = _const(other)
        if other is None:
            return NotImplemented
        out = Value(self.data + other.data, (self, other), '+')

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __sub__(self, other):
        other = _const(other)
        if other is None:
            return NotImplemented
        out = Value(self.data - other.data, (self, other), '-')

        def _backward():
            self.grad += out.grad
            other.grad += -out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = _const(other)
        if other is None:
            return NotImplemented
        out = Value(self.data * other.data, (self, other), '*')

        def _backward():
            self.grad += _chain(other.data, out.grad)
            other.grad += _chain(self.data, out.grad)
        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = _const(other)
        if other is None:
            return NotImplemented
        out = Value(_div(self.data, other.data), (self, other), '/')

        def _backward():
            a, b = self.data, other.data
            self.grad += _chain(_div(1.0, b), out.grad)
            other.grad += _chain(_div_db(a, b, out.data), out.grad)
        out._backward = _backward
        return out

    def __pow__(self, other):
        other = _const(other)
        if other is None:
            return NotImplemented
        out = Value(_pow(self.data, other.data), (self, other), '**')

        def _backward():
            a, b = self.data, other.data
            self.grad += _chain((0.0 if b == 0 else _pow_times(b, a, b - 1.0)), out.grad)
            other.grad += _chain((0.0 if a == 0 and b >= 0 else out.data * log(a)), out.grad)
        out._backward = _backward
        return out

    def __neg__(self):
        out = Value(-self.data, (self,), 'neg')

        def _backward():
            self.grad += -out.grad
        out._backward = _backward
        return out

    def __pos__(self):
        out = Value(self.data, (self,), 'pos')

        def _backward():
            self.grad += out.grad
        out._backward = _backward
        return out

    def __abs__(self):
        return self.abs()

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):       # other - self
        other = _const(other)
        return NotImplemented if other is None else other - self

    def __rtruediv__(self, other):   # other / self
        other = _const(other)
        return NotImplemented if other is None else other / self

    def __rpow__(self, other):       # other ** self
        other = _const(other)
        return NotImplemented if other is None else other ** self

    def clip(self, lo=None, hi=None):
        """Method form of :func:`clip` (returns ``self`` when both bounds are None)."""
        out = self if lo is None else self._clamp_min(lo)
        return out if hi is None else out._clamp_max(hi)

    # ---- comparisons and conversions (on data, no graph)

    def __lt__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data < other)

    def __le__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data <= other)

    def __gt__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data > other)

    def __ge__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data >= other)

    def __eq__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data == other)

    def __ne__(self, other):
        other = _data(other)
        return NotImplemented if other is NotImplemented else bool(self.data != other)

    def __float__(self):
        return float(self.data)

    def __bool__(self):
        return bool(self.data != 0)

    # ---- reverse sweep

    def backward(self, gradient=1.0):
        """Reverse sweep: add ``gradient * d(self)/d(leaf)`` to the ``grad`` of every leaf.

        Semantics:

        1. The graph below ``self`` is sorted topologically with an explicit
           stack (no recursion; the order is exactly micrograd's recursive one).
        2. Every interior node (one with operands) has its ``grad`` reset to 0,
           then ``self.grad += gradient``.  So an interior output starts at
           ``gradient``, a leaf output accumulates it.
        3. The ``_backward`` closures run in reverse topological order, each
           adding ``local derivative * out.grad`` to its operands' ``grad``;
           a node whose ``grad`` is exactly 0 is skipped, so ``0 * inf`` never
           makes a nan gradient (pytape's C sweep does the same).

        Leaves (inputs and constants) are never reset, so their gradients
        accumulate across calls (calling twice doubles them) and across
        different outputs; zero them yourself (``x.grad = 0.0``) to restart.
        After the call an interior node's ``grad`` is ``gradient * d(self)/d(node)``.

        >>> x = Value(3.0)
        >>> y = x * x
        >>> y.backward(); x.grad
        6.0
        >>> y.backward(0.5); x.grad
        9.0
        """
        topo, seen, stack = [], set(), [(self, False)]
        while stack:
            node, operands_done = stack.pop()
            if operands_done:
                topo.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node._prev) if id(c) not in seen)
        for node in topo:
            if node._prev:
                node.grad = 0.0
        self.grad += _real(gradient)
        for node in reversed(topo):
            if node.grad != 0.0:  # a zero adjoint contributes nothing, even times inf
                node._backward()


# ---------------------------------------------------------------- op registration

_SHARED_DOC = """

    ``{args}`` may be Values (a new Value node is returned) or real numbers
    (a plain float is returned); other types raise TypeError.  Outside the
    domain the IEEE/numpy result (nan or +-inf) is returned, nothing raises.
    """


def _unary(derivative):
    """Register a one-argument op from its float value rule and ``derivative(x, y)``, y = rule(x).

    The decorated rule becomes the module-level function (Value or number)
    and the Value method of the same name.
    """
    def register(rule):
        name = rule.__name__

        def method(self):
            out = Value(rule(self.data), (self,), name)

            def _backward():
                self.grad += _chain(derivative(self.data, out.data), out.grad)
            out._backward = _backward
            return out

        @functools.wraps(rule)
        def function(x):
            if isinstance(x, Value):
                return method(x)
            return rule(_real(x))

        method.__name__, method.__qualname__ = name, f'Value.{name}'
        method.__doc__ = f"{rule.__doc__.splitlines()[0]}  (method form of ``{name}``)"
        setattr(Value, name, method)
        function.__doc__ += _SHARED_DOC.format(args='x')
        return function
    return register


def _binary(derivative):
    """Register a two-argument op from its float value rule and ``derivative(a, b, y) -> (d/da, d/db)``."""
    def register(rule):
        name = rule.__name__

        def method(self, other):
            other = _as_value(other)
            out = Value(rule(self.data, other.data), (self, other), name.lstrip('_'))

            def _backward():
                da, db = derivative(self.data, other.data, out.data)
                self.grad += _chain(da, out.grad)
                other.grad += _chain(db, out.grad)
            out._backward = _backward
            return out

        @functools.wraps(rule)
        def function(a, b):
            if isinstance(a, Value) or isinstance(b, Value):
                return method(_as_value(a), b)
            return rule(_real(a), _real(b))

        method.__name__, method.__qualname__ = name, f'Value.{name}'
        method.__doc__ = f"{rule.__doc__.splitlines()[0]}  (method form of ``{name}``)"
        setattr(Value, name, method)
        function.__doc__ += _SHARED_DOC.format(args='a, b')
        return function
    return register


# ---------------------------------------------------------------- unary ops
# Each op: @_unary(derivative rule d(x, y)) over its IEEE value rule.

@_unary(lambda x, y: _div(0.5, y))
def sqrt(x):
    """Square root; derivative 0.5/sqrt(x) (inf at 0).

    >>> sqrt(4.0), sqrt(-1.0)
    (2.0, nan)
    """
    return math.sqrt(x) if x >= 0 else _NAN


@_unary(lambda x, y: _div(1.0, 3.0 * y * y))
def cbrt(x):
    """Real cube root (negative for negative x); derivative 1/(3*cbrt(x)**2) (inf at 0).

    >>> cbrt(-8), cbrt(64.0)
    (-2.0, 4.0)
    """
    if hasattr(math, 'cbrt'):                     # Python >= 3.11
        return math.cbrt(x)
    if x == 0 or not math.isfinite(x):
        return x
    r = math.copysign(builtins.abs(x) ** (1.0 / 3.0), x)
    return r - (r * r * r - x) / (3.0 * r * r)    # one Newton step


@_unary(lambda x, y: y)
def exp(x):
    """e**x; derivative exp(x).

    >>> exp(0.0), exp(1000.0), exp(-1000.0)
    (1.0, inf, 0.0)
    """
    try:
        return math.exp(x)
    except OverflowError:
        return _INF


@_unary(lambda x, y: y * _LN2)
def exp2(x):
    """2**x; derivative exp2(x)*ln(2).

    >>> exp2(3.0), exp2(-1.0), exp2(5000.0)
    (8.0, 0.5, inf)
    """
    try:
        return math.exp2(x) if hasattr(math, 'exp2') else math.pow(2.0, x)
    except OverflowError:
        return _INF


@_unary(lambda x, y: exp(x) if x < -0.5 else y + 1.0)   # y + 1 cancels below -0.5
def expm1(x):
    """exp(x) - 1, accurate near 0; derivative exp(x) = expm1(x) + 1.

    >>> expm1(0.0), expm1(1e-20), expm1(1000.0)
    (0.0, 1e-20, inf)
    """
    try:
        return math.expm1(x)
    except OverflowError:
        return _INF


@_unary(lambda x, y: _div(1.0, x))
def log(x):
    """Natural logarithm; derivative 1/x.

    >>> log(1.0), log(0.0), log(-1.0)
    (0.0, -inf, nan)
    """
    return math.log(x) if x > 0 else (-_INF if x == 0 else _NAN)


@_unary(lambda x, y: _div(1.0, x * _LN2))
def log2(x):
    """Base-2 logarithm; derivative 1/(x*ln(2)).

    >>> log2(8.0), log2(0.0), log2(-2.0)
    (3.0, -inf, nan)
    """
    return math.log2(x) if x > 0 else (-_INF if x == 0 else _NAN)


@_unary(lambda x, y: _div(1.0, x * _LN10))
def log10(x):
    """Base-10 logarithm; derivative 1/(x*ln(10)).

    >>> log10(1000.0), log10(0.0), log10(-2.0)
    (3.0, -inf, nan)
    """
    return math.log10(x) if x > 0 else (-_INF if x == 0 else _NAN)


@_unary(lambda x, y: _div(1.0, 1.0 + x))
def log1p(x):
    """log(1 + x), accurate near 0; derivative 1/(1+x).

    >>> log1p(0.0), log1p(-1.0), log1p(-2.0)
    (0.0, -inf, nan)
    """
    return math.log1p(x) if x > -1 else (-_INF if x == -1 else _NAN)


@_unary(lambda x, y: cos(x))
def sin(x):
    """Sine; derivative cos(x).

    >>> sin(0.0), sin(math.inf)
    (0.0, nan)
    """
    return math.sin(x) if math.isfinite(x) else _NAN


@_unary(lambda x, y: -sin(x))
def cos(x):
    """Cosine; derivative -sin(x).

    >>> cos(0.0), cos(-math.inf)
    (1.0, nan)
    """
    return math.cos(x) if math.isfinite(x) else _NAN


@_unary(lambda x, y: 1.0 + y * y)
def tan(x):
    """Tangent; derivative 1 + tan(x)**2.

    >>> tan(0.0), tan(math.inf)
    (0.0, nan)
    """
    return math.tan(x) if math.isfinite(x) else _NAN


@_unary(lambda x, y: _div(1.0, sqrt((1.0 - x) * (1.0 + x))))
def asin(x):
    """Arc sine; derivative 1/sqrt((1-x)*(1+x)).

    >>> asin(0.0), asin(2.0)
    (0.0, nan)
    """
    return math.asin(x) if -1 <= x <= 1 else _NAN


@_unary(lambda x, y: -_div(1.0, sqrt((1.0 - x) * (1.0 + x))))
def acos(x):
    """Arc cosine; derivative -1/sqrt((1-x)*(1+x)).

    >>> acos(1.0), acos(-2.0)
    (0.0, nan)
    """
    return math.acos(x) if -1 <= x <= 1 else _NAN


@_unary(lambda x, y: 1.0 / (1.0 + x * x))
def atan(x):
    """Arc tangent; derivative 1/(1+x*x).

    >>> atan(0.0), atan(math.inf) == math.pi / 2
    (0.0, True)
    """
    return math.atan(x)


@_unary(lambda x, y: cosh(x))
def sinh(x):
    """Hyperbolic sine; derivative cosh(x).

    >>> sinh(0.0), sinh(-1000.0)
    (0.0, -inf)
    """
    try:
        return math.sinh(x)
    except OverflowError:
        return math.copysign(_INF, x)


@_unary(lambda x, y: sinh(x))
def cosh(x):
    """Hyperbolic cosine; derivative sinh(x).

    >>> cosh(0.0), cosh(-1000.0)
    (1.0, inf)
    """
    try:
        return math.cosh(x)
    except OverflowError:
        return _INF


@_unary(lambda x, y: (1.0 - y) * (1.0 + y) if builtins.abs(y) < 0.999 else _sech2(x))
def tanh(x):
    """Hyperbolic tangent; derivative 1 - tanh(x)**2.

    >>> tanh(0.0), tanh(1000.0)
    (0.0, 1.0)
    """
    return math.tanh(x)


@_unary(lambda x, y: _div(1.0, hypot(x, 1.0)))
def asinh(x):
    """Inverse hyperbolic sine; derivative 1/hypot(x, 1).

    >>> asinh(0.0), asinh(-math.inf)
    (0.0, -inf)
    """
    return math.asinh(x)


@_unary(lambda x, y: 1.0 / x if x > 1e8 else _div(1.0, sqrt((x - 1.0) * (x + 1.0))))
def acosh(x):
    """Inverse hyperbolic cosine; derivative 1/sqrt((x-1)*(x+1)).

    >>> acosh(1.0), acosh(0.5)
    (0.0, nan)
    """
    return math.acosh(x) if x >= 1 else _NAN


@_unary(lambda x, y: _div(1.0, (1.0 - x) * (1.0 + x)))
def atanh(x):
    """Inverse hyperbolic tangent; derivative 1/((1-x)*(1+x)).

    >>> atanh(0.0), atanh(1.0), atanh(-1.0), atanh(2.0)
    (0.0, inf, -inf, nan)
    """
    if -1 < x < 1:
        return math.atanh(x)
    return math.copysign(_INF, x) if builtins.abs(x) == 1 else _NAN


@_unary(lambda x, y: y * (1.0 - y) if y < 0.999 else y * sigmoid(-x))
def sigmoid(x):
    """Logistic function 1/(1+exp(-x)), overflow-free; derivative y*(1-y).

    >>> sigmoid(0.0), sigmoid(1000.0), sigmoid(-1000.0)
    (0.5, 1.0, 0.0)
    """
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@_unary(lambda x, y: 0.0 if x <= 0 else 1.0)
def relu(x):
    """max(x, 0) (nan stays nan); derivative 0 if x <= 0 else 1, so relu'(0) = 0 and relu'(nan) = 1 (PyTorch).

    >>> relu(-2.0), relu(3.0)
    (0.0, 3.0)
    """
    return x if x > 0 or x != x else 0.0


@_unary(lambda x, y: sigmoid(x))
def softplus(x):
    """log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)); derivative sigmoid(x).

    >>> softplus(0.0) == math.log(2), softplus(1000.0), softplus(-1000.0)
    (True, 1000.0, 0.0)
    """
    return (x if x > 0 else 0.0) + math.log1p(math.exp(-builtins.abs(x)))


@_unary(lambda x, y: _TWO_OVER_SQRT_PI * exp(-x * x))
def erf(x):
    """Error function; derivative 2/sqrt(pi)*exp(-x*x).

    >>> erf(0.0), erf(math.inf)
    (0.0, 1.0)
    """
    return math.erf(x)


@_unary(lambda x, y: -(_TWO_OVER_SQRT_PI * exp(-x * x)))
def erfc(x):
    """Complementary error function 1 - erf(x); derivative -2/sqrt(pi)*exp(-x*x).

    >>> erfc(0.0), erfc(math.inf)
    (1.0, 0.0)
    """
    return math.erfc(x)


@_unary(lambda x, y: 1.0 if x > 0 else (-1.0 if x < 0 else 0.0))
def abs(x):  # noqa: A001 - shadows the builtin on purpose; use builtins.abs inside
    """Absolute value; derivative sign(x), with abs'(0) = 0.

    >>> abs(-3), abs(Value(-3.0))
    (3.0, Value(data=3.0, grad=0.0))
    """
    return builtins.abs(x)


# ---------------------------------------------------------------- binary ops
# Each op: @_binary(derivative rule d(a, b, y) -> (d/da, d/db)) over its IEEE value rule.

@_binary(lambda a, b, y: (0.0, 0.0) if a == 0 and b == 0 else (_atan2_d(b, a, b), _atan2_d(-a, a, b)))
def atan2(a, b):
    """Angle of the point (b, a); d/da = b/(a*a+b*b), d/db = -a/(a*a+b*b), (0, 0) at the origin (PyTorch).

    >>> atan2(1.0, 1.0) == math.pi / 4, atan2(0.0, -1.0) == math.pi
    (True, True)
    """
    return math.atan2(a, b)


@_binary(lambda a, b, y: (_hypot_d(a, a, b, y), _hypot_d(b, a, b, y)))
def hypot(a, b):
    """sqrt(a*a + b*b) without overflow; d/da = a/h, d/db = b/h, both 0 when h == 0.

    >>> hypot(3.0, 4.0), hypot(1e308, 1e308)
    (5.0, 1.4142135623730951e+308)
    """
    try:
        return math.hypot(a, b)
    except OverflowError:
        return _INF


@_binary(lambda a, b, y: (0.0 if a > b else (0.5 if a == b else 1.0), 0.0 if b > a else (0.5 if a == b else 1.0)))
def minimum(a, b):
    """Smaller of a and b (nan if either is nan); gradient to the smaller, 0.5/0.5 on ties, 1/1 at a nan (PyTorch).

    >>> minimum(2.0, 3.0), minimum(2.0, math.nan)
    (2.0, nan)
    """
    return _NAN if a != a or b != b else (a if a <= b else b)


@_binary(lambda a, b, y: (0.0 if a < b else (0.5 if a == b else 1.0), 0.0 if b < a else (0.5 if a == b else 1.0)))
def maximum(a, b):
    """Larger of a and b (nan if either is nan); gradient to the larger, 0.5/0.5 on ties, 1/1 at a nan (PyTorch).

    >>> maximum(2.0, 3.0), maximum(math.nan, 3.0)
    (3.0, nan)
    """
    return _NAN if a != a or b != b else (a if a >= b else b)


@_binary(lambda x, lo, y: (1.0 if x >= lo else 0.0, 1.0 if x < lo else 0.0))
def _clamp_min(x, lo):
    """max(x, lo); d/dx = 1 if x >= lo else 0, d/dlo = 1 if x < lo else 0."""
    return _NAN if x != x or lo != lo else (x if x >= lo else lo)


@_binary(lambda x, hi, y: (1.0 if x <= hi else 0.0, 1.0 if x > hi else 0.0))
def _clamp_max(x, hi):
    """min(x, hi); d/dx = 1 if x <= hi else 0, d/dhi = 1 if x > hi else 0."""
    return _NAN if x != x or hi != hi else (x if x <= hi else hi)


# ---------------------------------------------------------------- rounding, remainders, log-sum-exp
# numpy's definitions (np.sign, np.rint, np.remainder, np.fmod, np.floor_divide,
# np.logaddexp, np.logaddexp2); the rounding ops are piecewise constant.

def _zero(x, y):
    return 0.0


@_unary(_zero)
def sign(x):
    """-1.0, 0.0 or 1.0 by the sign of x (nan at nan, like numpy); derivative 0.

    >>> sign(-2.5), sign(0.0), sign(math.nan)
    (-1.0, 0.0, nan)
    """
    return x if x != x else float((x > 0) - (x < 0))


def _integral(f, x):
    """f(x) as a float for a finite x; infinities and nan as they are."""
    return float(f(x)) if math.isfinite(x) else x


@_unary(_zero)
def floor(x):
    """The largest integer <= x; derivative 0.

    >>> floor(-2.5), floor(math.inf)
    (-3.0, inf)
    """
    return _integral(math.floor, x)


@_unary(_zero)
def ceil(x):
    """The smallest integer >= x; derivative 0.

    >>> ceil(-2.5)
    -2.0
    """
    return _integral(math.ceil, x)


@_unary(_zero)
def round(x):  # noqa: A001 - shadows the builtin on purpose; use builtins.round inside
    """The nearest integer, halves to even (numpy's rint, Python's round); derivative 0.

    >>> round(2.5), round(3.5), round(-0.4)
    (2.0, 4.0, -0.0)
    """
    return math.copysign(_integral(builtins.round, x), x)


@_unary(_zero)
def trunc(x):
    """x rounded toward 0; derivative 0.

    >>> trunc(-2.5)
    -2.0
    """
    return math.copysign(_integral(math.trunc, x), x)


def _floor_divide(a, b):
    """Python's a // b on floats (numpy's floor_divide), IEEE a / b at b == 0."""
    return _div(a, b) if b == 0 else a // b


def _fmod(a, b):
    """C's fmod: nan for an infinite a or b == 0 (math.fmod raises there)."""
    return _NAN if b == 0 or math.isinf(a) else math.fmod(a, b)


def _trunc_divide(a, b):
    """The integer n of fmod(a, b) = a - n b (trunc of the exact quotient)."""
    if b == 0:
        return _div(a, b)
    q = (a - _fmod(a, b)) / b
    if q == 0:
        return math.copysign(0.0, a / b)
    return float(builtins.round(q)) if math.isfinite(q) else q


@_binary(lambda a, b, y: (1.0, -_floor_divide(a, b)))
def mod(a, b):
    """Remainder with the divisor's sign (Python's %, numpy's remainder);
    d/da = 1, d/db = -(a // b).

    >>> mod(5.5, 2.0), mod(-5.5, 2.0), mod(5.5, -2.0)
    (1.5, 0.5, -0.5)
    """
    if b == 0 or math.isinf(a):
        return _NAN
    return a % b


@_binary(lambda a, b, y: (1.0, -_trunc_divide(a, b)))
def fmod(a, b):
    """Remainder with the dividend's sign (C's fmod); d/da = 1, d/db = -trunc(a / b).

    >>> fmod(-5.5, 2.0)
    -1.5
    """
    return _fmod(a, b)


@_binary(lambda a, b, y: (0.0, 0.0))
def floor_divide(a, b):
    """a // b (numpy's floor_divide, inf or nan at b == 0); derivative 0.

    >>> floor_divide(5.5, 2.0), floor_divide(1.0, 0.1)
    (2.0, 9.0)
    """
    return _floor_divide(a, b)


def _share(a, b, k):
    """d/da of log(e**(k a) + e**(k b)) / k: 1 / (1 + e**(k (b - a))), 0.5 at a == b."""
    if a == b:
        return 0.5
    t = k * (b - a)
    if t != t:
        return _NAN
    return 1.0 / (1.0 + math.exp(t)) if t < 0 else math.exp(-t) / (math.exp(-t) + 1.0)


@_binary(lambda a, b, y: (_share(a, b, 1.0), _share(b, a, 1.0)))
def logaddexp(a, b):
    """log(e**a + e**b) without overflow; d/da = e**a / (e**a + e**b).

    >>> logaddexp(1000.0, 1000.0) == 1000.0 + math.log(2.0)
    True
    """
    if a == b:
        return a + _LN2
    m = a if a > b else b
    return m + math.log1p(math.exp(-builtins.abs(a - b))) if a == a and b == b else _NAN


@_binary(lambda a, b, y: (_share(a, b, _LN2), _share(b, a, _LN2)))
def logaddexp2(a, b):
    """log2(2**a + 2**b) without overflow; d/da = 2**a / (2**a + 2**b).

    >>> logaddexp2(1.0, 1.0)
    2.0
    """
    if a == b:
        return a + 1.0
    m = a if a > b else b
    return m + math.log1p(2.0 ** -builtins.abs(a - b)) / _LN2 if a == a and b == b else _NAN

# ---------------------------------------------------------------- conditions and where
# Comparisons as values (1.0 / 0.0, no gradient) and the branch-free choice.

@_binary(lambda a, b, y: (0.0, 0.0))
def less(a, b):
    """1.0 if a < b else 0.0, a condition for where; no gradient."""
    return float(a < b)


@_binary(lambda a, b, y: (0.0, 0.0))
def less_equal(a, b):
    """1.0 if a <= b else 0.0, a condition for where; no gradient."""
    return float(a <= b)


@_binary(lambda a, b, y: (0.0, 0.0))
def equal(a, b):
    """1.0 if a == b else 0.0, a condition for where; no gradient."""
    return float(a == b)


@_binary(lambda a, b, y: (0.0, 0.0))
def not_equal(a, b):
    """1.0 if a != b else 0.0, a condition for where; no gradient."""
    return float(a != b)


def greater(a, b):
    """1.0 if a > b else 0.0: less(b, a)."""
    return less(b, a)


def greater_equal(a, b):
    """1.0 if a >= b else 0.0: less_equal(b, a)."""
    return less_equal(b, a)


def where(cond, a, b):
    """a where cond is nonzero, else b: one node whose gradient goes to the
    chosen operand only (the other gets exactly 0, whatever its derivative).

    >>> x = Value(-1.0); y = where(greater(x, 0.0), sqrt(x), 2.0 * x); y.backward(); x.grad
    2.0
    """
    if not any(isinstance(v, Value) for v in (cond, a, b)):
        return _real(a) if _real(cond) != 0.0 else _real(b)
    cond, a, b = _as_value(cond), _as_value(a), _as_value(b)
    chosen = a if cond.data != 0.0 else b
    out = Value(chosen.data, (cond, a, b), 'where')

    def _backward():
        chosen.grad += out.grad
    out._backward = _backward
    return out


@_binary(lambda c, v, y: (0.0, 1.0 if c != 0.0 else 0.0))
def where_t(c, v):
    """v where c is nonzero, else -0.0: where(c, t, f) == where_t(c, t) + where_f(c, f) (pytape's form)."""
    return v if c != 0.0 else -0.0


@_binary(lambda c, v, y: (0.0, 0.0 if c != 0.0 else 1.0))
def where_f(c, v):
    """-0.0 where c is nonzero, else v (see where_t)."""
    return -0.0 if c != 0.0 else v


def clip(x, lo=None, hi=None):
    """Clamp x to [lo, hi] like torch.clamp: clamp_max(clamp_min(x, lo), hi).

    A bound of None is absent.  x gets gradient 1 when lo <= x <= hi
    (boundaries included), else 0; a Value bound gets gradient 1 where it is
    the result (x < lo, resp. clamp_min(x, lo) > hi).  Any argument may be a
    Value (a Value is returned) or a real number (all numbers: a float).

    >>> clip(5.0, 0.0, 1.0), clip(-5.0, 0.0, None), clip(0.5, None, 1.0)
    (1.0, 0.0, 0.5)
    >>> x = Value(1.0); y = clip(x, 0.0, 1.0); y.backward(); x.grad
    1.0
    """
    if isinstance(x, Value) or isinstance(lo, Value) or isinstance(hi, Value):
        return _as_value(x).clip(lo, hi)
    x = _real(x)
    x = x if lo is None else _clamp_min(x, lo)
    return x if hi is None else _clamp_max(x, hi)
