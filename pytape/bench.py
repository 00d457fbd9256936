"""Benchmarks of pytape against other scalar autodiff engines: ``python -m pytape bench``.

Engines (``get_engine(name)``), each wrapped in an :class:`Engine` adapter:

* ``pytape``     -- this package (recording inside ``with pytape.Tape()``);
* ``reference``  -- ``pytape.reference.Value``, the pure-Python micrograd-style oracle;
* ``micrograd``  -- PyPI ``micrograd==0.1.0`` (``pip install pytape[bench]``), if importable;
* ``torch``      -- 0-d float64 tensors with ``requires_grad``, if importable;
* ``floor``      -- :class:`F`, a ``__slots__`` float wrapper that only computes
  values: the floor of any operator-overloading engine (record only);
* ``"module:Class"`` -- any micrograd-style ``Value`` class (``load_engine``).

Workloads, each a ``*_record`` function returning a :class:`Recording`, a
``*_check`` that raises ``AssertionError`` on a wrong value or gradient, and
``backward(rec)`` for the reverse sweep (timed separately):

* ``chain``: ``y = (y*0.5 + 0.25).relu() + y*0.5`` repeated D times, 5 ops a step;
* ``rosenbrock``: ``sum 100*(x[i+1]-x[i]**2)**2 + (1-x[i])**2`` on n leaves;
* ``mlp``: one training step of micrograd's 2-16-16-1 MLP on two moons
  (SVM max-margin loss + L2), with the parameter update timed too.

Times are reported in ns per scalar operation.  The operation count is
pytape's, used for every engine: ``5*D`` for the chain, ``len(tape)`` (leaf
instructions included) for the other workloads.

>>> eng = get_engine("pytape")
>>> rec = chain_record(eng, 100)
>>> backward(rec)
>>> chain_check(rec)            # raises unless grad == 1.0 and the value is right
>>> eng.grad(rec.inputs[0]), rec.nops
(1.0, 500)
"""
import argparse
import contextlib
import datetime
import functools
import gc
import importlib
import math
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, List, NamedTuple, Optional

import numpy as np

import pytape
import pytape.nn

__all__ = [
    "Engine", "EngineError", "EngineUnavailable", "F", "GenericMLP", "Recording", "Row",
    "ENGINES", "WORKLOADS", "get_engine", "load_engine", "available_engines", "backward",
    "chain_record", "chain_check", "rosenbrock_point", "rosenbrock_record", "rosenbrock_check",
    "make_moons", "mlp_setup", "mlp_record", "mlp_check", "mlp_update", "mlp_expected",
    "count_ops", "run_case", "format_table", "main",
]


# ============================================================ engines

class EngineError(ValueError):
    """An engine name or ``module:Class`` spec that cannot be used."""


class EngineUnavailable(EngineError, ImportError):
    """An optional engine (micrograd, torch) that is not installed."""


class Engine:
    """How the workloads drive one micrograd-style scalar engine.

    The defaults fit any class with micrograd's ``Value`` API: ``Value(data)``,
    ``+ - * / **`` (also with floats on either side), ``relu()``,
    ``backward()``, ``.data`` and ``.grad``.  Subclasses adapt pytape, torch
    and the float floor.

    >>> from pytape.reference import Value
    >>> eng = Engine("reference", Value)
    >>> rec = chain_record(eng, 10); backward(rec); eng.grad(rec.inputs[0])
    1.0
    """

    has_backward = True  #: False for the float floor: it records values only
    big = False          #: runs the largest default sizes (chain D=10**6) outside --full

    def __init__(self, name, Value=None, version=""):
        self.name, self.Value, self.version = name, Value, version

    def leaf(self, v):
        """A new input (leaf) holding the float ``v``."""
        return self.Value(v)

    def recording(self):
        """Context manager around one recording; its value becomes ``Recording.tape``."""
        return contextlib.nullcontext()

    def backward(self, y):
        y.backward()

    def grad(self, x):
        """The gradient of leaf ``x`` as a float."""
        return float(x.grad)

    def value(self, y):
        return float(y.data)

    def mlp(self, nin, nouts):
        """A micrograd-style MLP on this engine (the caller seeds ``random``)."""
        return GenericMLP(self.leaf, nin, nouts)

    def zero_grad(self, params):
        for p in params:
            p.grad = 0.0

    def update(self, params, lr):
        for p in params:
            p.data -= lr * p.grad

    def __repr__(self):
        return f"<Engine {self.name}{' ' + self.version if self.version else ''}>"


class PytapeEngine(Engine):
    big = True

    def __init__(self):
        super().__init__("pytape", pytape.Var, pytape.__version__)

    def recording(self):
        return pytape.Tape()

    def mlp(self, nin, nouts):
        return pytape.nn.MLP(nin, nouts)


class MicrogradEngine(Engine):
    def __init__(self):
        try:
            from micrograd.engine import Value
        except ImportError as exc:
            raise EngineUnavailable(f"micrograd is not installed ({exc}); pip install micrograd==0.1.0") from None
        super().__init__("micrograd", Value, _dist_version("micrograd"))

    def mlp(self, nin, nouts):
        from micrograd.nn import MLP
        return MLP(nin, nouts)


class TorchEngine(Engine):
    def __init__(self):
        try:
            import torch
        except ImportError as exc:
            raise EngineUnavailable(f"torch is not installed ({exc})") from None
        super().__init__("torch", None, torch.__version__)
        self.torch = torch
        # 0-d tensors gain nothing from intra-op threads, and idle OpenMP
        # workers spinning after each op would steal the other core from
        # whichever engine runs next
        torch.set_num_threads(1)

    def leaf(self, v):
        return self.torch.tensor(v, dtype=self.torch.float64, requires_grad=True)

    def grad(self, x):
        return 0.0 if x.grad is None else float(x.grad)

    def value(self, y):
        return y.item()

    def zero_grad(self, params):
        for p in params:
            p.grad = None

    def update(self, params, lr):
        with self.torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= lr * p.grad


class F:
    """The float-wrapper floor: operators compute floats and nothing else.

    >>> y = (F(1.0) * 0.5 + 0.25).relu() + 1 - F(2.0) ** 2
    >>> y.v
    -2.25
    """

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __add__(self, o):
        return F(self.v + (o.v if type(o) is F else o))

    def __sub__(self, o):
        return F(self.v - (o.v if type(o) is F else o))

    def __mul__(self, o):
        return F(self.v * (o.v if type(o) is F else o))

    def __truediv__(self, o):
        return F(self.v / (o.v if type(o) is F else o))

    def __pow__(self, o):
        return F(self.v ** (o.v if type(o) is F else o))

    def __rsub__(self, o):
        return F(o - self.v)

    def __rtruediv__(self, o):
        return F(o / self.v)

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        return F(-self.v)

    def relu(self):
        return F(self.v if self.v > 0.0 else 0.0)


class FloorEngine(Engine):
    has_backward = False
    big = True

    def __init__(self):
        super().__init__("floor", F)

    def value(self, y):
        return y.v


def _reference_value():
    from pytape.reference import Value
    return Value


def _dist_version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return ""


#: built-in engines by name, in table order
ENGINES = {
    "pytape": PytapeEngine,
    "reference": lambda: Engine("reference", _reference_value()),
    "micrograd": MicrogradEngine,
    "torch": TorchEngine,
    "floor": FloorEngine,
}


def load_engine(spec):
    """An :class:`Engine` for the micrograd-style class named by ``"module:Class"``.

    The class is checked on ``relu(x*x + 1)`` at x = 2 (gradient 4) first, so a
    bad spec fails here with a clear :class:`EngineError`.

    >>> load_engine("pytape.reference:Value").name
    'pytape.reference:Value'
    >>> try:
    ...     load_engine("nosuchmodule:Value")
    ... except EngineError as exc:
    ...     print(exc)
    --engine nosuchmodule:Value: cannot import module 'nosuchmodule' (No module named 'nosuchmodule')
    """
    mod, sep, attr = spec.partition(":")
    if not (sep and mod and attr):
        raise EngineError(f"--engine {spec}: expected MODULE:CLASS, e.g. pytape.reference:Value")
    try:
        module = importlib.import_module(mod)
    except Exception as exc:
        raise EngineError(f"--engine {spec}: cannot import module {mod!r} ({exc})") from None
    try:
        Value = functools.reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise EngineError(f"--engine {spec}: module {mod!r} has no attribute {attr!r}") from None
    if not callable(Value):
        raise EngineError(f"--engine {spec}: {attr!r} is not a class")
    engine = Engine(spec, Value)
    try:
        x = engine.leaf(2.0)
        y = (x * x + 1.0).relu()
        engine.backward(y)
        ok = engine.grad(x) == 4.0 and engine.value(y) == 5.0
    except Exception as exc:
        raise EngineError(
            f"--engine {spec}: not a micrograd-style Value class (Value(data), operators, "
            f"relu(), backward(), .data, .grad): {type(exc).__name__}: {exc}"
        ) from None
    if not ok:
        raise EngineError(f"--engine {spec}: relu(x*x + 1) at x = 2 gave a wrong value or gradient")
    return engine


def get_engine(name):
    """The :class:`Engine` named ``name`` (a key of ``ENGINES``, or ``"module:Class"``).

    Raises :class:`EngineUnavailable` for an optional engine that is not
    installed, :class:`EngineError` for an unknown name.

    >>> get_engine("floor").has_backward
    False
    """
    if ":" in name:
        return load_engine(name)
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)} or MODULE:CLASS")
    return ENGINES[name]()


def available_engines(names=tuple(ENGINES)):
    """(engines that import, {name: reason} for those that do not)."""
    engines, missing = [], {}
    for name in names:
        try:
            engines.append(get_engine(name))
        except EngineUnavailable as exc:
            missing[name] = str(exc)
    return engines, missing


# ============================================================ workloads

class Recording(NamedTuple):
    """One recorded computation: its engine, leaves, output, workload, size and (pytape) tape."""

    engine: Engine
    inputs: list
    output: Any
    workload: str
    size: int
    tape: Any = None

    @property
    def nops(self):
        """The operation count of this workload and size (pytape's: see ``count_ops``)."""
        return count_ops(self.workload, self.size)


def backward(rec):
    """Run the reverse sweep of a :class:`Recording` (consumes a pytape tape)."""
    rec.engine.backward(rec.output)


def chain_record(engine, D):
    """Record ``y = (y*0.5 + 0.25).relu() + y*0.5`` D times from a leaf x = 1.

    dy/dx is exactly 1 and y = 1 + D/4, so nothing overflows or goes denormal.

    >>> rec = chain_record(get_engine("reference"), 4)
    >>> rec.nops, rec.output.data
    (20, 2.0)
    """
    with engine.recording() as tape:
        x = engine.leaf(1.0)
        y = x
        for _ in range(D):
            y = (y * 0.5 + 0.25).relu() + y * 0.5
    return Recording(engine, [x], y, "chain", D, tape)


def chain_check(rec, grads=True):
    """AssertionError unless the chain's value (and, with ``grads``, dy/dx == 1) is right."""
    D, e = rec.size, rec.engine
    assert e.value(rec.output) == 1.0 + 0.25 * D, f"{e.name}: chain value {e.value(rec.output)} != {1 + 0.25 * D}"
    if grads:
        g = e.grad(rec.inputs[0])
        assert g == 1.0, f"{e.name}: chain gradient {g} != 1.0"


def rosenbrock_point(n):
    """The point the Rosenbrock workload differentiates at: x_i = 1 + 0.01 sin(i)."""
    return [1.0 + 0.01 * math.sin(i) for i in range(n)]


def _rosenbrock(xs):
    f = None
    for i in range(len(xs) - 1):
        t = 100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2
        f = t if f is None else f + t
    return f


def rosenbrock_record(engine, n):
    """Record the n-dimensional Rosenbrock function on n new leaves (n >= 2).

    >>> rec = rosenbrock_record(get_engine("pytape"), 100)
    >>> len(rec.tape) == rec.nops == 9 * 100 - 9    # n leaves + 8 ops per term - 1
    True
    """
    with engine.recording() as tape:
        xs = [engine.leaf(v) for v in rosenbrock_point(n)]
        f = _rosenbrock(xs)
    return Recording(engine, xs, f, "rosenbrock", n, tape)


def rosenbrock_check(rec, grads=True):
    """AssertionError unless f (and, with ``grads``, df/dx_i at 3 indices) matches the analytic value."""
    e, xs = rec.engine, rosenbrock_point(len(rec.inputs))
    n = len(xs)
    f = e.value(rec.output)
    assert math.isclose(f, _rosenbrock(xs), rel_tol=1e-9), f"{e.name}: Rosenbrock value {f} != {_rosenbrock(xs)}"
    if not grads:
        return
    for i in sorted({0, n // 2, n - 1}):
        want = 0.0
        if i < n - 1:
            want += -400.0 * xs[i] * (xs[i + 1] - xs[i] ** 2) - 2.0 * (1.0 - xs[i])
        if i > 0:
            want += 200.0 * (xs[i] - xs[i - 1] ** 2)
        got = e.grad(rec.inputs[i])
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{e.name}: df/dx[{i}] = {got} != {want}"


class _Neuron:
    def __init__(self, leaf, nin, nonlin):
        self.w = [leaf(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = leaf(0.0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act


class GenericMLP:
    """micrograd's MLP (same parameter order and initialisation) on any engine's leaves.

    >>> from pytape.reference import Value
    >>> random.seed(0); m = GenericMLP(Value, 2, [16, 16, 1])
    >>> len(m.parameters()), type(m([1.0, 2.0])).__name__
    (337, 'Value')
    """

    def __init__(self, leaf, nin, nouts):
        sz = [nin] + list(nouts)
        self.layers = [[_Neuron(leaf, sz[i], i != len(nouts) - 1) for _ in range(sz[i + 1])] for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = [n(x) for n in layer]
        return x[0] if len(x) == 1 else x

    def parameters(self):
        return [p for layer in self.layers for n in layer for p in n.w + [n.b]]


def make_moons(n=100, noise=0.1, seed=1337):
    """Two interleaving half circles (like sklearn's): rows as [x0, x1] float lists, labels +-1.

    >>> X, y = make_moons(10)
    >>> len(X), sorted(set(y)), type(X[0][0]).__name__
    (10, [-1.0, 1.0], 'float')
    """
    rng = np.random.default_rng(seed)
    n_out = n // 2
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n - n_out)
    X = np.vstack([np.c_[np.cos(t_out), np.sin(t_out)], np.c_[1 - np.cos(t_in), 0.5 - np.sin(t_in)]])
    X += rng.normal(scale=noise, size=X.shape)
    y = np.r_[-np.ones(n_out), np.ones(n - n_out)]
    perm = rng.permutation(n)
    return X[perm].tolist(), y[perm].tolist()


class MLPState(NamedTuple):
    model: Any
    params: list
    X: list
    y: list


MLP_SIZES = (2, [16, 16, 1])
MLP_SEED = 1337


def mlp_setup(engine, n=100):
    """A 2-16-16-1 MLP (seeded, so every engine starts from the same weights) and n moons points."""
    saved = random.getstate()
    random.seed(MLP_SEED)
    try:
        model = engine.mlp(*MLP_SIZES)
    finally:
        random.setstate(saved)
    X, y = make_moons(n)
    return MLPState(model, model.parameters(), X, y)


def _svm_loss(model, params, X, y, alpha=1e-4):
    scores = [model(row) for row in X]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in params)
    return data_loss + reg_loss


def mlp_record(engine, state):
    """Record the forward pass and micrograd's SVM max-margin loss (+ 1e-4 L2) on all points.

    >>> eng = get_engine("pytape"); st = mlp_setup(eng, 10)
    >>> eng.zero_grad(st.params); rec = mlp_record(eng, st); backward(rec); mlp_check(rec, st)
    >>> mlp_update(eng, st)
    """
    with engine.recording() as tape:
        loss = _svm_loss(state.model, state.params, state.X, state.y)
    return Recording(engine, state.params, loss, "mlp", len(state.X), tape)


def mlp_expected(param_values, X, y):
    """(loss, gradients) of the MLP loss at these parameter values, by the reference engine."""
    from pytape.reference import Value
    saved = random.getstate()
    try:
        model = GenericMLP(Value, *MLP_SIZES)
    finally:
        random.setstate(saved)
    params = model.parameters()
    for p, v in zip(params, param_values):
        p.data = v
    loss = _svm_loss(model, params, X, y)
    loss.backward()
    return loss.data, [p.grad for p in params]


def mlp_check(rec, state, grads=True):
    """AssertionError unless loss (and gradients) match the reference engine's at the same weights."""
    e = rec.engine
    want_loss, want_grads = mlp_expected([e.value(p) for p in state.params], state.X, state.y)
    loss = e.value(rec.output)
    assert math.isclose(loss, want_loss, rel_tol=1e-9), f"{e.name}: MLP loss {loss} != {want_loss}"
    if grads:
        for i, (p, want) in enumerate(zip(state.params, want_grads)):
            got = e.grad(p)
            assert math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-12), f"{e.name}: dloss/dp[{i}] = {got} != {want}"


def mlp_update(engine, state, lr=0.1):
    """The SGD step p -= lr * grad, then zero the gradients for the next step."""
    engine.update(state.params, lr)
    engine.zero_grad(state.params)


@functools.lru_cache(maxsize=None)
def count_ops(workload, size):
    """pytape's operation count for a workload and size (the per-op divisor for every engine).

    >>> count_ops("chain", 1000), count_ops("rosenbrock", 100)
    (5000, 891)
    """
    eng = get_engine("pytape")
    if workload == "chain":
        return 5 * size
    if workload == "rosenbrock":
        return len(rosenbrock_record(eng, size).tape)
    if workload == "mlp":
        return len(mlp_record(eng, mlp_setup(eng, size)).tape)
    raise KeyError(workload)


# ============================================================ the runner

class Workload(NamedTuple):
    """How the runner drives one workload: untimed prepare, timed record/update, check."""

    name: str
    label: str  # size prefix: "D=", "n=", "N="
    prepare: Any  # (engine, size) -> state
    record: Any  # (engine, size, state) -> Recording
    check: Any  # (rec, state, grads) -> None or AssertionError
    update: Any = None  # (engine, state) -> None, timed


WORKLOADS = {
    "chain": Workload("chain", "D=", lambda e, s: None, lambda e, s, st: chain_record(e, s),
                      lambda rec, st, grads: chain_check(rec, grads)),
    "rosenbrock": Workload("rosenbrock", "n=", lambda e, s: None, lambda e, s, st: rosenbrock_record(e, s),
                           lambda rec, st, grads: rosenbrock_check(rec, grads)),
    "mlp": Workload("mlp", "N=", mlp_setup, lambda e, s, st: mlp_record(e, st), mlp_check, mlp_update),
}

#: sizes per mode; in the default mode, sizes in BIG run only on engines with ``big``
SIZES = {
    "quick": {"chain": [100, 1000], "rosenbrock": [100], "mlp": [10]},
    "default": {"chain": [10**3, 10**4, 10**5, 10**6], "rosenbrock": [10**2, 10**3, 10**4], "mlp": [100]},
    "full": {"chain": [10**3, 10**4, 10**5, 10**6], "rosenbrock": [10**2, 10**3, 10**4, 10**5], "mlp": [100]},
}
BIG = {("chain", 10**6)}


@dataclass
class Row:
    """Timings of one engine on one workload and size: ns per repeat, per phase."""

    workload: str
    size: str
    engine: str
    nops: int
    record: List[int] = field(default_factory=list)
    backward: List[int] = field(default_factory=list)
    update: List[int] = field(default_factory=list)
    total: List[int] = field(default_factory=list)  # record + backward + update of complete repeats
    note: str = ""           # failure: "backward: RecursionError", "WRONG RESULT", ...
    detail: str = ""         # its message
    wrong: bool = False      # a check failed: the timings are of a wrong result
    dead: bool = False       # stop timing this engine (failed record or check)
    bytes_per_op: Optional[tuple] = None  # pytape: (used, allocated) bytes / len(tape) after backward

    def per_op(self, phase):
        """Median ns per op of a phase ('record', 'backward', 'update', 'total'), None if none."""
        xs = getattr(self, phase)
        return statistics.median(xs) / self.nops if xs and not self.wrong else None


def _timed(fn, *args, gc_on=True):
    """(fn(*args), ns it took); earlier garbage is collected first, outside the timing."""
    gc.collect()
    if not gc_on:
        gc.disable()
    try:
        t0 = time.perf_counter_ns()
        out = fn(*args)
        return out, time.perf_counter_ns() - t0
    finally:
        if not gc_on:
            gc.enable()


def _fail(row, stage, exc):
    row.note, row.detail = f"{stage}: {type(exc).__name__}", str(exc)
    row.dead = stage != "backward"  # after a failed backward, go on timing the record


def _run_once(wl, engine, size, state, row, check, gc_on):
    stage, rec = "record", None
    try:
        rec, t = _timed(wl.record, engine, size, state, gc_on=gc_on)
        row.record.append(t)
        if not engine.has_backward:
            if check:
                stage = "check"
                wl.check(rec, state, False)
            return
        if row.note:  # backward failed in an earlier repeat
            return
        stage = "backward"
        _, dt = _timed(backward, rec, gc_on=gc_on)
        row.backward.append(dt)
        t += dt
        if check:
            stage = "check"
            wl.check(rec, state, True)
        if rec.tape is not None:
            n = len(rec.tape)
            row.bytes_per_op = (rec.tape.used_nbytes / n, rec.tape.nbytes / n)
        if wl.update is not None:
            stage = "update"
            _, dt = _timed(wl.update, engine, state, gc_on=gc_on)
            row.update.append(dt)
            t += dt
        row.total.append(t)
    except AssertionError as exc:
        row.note, row.detail, row.wrong, row.dead = "WRONG RESULT", str(exc), True, True
    except Exception as exc:
        _fail(row, stage, exc)


def run_case(workload, size, engines, repeat=5, log=None, gc_on=True):
    """Time every engine on one workload and size; a list of :class:`Row` in ``engines`` order.

    Each repeat runs every engine once (record, backward, check on the first
    repeat, update for the MLP), starting the engine order one further on
    each repeat, so that slow drifts of a shared machine hit all engines alike.
    Exceptions are caught and noted in the row (micrograd's recursive
    topological sort raises RecursionError on deep graphs).  The cyclic
    garbage collector stays on during the timings, as in a real program,
    unless ``gc_on`` is false; garbage of earlier steps is collected untimed.

    >>> rows = run_case("chain", 100, [get_engine("pytape"), get_engine("floor")], repeat=1)
    >>> [(r.engine, r.nops, len(r.record), len(r.backward)) for r in rows]
    [('pytape', 500, 1, 1), ('floor', 500, 1, 0)]
    """
    wl = WORKLOADS[workload]
    label = f"{wl.label}{size}"
    rows = {e.name: Row(workload, label, e.name, count_ops(workload, size)) for e in engines}
    states = {}
    for e in engines:
        try:
            states[e.name] = wl.prepare(e, size)
        except Exception as exc:
            _fail(rows[e.name], "setup", exc)
    for r in range(repeat):
        k = r % len(engines)
        for e in engines[k:] + engines[:k]:
            if not rows[e.name].dead:
                _run_once(wl, e, size, states.get(e.name), rows[e.name], r == 0, gc_on)
    if log is not None:
        for row in rows.values():
            log(f"{workload} {label}: {row.engine:<10} {_progress(row)}")
    return list(rows.values())


def _progress(row):
    parts = [f"{p} {_ns(row.per_op(p))} ns/op" for p in ("record", "backward", "update") if getattr(row, p)]
    return "  ".join(parts + ([f"{row.note}: {row.detail}"] if row.note else []))


# ============================================================ the report

def _ns(x):
    return "-" if x is None else (f"{x:.1f}" if x < 100 else f"{x:,.0f}")


def _ratio(a, b):
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def format_table(rows):
    """The results as a text table; speed-ups are other engine / pytape, case by case."""
    head = ("workload", "size", "engine", "ops", "record", "backward", "update", "total",
            "pytape× rec", "pytape× total", "note")
    lines = []
    for row in rows:
        base = next((r for r in rows if r.engine == "pytape" and (r.workload, r.size) == (row.workload, row.size)), None)
        mine = row is base or base is None
        lines.append((
            row.workload, row.size, row.engine, f"{row.nops:,}",
            *(_ns(row.per_op(p)) if p != "update" or row.workload == "mlp" else "" for p in ("record", "backward", "update", "total")),
            "" if mine else _ratio(row.per_op("record"), base.per_op("record")),
            "" if mine else _ratio(row.per_op("total"), base.per_op("total")),
            row.note,
        ))
    widths = [max(len(str(x[i])) for x in [head] + lines) for i in range(len(head))]
    right = {3, 4, 5, 6, 7, 8, 9}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [fmt(head), fmt(["-" * w for w in widths])]
    prev = None
    for row, cells in zip(rows, lines):
        if prev is not None and row.workload != prev:
            out.append("")
        prev = row.workload
        out.append(fmt(cells))
    return "\n".join(out)


def _machine():
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{platform.platform()}, {platform.machine() or '?'}, {impl}, {os.cpu_count()} CPUs"


def _in_deep_thread(fn):
    """Run fn in a thread with a 1 GB stack and a recursion limit of 10**6 (``--deep``)."""
    import threading

    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    failure = []

    def target():
        try:
            fn()
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    sys.setrecursionlimit(10 ** 6)
    threading.stack_size(1 << 30)
    try:
        t = threading.Thread(target=target)
        t.start()
        t.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if failure:
        raise failure[0]


def main(argv=None):
    """``python -m pytape bench [options]``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m pytape bench",
        description="Time pytape against other scalar autodiff engines (record and backward "
        "separately, ns per scalar op, median of repeats with engines interleaved).",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (a few seconds; for tests and CI)")
    size.add_argument("--full", action="store_true", help="largest sizes on every engine (minutes, GBs)")
    p.add_argument("--repeat", type=int, default=5, metavar="N", help="repeats per case; medians are reported (default 5)")
    p.add_argument("--engine", action="append", default=[], metavar="MODULE:CLASS",
                   help="also benchmark your own micrograd-style Value class (every workload); repeatable")
    p.add_argument("--engines", default=",".join(ENGINES), metavar="LIST",
                   help=f"built-in engines to compare (default: {','.join(ENGINES)}; missing optional ones are skipped)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), metavar="LIST",
                   help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--no-gc", action="store_true",
                   help="disable the cyclic garbage collector inside the timings (as timeit does); "
                   "by default it runs, as in real programs, and costs graph-of-objects engines a lot")
    p.add_argument("--deep", action="store_true",
                   help="run in a thread with a 1 GB stack and a recursion limit of 10**6, so that "
                   "engines with a recursive backward (micrograd) sweep the deep graphs instead of "
                   "raising RecursionError at Python's default limit")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    workloads = [w for w in args.workloads.split(",") if w]
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad or not workloads:
        p.error(f"--workloads: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(WORKLOADS)}")
    names = [n for n in args.engines.split(",") if n]
    bad = [n for n in names if n not in ENGINES]
    if bad:
        p.error(f"--engines: unknown {', '.join(bad)}; choose from {', '.join(ENGINES)} (use --engine MODULE:CLASS for your own)")
    try:
        custom = [load_engine(spec) for spec in dict.fromkeys(args.engine)]
    except EngineError as exc:
        p.error(str(exc))
    engines, missing = available_engines(names)
    mode = "quick" if args.quick else "full" if args.full else "default"
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    for name, why in missing.items():
        log(f"skipping {name}: {why}")
    rows = []

    def run_all():
        for wl in workloads:
            for n in SIZES[mode][wl]:
                es = [e for e in engines + custom
                      if mode != "default" or (wl, n) not in BIG or e.big]
                if es:
                    log(f"{wl} {WORKLOADS[wl].label}{n}: {', '.join(e.name for e in es)} x {args.repeat} repeats ...")
                    rows.extend(run_case(wl, n, es, args.repeat, log, gc_on=not args.no_gc))

    if args.deep:
        _in_deep_thread(run_all)
    else:
        run_all()

    print(f"pytape bench ({mode}), {started}")
    print(f"machine: {_machine()}")
    print("engines: " + ", ".join(f"{e.name} {e.version}".rstrip() for e in engines + custom)
          + "".join(f"; {n}: not installed" for n in missing))
    gc_note = "gc disabled in the timings" if args.no_gc else "gc enabled (as in real programs; --no-gc to disable)"
    if args.deep:
        gc_note += "; --deep: 1 GB stack, recursion limit 10**6"
    print(f"times: ns per scalar op (pytape's op count), median of {args.repeat} repeat(s), engines interleaved; {gc_note}")
    print("pytape× = the other engine's median / pytape's, measured in the same run (> 1: pytape is faster); "
          "floor = float wrapper, record only")
    print()
    print(format_table(rows))
    mem = [r for r in rows if r.engine == "pytape" and r.workload == "chain" and r.bytes_per_op]
    if mem:
        print()
        print("pytape tape memory after backward, bytes per op, used (allocated with the spare "
              "capacity of doubling, not touched so not resident): "
              + ", ".join(f"chain {r.size}: {r.bytes_per_op[0]:.1f} ({r.bytes_per_op[1]:.1f})" for r in mem))
    notes = {}
    for r in rows:
        if r.note:
            notes.setdefault((r.engine, r.note, r.detail), []).append(f"{r.workload} {r.size}")
    for (engine, note, detail), cases in notes.items():
        print(f"note: {engine}: {note} ({detail}) in {', '.join(cases)}")
    failed = any(r.wrong or (r.engine == "pytape" and r.note) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
