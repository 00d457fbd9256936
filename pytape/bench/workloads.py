"""The workloads: what each benchmark computes, and the checks of its result.

Each workload has a ``*_record`` function returning a :class:`Recording`, a
``*_check`` that raises ``AssertionError`` on a wrong value or gradient, and
an entry in ``WORKLOADS`` (:class:`Workload`: how the runner drives it);
``backward(rec)`` runs the reverse sweep and ``count_ops`` gives pytape's
operation count, the per-op divisor for every engine.

* ``chain``: ``chain_record``, ``chain_check``;
* ``rosenbrock``: ``rosenbrock_point``, ``rosenbrock_record``, ``rosenbrock_check``;
* ``mlp``: ``make_moons``, ``mlp_setup``, ``mlp_record``, ``mlp_check``,
  ``mlp_update`` (the timed SGD step), ``mlp_expected`` (the reference engine's answer).
"""
import functools
import math
import random
from typing import Any, NamedTuple

import numpy as np

from .engines import Engine, GenericMLP, get_engine

__all__ = [
    "Recording", "Workload", "WORKLOADS", "backward",
    "chain_record", "chain_check", "rosenbrock_point", "rosenbrock_record", "rosenbrock_check",
    "make_moons", "mlp_setup", "mlp_record", "mlp_check", "mlp_update", "mlp_expected",
    "count_ops",
]


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
