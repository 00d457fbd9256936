"""The first-derivative columns of the op table as functions of ``Tensor`` s:
the rules a recorded reverse sweep over array instructions (``create_graph``
over MAP1 / MAP2) applies, so that their results can be differentiated again.

``tensor_rule(opcode)`` gives ``(da, db)`` for a row of csrc/ops.def: each a
function ``(a, b, y)`` of the instruction's operands and value (Tensors, or
Python floats for a constant operand; ``b`` is None in a unary row) that
records the column's C expression elementwise on the operands' tape, with
numpy's broadcasting; ``None`` for an empty column.

Design:

* The column's text (``_native.RULES``, e.g. ``-y / b``,
  ``pt_pow_da(a, b)``) is parsed once into a Python AST in which every
  operator (``+ - * /``, unary ``-``, comparisons) is a call of an op-table
  row, then compiled.  A row applied to a Tensor is one MAP1 / MAP2
  instruction (``array_ops.ROWS``); applied to floats only, it is the row's C
  value rule (``_native.evaluate``), never Python's arithmetic (1.0 / 0.0 is
  inf, as in C).  So a column that only involves constants gives a float.
* Unary rows are recorded with C's value loop at every size: ``map1`` takes
  numpy's SIMD values for exp, log, cosh, ... from 512 elements on (a few
  ulps off libm), which would make a rule differ from the C column it twins.
* The helpers of csrc/rules.h (``pt_pow_da``, ``pt_atan2_d``, ...) are
  rewritten branch by branch: every branch is computed on all elements, and
  ``where`` (the op table's ``where_t + where_f``) keeps the one C takes,
  element by element, with conditions that are recorded comparisons (the
  0/1 rows ``less``, ``less_equal``, ``equal``, ``not_equal``).  No value is
  read in Python: a traced tape replayed at other inputs takes, at each
  element, the branch C takes there.  The inf or nan a branch not taken may
  hold stays out: ``where_t`` gives -0.0 (the neutral element of +) where it
  does not choose, and its derivative with respect to the branch is exactly
  0 there, which the sweeps' chain rule (``pt_chain``: 0 times inf is 0)
  passes on as 0 through every operation of the branch.
* Anomaly mode (``pytape.detect_anomaly``) is off while a rule records:
  a branch not taken holds inf or nan by design (1 / 0 where it is not
  chosen); whether the rule's result is an anomaly is its caller's to say.
* Derivatives: each branch is written as the scalar twin of the helper
  (pytape/higher_order.py) writes it where that twin departs from C to get
  the right slope at a branch point (``pow``'s exponent 0, 1 and 2, a zero
  base, ``logaddexp``'s finite ties), so differentiating a rule gives the
  twin's derivatives; the twin's test of a *constant* operand
  (``_is_constant``) is here a Python float, decided in Python.  Piecewise
  constants (``pt_sign``, ``pt_tie``, ``pt_floordiv``, ``pt_truncdiv``,
  ``(double)(a >= b)``) are built from rows whose derivative is 0
  (comparisons, ``floor_divide``, ``round``), so their slope is 0, as the
  twins' Python floats have none.  Two places keep C's branch where the
  twin takes another, with C's value: atan2's d/da, d/db where a*a + b*b
  underflows but hypot(a, b) does not (C rescales by 2**600, the twin
  divides by hypot twice) and pow's d/da at a Tensor b == 2 with a
  subnormal (C's 2 a; the twin goes through logarithms).  There the twin's
  slope can overflow (inf at (1e-310, 1e-160), at (5e-324, 2)) where the
  rule's is the Hessian sweep's finite second-derivative column.  A zero
  slope may come out as 0.0 where the twin's is -0.0 (a branch not taken
  adds +0.0).

Values: bit for bit the C column's, signed zeros included by construction
(a sweep cannot show them: pt_chain(-0.0, g) is 0.0), except in one place:
C's ``pt_pow_scaled`` calls libm's ``pow``, the rule the ``pow`` row
(``pt_pow``, which is ``a * a`` at exponent 2), the only row that raises to
a power: so pow's d/da at b == 3, 3 * pow(a, 2.0) in C, is 3 * (a * a) here.
libm's pow(a, 2.0) and a * a can differ by an ulp (both are within about
half an ulp of a**2), and then the column by up to 2 ulps: at about 1 point
in 1000 (tests/test_array_rules.py allows it there, and nowhere else).

>>> import numpy as np, pytape
>>> from pytape import _native
>>> from pytape.array_rules import tensor_rule
>>> da, db = tensor_rule(_native.OPCODES["pow"])
>>> a, b = pytape.Tensor([0.0, 2.0, -8.0]), pytape.Tensor([0.0, 3.0, 1.0 / 3.0])
>>> y = a ** b
>>> da(a, b, y).value          # 0 at b == 0 (even at a == 0), 3 a**2, nan for a < 0, b not an integer
array([ 0., 12., nan])
>>> d = da(a, b, y)
>>> d.sum().backward()         # second derivatives, recorded and swept again
>>> float(a.grad[1]), round(float(b.grad[1]), 9)   # d/da 3 a**2 = 6 a; d/db b a**(b-1) = a**(b-1) (1 + b ln a)
(12.0, 12.317766167)
"""
import ast
import functools
import math

from . import _native
from .anomaly import unchecked
from .array_ops import ROWS
from .higher_order import HELPERS as _SCALAR_HELPERS
from .tape import is_grad_enabled
from .tensor import NO_LIMIT, Tensor, _call, _finish, _no_grad, as_tensor_operand, tape_of

__all__ = ["HELPERS", "tensor_rule", "tensor_rules", "where"]

_OPC = _native.OPCODES
_DBL_MIN, _DBL_MAX = 2.2250738585072014e-308, 1.7976931348623157e+308
_INF, _NAN = math.inf, math.nan
_UP, _DOWN = 2.0 ** 600, 2.0 ** -600


def _t(x):
    return isinstance(x, Tensor)


# ---- the rows, on Tensors and floats -----------------------------------------------------

def _map1_exact(code, x):
    """Unary row ``code`` over Tensor x with C's value loop at any size
    (``tensor.map1`` takes numpy's values for large operands of some rows)."""
    if not is_grad_enabled():  # computed on a scratch tape, as map1 does
        return _no_grad(lambda v: _map1_exact(code, v), (x,))
    t = tape_of((x,))
    h, c = as_tensor_operand(x, t)
    if h is None:
        return float(_native.evaluate(code, c))
    if h < 0:
        _native.check(h, "record", t._c)
    r = _call(t, _native.arr_map1, code, h, NO_LIMIT)
    return _finish(t, r, lambda v: _map1_exact(code, v), (x,), f"pytape.{_native.OP_NAMES[code]}")


def _unary(name):
    code = _OPC[name]

    def f(x):
        if _t(x):
            return _map1_exact(code, x)
        return float(_native.evaluate(code, float(x)))
    f.__name__ = name
    return f


def _binary(name):
    code, row = _OPC[name], ROWS[name]

    def f(x, y):
        if _t(x) or _t(y):
            return row(x, y)
        return float(_native.evaluate(code, float(x), float(y)))
    f.__name__ = name
    return f


_add, _sub, _mul, _div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
_pow, _hypot, _chain = _binary("pow"), _binary("hypot"), _binary("chain")
_lt, _le, _eq, _ne = _binary("less"), _binary("less_equal"), _binary("equal"), _binary("not_equal")
_neg, _abs, _log, _exp = _unary("neg"), _unary("abs"), _unary("log"), _unary("exp")
_sqrt, _sigmoid, _round = _unary("sqrt"), _unary("sigmoid"), _unary("round")


def _gt(x, y):
    return _lt(y, x)


def _ge(x, y):
    return _le(y, x)


def _and(p, q):
    return _mul(p, q)  # of 0/1 values


def _or(p, q):
    return _sub(_add(p, q), _mul(p, q))


def _not(p):
    return _sub(1.0, p)


def _isnan(x):
    return _ne(x, x)


def _isinf(x):
    return _eq(_abs(x), _INF)


def where(cond, x, y):
    """x where ``cond`` (a 0/1 Tensor, or a number) is not 0, else y,
    elementwise and recorded: the op table's ``where_t(cond, x) +
    where_f(cond, y)``, so the value is exactly the chosen one (the other
    gives -0.0, neutral in +) and the branch not chosen gets a derivative of
    exactly 0, even where it is inf or nan.  A number ``cond`` (a constant)
    chooses in Python.

    >>> import pytape
    >>> x = pytape.Tensor([-1.0, 0.0, 4.0])
    >>> r = where(pytape.less(0.0, x), pytape.sqrt(x), 1.0 / x)   # 1/0 and sqrt(-1): not chosen
    >>> r.value
    array([-1., inf,  2.])
    >>> r.sum().backward(); x.grad
    array([-1.  ,  -inf,  0.25])
    """
    if not _t(cond):
        return x if cond != 0.0 else y
    return ROWS["add"](ROWS["where_t"](cond, x), ROWS["where_f"](cond, y))


def _signbit(x):
    """1 where x's sign bit is set (-0.0 included), else 0; nan: 0."""
    if not _t(x):
        return float(math.copysign(1.0, x) < 0.0) if x == x else 0.0
    return _or(_lt(x, 0.0), _and(_eq(x, 0.0), _lt(_div(1.0, x), 0.0)))


def _copysign1(x):
    """copysign(1.0, x) (a nan's sign taken as +: only a nan's sign bit differs)."""
    if not _t(x):
        return math.copysign(1.0, x)
    return _sub(1.0, _mul(2.0, _signbit(x)))


# ---- the helpers of csrc/rules.h ---------------------------------------------------------

def _sign(a):
    """pt_sign: (a > 0) - (a < 0), 0 at nan; no slope."""
    return _sub(_lt(0.0, a), _lt(a, 0.0))


def _step(a):
    """pt_step: 0 at and below 0, 1 above and at nan."""
    return _not(_le(a, 0.0))


def _tie(win, lose):
    """pt_tie: 0 if win < lose, 0.5 on a tie, 1 else (nan included)."""
    return _sub(_sub(1.0, _lt(win, lose)), _mul(0.5, _eq(win, lose)))


def _pow_scaled(c1, c2, a, e):
    """pt_pow_scaled: c1 * c2 * a**e, through logarithms where a**e alone
    under- or overflows (the twin's structure: higher_order._pow_scaled)."""
    p = _pow(a, e)
    m, aa = _abs(p), _abs(a)
    plain = _or(_or(_and(_le(_DBL_MIN, m), _le(m, _DBL_MAX)), _isnan(p)),
                _or(_or(_eq(c1, 0.0), _eq(c2, 0.0)), _not(_and(_lt(0.0, aa), _le(aa, _DBL_MAX)))))
    if not _t(plain) and plain != 0.0:
        return _mul(c1, _mul(c2, p))
    lg = _add(_add(_log(_abs(c1)), _log(_abs(c2))), _mul(e, _log(aa)))
    sign = _mul(_mul(_copysign1(c1), _copysign1(c2)), _copysign1(p))
    below = _and(_isnan(lg), _and(_eq(c1, c1), _eq(c2, c2)))  # inf - inf: the product is 0
    scaled = where(below, _mul(sign, 0.0), _mul(sign, _exp(lg)))
    return where(plain, _mul(c1, _mul(c2, p)), scaled)


def _pow_da(a, b):
    """pt_pow_da: b a**(b-1); 2 a at b == 2, 0 at b == 0 (also where a**-1 is
    inf).  As the scalar twin: with a Tensor b those values come with the
    slope in b of b a**(b-1) (a**-1 at b == 0 through chain(b, a**(b-1)),
    1 + ln a = -inf at b == 1, a == 0)."""
    if not _t(b):
        if b == 2.0:
            return _mul(2.0, a)
        if b == 0.0:
            return 0.0
    bm1 = _sub(b, 1.0)
    base = _pow_scaled(b, 1.0, a, bm1)
    r = where(_and(_eq(b, 1.0), _eq(a, 0.0)), _add(base, _chain(bm1, _log(a))), base)
    r = where(_eq(b, 0.0), _chain(b, _pow(a, bm1)), r)
    if _t(b):  # C's 2 a: the twin's b * (1 * a**(b-1)), without its rescaling at a subnormal a
        r = where(_eq(b, 2.0), _mul(b, _mul(1.0, _pow(a, bm1))), r)
    return r


def _pow_db(a, b, y):
    """pt_pow_db: a**b ln a, 0 at a == 0 and b >= 0, with the twin's slopes
    there (higher_order._pow_db: pt_pow_dab, pt_pow_dbb)."""
    general = _mul(y, _log(a))
    if not _t(a):
        return where(_le(0.0, b), 0.0, general) if a == 0.0 else general
    zero = _eq(a, 0.0)
    logy = _chain(y, _log(a))
    at_b0 = _chain(a, where(_signbit(a), -_INF, _INF))  # slope a**-1 in a
    nonneg = where(_eq(b, 0.0), at_b0, where(_lt(b, 1.0), _add(logy, _chain(a, _NAN)), logy))
    r = where(_and(zero, _lt(b, 0.0)), _mul(y, _log(_abs(a))), general)
    return where(_and(zero, _le(0.0, b)), nonneg, r)


def _atan2_d(n, a, b):
    """pt_atan2_d: n / (a*a + b*b), through hypot (scaled by 2**600 where a, b
    are tiny) where the sum under- or overflows; 0 at the origin."""
    s = _add(_mul(a, a), _mul(b, b))
    h2 = _hypot(_mul(a, _UP), _mul(b, _UP))
    tiny = where(_eq(h2, 0.0), 0.0, _div(_mul(_div(_mul(n, _UP), h2), _UP), h2))
    h = _hypot(a, b)
    rest = where(_lt(s, _DBL_MIN), tiny, _div(_div(n, h), h))
    return where(_and(_le(_DBL_MIN, s), _le(s, _DBL_MAX)), _div(n, s), rest)


def _hypot_d(n, a, b, y):
    """pt_hypot_d: n / y; scaled where y is subnormal, 0 where it is 0."""
    scaled = where(_eq(y, 0.0), 0.0, _div(_mul(n, _UP), _hypot(_mul(a, _UP), _mul(b, _UP))))
    return where(_le(_DBL_MIN, y), _div(n, y), scaled)


def _tanh_d(a, y):
    """pt_tanh_d: (1 - y)(1 + y), or 4e / (1 + e)**2, e = exp(-2|a|), where |y| >= 0.999."""
    e = _exp(_mul(-2.0, _abs(a)))
    far = _div(_mul(4.0, e), _mul(_add(1.0, e), _add(1.0, e)))
    # nan: the first form, as the twin (the same value; slope nan)
    return where(_or(_lt(_abs(y), 0.999), _isnan(y)), _mul(_sub(1.0, y), _add(1.0, y)), far)


def _sigmoid_d(a, y):
    """pt_sigmoid_d: y (1 - y), or y sigmoid(-a) where y >= 0.999 (or nan)."""
    return where(_lt(y, 0.999), _mul(y, _sub(1.0, y)), _mul(y, _sigmoid(_neg(a))))


def _expm1_d(a, y):
    """pt_expm1_d: exp(a) below -0.5, else y + 1."""
    return where(_lt(a, -0.5), _exp(a), _add(y, 1.0))


def _acosh_d(a):
    """pt_acosh_d: 1 / a above 1e8, else 1 / sqrt((a - 1)(a + 1))."""
    return where(_lt(1e8, a), _div(1.0, a), _div(1.0, _sqrt(_mul(_sub(a, 1.0), _add(a, 1.0)))))


def _div_db(a, b, y):
    """pt_div_db: -y / b, or -a / b / b scaled by 2**600 where y is subnormal or 0 and |a| < 1."""
    plain = _or(_le(_DBL_MIN, _abs(y)), _not(_lt(_abs(a), 1.0)))
    return where(plain, _div(_neg(y), b), _mul(_div(_neg(_div(_mul(a, _UP), b)), b), _DOWN))


def _floordiv(a, b):
    """pt_floordiv: the floor_divide row (derivative 0)."""
    return _binary("floor_divide")(a, b)


def _truncdiv(a, b):
    """pt_truncdiv: nearbyint((a - fmod(a, b)) / b), a signed 0 where that is
    0, a / b at b == 0; through round (derivative 0), so no slope."""
    q = _div(_sub(a, _binary("fmod")(a, b)), b)
    ab = _div(a, b)
    r = where(_eq(q, 0.0), where(_signbit(ab), -0.0, 0.0), _round(q))
    return where(_eq(b, 0.0), _round(ab), r)  # round(+-inf or nan) is itself


def _lse_d(a, b, k):
    """pt_lse_d: 0.5 at a == b, else sigmoid(k (a - b)); as the twin, a finite
    tie goes through sigmoid(0) = 0.5 (slope k/4), a tie of infinities is 0.5."""
    return where(_and(_eq(a, b), _isinf(a)), 0.5, _sigmoid(_mul(k, _sub(a, b))))


#: the helpers of csrc/rules.h that derivative columns call, on Tensors and floats
HELPERS = {
    "pt_sign": _sign, "pt_step": _step, "pt_tie": _tie, "pt_sigmoid": _sigmoid,
    "pt_pow_da": _pow_da, "pt_pow_db": _pow_db, "pt_atan2_d": _atan2_d, "pt_hypot_d": _hypot_d,
    "pt_tanh_d": _tanh_d, "pt_sigmoid_d": _sigmoid_d, "pt_expm1_d": _expm1_d, "pt_acosh_d": _acosh_d,
    "pt_div_db": _div_db, "pt_floordiv": _floordiv, "pt_truncdiv": _truncdiv, "pt_lse_d": _lse_d,
}
for _k in ("PT_LN2", "PT_LOG2E", "PT_LOG10E", "PT_2_SQRTPI"):
    HELPERS[_k] = _SCALAR_HELPERS[_k]

_MATH = {name: _unary(name) for name in ("sin", "cos", "tan", "sqrt", "exp", "log", "sinh", "cosh", "tanh")}
_MATH.update(fabs=_abs, hypot=_hypot, pow=_pow)

_BINOPS = {ast.Add: "_add", ast.Sub: "_sub", ast.Mult: "_mul", ast.Div: "_div"}
_CMPOPS = {ast.Lt: "_lt", ast.LtE: "_le", ast.Gt: "_gt", ast.GtE: "_ge", ast.Eq: "_eq", ast.NotEq: "_ne"}
_NAMESPACE = dict(_MATH, **HELPERS, _add=_add, _sub=_sub, _mul=_mul, _div=_div, _neg=_neg, _lt=_lt, _le=_le,
                  _gt=_gt, _ge=_ge, _eq=_eq, _ne=_ne, _double=lambda x: x)


class _Rows(ast.NodeTransformer):
    """Operators of a C expression -> calls of the op table's rows."""

    @staticmethod
    def _call(name, args, node):
        return ast.copy_location(ast.Call(ast.Name(name, ast.Load()), args, []), node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ValueError(f"operator {type(node.op).__name__} in a derivative column")
        return self._call(op, [node.left, node.right], node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.UAdd):
            return node.operand
        if isinstance(node.op, ast.USub):
            if isinstance(node.operand, ast.Constant):  # a literal: -1.0
                return ast.copy_location(ast.Constant(-float(node.operand.value)), node)
            return self._call("_neg", [node.operand], node)
        raise ValueError(f"operator {type(node.op).__name__} in a derivative column")

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) != 1:
            raise ValueError("a chained comparison in a derivative column")
        return self._call(_CMPOPS[type(node.ops[0])], [node.left, node.comparators[0]], node)

    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(float(node.value)), node) if type(node.value) is int else node


@functools.lru_cache(maxsize=None)
def _compile(text):
    if not text:
        return None
    src = text.replace("(double)", "_double")
    tree = ast.parse(f"lambda a, b, y: {src}", mode="eval")
    tree = ast.fix_missing_locations(_Rows().visit(tree))
    for node in ast.walk(tree):  # only names the namespace holds: a new helper fails here, not at a call
        if isinstance(node, ast.Name) and node.id not in ("a", "b", "y") and node.id not in _NAMESPACE:
            raise NotImplementedError(f"derivative column {text!r}: no Tensor twin of {node.id!r} "
                                      f"(pytape/array_rules.py HELPERS)")
    fn = eval(compile(tree, "<ops.def column>", "eval"), dict(_NAMESPACE))  # text of our own op table

    def column(a, b, y):
        if _native.anomaly_enabled():  # branches not taken hold inf and nan by design: not anomalies
            with unchecked():
                return fn(a, b, y)
        return fn(a, b, y)
    column.__doc__ = f"The C column {text!r} on Tensors (a, b, y), recorded."
    column.__name__ = column.__qualname__ = "column"
    return column


def tensor_rule(opcode):
    """(da, db) of op-table opcode ``opcode`` (any of a binary row's three
    opcodes: NAME, NAME_VC, NAME_CV) as functions ``(a, b, y) -> Tensor |
    float``, recorded; None for an empty column (db of a unary row).

    ``a``, ``b``: the instruction's operands, Tensors or floats (a constant
    operand; ``b`` is None in a unary row), ``y`` its value (the row applied
    to a and b).  The result broadcasts against them as numpy does, and may
    be of a smaller shape (the column ``b`` of mul is b) or a float (a
    constant column: ``1.0``).

    >>> import pytape
    >>> from pytape import _native
    >>> da, db = tensor_rule(_native.OPCODES["div"])
    >>> a, b = pytape.Tensor([1.0, 2.0]), pytape.Tensor([4.0, 0.0])
    >>> db(a, b, a / b).value            # -y / b
    array([-0.0625,    -inf])
    >>> tensor_rule(_native.OPCODES["exp"])[1] is None
    True
    """
    code = int(opcode)
    if not 0 <= code < len(_native.RULES) or _native.OP_KINDS[code] not in (
            _native.KIND_UNARY, _native.KIND_VV, _native.KIND_VC, _native.KIND_CV):
        raise ValueError(f"opcode {opcode!r} is not a row of the op table (no derivative columns)")
    da, db = _native.RULES[code]
    return _compile(da), _compile(db)


def tensor_rules():
    """{row name: (da, db)} for every row of the op table.

    >>> sorted(tensor_rules())[:3]
    ['abs', 'acos', 'acosh']
    """
    return {name: tensor_rule(code) for name, code in _OPC.items()}
