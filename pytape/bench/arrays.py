"""``python -m pytape bench --arrays``: pytape's Tensors against array autodiff engines.

Each case is a function ``f(xp, *inputs)`` written once against a numpy-like
namespace ``xp`` (numpy itself for pytape, ``autograd.numpy``, ``jax.numpy``,
a thin torch adapter) and differentiated with respect to its first ``ndiff``
inputs (the others are constants: data).  Engines (:class:`ArrayEngine`)
run it as one vector-Jacobian product: make the leaves, record, backward
with a seed (1 for a scalar output), return the gradients.  Cases with a
hand-written numpy forward and backward (``np_ref``) also time it as the
``numpy`` engine: the floor an array tape is measured against.

* ``ops``: a chain of 100 elementwise operations (``y*0.5``, ``+0.25``,
  ``sin``, ``tanh`` repeated; values stay in [-1, 1]) on n elements: time per
  operation, the per-instruction overhead;
* bandwidth: ``elementwise`` (x*0.5 + 0.25, sin, tanh, * x, sum) and
  ``arithmetic`` (x*0.5 + 0.25, * x, - x*0.125, sum) on 10**6 elements,
  ``sum(axis=0)`` and ``max(axis=1)`` of a 1000 x 1000 array (against
  numpy's kernels and the hand-written backward);
* ``blas``: ``A @ B`` (512 x 512), backward with a seed (against three numpy ``@``);
* ``logreg``: the logistic-regression gradient (X 1000 x 10, sigmoid, mean log-loss);
* ``mlp``: the same loss through a hidden layer of 16 tanh units.

``run_arrays`` times every engine round-robin (one repeat = every engine
once, the order rotating), medians; ``format_arrays`` prints the table;
``tape_bytes`` measures the bytes a tape holds per array instruction.

>>> rows = run_arrays(["ops"], {"ops": [10]}, [get_array_engine("pytape")], repeat=1)
>>> rows[0].engine, rows[0].nops
('pytape', 100)
"""
import statistics
import time
from typing import Any, Callable, List, NamedTuple, Optional

import numpy as np

import pytape
from pytape import _native

from .runner import _ns, _ratio

__all__ = ["ARRAY_ENGINES", "ARRAY_CASES", "ARRAY_SIZES", "ArrayEngine", "ArrayRow", "get_array_engine",
           "available_array_engines", "run_arrays", "format_arrays", "format_table", "round_robin", "sample",
           "tape_bytes", "main_arrays"]


# ---- the engines -------------------------------------------------------------------------

class ArrayEngine:
    """How one array engine computes a vector-Jacobian product of ``f``.

    ``prepare(case, inputs)`` converts the inputs (untimed) and returns the
    state ``run`` takes; ``run(state)`` is timed and returns (gradients,
    ns of the record, ns of the backward) -- the split is None where the
    engine does both in one call."""

    name = "?"
    version = ""

    def prepare(self, case, inputs, seed):
        return inputs, seed

    def run(self, f, ndiff, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def to_numpy(self, g):
        return np.asarray(g, dtype=np.float64)


class PytapeArrays(ArrayEngine):
    """The leaves are made once (untimed, as the other engines convert their
    inputs once: torch's ``detach().requires_grad_()`` and JAX's arrays copy
    nothing per call) and their grads zeroed each call, as in a training loop."""

    name = "pytape"

    def __init__(self):
        self.version = pytape.__version__

    def prepare(self, case, inputs, seed):
        return [pytape.Tensor(a) for a in inputs[:case.ndiff]] + list(inputs[case.ndiff:]), seed

    def run(self, f, ndiff, state):
        inputs, seed = state
        t0 = time.perf_counter_ns()
        xs = inputs[:ndiff]
        for x in xs:
            x.zero_grad()
        with pytape.Tape():
            y = f(np, *xs, *inputs[ndiff:])
        t1 = time.perf_counter_ns()
        y.backward(seed)
        grads = [x.grad for x in xs]
        t2 = time.perf_counter_ns()
        return grads, t1 - t0, t2 - t1


class PytapeTraced(ArrayEngine):
    """``pytape.trace`` of the case (its constants closed over, a seed as
    the weights of a sum), traced once untimed; each call is
    ``fn.value_and_grad``: a C replay and a reverse sweep (as ``jax.jit``
    runs its compiled vjp)."""

    name = "pytape-trace"

    def __init__(self):
        self.version = pytape.__version__

    def prepare(self, case, inputs, seed):
        f, consts = case.f, inputs[case.ndiff:]
        if seed is None:
            g = lambda *xs: f(np, *xs, *consts)  # noqa: E731
        else:
            g = lambda *xs: np.sum(f(np, *xs, *consts) * seed)  # noqa: E731
        return pytape.trace(g, *inputs[:case.ndiff]), inputs[:case.ndiff]

    def run(self, f, ndiff, state):
        fn, xs = state
        t0 = time.perf_counter_ns()
        g = fn.value_and_grad(*xs)[1]
        return ([g] if ndiff == 1 else list(g)), None, time.perf_counter_ns() - t0


class NumpyRef(ArrayEngine):
    """numpy's own kernels: the case's hand-written forward and backward."""

    name = "numpy"

    def __init__(self):
        self.version = np.__version__

    def run(self, ref, ndiff, state):
        inputs, seed = state
        t0 = time.perf_counter_ns()
        grads = ref(inputs, seed)
        return grads, None, time.perf_counter_ns() - t0


class _TorchOps:
    """The few numpy names the cases use, on torch tensors."""

    def __init__(self, torch):
        self.t = torch
        self.sin, self.cos, self.tanh, self.exp, self.log = torch.sin, torch.cos, torch.tanh, torch.exp, torch.log

    def sum(self, x, axis=None):
        return self.t.sum(x) if axis is None else self.t.sum(x, dim=axis)

    def max(self, x, axis=None):
        return self.t.max(x) if axis is None else self.t.amax(x, dim=axis)

    def mean(self, x):
        return self.t.mean(x)


class TorchArrays(ArrayEngine):
    name = "torch"

    def __init__(self):
        import torch  # ImportError: skipped
        self.torch, self.version = torch, torch.__version__
        torch.set_num_threads(1)  # as the scalar bench: no idle OpenMP workers stealing the other core
        self.ops = _TorchOps(torch)

    def prepare(self, case, inputs, seed):
        T = self.torch
        return [T.from_numpy(np.array(a)) for a in inputs], (None if seed is None else T.from_numpy(seed))

    def run(self, f, ndiff, state):
        inputs, seed = state
        t0 = time.perf_counter_ns()
        xs = [a.detach().requires_grad_() for a in inputs[:ndiff]]
        y = f(self.ops, *xs, *inputs[ndiff:])
        t1 = time.perf_counter_ns()
        y.backward(seed)
        grads = [x.grad for x in xs]
        t2 = time.perf_counter_ns()
        return grads, t1 - t0, t2 - t1

    def to_numpy(self, g):
        return g.detach().numpy()


class AutogradArrays(ArrayEngine):
    name = "autograd"

    def __init__(self):
        import autograd
        import autograd.numpy as anp
        self.make_vjp, self.anp = autograd.make_vjp, anp
        from importlib import metadata
        try:
            self.version = metadata.version("autograd")
        except Exception:
            self.version = ""

    def run(self, f, ndiff, state):
        inputs, seed = state
        anp = self.anp
        consts = inputs[ndiff:]
        t0 = time.perf_counter_ns()
        vjp, _ = self.make_vjp(lambda *xs: f(anp, *xs, *consts), tuple(range(ndiff)))(*inputs[:ndiff])
        t1 = time.perf_counter_ns()
        grads = vjp(1.0 if seed is None else seed)
        t2 = time.perf_counter_ns()
        return list(grads), t1 - t0, t2 - t1


class JaxArrays(ArrayEngine):
    """JAX eager (``jax.vjp`` op by op); ``jit=True``: the whole vjp under ``jax.jit``."""

    def __init__(self, jit=False):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp, self.jit = jax, jnp, jit
        self.name, self.version = ("jax-jit" if jit else "jax"), jax.__version__

    def prepare(self, case, inputs, seed):
        jnp = self.jnp
        xs = [jnp.asarray(a) for a in inputs]
        s = jnp.asarray(1.0) if seed is None else jnp.asarray(seed)
        if self.jit:
            f, ndiff, jax = case.f, case.ndiff, self.jax

            def grads(s, *xs):
                consts = xs[ndiff:]
                return jax.vjp(lambda *d: f(jnp, *d, *consts), *xs[:ndiff])[1](s)
            fn = jax.jit(grads)
            jax.block_until_ready(fn(s, *xs))  # compile outside the timings
            return xs, s, fn
        return xs, s, None

    def run(self, f, ndiff, state):
        inputs, seed, compiled = state
        jax = self.jax
        t0 = time.perf_counter_ns()
        if compiled is not None:
            grads = jax.block_until_ready(compiled(seed, *inputs))
            return list(grads), None, time.perf_counter_ns() - t0
        consts = inputs[ndiff:]
        y, vjp = jax.vjp(lambda *xs: f(self.jnp, *xs, *consts), *inputs[:ndiff])
        jax.block_until_ready(y)
        t1 = time.perf_counter_ns()
        grads = jax.block_until_ready(vjp(seed))
        t2 = time.perf_counter_ns()
        return list(grads), t1 - t0, t2 - t1


#: array engines by name, in table order (numpy: the hand-written floor, where a case has one)
ARRAY_ENGINES = {
    "pytape": PytapeArrays,
    "pytape-trace": PytapeTraced,
    "numpy": NumpyRef,
    "torch": TorchArrays,
    "autograd": AutogradArrays,
    "jax": JaxArrays,
    "jax-jit": lambda: JaxArrays(jit=True),
}


def get_array_engine(name):
    """The :class:`ArrayEngine` named ``name`` (ImportError if not installed)."""
    return ARRAY_ENGINES[name]()


def _with_double_backward(names):
    """The second-order table's engines: pytape's double backward beside pytape's own hvp."""
    names = list(names)
    return names + ["pytape-double-backward"] if "pytape" in names else names


def available_array_engines(names=tuple(ARRAY_ENGINES), table=ARRAY_ENGINES):
    """(engines of ``table`` among ``names`` that import, {name: reason} for
    those that do not); names ``table`` does not have are left out."""
    engines, missing = [], {}
    for n in names:
        if n not in table:
            continue
        try:
            engines.append(table[n]())
        except ImportError as exc:
            missing[n] = f"not installed ({exc})"
    return engines, missing


# ---- the cases ---------------------------------------------------------------------------

def _chain_f(xp, x):
    y = x
    for _ in range(25):
        y = xp.tanh(xp.sin(y * 0.5 + 0.25))
    return xp.sum(y)


def _chain_ref(inputs, seed):
    # the same values and the hand-written backward of each step (numpy's kernels)
    (x,) = inputs
    keep, y = [], x
    for _ in range(25):
        a = y * 0.5 + 0.25
        b = np.sin(a)
        y = np.tanh(b)
        keep.append((a, y))
    np.sum(y)  # the forward's output, as the other engines compute it
    g = np.ones_like(x) * (1.0 if seed is None else seed)
    for a, t in reversed(keep):
        g = g * (1.0 - t * t)
        g = g * np.cos(a)
        g = g * 0.5
    return [g]


def _wide_f(xp, x):
    a = x * 0.5 + 0.25
    return xp.sum(xp.tanh(xp.sin(a)) * x)


def _wide_ref(inputs, seed):
    (x,) = inputs
    a = x * 0.5 + 0.25
    b = np.sin(a)
    c = np.tanh(b)
    d = c * x
    np.sum(d)
    gc_ = x                         # d(d)/dc
    gb = gc_ * (1.0 - c * c)
    ga = gb * np.cos(a)
    return [c + ga * 0.5]


def _arith_f(xp, x):
    return xp.sum((x * 0.5 + 0.25) * x - x * 0.125)


def _arith_ref(inputs, seed):
    (x,) = inputs
    b = x * 0.5 + 0.25
    np.sum(b * x - x * 0.125)
    return [b + x * 0.5 - 0.125]   # d/dx of b*x (b + 0.5 x) and of -0.125 x


def _sum_axis_f(xp, X, c):
    return xp.sum(xp.sum(X, axis=0) * c)


def _sum_axis_ref(inputs, seed):
    X, c = inputs
    s = np.sum(X, axis=0)
    np.sum(s * c)
    return [np.broadcast_to(c, X.shape).copy()]


def _max_axis_f(xp, X, c):
    return xp.sum(xp.max(X, axis=1) * c)


def _max_axis_ref(inputs, seed):
    X, c = inputs
    m = np.max(X, axis=1)
    np.sum(m * c)
    g = np.zeros_like(X)
    g[np.arange(X.shape[0]), np.argmax(X, axis=1)] = c
    return [g]


def _matmul_f(xp, A, B):
    return A @ B


def _matmul_ref(inputs, seed):
    A, B = inputs
    A @ B
    return [seed @ B.T, A.T @ seed]


def _logloss(xp, z, y):
    p = 1.0 / (1.0 + xp.exp(-z))
    return -xp.mean(y * xp.log(p) + (1.0 - y) * xp.log(1.0 - p))


def _logreg_f(xp, w, X, y):
    return _logloss(xp, X @ w, y)


def _logreg_ref(inputs, seed):
    w, X, y = inputs
    z = X @ w
    p = 1.0 / (1.0 + np.exp(-z))
    -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    return [X.T @ (p - y) / len(y)]


def _mlp_f(xp, W1, b1, w2, b2, X, y):
    h = xp.tanh(X @ W1 + b1)
    return _logloss(xp, h @ w2 + b2, y)


def _mlp_ref(inputs, seed):
    W1, b1, w2, b2, X, y = inputs
    h = np.tanh(X @ W1 + b1)
    z = h @ w2 + b2
    p = 1.0 / (1.0 + np.exp(-z))
    -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    gz = (p - y) / len(y)
    gh = np.outer(gz, w2) * (1.0 - h * h)
    return [X.T @ gh, gh.sum(axis=0), h.T @ gz, np.array([gz.sum()])]


class Case(NamedTuple):
    """One benchmark: ``f(xp, *inputs)``, the inputs of a size, and its hand-written numpy floor."""

    name: str
    label: Callable[[int], str]
    inputs: Callable[[int], list]   # size -> numpy inputs (leaves first, then constants)
    ndiff: int
    f: Callable
    ref: Optional[Callable] = None  # (inputs, seed) -> gradients, numpy's kernels
    nops: Callable[[int], int] = lambda n: 1   # the per-op divisor
    seed: Callable[[list], Any] = lambda inputs: None  # the backward seed (None: scalar output)


def _rng():
    return np.random.default_rng(1234)


def _logreg_data(n):
    r = _rng()
    X = r.normal(size=(n, 10))
    y = (r.random(n) < 0.5).astype(np.float64)
    return X, y


def _mlp_inputs(n):
    X, y = _logreg_data(n)
    r = _rng()
    return [r.normal(scale=0.3, size=(10, 16)), np.zeros(16), r.normal(scale=0.3, size=16), np.zeros(1), X, y]


ARRAY_CASES = {
    "ops": Case("ops", lambda n: f"100 ops, n={n}", lambda n: [np.linspace(-1.0, 1.0, n)], 1, _chain_f,
                _chain_ref, nops=lambda n: 100),
    "elementwise": Case("elementwise", lambda n: f"5 ops, n={n:.0e}", lambda n: [np.linspace(-1.0, 1.0, n)], 1,
                        _wide_f, _wide_ref),
    "arithmetic": Case("arithmetic", lambda n: f"5 ops, n={n:.0e}", lambda n: [np.linspace(-1.0, 1.0, n)], 1,
                       _arith_f, _arith_ref),
    "sum(axis=0)": Case("sum(axis=0)", lambda n: f"{n}x{n}",
                        lambda n: [_rng().normal(size=(n, n)), np.linspace(0.5, 1.5, n)], 1, _sum_axis_f,
                        _sum_axis_ref),
    "max(axis=1)": Case("max(axis=1)", lambda n: f"{n}x{n}",
                        lambda n: [_rng().normal(size=(n, n)), np.linspace(0.5, 1.5, n)], 1, _max_axis_f,
                        _max_axis_ref),
    "matmul": Case("matmul", lambda n: f"{n}x{n} @ {n}x{n}",
                   lambda n: [_rng().normal(size=(n, n)), _rng().normal(size=(n, n)) * 0.5], 2, _matmul_f,
                   _matmul_ref, seed=lambda inputs: np.ones_like(inputs[0]) * 0.25),
    "logreg": Case("logreg", lambda n: f"X {n}x10", lambda n: [_rng().normal(scale=0.1, size=10), *_logreg_data(n)],
                   1, _logreg_f, _logreg_ref),
    "mlp": Case("mlp", lambda n: f"X {n}x10, 16 tanh", _mlp_inputs, 4, _mlp_f, _mlp_ref),
}

#: sizes per mode
ARRAY_SIZES = {
    "quick": {"ops": [10, 1000], "elementwise": [10**4], "arithmetic": [10**4], "sum(axis=0)": [100],
              "max(axis=1)": [100],
              "matmul": [64], "logreg": [1000], "mlp": [100]},
    "default": {"ops": [1, 10, 100, 1000], "elementwise": [10**6], "arithmetic": [10**6], "sum(axis=0)": [1000],
                "max(axis=1)": [1000],
                "matmul": [512], "logreg": [1000], "mlp": [1000]},
}


# ---- the runner --------------------------------------------------------------------------

class ArrayRow:
    """One engine on one case and size: ns per call, one entry per sample: total (wall time of
    the sample's calls, freeing each call's graph included), and record/backward where split."""

    def __init__(self, case, size, engine, nops):
        self.case, self.size, self.engine, self.nops = case, size, engine, nops
        self.total: List[int] = []
        self.record: List[int] = []
        self.backward: List[int] = []
        self.note = ""

    def per_op(self, phase="total"):
        xs = getattr(self, phase)
        return statistics.median(xs) / self.nops if xs and not self.note else None


def _check(case, grads, want, engine):
    for k, (g, w) in enumerate(zip(grads, want)):
        g = engine.to_numpy(g)
        if g.shape != w.shape or not np.allclose(g, w, rtol=1e-7, atol=1e-10):
            raise AssertionError(f"gradient {k} differs from the hand-written one "
                                 f"(max abs diff {np.max(np.abs(g - w)) if g.shape == w.shape else g.shape})")


def run_arrays(cases, sizes, engines, repeat=5, log=None, sample_ns=20_000_000):
    """Time the engines on each case and size, round-robin; a list of :class:`ArrayRow`.

    Repeat 0 is an untimed warm-up that checks the gradients against the
    hand-written ones and sets each engine's inner count: a sample is the
    mean of as many back-to-back calls as fill ``sample_ns`` (at least one),
    as in a training loop (no ``gc.collect()`` between calls: it empties
    CPython's free lists and makes the next call pay for refilling them).
    Each repeat then takes one sample of every engine, the order rotating.
    A sample starts after untimed calls for a quarter of ``sample_ns`` (at
    least one): after another engine ran, the first calls on large arrays
    take up to three times as long for every engine (measured on 1000 x
    1000 arrays: about five calls, 2 ms), and a sample measures the engine
    in a loop of its own.
    """
    rows = []
    for cname in cases:
        case = ARRAY_CASES[cname]
        for n in sizes[cname]:
            inputs = case.inputs(n)
            seed = case.seed(inputs)
            want = [np.asarray(g) for g in case.ref(inputs, seed)]
            es = [e for e in engines if e.name != "numpy" or case.ref is not None]
            mine, states, inner = {}, {}, {}
            for e in es:
                mine[e.name] = ArrayRow(cname, case.label(n), e.name, case.nops(n))
                try:
                    states[e.name] = e.prepare(case, inputs, seed)
                except Exception as exc:
                    mine[e.name].note = f"setup: {type(exc).__name__}: {exc}"
            for r in range(repeat + 1):
                k = r % len(es)
                for e in es[k:] + es[:k]:
                    row = mine[e.name]
                    if row.note:
                        continue
                    fn = case.ref if e.name == "numpy" else case.f
                    try:
                        if r == 0:
                            t0 = time.perf_counter_ns()
                            grads, _, _ = e.run(fn, case.ndiff, states[e.name])
                            _check(case, grads, want, e)
                            e.run(fn, case.ndiff, states[e.name])
                            inner[e.name] = max(1, min(10_000, sample_ns // max(1, (time.perf_counter_ns() - t0) // 2)))
                            continue
                        rec = bwd = 0
                        m = inner[e.name]
                        run, st, nd = e.run, states[e.name], case.ndiff
                        lead_in = time.perf_counter_ns() + sample_ns // 4
                        run(fn, nd, st)  # the lead-in: untimed
                        while time.perf_counter_ns() < lead_in:
                            run(fn, nd, st)
                        t0 = time.perf_counter_ns()
                        for _ in range(m):
                            _, a, b = run(fn, nd, st)  # the previous call's graph is freed here: timed too
                            rec = None if a is None else rec + a
                            bwd += b
                        _ = None
                        wall = time.perf_counter_ns() - t0
                    except Exception as exc:
                        row.note = f"{type(exc).__name__}: {str(exc)[:120]}"
                        continue
                    row.total.append(wall / m)
                    if rec is not None:
                        row.record.append(rec / m)
                        row.backward.append(bwd / m)
            if log is not None:
                for row in mine.values():
                    log(f"{cname} {row.size}: {row.engine:<8} "
                        + (row.note or f"{_fmt(row.per_op())} ns{'/op' if row.nops > 1 else ''}"))
            rows.extend(mine.values())
    return rows


def _fmt(ns):
    """runner's cells, with k and M from 10^4 ns on."""
    if ns is None or ns < 1e4:
        return _ns(ns)
    if ns < 1e7:
        return f"{ns / 1e3:,.1f}k"
    return f"{ns / 1e6:,.1f}M"


def format_arrays(rows):
    """The table: ns (per op for ``ops``), and ratios against pytape in the same run.

    ``vs pytape`` = engine / pytape (> 1: pytape faster); numpy's row is the
    hand-written floor, so its ratio < 1 says how far pytape is from it.
    """
    head = ("case", "size", "engine", "record", "backward", "total", "vs pytape", "note")
    out = []
    for row in rows:
        base = next((r for r in rows if r.engine == "pytape" and (r.case, r.size) == (row.case, row.size)), None)
        out.append((row.case, row.size, row.engine, _fmt(row.per_op("record")), _fmt(row.per_op("backward")),
                    _fmt(row.per_op()), "" if row is base or base is None else _ratio(row.per_op(), base.per_op()),
                    row.note))
    return format_table(head, out, {3, 4, 5, 6}, [(row.case, row.size) for row in rows])


def format_table(head, rows, right, groups=None):
    """Text columns under ``head``, left-aligned but for the columns in
    ``right``; a blank line where ``groups`` (one key per row) changes.

    >>> print(format_table(("a", "n"), [("x", "1"), ("yy", "10")], {1}))
    a    n
    --  --
    x    1
    yy  10
    """
    widths = [max(len(str(x[i])) for x in [head] + list(rows)) for i in range(len(head))]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(head), fmt(["-" * w for w in widths])]
    for k, cells in enumerate(rows):
        if groups is not None and k and groups[k] != groups[k - 1]:
            lines.append("")
        lines.append(fmt(cells))
    return "\n".join(lines)


def round_robin(items, repeat):
    """Each of ``repeat`` rounds takes every item once, the order rotating.

    >>> list(round_robin(["a", "b"], 2))
    ['a', 'b', 'b', 'a']
    """
    for r in range(repeat):
        k = r % max(1, len(items))
        yield from items[k:] + items[:k]


def sample(call, sample_ns):
    """Mean ns of back-to-back calls filling ``sample_ns``, after a quarter
    of it untimed (run_arrays' lead-in, for a call that runs whole).

    >>> sample(lambda: None, 100_000) > 0
    True
    """
    lead = time.perf_counter_ns() + sample_ns // 4
    call()
    while time.perf_counter_ns() < lead:
        call()
    t0, m = time.perf_counter_ns(), 0
    while True:
        call()
        m += 1
        t = time.perf_counter_ns() - t0
        if t >= sample_ns:
            return t / m


# ---- tape memory -----------------------------------------------------------------------------

def tape_bytes(n_instr=1000, sizes=(1, 1000)):
    """Bytes a tape holds per array instruction beyond the values and adjoints
    of its arrays: {size: (before backward, after backward)}, and the scalar
    figure (bytes per Var instruction, used) for reference.

    >>> b, scalar = tape_bytes(100, (10,)); 100 < b[10][0] < 1000 and scalar > 0
    True
    """
    out = {}
    for n in sizes:
        x = pytape.Tensor(np.linspace(-1.0, 1.0, n))
        with pytape.Tape() as t:
            y = x
            for _ in range(n_instr - 1):  # + the leaf's instruction
                y = y * 0.5
        arrays = len(t)
        before = t.used_nbytes - arrays * n * 8
        y.backward(np.ones(n), retain_graph=True)
        after = t.used_nbytes - arrays * n * 16
        out[n] = (before / arrays, after / arrays)
    with pytape.Tape() as t:
        v = pytape.Var(1.0)
        for _ in range(n_instr):
            v = v * 0.5
    return out, t.used_nbytes / len(t)


# ---- the command line's --arrays -------------------------------------------------------------

def main_arrays(mode, repeat, names, log, print_=print):
    """Run the array benchmarks of ``mode`` ('quick' or 'default'); 0 unless pytape failed.
    numpy's BLAS (pytape's matmul) runs on one thread throughout, as torch
    does here: every section compares engines on one core."""
    threads = _native.blas_threads(1)
    try:
        return _main_arrays(mode, repeat, names, log, print_, threads)
    finally:
        if threads is not None:
            _native.blas_threads(threads)


def _main_arrays(mode, repeat, names, log, print_, threads):
    engines, missing = available_array_engines(names)
    for n, why in missing.items():
        log(f"skipping {n}: {why}")
    sizes = ARRAY_SIZES["quick" if mode == "quick" else "default"]
    rows = run_arrays(list(ARRAY_CASES), sizes, engines, repeat, log,
                      sample_ns=2_000_000 if mode == "quick" else 20_000_000)
    print_("engines: " + ", ".join(f"{e.name} {e.version}".rstrip() for e in engines)
           + "".join(f"; {n}: not installed" for n in missing))
    print_(f"pytape's matmul: {_native.BLAS}"
           + ("" if threads is None else f", set to 1 thread (was {threads}) for pytape's and numpy's matmul in every "
                                         f"section")
           + "; torch: 1 thread; jax: its own thread pool; float64 everywhere")
    print_(f"times: ns per call (per operation for 'ops'; total = wall time, freeing the graph included), median of "
           f"{repeat} samples (each the mean of back-to-back "
           f"calls filling {'2' if mode == 'quick' else '20'} ms, after a quarter of that untimed) "
           "after a warm-up, engines interleaved; "
           "vs pytape = engine / pytape in the same run (> 1: pytape faster); numpy = the same "
           "forward and a hand-written backward with numpy's kernels")
    print_()
    print_(format_arrays(rows))
    from .second_order import SECOND_ORDER_ENGINES, SECOND_ORDER_SIZES, format_second_order, run_second_order
    from .training import TRAINING_CASES, TRAINING_ENGINES, format_training, peak_memory, run_training
    ns = 2_000_000 if mode == "quick" else 20_000_000
    srows = run_second_order(list(SECOND_ORDER_SIZES[mode]), SECOND_ORDER_SIZES[mode],
                             available_array_engines(_with_double_backward(names), SECOND_ORDER_ENGINES)[0], repeat, log,
                             sample_ns=ns)
    print_()
    print_("second order: whole calls (record and sweeps) of the gradient and of a Hessian-vector product H v "
           "(pytape: forward over reverse; torch: double backward; autograd: hessian_vector_product; jax: jvp "
           "of grad), same timing")
    print_()
    print_(format_second_order(srows))
    trows = run_training(list(TRAINING_CASES), available_array_engines(names, TRAINING_ENGINES)[0], repeat, log,
                         sample_ns=ns)
    if mode != "quick":
        for row in trows:
            if not row.note:
                row.peak = peak_memory(row.engine, row.case)
    print_()
    print_(f"training steps: zero grads, forward (Linear, ReLU, Linear), softmax cross-entropy, backward, SGD "
           f"with momentum; each engine's own nn and optim (autograd, jax: grad and the update in their numpy); "
           f"same timing; peak memory: the high-water mark of resident memory over 50 steps above the memory "
           f"before them, in a fresh process{' (not measured with --quick)' if mode == 'quick' else ''}")
    print_()
    print_(format_training(trows))
    from .batches import BATCH_CASES, BATCH_SIZES, format_batches, run_batches
    brows = run_batches({c: BATCH_SIZES[mode] for c in BATCH_CASES}, repeat,
                        sample_ns=20_000_000 if mode == "quick" else 200_000_000)
    print_()
    print_("batches of a traced program: fn.gradient(X), the rows replayed on 1 thread and split over every "
           "core (fn.threads), medians interleaved")
    print_()
    print_(format_batches(brows))
    from .memory import CHECKPOINT_SIZES, format_checkpoint, ode_checkpoint
    n, steps, block = CHECKPOINT_SIZES[mode]
    print_()
    print_("checkpointing (pytape.checkpoint), in fresh processes:")
    print_(format_checkpoint(ode_checkpoint(n, steps, block), n, steps, block))
    per, scalar = tape_bytes()
    print_()
    print_("pytape tape bytes per array instruction beyond its values (and adjoints), used: "
           + ", ".join(f"n={n}: {b:.0f} before backward, {a:.0f} after" for n, (b, a) in per.items())
           + f"; scalar Var instruction: {scalar:.1f}")
    return 1 if any(r.engine == "pytape" and r.note for r in rows + srows + trows) else 0
