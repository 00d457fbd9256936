"""``python -m pytape bench --codegen``: generated C (``fn.compile_c()``)
against the compiled function's replay, ``jax.jit`` and CasADi.

The chained Rosenbrock function at n = 10^4 (``--quick``: 10^3), value and
gradient:

* pytape replay: ``fn.value_and_grad(x)`` of ``pytape.trace(f, x,
  elementwise=True)``, one point per call, and a batch of 100 points in one
  call (one thread);
* pytape generated C: the same calls on ``fn.compile_c()`` (compile time
  reported; a build found in the cache is rebuilt for the timing);
* ``jax.jit(jax.value_and_grad(f))`` of the vectorised numpy program (when
  installed);
* Hessian-vector products along one direction: ``fn.hvp(x, v)`` (the
  replay's forward over reverse), ``gen.hvp(x, v)`` (generated), and
  ``jax.jit`` of ``jax.jvp(jax.grad(f))``;
* CasADi (when installed): its SX virtual machine (``Function`` of the value
  and ``casadi.gradient``), and its generated C compiled with ``gcc -O1``
  (``Function.generate`` and ``casadi.Importer``), given at most
  ``CASADI_COMPILE_LIMIT`` seconds to compile.

Times per point are medians of the repeats (engines interleaved, each
repeat timing about 20 ms of calls); every result is checked against the
replay's.

>>> rows = run_codegen(300, repeat=1, others=False)
>>> [r[0] for r in rows][:2], rows[0][2] > 0
(['pytape replay', 'pytape replay, batch of 100'], True)
"""
import multiprocessing
import os
import signal
import statistics
import tempfile
import time

import numpy as np

import pytape

__all__ = ["CODEGEN_SIZES", "run_codegen", "main_codegen"]

CODEGEN_SIZES = {"quick": 1000, "default": 10_000}
CASADI_COMPILE_LIMIT = 120.0
BATCH = 100


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _casadi_generated(n, directory, queue):
    """In a child process, leader of its own process group (its compile, gcc
    started by CasADi, can be stopped with it): CasADi's generated C, compiled and timed."""
    os.setsid()
    import casadi as ca
    x = ca.SX.sym("x", n)
    f = ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    F = ca.Function("vg", [x], [f, ca.gradient(f, x)])
    os.chdir(directory)
    t0 = time.perf_counter()
    F.generate("vg.c")
    G = ca.external("vg", ca.Importer("vg.c", "shell", {"compiler": "gcc", "compiler_flags": ["-O1"]}))
    queue.put(("compiled", time.perf_counter() - t0))
    xv = np.linspace(-1.0, 1.0, n)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(20):
            G(xv)
        times.append((time.perf_counter() - t) / 20)
    queue.put(("timed", statistics.median(times), float(G(xv)[0])))


def run_codegen(n, repeat=5, others=True, log=None):
    """Rows of (engine, compile seconds or None, seconds per point, ns per instruction)."""
    x = np.linspace(-1.0, 1.0, n)
    X = np.random.default_rng(0).uniform(-1.0, 1.0, size=(BATCH, n))
    fn = pytape.trace(rosenbrock, x, elementwise=True)
    fn.threads = 1
    ops = fn.num_ops
    with tempfile.TemporaryDirectory() as cache:  # a fresh cache: the compile is timed
        gen = fn.compile_c(directory=cache)
    want_v, want_g = fn.value_and_grad(x)
    got_v, got_g = gen.value_and_grad(x)
    assert got_v == want_v and np.array_equal(got_g, want_g), "generated C differs from the replay"
    d = np.cos(np.arange(n))  # the direction of the Hessian-vector products
    assert np.array_equal(gen.hvp(x, d), fn.hvp(x, d)), "generated C's hvp differs from the replay's"
    engines = [("pytape replay", None, lambda: fn.value_and_grad(x), 1),
               (f"pytape replay, batch of {BATCH}", None, lambda: fn.value_and_grad(X), BATCH),
               ("pytape generated C", gen.compile_seconds, lambda: gen.value_and_grad(x), 1),
               (f"pytape generated C, batch of {BATCH}", gen.compile_seconds, lambda: gen.value_and_grad(X), BATCH),
               ("hvp: pytape replay", None, lambda: fn.hvp(x, d), 1),
               ("hvp: pytape generated C", gen.compile_seconds, lambda: gen.hvp(x, d), 1)]
    if others:
        try:
            import jax
            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp
            jf = jax.jit(jax.value_and_grad(lambda v: jnp.sum(100.0 * (v[1:] - v[:-1] ** 2) ** 2
                                                                 + (1.0 - v[:-1]) ** 2)))
            xj = jnp.asarray(x)
            v, g = jf(xj)
            assert abs(float(v) - want_v) <= 1e-9 * abs(want_v) and np.allclose(np.asarray(g), want_g, rtol=1e-12)
            engines.append(("jax.jit", None, lambda: jax.block_until_ready(jf(xj)), 1))
            jh = jax.jit(lambda p, t: jax.jvp(jax.grad(lambda u: jnp.sum(100.0 * (u[1:] - u[:-1] ** 2) ** 2
                                                                            + (1.0 - u[:-1]) ** 2)), (p,), (t,))[1])
            dj = jnp.asarray(d)
            assert np.allclose(np.asarray(jh(xj, dj)), fn.hvp(x, d), rtol=1e-12, atol=1e-9)
            engines.append(("hvp: jax.jit (jvp of grad)", None, lambda: jax.block_until_ready(jh(xj, dj)), 1))
        except ImportError:
            pass
        try:
            import casadi as ca
            s = ca.SX.sym("x", n)
            fc = ca.sum1(100 * (s[1:] - s[:-1] ** 2) ** 2 + (1 - s[:-1]) ** 2)
            F = ca.Function("vg", [s], [fc, ca.gradient(fc, s)])
            assert np.allclose(np.asarray(F(x)[1]).ravel(), want_g, rtol=1e-12)
            engines.append(("casadi (SX virtual machine)", None, lambda: F(x), 1))
        except ImportError:
            pass
    times = {name: [] for name, *_ in engines}
    number = {}
    for name, _, call, _ in engines:  # calls per timing: about 20 ms of them (one call is too short to time)
        call()
        t = time.perf_counter()
        call()
        number[name] = max(1, min(1000, int(0.02 / max(time.perf_counter() - t, 1e-9))))
    for _ in range(repeat):
        for name, _, call, points in engines:
            call()  # warm
            t = time.perf_counter()
            for _ in range(number[name]):
                call()
            times[name].append((time.perf_counter() - t) / points / number[name])
    rows = [(name, comp, statistics.median(times[name]), statistics.median(times[name]) / ops * 1e9)
            for name, comp, _, _ in engines]
    if others:
        try:
            import casadi  # noqa: F401
        except ImportError:
            return rows
        if log:
            log(f"codegen bench: CasADi's generated C for n={n} (at most {CASADI_COMPILE_LIMIT:.0f} s to compile) ...")
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        with tempfile.TemporaryDirectory() as d:
            p = ctx.Process(target=_casadi_generated, args=(n, d, queue))
            p.start()
            compiled = timed = None
            try:
                compiled = queue.get(timeout=CASADI_COMPILE_LIMIT)
                timed = queue.get(timeout=120)
            except Exception:
                pass
            try:  # the child and the compiler it started
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.join()
        if timed is not None:
            rows.append(("casadi generated C (gcc -O1)", compiled[1], timed[1], timed[1] / ops * 1e9))
        else:
            rows.append((f"casadi generated C (gcc -O1): not compiled within {CASADI_COMPILE_LIMIT:.0f} s", None,
                         float("nan"), float("nan")))
    return rows


def main_codegen(mode, repeat, log):
    """``--codegen``: run and print the table; returns the exit status."""
    n = CODEGEN_SIZES[mode]
    rows = run_codegen(n, repeat, log=log)
    ops = pytape.trace(rosenbrock, np.zeros(n), elementwise=True).num_ops
    print(f"chained Rosenbrock n={n} ({ops} instructions), value and gradient (hvp: a Hessian-vector product); "
          f"median of {repeat}, engines interleaved; one thread")
    print()
    print("| engine | compile | time per point | ns per instruction | vs pytape replay (of the same) |")
    print("|---|---|---|---|---|")
    bases = {name.startswith("hvp:"): t for name, _, t, _ in rows if name in ("pytape replay", "hvp: pytape replay")}
    for name, comp, t, per in rows:
        base = bases[name.startswith("hvp:")]
        c = "" if comp is None else f"{comp:.2f} s"
        speed = "" if t != t else f"{base / t:.2f}x"
        tt = "" if t != t else f"{t * 1e3:.3f} ms"
        pp = "" if t != t else f"{per:.2f}"
        print(f"| {name} | {c} | {tt} | {pp} | {speed} |")
    return 0
