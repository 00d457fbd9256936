"""Custom primitives: a function of yours recorded as one instruction, with
your own derivative rules (``@pytape.primitive``, ``f.defvjp``, ``f.defjvp``),
in the style of HIPS autograd's ``primitive`` / ``defvjp`` / ``defjvp``.

>>> import math, pytape
>>> @pytape.primitive
... def softplus(x):                      # called with floats
...     return math.log1p(math.exp(-abs(x))) + max(x, 0.0)
>>> softplus.defvjp(lambda ans, x: lambda g: g * pytape.sigmoid(x))
<pytape.primitive softplus>
>>> x = pytape.Var(800.0)
>>> y = softplus(x)                       # one instruction on the tape
>>> y.backward(); y.value, x.grad
(800.0, 1.0)

The rules (HIPS autograd's conventions):

* ``f.defvjp(maker_0, maker_1, ...)``: one per argument (None: that argument
  takes no derivative).  ``maker_j(ans, *args)`` returns a function of the
  cotangent ``g`` (d loss / d ans) giving what argument j's adjoint gets.
  It sees ``g`` itself, so it may be nonlinear in it (gradient clipping).
* ``f.defjvp(jvp_0, jvp_1, ...)``: ``jvp_j(t, ans, *args)`` is the tangent
  of ``ans`` due to the tangent ``t`` of argument j (the results are summed).

With only one of the two, the other direction is derived from it assuming it
is linear, as a derivative is: ``vjp = g * jvp_j(1.0, ...)`` and
``jvp = t * maker_j(...)(1.0)``.  Define both for a rule that is not (a
clipped gradient then applies in reverse mode only).

How each transformation uses them:

* ``backward()``, ``grad``, ``jacobian`` / ``jacrev``, ``vjp``: the C
  reverse sweep calls back into Python (``_native.set_custom_handler``) at
  each custom instruction, with floats; ``jvp``, ``jacfwd``,
  ``tape.tangent_sweep``: the tangent sweeps, likewise.  The rules run with
  recording off: they compute numbers.
* ``pytape.autograd.grad(..., create_graph=True)``: the vjp maker is called
  with ``Var`` s and the cotangent a ``Var``, so a rule written with pytape
  functions (``pytape.sigmoid``, not ``math.exp``) is recorded and can be
  differentiated again.  A rule that turns its ``Var`` s into floats would
  lose its own derivative: tried on a scratch tape first, it raises
  TypeError.
* ``pytape.hessian``, ``hvp``, ``gradgradcheck``, ``fn.hessian``: the C
  forward-over-reverse sweep calls back at each custom instruction, which
  records the vjp rule with ``Var`` s on a scratch tape (as create_graph
  does) and differentiates it along the tangents (one tangent sweep per
  direction).  A rule that turns its ``Var`` s into floats there
  (``math.exp(x)``, ``float(x)``) would lose its own derivative: that is
  detected and raises TypeError rather than giving a wrong Hessian.
* ``pytape.trace``: the compiled tape keeps the instruction, and every replay
  (a call, a batch row, a gradient) calls ``f`` (and the rules) back in
  Python, once per evaluation; batches then run in one thread.
* Saved compiled functions (``to_bytes``, pickle) store the primitive's
  importable name ``module:qualname``; loading imports it, and raises
  ``TapeFormatError`` naming it when that fails (a primitive defined inside
  a function, or in a module that is gone).

An exception raised by ``f`` or a rule inside a sweep stops the sweep and is
raised again by the call that swept (``backward()`` then changes no gradient
and leaves the tape unconsumed).

Scope: n real arguments (at most 64) and one real result; numpy arrays of
arguments map it elementwise (one instruction per element), as for
``pytape.sin``.

**On arrays:** a primitive made with ``@pytape.primitive(arrays=True)`` is
one array instruction per call (csrc/array_custom.c): ``f`` gets numpy
arrays (a Tensor's value; a ``Var`` as a float; other arguments as they
are) and returns an array (or a number: a 0-d result); its rules get numpy
arrays too, HIPS autograd's way: ``maker_j(ans, *args)(g)`` returns
argument j's share of the cotangent, in argument j's shape (a number for a
``Var``), and ``jvp_j(t, ans, *args)`` the tangent of ``ans`` in its shape.
A rule of one direction is not derived from the other's on arrays (a
Jacobian's transpose is not an elementwise product): each mode used needs
its own rule.  Second order (``hessian``, ``hvp``) through an array
primitive takes a rule of its own (``defhvp``) and raises
NotImplementedError without one; ``elementwise=True`` gives the scalar
path.  Under ``pytape.trace`` each replay calls ``f`` back for the value;
a tape holding one cannot be saved.  A
primitive without ``arrays=True`` is a scalar function: on Tensors it
raises TypeError (inside a transformation, f is recorded again on object
arrays of Vars, where it maps elementwise).

>>> import numpy as np, pytape
>>> @pytape.primitive(arrays=True)
... def cumprod(x):                       # a numpy function without an array rule of pytape's
...     return np.cumprod(x)
>>> _ = cumprod.defvjp(lambda ans, x: lambda g: np.cumsum((g * ans)[::-1])[::-1] / x)
>>> x = pytape.Tensor([1.0, 2.0, 3.0])
>>> y = np.sum(cumprod(x) * 2.0)          # one CUSTOM instruction, then a product and a sum
>>> y.backward(); x.grad.tolist()
[18.0, 8.0, 4.0]
"""
import functools
import importlib
import itertools
import threading
import weakref

import numpy as np

from . import _native
from .anomaly import caller, note, where
from .recording import _BAD, _const, elementwise
from .tape import Tape, current_tape, is_grad_enabled, no_grad
from .tensor import Tensor, TensorLeaf, TensorResult, _call, _result, as_tensor_operand, raw_value, tape_of
from .var import Leaf, Result, Var, arguments, place, result, slot_on, value_of

__all__ = ["primitive", "Primitive"]

#: every primitive by id (the id is what a custom instruction stores, b[i]);
#: primitives stay registered for the life of the process
_REGISTRY = []
_LOCK = threading.Lock()


class Primitive:
    """A function recorded as one tape instruction with user-defined derivative
    rules; made by :func:`primitive`.

    >>> import pytape
    >>> cube = pytape.primitive(lambda x: x ** 3)
    >>> cube.defjvp(lambda t, ans, x: 3.0 * x * x * t)
    <pytape.primitive <lambda>>
    >>> pytape.grad(cube)(2.0)                # reverse mode from the jvp rule
    12.0
    """

    def __init__(self, f, arrays=False):
        if not callable(f):
            raise TypeError(f"pytape.primitive takes a function, not {type(f).__name__}")
        self.f = f
        self.arrays = bool(arrays)
        functools.update_wrapper(self, f)
        self._vjps, self._jvps = (), ()
        # on arrays, rules for every argument at once (pytape/checkpointing.py):
        # _vjp_all(ans, args, g) -> a share per argument, _jvp_all(ans, args, tangents) -> ans's tangent,
        # _hvp_all(ans, args, g, tangents) -> per argument the second-order term of its share's tangent
        self._vjp_all = self._jvp_all = self._hvp_all = None
        with _LOCK:
            self.id = len(_REGISTRY)
            _REGISTRY.append(self)
        _native.CUSTOM_NAMES[self.id] = self.name

    def __repr__(self):
        return f"<pytape.primitive {getattr(self.f, '__name__', 'f')}>"

    def __reduce__(self):  # by its importable name, as saved tapes name it
        return (by_name, (importable_name(self.id),))

    @property
    def name(self):
        """The function's name, for messages."""
        return getattr(self.f, "__qualname__", None) or getattr(self.f, "__name__", "f")

    def defvjp(self, *makers):
        """Set the reverse-mode rules: ``maker_j(ans, *args)`` returns a
        function of the cotangent g giving argument j's share (None: argument
        j takes no derivative).  Returns the primitive.

        >>> import pytape
        >>> scale = pytape.primitive(lambda x, k: k * x).defvjp(lambda ans, x, k: lambda g: k * g, None)
        >>> pytape.grad(scale)(1.0, 3.0)
        3.0
        """
        _check_rules(self, makers, "defvjp")
        self._vjps = makers
        return self

    def defjvp(self, *jvps):
        """Set the forward-mode rules: ``jvp_j(t, ans, *args)`` is the tangent
        of the result due to tangent t of argument j.  Returns the primitive.

        >>> import pytape
        >>> square = pytape.primitive(lambda x: x * x).defjvp(lambda t, ans, x: 2.0 * x * t)
        >>> pytape.jvp(square, (3.0,), (1.0,))
        (9.0, 6.0)
        """
        _check_rules(self, jvps, "defjvp")
        self._jvps = jvps
        return self

    def defhvp(self, rule):
        """Second order through a primitive on arrays (``hessian``, ``hvp``,
        forward over reverse): ``rule(ans, *args)(g, *tangents)`` returns, per
        argument, the second-order term of the tangent of its cotangent share:
        d/de vjp_j(args + e tangents)(g) at e = 0 with g held fixed, in
        argument j's shape (None: zero); a tangent is None where it is zero.
        Returns the primitive.

        >>> import numpy as np, pytape
        >>> @pytape.primitive(arrays=True)
        ... def cube(x):
        ...     return x ** 3
        >>> _ = cube.defvjp(lambda ans, x: lambda g: 3.0 * x ** 2 * g)
        >>> _ = cube.defjvp(lambda t, ans, x: 3.0 * x ** 2 * t)
        >>> _ = cube.defhvp(lambda ans, x: lambda g, t: (6.0 * x * t * g,))
        >>> pytape.hessian(lambda x: np.sum(cube(x)))(np.array([1.0, 2.0])).tolist()
        [[6.0, 0.0], [0.0, 12.0]]
        """
        if not self.arrays:
            raise TypeError(f"{self.name}.defhvp: second-order rules are for primitives on arrays "
                            f"(pytape.primitive(arrays=True)); a scalar primitive's second order comes from its "
                            f"vjp and jvp rules")
        if not callable(rule):
            raise TypeError(f"{self.name}.defhvp: the rule must be a function, not {type(rule).__name__}")

        def hvp_all(ans, args, g, tangents):
            shares = rule(ans, *args)(g, *tangents)
            if not isinstance(shares, (tuple, list)) or len(shares) != len(args):
                raise TypeError(f"the hvp rule of the primitive {self.name} must return a tuple of {len(args)} "
                                f"terms (one per argument, None for zero), not {type(shares).__name__}")
            return shares
        self._hvp_all = hvp_all
        return self

    # ---- calling: plain numbers, or one recorded instruction ------------------------

    def __call__(self, *args):
        if self.arrays:  # a function of arrays: one array instruction
            return self._call_arrays(args)
        if any(isinstance(x, np.ndarray) and x.ndim > 0 for x in args):  # elementwise, as pytape.sin
            return elementwise(self, *args)
        if not args or len(args) > _native.CUSTOM_MAX_ARGS:
            raise TypeError(f"pytape.primitive {self.name} takes 1 to {_native.CUSTOM_MAX_ARGS} real arguments, "
                            f"got {len(args)}")
        consts = [_const(x) for x in args]
        for k, c in enumerate(consts):
            if c is _BAD:
                raise TypeError(f"argument {k} of the primitive {self.name} must be a Var or a real number, "
                                f"not {type(args[k]).__name__} (custom primitives are scalar functions)")
        values = [float(c) if c is not None else value_of(x) for c, x in zip(consts, args)]
        value = self._value(values)
        if all(c is not None for c in consts):  # numbers (and constants) only
            return Leaf._make(value, False) if any(isinstance(x, Var) for x in args) else value
        t = None  # the tape of the results among the arguments, else the current tape
        for x in args:
            if type(x) is Result:
                if t is not None and x._t is not t:
                    _native.check(_native.TAPES)
                t = x._t
        if t is None:
            t = current_tape()
        slots, cs = [], []
        for x, c in zip(args, consts):
            if c is None:
                h = place(x, t)
                if h < 0:
                    if h == _native.NOGRAD:
                        return Leaf._make(value, False)
                    _native.check(h, "record", t._c)
                slots.append(h >> _native.ID_BITS)
                cs.append(0.0)
            else:
                slots.append(-1)
                cs.append(float(c))
        h = t._c.record_custom(self.id, slots, cs, value)
        if h == _native.ANOMALY:  # anomaly mode: again in checked mode, noting the source line
            loc = caller()
            with _native.checked():
                h = t._c.record_custom(self.id, slots, cs, value)
            if h == _native.NONFINITE:
                raise FloatingPointError(f"{self.name} produced {value!r} {where(loc)} (inputs "
                                         f"{', '.join(repr(v) for v in values)})")
            if h >= 0:
                note(t, h >> _native.ID_BITS, loc)
        if h == _native.NOGRAD:
            return Leaf._make(value, False)
        _native.check(h, "record", t._c)
        v = Result()
        v._t = t
        v._i = h
        return v

    def _call_arrays(self, args):
        """One PT_A_CUSTOM instruction: f on the arguments' values (numpy), its
        operands the recorded Tensors and Vars among them."""
        for x in args:
            if isinstance(x, np.ndarray) and x.dtype == object:
                raise TypeError(f"the primitive {self.name} is a function of arrays (arrays=True): it takes "
                                f"Tensors, numbers and float arrays, not object arrays of Vars (elementwise=True "
                                f"records element by element, which a function of whole arrays cannot be)")
        recording = is_grad_enabled()
        t = tape_of(args) if recording else None
        values, specs, handles, shapes, consts = [], [], [], [], []
        for x in args:
            if isinstance(x, Tensor):
                v = raw_value(x)  # a leaf's own array, not lent for writing; no guard (a replay recomputes f)
            elif isinstance(x, Var):
                v = float(value_of(x))
            else:
                v = x
            values.append(v)
            if recording and (type(x) in (TensorResult, Result) or isinstance(x, (Tensor, Var)) and x.requires_grad):
                h, c = as_tensor_operand(x, t)
                if h is not None:
                    if h < 0:
                        _native.check(h, "record", t._c)
                    specs.append(len(handles))
                    handles.append(h)
                    shapes.append(np.shape(v))
                    consts.append(float if isinstance(x, Var) else None)  # float: the rules get a float
                    continue
            specs.append(None)
            consts.append(v)
        with no_grad():
            y = self.f(*values)
        try:
            y = np.array(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"the primitive {self.name} returned {type(y).__name__}; on Tensors a custom "
                            f"primitive returns a real array or number") from None
        if not handles:  # nothing recorded among the arguments: f's value
            return TensorLeaf._make(y, False) if any(isinstance(x, (Tensor, Var)) for x in args) else (
                y if y.ndim else float(y))
        key = _remember(t, (self, specs, y.shape, shapes, consts))
        h = _call(t, _native.arr_custom, handles, y, key)
        if h == _native.NOGRAD:
            return TensorLeaf._make(y, False)
        if h < 0:
            _native.check(h, "record", t._c)
        return _result(t, h)

    def _value(self, xs):
        y = self.f(*xs)
        try:
            return float(y)
        except (TypeError, ValueError):
            raise TypeError(f"the primitive {self.name} returned {type(y).__name__}; a custom primitive "
                            f"returns one real number") from None

    # ---- the rules, on numbers (the sweeps' callbacks) or Vars (create_graph) ------

    def _vjp_maker(self, j):
        """argument j's vjp maker, or one derived from its jvp rule."""
        if j < len(self._vjps) and self._vjps[j] is not None:
            return self._vjps[j]
        if j < len(self._jvps) and self._jvps[j] is not None:
            jvp = self._jvps[j]
            return lambda ans, *xs: lambda g: g * jvp(1.0, ans, *xs)
        raise NotImplementedError(self._missing(j, "reverse"))

    def _jvp(self, j):
        """argument j's jvp rule, or one derived from its vjp maker."""
        if j < len(self._jvps) and self._jvps[j] is not None:
            return self._jvps[j]
        if j < len(self._vjps) and self._vjps[j] is not None:
            maker = self._vjps[j]
            return lambda t, ans, *xs: t * maker(ans, *xs)(1.0)
        raise NotImplementedError(self._missing(j, "forward"))

    def _missing(self, j, mode):
        return (f"the primitive {self.name} has no derivative rule for its argument {j} ({mode} mode): "
                f"give one with {self.name}.defvjp(...) or {self.name}.defjvp(...) (one rule per argument, "
                f"None for arguments without a derivative)")

    def vjps(self, ans, xs, mask, g):
        """What each operand j with mask[j] gets from cotangent g (0.0 for the others)."""
        return [self._vjp_maker(j)(ans, *xs)(g) if m else 0.0 for j, m in enumerate(mask)]


# ---- custom primitives on arrays: the records of the calls, the callback ----------------

#: key -> (primitive, per argument its operand index or None, result shape, operand shapes, per
#: argument its value if a constant (float for a Var operand: the rules get a float, else None)):
#: what a custom array instruction's callbacks need besides C's buffers; forgotten with its tape
_ARRAY_CALLS = {}
_KEYS = itertools.count(1)
_TAPE_KEYS = weakref.WeakKeyDictionary()


def _forget(keys):
    for k in keys:
        _ARRAY_CALLS.pop(k, None)


def _remember(tape, record):
    key = next(_KEYS)
    _ARRAY_CALLS[key] = record
    keys = _TAPE_KEYS.get(tape)
    if keys is None:
        keys = _TAPE_KEYS[tape] = []
        weakref.finalize(tape, _forget, keys)
    keys.append(key)
    return key


def _array_rule(p, k, mode):
    """Argument k's own rule for ``mode`` on arrays (never derived from the other direction's)."""
    rules = p._vjps if mode == "vjp" else p._jvps
    if k < len(rules) and rules[k] is not None:
        return rules[k]
    other = p._jvps if mode == "vjp" else p._vjps
    hint = (f" (it has a {'jvp' if mode == 'vjp' else 'vjp'} rule, which on arrays cannot stand for this one: "
            f"give both)") if k < len(other) and other[k] is not None else ""
    raise NotImplementedError(f"the primitive {p.name} on arrays has no {mode} rule for its argument {k}{hint}: "
                              f"give one with {p.name}.def{mode}(...)")


def _shaped(r, shape, p, what, k):
    """A rule's answer r as a float64 array of ``shape``, or TypeError naming the rule."""
    a = np.asarray(r, dtype=np.float64)
    if a.shape != tuple(shape):
        raise ValueError(f"the {what} rule of the primitive {p.name} for its argument {k} returned shape "
                         f"{a.shape}; it must be {tuple(shape)} (the shape of "
                         f"{'that argument' if what == 'vjp' else 'the result'})")
    return a


def _handle_array(mode, key, call):
    p, specs, yshape, shapes, consts = _ARRAY_CALLS[key]
    on = _native.grad_enabled()
    _native.set_grad_enabled(False)  # the rules compute numbers: nothing recorded meanwhile
    try:
        # f's arguments again: operands from the tape (a Var's as a float), constants as given
        xs = [c if j is None else (float(call.val(j, ())) if c is float else call.val(j, shapes[j]))
              for j, c in zip(specs, consts)]
        if mode == _native.CUSTOM_VALUE:  # a replay of a traced tape: f at the operands' new values
            v = np.asarray(p.f(*xs), dtype=np.float64)
            if v.shape != tuple(yshape):
                raise ValueError(f"the primitive {p.name} returned shape {v.shape} on a replay, where it was "
                                 f"traced with shape {tuple(yshape)}: a traced function keeps its shapes")
            call.out(0, yshape)[...] = v
            return
        y = call.y(yshape)

        def add_shares(share_of, what):  # into each operand's buffer that the sweep asks for (None: zero)
            for k, j in enumerate(specs):
                out = call.out(j, shapes[j]) if j is not None else None
                if out is not None:
                    share = share_of(k)
                    if share is not None or what != "hvp":
                        out += _shaped(share, shapes[j], p, what, k)

        tans = [call.tan(j, shapes[j]) if j is not None else None for j in specs] \
            if mode != _native.CUSTOM_VJP else ()
        if mode == _native.CUSTOM_VJP:
            g = call.g(yshape)
            if p._vjp_all is not None:  # every operand's share from one call
                add_shares(p._vjp_all(y, xs, g).__getitem__, "vjp")
            else:
                add_shares(lambda k: _array_rule(p, k, "vjp")(y, *xs)(g), "vjp")
        elif mode == _native.CUSTOM_JVP:
            if any(tk is not None for tk in tans):
                out = call.out(0, yshape)
                if p._jvp_all is not None:
                    out += _shaped(p._jvp_all(y, xs, tans), yshape, p, "jvp", "all")
                for k, tk in enumerate(tans if p._jvp_all is None else ()):
                    if tk is not None:
                        out += _shaped(_array_rule(p, k, "jvp")(float(tk) if consts[k] is float else tk, y, *xs),
                                       yshape, p, "jvp", k)
        elif p._hvp_all is not None:  # CUSTOM_HVP: the second-order term of each operand's adjoint tangent
            if any(tk is not None for tk in tans):
                add_shares(p._hvp_all(y, xs, call.g(yshape), tans).__getitem__, "hvp")
        else:
            raise NotImplementedError(
                f"second order (pytape.hessian, hvp) through the primitive {p.name} on arrays needs its "
                f"second-order rule: give one with {p.name}.defhvp(...), or pass elementwise=True to record it "
                f"element by element (its scalar rules)")
    finally:
        _native.set_grad_enabled(on)


_native.set_custom_array_handler(_handle_array)


def _check_rules(p, rules, name):
    for k, r in enumerate(rules):
        if r is not None and not callable(r):
            raise TypeError(f"{p.name}.{name}: rule {k} must be a function or None, not {type(r).__name__}")


def primitive(f=None, *, arrays=False):
    """Make ``f`` (a function of real numbers returning one) a custom
    primitive: recorded as one instruction, differentiated by the rules given
    with ``defvjp`` / ``defjvp`` (see pytape/custom.py).  With
    ``@pytape.primitive(arrays=True)``, ``f`` is a function of numpy arrays
    instead (one array instruction per call on Tensors, its rules get numpy
    arrays: see "On arrays" in pytape/custom.py).

    >>> import math, pytape
    >>> @pytape.primitive
    ... def logistic(x):
    ...     return 1.0 / (1.0 + math.exp(-x))
    >>> _ = logistic.defvjp(lambda ans, x: lambda g: g * ans * (1.0 - ans))
    >>> pytape.grad(lambda x: logistic(x) * 2.0)(0.0)
    0.5
    """
    if f is None:
        return lambda g: Primitive(g, arrays=arrays)
    return Primitive(f, arrays=arrays)


def lookup(fn):
    """The primitive with id ``fn``."""
    try:
        return _REGISTRY[fn]
    except IndexError:
        raise RuntimeError(f"pytape: no custom primitive with id {fn} (internal error, please report)") from None


# ---- C's callback: the sweeps' calls, with numbers --------------------------------------

def _handle(mode, fn, i, xs, mask, y, lanes):
    p = lookup(fn)
    on = _native.grad_enabled()
    _native.set_grad_enabled(False)  # the rules compute numbers: nothing recorded meanwhile
    try:
        if mode == _native.CUSTOM_VALUE:
            return p._value(xs)
        if mode == _native.CUSTOM_VJP:
            out = []
            for j, m in enumerate(mask):
                if not m:
                    out.append([0.0] * len(lanes))
                    continue
                vjp = p._vjp_maker(j)(y, *xs)
                out.append([_number(vjp(g), p, "vjp") for g in lanes])
            return out
        if mode == _native.CUSTOM_HVP:
            return _hvp(p, xs, mask, *lanes)
        out = [0.0] * len(lanes[0])
        for j, tj in enumerate(lanes):
            if not mask[j] or not any(tj):
                continue
            jvp = p._jvp(j)
            for k, t in enumerate(tj):
                if t != 0.0:
                    out[k] += _number(jvp(t, y, *xs), p, "jvp")
        return out
    finally:
        _native.set_grad_enabled(on)


def _hvp(p, xs, mask, g, gdots, tangents):
    """Forward over reverse through a custom instruction at operands xs with
    adjoint g: (each operand's share of the adjoint, and per operand the
    tangent lanes of that share along the operands' tangents and g's
    (gdots)).  The vjp rule is recorded with Vars on a scratch tape, then
    swept once per lane; its conversions of Vars to floats are recorded as
    guards (``arguments(guards=True)``, as pytape.trace does), and one means
    the rule computed on floats: refused, as its derivative would be lost."""
    _native.set_grad_enabled(True)  # (the caller restores the mode)
    s, xv, gv, shares = _rule_recorded(p, xs, mask, g)
    values = [_number(value_of(c) if isinstance(c, Var) else c, p, "vjp") for c in shares]
    out = [[0.0] * len(gdots) for _ in xs]
    leaves = [(x, t) for x, t in zip(xv, tangents)] + [(gv, gdots)]
    for k in range(len(gdots)):
        seeds = {id(v): t[k] for v, t in leaves}
        s.tangent_sweep({v: t[k] for v, t in leaves if slot_on(v, s) >= 0})
        for j, c in enumerate(shares):
            if not mask[j]:
                continue
            if type(c) is Result:
                out[j][k] = c.tangent
            elif type(c) is Leaf:  # the rule returned one of its arguments itself
                out[j][k] = seeds.get(id(c), 0.0)
    return values, out


def _rule_recorded(p, xs, mask, g):
    """p's vjp rule recorded on a scratch tape at operands xs and cotangent g
    (numbers): (the tape, the operands' leaves, g's leaf, each operand's
    share); TypeError if the rule turned a Var into a float."""
    xv, gv = [Var(x) for x in xs], Var(g)
    with Tape() as s, arguments(s, xv + [gv], guards=True):
        y = p(*xv)
        shares = [p._vjp_maker(j)(y, *xv)(gv) if m else 0.0 for j, m in enumerate(mask)]
    for c in shares:
        if not isinstance(c, Var):
            _number(c, p, "vjp")  # TypeError for anything but a number
    _refuse_escapes(p, s)
    return s, xv, gv, shares


def _refuse_escapes(p, s):
    """TypeError if recording p's vjp rule on tape s turned a Var into a
    float: a guard x == (its own value), which is what float(x), x.value,
    math.exp(x) and the like record while guards are on."""
    c = s._c
    rows = c.rows(0, len(c), ("op", "a", "b", "val"))
    kinds = np.asarray(_native.OP_KINDS)[rows["op"]]
    for i in np.flatnonzero(kinds == _native.KIND_GUARD):
        a, b, code = int(rows["a"][i]), int(rows["b"][i]), int(rows["val"][i])
        if code == 2 * _native.CMP_EQ + 1 and b < 0 and c.const(-1 - b) == c.value(a):
            raise TypeError(
                f"the vjp rule of the primitive {p.name} turns a Var into a float (math functions, "
                f"float(), .value): second derivatives through it (hessian, hvp, gradgradcheck, "
                f"create_graph=True) would miss the rule's own derivative. Write the rule with pytape "
                f"functions (pytape.exp, pytape.sigmoid, other primitives, ...) so that it "
                f"differentiates again")


def _number(r, p, what):
    """A rule's result as a float; TypeError naming the primitive otherwise."""
    try:
        return float(r)
    except (TypeError, ValueError):
        raise TypeError(f"the {what} rule of the primitive {p.name} returned {type(r).__name__}, "
                        f"not a real number") from None


_native.set_custom_handler(_handle)


# ---- create_graph: the reverse rule recorded (pytape/higher_order.py) -------------------

def recorded_vjps(tape, i, fn, g):
    """[(slot, contribution)] of custom instruction i of ``tape`` for the
    cotangent g (a Var or a float), the vjp makers called with Vars so that
    the contributions are recorded on the tape.  The rule is tried on a
    scratch tape first: one that turns its Vars into floats raises TypeError
    (a constant here would be a silently wrong derivative of the result)."""
    p = lookup(fn)
    ops = tape._c.custom_operands(i)
    _rule_recorded(p, [tape._c.value(x) if is_slot else x for is_slot, x in ops], [is_slot for is_slot, _ in ops],
                   value_of(g) if isinstance(g, Var) else g)
    xs = [result(tape, x) if is_slot else x for is_slot, x in ops]
    y = result(tape, i)
    return [(x, p._vjp_maker(j)(y, *xs)(g)) for j, (is_slot, x) in enumerate(ops) if is_slot]


# ---- names of saved tapes --------------------------------------------

def importable_name(fn):
    """``module:qualname`` of primitive ``fn``, checked to import back to it;
    ValueError (saying why) when it does not."""
    p = lookup(fn)
    module = getattr(p, "__module__", None)
    qualname = getattr(p, "__qualname__", None)
    name = f"{module}:{qualname}"
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ValueError(f"the primitive {name} cannot be saved: a saved tape names it by module and "
                         f"qualified name, and this one is defined inside a function or is a lambda; "
                         f"define it at the top level of a module")
    if _import(name) is not p:
        raise ValueError(f"the primitive {name} cannot be saved: importing {name} does not give it back "
                         f"(it was redefined, or the module is not importable)")
    return name


def _import(name):
    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def by_name(name):
    """The primitive saved as ``module:qualname``; ImportError saying why not."""
    try:
        obj = _import(name)
    except Exception as exc:  # ImportError, AttributeError, or the module failing at import
        raise ImportError(f"the saved tape uses the custom primitive {name}, which cannot be imported here "
                          f"({type(exc).__name__}: {exc}); import or define it at the top level of that "
                          f"module before loading") from None
    if not isinstance(obj, Primitive):
        raise ImportError(f"the saved tape uses the custom primitive {name}, but {name} is "
                          f"{type(obj).__name__} here, not a pytape.primitive")
    return obj
