"""``python -m pytape bench --arrays``, third part: training steps of an MLP
(float64), each engine with its own tools, and the peak memory of a loop of
them.

A step is: zero the gradients, the forward pass (Linear, ReLU, Linear),
softmax cross-entropy against integer labels, the backward pass, and an SGD
update with momentum 0.9:

* pytape: ``pytape.nn.TensorMLP`` + ``pytape.nn.cross_entropy`` +
  ``pytape.optim.SGD`` (eager: one tape per step);
* pytape-trace: ``pytape.trace`` of the same loss of the weights and the
  batch (``argnums``: the weights; the batch is a data input of every call);
  a step replays it in C (``value_and_grad``) and updates in numpy;
* torch: ``torch.nn.Sequential(Linear, ReLU, Linear).double()`` +
  ``torch.nn.functional.cross_entropy`` + ``torch.optim.SGD`` (eager, one
  thread);
* HIPS autograd and JAX (eager, and the whole step under ``jax.jit``):
  ``grad`` of the same loss over a list of weight arrays, the update in
  their numpy.

Every engine starts from the same weights and data and must reach the same
loss after the warm-up steps as pytape does (checked).

>>> rows = run_training(["digits"], [TRAINING_ENGINES["pytape"]()], repeat=1, sample_ns=1_000_000)
>>> rows[0].engine, rows[0].median() > 0
('pytape', True)
"""
import statistics
from typing import List, NamedTuple

import numpy as np

import pytape

from .arrays import _fmt, _rng, format_table, round_robin, sample
from .memory import measured

__all__ = ["TRAINING_CASES", "TRAINING_ENGINES", "run_training", "format_training", "peak_memory"]


class Case(NamedTuple):
    name: str
    label: str
    sizes: tuple   # (inputs, hidden, classes)
    batch: int


TRAINING_CASES = {
    "mlp": Case("mlp", "batch 128, 784-256-10", (784, 256, 10), 128),
    "digits": Case("digits", "batch 128, 64-128-10", (64, 128, 10), 128),
}
LR, MOMENTUM = 0.01, 0.9


def _data(case):
    r = _rng()
    nin, nh, nout = case.sizes
    X = r.normal(size=(case.batch, nin))
    y = r.integers(0, nout, case.batch)
    b1, b2 = 1.0 / np.sqrt(nin), 1.0 / np.sqrt(nh)
    weights = [r.uniform(-b1, b1, (nin, nh)), r.uniform(-b1, b1, nh), r.uniform(-b2, b2, (nh, nout)),
               r.uniform(-b2, b2, nout)]
    return X, y, weights


class PytapeTraining:
    name = "pytape"

    def __init__(self):
        self.version = pytape.__version__

    def make(self, case):
        X, y, weights = _data(case)
        model = pytape.nn.TensorMLP(*case.sizes[:1], list(case.sizes[1:]))
        for p, w in zip(model.parameters(), weights):
            p.data = w.copy()
        opt = pytape.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        nn = pytape.nn

        def step():
            opt.zero_grad()
            loss = nn.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step


class PytapeTracedTraining:
    """``pytape.trace`` of the loss of the weights and the batch (``argnums``:
    the weights; the batch and its labels are data inputs, given at every
    call as a new minibatch would be), traced once untimed; a step is
    ``value_and_grad`` (a C replay and a reverse sweep) and the same
    momentum update in numpy, in place."""

    name = "pytape-trace"

    def __init__(self):
        self.version = pytape.__version__

    def make(self, case):
        X, y, weights = _data(case)
        nn = pytape.nn

        def loss(W1, b1, W2, b2, X, y):
            return nn.cross_entropy(np.maximum(X @ W1 + b1, 0.0) @ W2 + b2, y)
        ws = [w.copy() for w in weights]
        vs = [None] * len(ws)
        fn = pytape.trace(loss, *ws, X, y, argnums=(0, 1, 2, 3))

        def step():
            value, gs = fn.value_and_grad(*ws, X, y)
            for k, g in enumerate(gs):
                if vs[k] is None:
                    vs[k] = g
                else:
                    vs[k] *= MOMENTUM
                    vs[k] += g
                ws[k] -= LR * vs[k]
            return value
        return step


class TorchTraining:
    name = "torch"

    def __init__(self):
        import torch
        self.torch, self.version = torch, torch.__version__
        torch.set_num_threads(1)

    def make(self, case):
        T = self.torch
        X, y, weights = _data(case)
        nin, nh, nout = case.sizes
        model = T.nn.Sequential(T.nn.Linear(nin, nh), T.nn.ReLU(), T.nn.Linear(nh, nout)).double()
        with T.no_grad():
            model[0].weight.copy_(T.from_numpy(weights[0].T.copy()))
            model[0].bias.copy_(T.from_numpy(weights[1]))
            model[2].weight.copy_(T.from_numpy(weights[2].T.copy()))
            model[2].bias.copy_(T.from_numpy(weights[3]))
        opt = T.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        Xt, yt, ce = T.from_numpy(X), T.from_numpy(y), T.nn.functional.cross_entropy

        def step():
            opt.zero_grad()
            loss = ce(model(Xt), yt)
            loss.backward()
            opt.step()
            return loss.item()
        return step


def _loss(xp, ws, X, y):
    h = X @ ws[0] + ws[1]
    h = h * (h > 0)
    z = h @ ws[2] + ws[3]
    z = z - xp.max(z, axis=1, keepdims=True)
    lsm = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    return -xp.mean(lsm[xp.arange(len(y)), y])


class AutogradTraining:
    name = "autograd"

    def __init__(self):
        import autograd
        import autograd.numpy as anp
        self.ag, self.anp = autograd, anp
        from importlib import metadata
        self.version = metadata.version("autograd")

    def make(self, case):
        X, y, weights = _data(case)
        anp = self.anp
        vg = self.ag.value_and_grad(lambda ws: _loss(anp, ws, X, y))
        ws, vs = [w.copy() for w in weights], [None] * len(weights)

        def step():
            loss, gs = vg(ws)
            for k, g in enumerate(gs):
                vs[k] = g if vs[k] is None else MOMENTUM * vs[k] + g
                ws[k] = ws[k] - LR * vs[k]
            return float(loss)
        return step


class JaxTraining:
    def __init__(self, jit=False):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp, self.jit = jax, jnp, jit
        self.name, self.version = ("jax-jit" if jit else "jax"), jax.__version__

    def make(self, case):
        jax, jnp = self.jax, self.jnp
        X, y, weights = _data(case)
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        vg = jax.value_and_grad(lambda ws: _loss(jnp, ws, Xj, yj))

        def update(ws, vs, first):
            loss, gs = vg(ws)
            vs = [g if first else MOMENTUM * v + g for v, g in zip(vs, gs)]
            return loss, [w - LR * v for w, v in zip(ws, vs)], vs
        upd = jax.jit(update, static_argnums=2) if self.jit else update
        state = {"ws": [jnp.asarray(w) for w in weights], "vs": [jnp.zeros_like(jnp.asarray(w)) for w in weights],
                 "first": True}

        def step():
            loss, state["ws"], state["vs"] = upd(state["ws"], state["vs"], state["first"])
            state["first"] = False
            return float(jax.block_until_ready(loss))
        return step


TRAINING_ENGINES = {"pytape": PytapeTraining, "pytape-trace": PytapeTracedTraining, "torch": TorchTraining, "autograd": AutogradTraining,
                    "jax": JaxTraining, "jax-jit": lambda: JaxTraining(jit=True)}


class TrainingRow:
    def __init__(self, case, size, engine):
        self.case, self.size, self.engine = case, size, engine
        self.steps: List[float] = []
        self.note = ""
        self.peak = None   # bytes: peak RSS of 50 steps above the RSS before them (peak_memory)

    def median(self):
        return statistics.median(self.steps) if self.steps and not self.note else None


def run_training(cases, engines, repeat=5, log=None, sample_ns=20_000_000):
    """ns per training step, engines round-robin (medians of ``repeat``
    samples, each the mean of back-to-back steps after a lead-in).  Three
    warm-up steps each; the losses of every engine must equal pytape's."""
    rows = []
    for cname in cases:
        case = TRAINING_CASES[cname]
        want = None
        mine, steps = {}, {}
        for e in engines:
            row = mine[e.name] = TrainingRow(cname, case.label, e.name)
            try:
                step = e.make(case)
                losses = [step() for _ in range(3)]
                if want is None and e.name == "pytape":
                    want = losses
                if want is not None and not np.allclose(losses, want, rtol=1e-9):
                    raise AssertionError(f"losses {losses} differ from pytape's {want}")
                steps[e.name] = step
            except Exception as exc:
                row.note = f"{type(exc).__name__}: {str(exc)[:100]}"
        live = [e for e in engines if not mine[e.name].note]
        for e in round_robin(live, repeat):
            mine[e.name].steps.append(sample(steps[e.name], sample_ns))
        if log is not None:
            for row in mine.values():
                log(f"training {cname}: {row.engine:<8} " + (row.note or f"{_fmt(row.median())} ns per step"))
        rows.extend(mine.values())
    return rows


def peak_memory(engine, case, timeout=300):
    """Bytes: the peak resident memory of 50 training steps of ``engine`` on
    ``case`` above the memory before them (imports, data and model excluded),
    in a fresh process (:func:`pytape.bench.memory.measured`); None where
    unavailable (not Linux, or the engine is not installed)."""
    r = measured(f"from pytape.bench.training import TRAINING_CASES, TRAINING_ENGINES\n"
                 f"step = TRAINING_ENGINES[{engine!r}]().make(TRAINING_CASES[{case!r}])",
                 "for _ in range(50):\n    step()", timeout)
    return None if r is None else r[1]


def format_training(rows):
    """The table: ns per step, each engine's step against pytape's (> 1: pytape faster), peak memory."""
    head = ("model", "size", "engine", "step", "vs pytape", "peak memory", "note")
    out = []
    for row in rows:
        base = next((r for r in rows if r.engine == "pytape" and r.case == row.case), None)
        t, b = row.median(), base.median() if base else None
        out.append((row.case, row.size, row.engine, _fmt(t), f"{t / b:.2f}" if t and b and row is not base else "",
                    "" if row.peak is None else f"{row.peak / 2 ** 20:.1f} MB", row.note))
    return format_table(head, out, {3, 4, 5})
