"""``python -m pytape bench --arrays``, second part: Hessian-vector products
of array programs against their gradients, in each engine.

Each program is ``f(xp, x, *consts)`` against a numpy-like namespace, as in
:mod:`pytape.bench.arrays`; every engine computes, as a whole call (record
and sweeps), its gradient at x and its Hessian-vector product H v:

* pytape: ``pytape.grad`` and ``pytape.hvp`` (forward over reverse through
  the array instructions, csrc/sweep_hessian.c);
* pytape-double-backward: the same double backward as torch's, on pytape
  (``pytape.autograd.grad(..., create_graph=True)`` records the gradient as
  Tensor operations, pytape/array_adjoints.py; then its vjp with v);
* torch: ``torch.autograd.grad`` and the double backward (the gradient
  recorded with ``create_graph=True``, then its vjp with v);
* HIPS autograd: ``grad`` and ``hessian_vector_product``;
* JAX eager and under ``jax.jit``: ``jax.grad`` and ``jax.jvp`` of it
  (forward over reverse).

>>> rows = run_second_order(["rosenbrock"], {"rosenbrock": [100]}, [SECOND_ORDER_ENGINES["pytape"]()], repeat=1,
...                         sample_ns=1_000_000)
>>> rows[0].engine, rows[0].ratio() > 0
('pytape', True)
"""
import statistics
from typing import Callable, List, NamedTuple

import numpy as np

import pytape

from .arrays import _TorchOps, _fmt, _rng, format_table, round_robin, sample

__all__ = ["SECOND_ORDER_CASES", "SECOND_ORDER_SIZES", "SECOND_ORDER_ENGINES", "run_second_order",
           "format_second_order"]


def _rosenbrock(xp, x):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _mlp_mse(xp, W1, X, W2, Y):
    return xp.sum((xp.tanh(X @ W1) @ W2 - Y) ** 2) * (1.0 / len(X))


class Case(NamedTuple):
    name: str
    label: Callable[[int], str]
    inputs: Callable[[int], list]  # size -> [x, *constants]
    f: Callable


def _mlp_inputs(n):
    r = _rng()
    return [r.normal(scale=0.05, size=(784, n)), r.normal(size=(128, 784)), r.normal(scale=0.1, size=(n, 10)),
            r.normal(size=(128, 10))]


SECOND_ORDER_CASES = {
    "rosenbrock": Case("rosenbrock", lambda n: f"n={n:.0e}", lambda n: [np.linspace(-1.0, 1.0, n)], _rosenbrock),
    "mlp": Case("mlp", lambda n: f"batch 128, 784-{n}-10 (W1)", _mlp_inputs, _mlp_mse),
}
SECOND_ORDER_SIZES = {"quick": {"rosenbrock": [1000], "mlp": [32]},
                      "default": {"rosenbrock": [10 ** 3, 10 ** 5], "mlp": [256]}}


# ---- the engines: (grad(x), hvp(x, v)) as whole calls ----------------------------------------

class PytapeSecond:
    name = "pytape"

    def __init__(self):
        self.version = pytape.__version__

    def make(self, f, consts):
        g = pytape.grad(lambda x: f(np, x, *consts))
        return g, lambda x, v: pytape.hvp(lambda y: f(np, y, *consts), x, v), lambda a: np.asarray(a), lambda a: a


class PytapeDoubleBackward:
    name = "pytape-double-backward"

    def __init__(self):
        self.version = pytape.__version__

    def make(self, f, consts):
        def hvp(x, v):
            xt = pytape.Tensor(x)
            (g,) = pytape.autograd.grad(f(np, xt, *consts), xt, create_graph=True)
            return pytape.autograd.grad(g, xt, grad_outputs=v)[0]
        return pytape.grad(lambda x: f(np, x, *consts)), hvp, lambda a: np.asarray(a), lambda a: a


class TorchSecond:
    name = "torch"

    def __init__(self):
        import torch
        self.torch, self.version = torch, torch.__version__
        torch.set_num_threads(1)
        self.ops = _TorchOps(torch)

    def make(self, f, consts):
        T, ops = self.torch, self.ops
        cs = [T.from_numpy(np.array(c)) for c in consts]

        def grad(x):
            x = x.detach().requires_grad_()
            return T.autograd.grad(f(ops, x, *cs), x)[0]

        def hvp(x, v):
            x = x.detach().requires_grad_()
            (g,) = T.autograd.grad(f(ops, x, *cs), x, create_graph=True)
            return T.autograd.grad(g, x, grad_outputs=v)[0]
        return grad, hvp, lambda a: a.detach().numpy(), lambda a: T.from_numpy(np.array(a))


class AutogradSecond:
    name = "autograd"

    def __init__(self):
        import autograd
        import autograd.numpy as anp
        self.ag, self.anp = autograd, anp
        from importlib import metadata
        self.version = metadata.version("autograd")

    def make(self, f, consts):
        fx = lambda x: f(self.anp, x, *consts)  # noqa: E731
        return self.ag.grad(fx), self.ag.hessian_vector_product(fx), np.asarray, lambda a: a


class JaxSecond:
    def __init__(self, jit=False):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        self.jax, self.jnp, self.jit = jax, jnp, jit
        self.name, self.version = ("jax-jit" if jit else "jax"), jax.__version__

    def make(self, f, consts):
        jax, jnp = self.jax, self.jnp
        cs = [jnp.asarray(c) for c in consts]
        g = jax.grad(lambda x: f(jnp, x, *cs))
        h = lambda x, v: jax.jvp(g, (x,), (v,))[1]  # noqa: E731
        if self.jit:
            g, h = jax.jit(g), jax.jit(h)
        block = jax.block_until_ready
        return (lambda x: block(g(x))), (lambda x, v: block(h(x, v))), np.asarray, jnp.asarray


SECOND_ORDER_ENGINES = {"pytape": PytapeSecond, "pytape-double-backward": PytapeDoubleBackward, "torch": TorchSecond,
                        "autograd": AutogradSecond, "jax": JaxSecond, "jax-jit": lambda: JaxSecond(jit=True)}


# ---- the runner ------------------------------------------------------------------------------

class SecondRow:
    """One engine on one program: ns per whole call of the gradient and of H v, per sample."""

    def __init__(self, case, size, engine):
        self.case, self.size, self.engine = case, size, engine
        self.grad: List[float] = []
        self.hvp: List[float] = []
        self.note = ""

    def median(self, what):
        xs = getattr(self, what)
        return statistics.median(xs) if xs and not self.note else None

    def ratio(self):
        g, h = self.median("grad"), self.median("hvp")
        return h / g if g and h else None


def run_second_order(cases, sizes, engines, repeat=5, log=None, sample_ns=20_000_000):
    """Time every engine's gradient and H v on each program, engines
    round-robin (the order rotating), after a warm-up call that checks both
    against pytape's (H v also against central differences of pytape's
    gradient); medians of ``repeat`` samples."""
    rows = []
    for cname in cases:
        case = SECOND_ORDER_CASES[cname]
        for n in sizes[cname]:
            x, *consts = case.inputs(n)
            v = np.cos(np.arange(x.size)).reshape(x.shape)
            ref = PytapeSecond().make(case.f, consts)
            g_want, h_want = ref[0](x), ref[1](x, v)
            eps = 1e-6
            h_fd = (ref[0](x + eps * v) - ref[0](x - eps * v)) / (2 * eps)
            if not np.allclose(h_want, h_fd, rtol=1e-4, atol=1e-6 * np.abs(h_fd).max()):
                raise AssertionError(f"{cname}: pytape's H v differs from central differences of its gradient")
            mine, calls = {}, {}
            for e in engines:
                row = mine[e.name] = SecondRow(cname, case.label(n), e.name)
                try:
                    grad, hvp, out, inp = e.make(case.f, consts)
                    xe, ve = inp(x), inp(v)
                    if not (np.allclose(out(grad(xe)), g_want, rtol=1e-8, atol=1e-12)
                            and np.allclose(out(hvp(xe, ve)), h_want, rtol=1e-7, atol=1e-10)):
                        raise AssertionError("its gradient or H v differs from pytape's")
                    calls[e.name] = (lambda g=grad, xe=xe: g(xe)), (lambda h=hvp, xe=xe, ve=ve: h(xe, ve))
                except Exception as exc:
                    row.note = f"{type(exc).__name__}: {str(exc)[:100]}"
            live = [e for e in engines if not mine[e.name].note]
            for e in round_robin(live, repeat):
                g, h = calls[e.name]
                mine[e.name].grad.append(sample(g, sample_ns))
                mine[e.name].hvp.append(sample(h, sample_ns))
            if log is not None:
                for row in mine.values():
                    log(f"second order {cname} {row.size}: {row.engine:<8} " + (
                        row.note or f"grad {_fmt(row.median('grad'))} ns, hvp {_fmt(row.median('hvp'))} ns"))
            rows.extend(mine.values())
    return rows


def format_second_order(rows):
    """The table: whole-call ns of the gradient and of H v, hvp / grad in each
    engine, and each engine's H v against pytape's (> 1: pytape faster)."""
    head = ("program", "size", "engine", "grad", "hvp", "hvp / grad", "hvp vs pytape", "note")
    out = []
    for row in rows:
        base = next((r for r in rows if r.engine == "pytape" and (r.case, r.size) == (row.case, row.size)), None)
        h, b = row.median("hvp"), base.median("hvp") if base else None
        out.append((row.case, row.size, row.engine, _fmt(row.median("grad")), _fmt(h),
                    f"{row.ratio():.2f}" if row.ratio() else "",
                    f"{h / b:.2f}" if h and b and row is not base else "", row.note))
    return format_table(head, out, {3, 4, 5, 6})
