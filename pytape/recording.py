"""The recording fast path: every primitive of the op table as Python
functions and operators that append one instruction per call.

For each row of ``csrc/ops.def`` this module builds, once at import, the
functions that record it (``FUNCTIONS[name]``) and installs them on the
``Var`` classes as operators (``x * y``, ``2 ** x``) and methods
(``x.relu()``, ``x.atan2(y)``).  Each has

* a fast path: a recorded result or a leaf with a float, an int or another
  result of the same tape.  One call of the op's own C entry point (handles in,
  a handle out: pytape/_native.py) and one small object, nothing else; every
  cycle here is paid once per user operation;
* one slow path for everything else: leaves on their first use of a tape,
  constants, numpy scalars and arrays, grad mode off, anomaly mode, tapes
  without a handle id, and every error.  It records through the explicit
  entry point (``CTape.record``).

The fast paths are written out in full in each operator (finding a leaf's
handle on the current tape appears five times): a helper function would cost
a Python frame, about a fifth of a recorded operation, on every call.

>>> import pytape
>>> x = pytape.Var(0.5)
>>> y = x * 2.0 + pytape.sin(x)           # mul_vc, sin, add: three instructions
>>> len(y.tape), round(y.value, 6)
(4, 1.479426)
"""
import numbers

import numpy as np

from . import _native
from .anomaly import record as record_checked
from .tape import current_ref, current_tape
from .var import Leaf, Result, Var, place, value_of
from .tensor import Tensor, map1, map2

__all__ = ["FUNCTIONS", "elementwise", "map_objects", "objects"]

_B = _native.ID_BITS


class _Op:
    """A primitive's opcode, name and C recording entry points."""

    __slots__ = ("code", "name", "rec", "rec_vc", "rec_cv")

    def __init__(self, name):
        self.code = _native.OPCODES[name]
        self.name = name
        self.rec, self.rec_vc, self.rec_cv = _native.entry_points(name)


# ---- the slow path ------------------------------------------------------------------

_BAD = object()


def _const(x):
    """The float value of x if it is a constant operand, None if it is a Var
    that needs a slot, _BAD if it is not a number at all."""
    tx = type(x)
    if tx is Result:
        return None
    if tx is Leaf:
        return None if x._g is not None else x._v
    if tx is float or tx is int:
        return x
    if isinstance(x, (float, int)):  # numpy.float64, bool; cheaper than the ABC
        return float(x)
    if isinstance(x, np.generic):  # numpy scalars: the real ones (numpy.bool_ too), not complex or times
        return float(x) if x.dtype.kind in "biuf" else _BAD
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "biuf":
        return float(x)
    return _BAD


def _value(x):
    return x.value if isinstance(x, Var) else float(x)


def _tape_for(a, b=None):
    """The tape an operation on a and b is recorded on: that of its results,
    else the current tape."""
    ta = a._t if type(a) is Result else None
    tb = b._t if type(b) is Result else None
    if ta is None:
        return tb if tb is not None else current_tape()
    if tb is not None and tb is not ta:
        _native.check(_native.TAPES)
    return ta


def _record(t, code, ha, hb, c, operands):
    """Record opcode ``code`` on tape t by the explicit path.  ``ha``, ``hb``:
    handles of its slot operands on t (None where the form has a constant or
    nothing there; a negative status if placing a leaf failed), ``c`` the
    constant of a *_vc / *_cv form, ``operands`` the operands (their values
    name them in anomaly mode's message).  Returns the result, or None when
    recording is off."""
    if ha is not None and ha < 0:
        h = ha
    elif hb is not None and hb < 0:
        h = hb
    else:
        sa = 0 if ha is None else ha >> _B
        sb = 0 if hb is None else hb >> _B
        h = t._c.record(code, sa, sb, c)
        if h == _native.ANOMALY:  # anomaly mode: again in checked mode, noting the source line
            h = record_checked(t, code, sa, sb, c, [value_of(x) if isinstance(x, Var) else x for x in operands])
    if h >= 0:
        v = Result()
        v._t = t
        v._i = h
        return v
    if h != _native.NOGRAD:
        _native.check(h, "record", t._c)
    return None


def _binary_slow(op, a, b):
    """Every binary case the fast path does not take: leaves, constants,
    numpy scalars, grad mode off, tapes that refuse, bad operands."""
    ca = _const(a)
    cb = _const(b)
    if ca is _BAD or cb is _BAD:
        other = a if ca is _BAD else b
        if isinstance(other, Tensor):  # a Var and a Tensor: an array operation (broadcast)
            return map2(op.code, a, b)
        if isinstance(other, np.ndarray):  # elementwise, into an object array
            return _map(lambda u, v: _binary_slow(op, u, v), objects(a), objects(b))
        raise TypeError(
            f"unsupported operand for pytape.{op.name}: {type(other).__name__!r}; "
            f"a Var combines with Vars and real numbers (int, float, bool, numpy real scalars)"
        )
    if ca is None or cb is None:
        t = _tape_for(a, b)
        if ca is not None:    # constant a: the CV form
            r = _record(t, op.code + 2, None, place(b, t), ca, (ca, b))
        elif cb is not None:  # constant b: the VC form
            r = _record(t, op.code + 1, place(a, t), None, cb, (a, cb))
        else:
            ha = place(a, t)
            r = _record(t, op.code, ha, place(b, t) if ha >= 0 else ha, 0.0, (a, b))
        if r is not None:
            return r
    # constants only, or recording is off: a constant result
    return Leaf._make(_native.evaluate(op.code, _value(a), _value(b)), False)


def _unary_slow(op, a):
    if isinstance(a, Tensor):
        return map1(op.code, a)
    if isinstance(a, np.ndarray) and a.ndim > 0:
        return elementwise(FUNCTIONS[op.name], a)
    c = _const(a)
    if c is _BAD:
        raise TypeError(f"pytape.{op.name}() takes a Var or a real number, not {type(a).__name__}")
    if c is None:
        t = _tape_for(a)
        r = _record(t, op.code, place(a, t), None, 0.0, (a,))
        if r is not None:
            return r
    v = _native.evaluate(op.code, _value(a))
    return Leaf._make(v, False) if isinstance(a, Var) else v


# ---- numpy arrays of Vars (elementwise) ------------------------------------------------

def objects(x):
    """x as a numpy operand: a Var goes into a 0-d object array (a bare Var
    refuses ufuncs, see Var.__array_ufunc__ in pytape/ops.py)."""
    if isinstance(x, Var):
        o = np.empty((), dtype=object)
        o[()] = x
        return o
    return x


def _map(f, *arrays):
    """f elementwise over numpy arrays (broadcast), into an object array.  The
    IEEE flags pytape's C raises on the way (sqrt(-1.0) is nan, as documented)
    are not turned into numpy warnings."""
    with np.errstate(all="ignore"):
        return np.frompyfunc(f, len(arrays), 1)(*arrays)


def map_objects(f, *xs):
    """f elementwise over numpy arrays, Vars and numbers (broadcast), into an object array."""
    return _map(f, *[objects(x) for x in xs])


def elementwise(f, *arrays):
    """f elementwise over numpy arrays (broadcast): an object array of Vars,
    or a float array if every input array holds numbers only."""
    out = _map(f, *[objects(x) for x in arrays])
    if any(isinstance(x, Var) or (isinstance(x, np.ndarray) and x.dtype == object) for x in arrays):
        return out
    return out.astype(float)


# ---- the operators and functions, built from the op table ----------------------------

def _unary(name):
    op = _Op(name)
    rec = op.rec
    R, L = Result, Leaf
    ref, current, place_ = current_ref, current_tape, place

    def f(a):
        ta = type(a)
        if ta is R:
            i = rec(a._i)
            if i >= 0:
                v = R()
                v._t = a._t
                v._i = i
                return v
        elif ta is L and a._g is not None:  # a leaf, on the current tape
            t = ref()()  # a consumed tape refuses in C: then the slow path takes current_tape()
            if t is None:
                t = current()
            j = a._hh if a._hs == t._serial else place_(a, t)
            if j >= 0:
                i = rec(j)
                if i >= 0:
                    v = R()
                    v._t = t
                    v._i = i
                    return v
        return _unary_slow(op, a)

    f.__name__ = f.__qualname__ = name
    return f


def _no_modulus(name):
    """pow(x, y, mod) on a Var: refused (Python passes mod to __pow__ only)."""
    raise TypeError(f"pytape.{name} takes no modulus: pow(x, y, mod) is integer arithmetic and has no "
                    f"derivative; write x ** y, or compute the remainder of the numbers, pow(x.value, y, mod)")


def _binary(name):
    """(a op b for a result a, b op a for a result a, the same two for a
    leaf a, module function) for the binary primitive ``name``."""
    op = _Op(name)
    rec_vv, rec_vc, rec_cv = op.rec, op.rec_vc, op.rec_cv
    R, L = Result, Leaf
    slow, ref, current, place_ = _binary_slow, current_ref, current_tape, place

    def forward(a, b):
        tb = type(b)
        if tb is float or tb is int:
            i = rec_vc(a._i, b)
        elif tb is R:
            i = rec_vv(a._i, b._i)  # C answers TAPES for results of two tapes
        elif tb is L and b._g is not None:  # a leaf: its slot on a's tape, made on first use
            t = a._t
            j = b._hh if b._hs == t._serial else place_(b, t)
            if j < 0:
                return slow(op, a, b)
            i = rec_vv(a._i, j)
        elif isinstance(b, float):  # numpy.float64 and other float subclasses
            i = rec_vc(a._i, b)
        else:
            return slow(op, a, b)
        if i < 0:
            return slow(op, a, b)  # no_grad, anomaly mode, or an error to raise
        v = R()
        v._t = a._t
        v._i = i
        return v

    def reflected(a, b):  # b op a, a is a result, b is not a Var
        tb = type(b)
        if tb is float or tb is int or isinstance(b, float):
            i = rec_cv(b, a._i)
            if i >= 0:
                v = R()
                v._t = a._t
                v._i = i
                return v
        return slow(op, b, a)

    def leaf_forward(a, b):
        if a._g is not None:
            tb = type(b)
            if tb is R:  # on b's tape: a's slot there, made on first use
                t = b._t
                j = a._hh if a._hs == t._serial else place_(a, t)
                if j >= 0:
                    i = rec_vv(j, b._i)
                    if i >= 0:
                        v = R()
                        v._t = t
                        v._i = i
                        return v
            elif tb is float or tb is int:  # on the current tape
                t = ref()()  # a consumed tape refuses in C: then the slow path takes current_tape()
                if t is None:
                    t = current()
                j = a._hh if a._hs == t._serial else place_(a, t)
                if j >= 0:
                    i = rec_vc(j, b)
                    if i >= 0:
                        v = R()
                        v._t = t
                        v._i = i
                        return v
            elif tb is L and b._g is not None:  # two leaves (p * p), on the current tape
                t = ref()()  # a consumed tape refuses in C: then the slow path takes current_tape()
                if t is None:
                    t = current()
                j = a._hh if a._hs == t._serial else place_(a, t)
                k = b._hh if b._hs == t._serial else place_(b, t)
                if j >= 0 and k >= 0:
                    i = rec_vv(j, k)
                    if i >= 0:
                        v = R()
                        v._t = t
                        v._i = i
                        return v
        return slow(op, a, b)

    def leaf_reflected(a, b):  # b op a, a a leaf, b not a Var
        tb = type(b)
        if (tb is float or tb is int) and a._g is not None:
            t = ref()()  # a consumed tape refuses in C: then the slow path takes current_tape()
            if t is None:
                t = current()
            j = a._hh if a._hs == t._serial else place_(a, t)
            if j >= 0:
                i = rec_cv(b, j)
                if i >= 0:
                    v = R()
                    v._t = t
                    v._i = i
                    return v
        return slow(op, b, a)

    if name == "pow":  # pow(x, y, mod) passes a third operand, refused; x ** y as fast as before
        any_forward, any_leaf_forward = forward, leaf_forward

        def forward(a, b, mod=None):  # noqa: F811 (a is a result)
            if mod is not None:
                _no_modulus(name)
            tb = type(b)
            if tb is float or tb is int:
                i = rec_vc(a._i, b)
            elif tb is R:
                i = rec_vv(a._i, b._i)
            else:
                return any_forward(a, b)
            if i < 0:
                return slow(op, a, b)
            v = R()
            v._t = a._t
            v._i = i
            return v

        def leaf_forward(a, b, mod=None):  # noqa: F811 (a is a leaf)
            if mod is not None:
                _no_modulus(name)
            tb = type(b)
            if (tb is float or tb is int) and a._g is not None:  # on the current tape
                t = ref()()  # a consumed tape refuses in C: then the slow path takes current_tape()
                if t is None:
                    t = current()
                j = a._hh if a._hs == t._serial else place_(a, t)
                if j >= 0:
                    i = rec_vc(j, b)
                    if i >= 0:
                        v = R()
                        v._t = t
                        v._i = i
                        return v
                return slow(op, a, b)
            return any_leaf_forward(a, b)

    def function(a, b):
        if isinstance(a, np.ndarray) and a.ndim > 0 or isinstance(b, np.ndarray) and b.ndim > 0:
            return _map(function, objects(a), objects(b))
        ta = type(a)
        if ta is R:
            return forward(a, b)
        r = leaf_forward(a, b) if ta is L else slow(op, a, b)
        if r is NotImplemented:
            raise TypeError(
                f"pytape.{name}() takes Vars or real numbers, not {type(a).__name__} and {type(b).__name__}"
            )
        if not isinstance(a, (Var, Tensor)) and not isinstance(b, (Var, Tensor)):
            return r._v  # plain numbers in, plain float out
        return r

    function.__name__ = function.__qualname__ = name
    return forward, reflected, leaf_forward, leaf_reflected, function


#: every primitive as a function of Vars or numbers, by its op-table name
FUNCTIONS = {name: _unary(name) for name in _native.UNARY}

_DUNDERS = {"add": "add", "sub": "sub", "mul": "mul", "div": "truediv", "pow": "pow", "mod": "mod",
            "floor_divide": "floordiv"}

for _name in _native.BINARY:
    _fwd, _rev, _lfwd, _lrev, _fn = _binary(_name)
    FUNCTIONS[_name] = _fn
    if _name in _DUNDERS:
        _d = _DUNDERS[_name]
        for _cls, _f, _r in ((Result, _fwd, _rev), (Leaf, _lfwd, _lrev)):
            _f.__name__, _r.__name__ = f"__{_d}__", f"__r{_d}__"
            setattr(_cls, f"__{_d}__", _f)
            setattr(_cls, f"__r{_d}__", _r)
    else:
        setattr(Var, _name, _fn)  # x.atan2(y), x.maximum(y), ...

Var.__neg__ = FUNCTIONS["neg"]
Var.__divmod__ = lambda a, b: (a // b, a % b)
Var.__rdivmod__ = lambda a, b: (b // a, b % a)
Var.__abs__ = FUNCTIONS["abs"]
for _name in _native.UNARY:
    setattr(Var, _name, FUNCTIONS[_name])  # x.relu(), x.tanh(), ...

del _name, _fwd, _rev, _lfwd, _lrev, _fn, _cls, _f, _r, _d
