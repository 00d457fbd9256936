"""``python -m pytape bench --sparse``: sparse Hessians and Jacobians
(pytape/sparse.py) against CasADi's and against pytape's dense ones.

Cases, at n = 10^3, 10^4, 10^5 (``--quick``: 10^2, 10^3):

* the Hessian of the chained Rosenbrock function (tridiagonal; 3 colours is
  the minimum);
* the Jacobian of banded constraints with one dense row:
  ``c_i = x_{i-1} x_i x_{i+1} - 1`` and ``sum(x) - n``.

Engines, each timed as *setup* (once: pytape records f with
``pytape.trace(f, x, elementwise=True)`` and its first sparse call finds the
pattern and colouring; CasADi builds the SX expression, ``casadi.hessian``
or ``casadi.jacobian`` and a ``casadi.Function`` and calls it once) and
*per call* (median of the repeats, engines interleaved, at a new point each
time: pytape replays the tape and runs the compressed sweeps; CasADi
evaluates its Function):

* pytape: ``fn.sparse_hessian(x)`` / ``fn.sparse_jacobian(x)``;
* pytape-array: the same of ``pytape.trace(f, x)``, an array program (the
  pattern from f recorded element by element, the sweeps on the array tape);
* pytape-generated (Hessian): ``fn.compile_c().sparse_hessian(x)``, one
  generated forward-over-reverse pass with a lane per colour; its setup
  includes compiling (in a fresh cache directory);
* casadi (when installed): SX graphs, as CasADi's users write them;
* pytape-dense: ``fn.hessian(x)`` / ``fn.jacobian(x)`` where n <= 2000.

Every engine's result is checked against pytape's sparse one (max relative
difference below 1e-9) before a time is reported.

A constrained problem, solved whole (once per engine; the time includes
tracing, patterns and colourings):
``min sum((x - 0.3)^2) + 0.1 sum(x_{i+1} x_i^2)`` subject to
``x_i x_{i+1} >= 0.2``, from x = 1, n = 10^3 and 10^4 (``--quick``: 300):
``pytape.optimize.minimize(..., method="trust-constr")`` with sparse
derivatives, the same with dense ones (n <= 1000), ``pytape.optimize.ipopt``
(IPOPT through cyipopt with pytape's sparse derivatives, when installed),
and CasADi's IPOPT (``casadi.nlpsol``, exact sparse derivatives of its own)
for reference.

>>> rows = run_sparse([100], repeat=1)
>>> {"pytape", "pytape-array", "pytape-generated", "pytape-dense"} <= {r.engine for r in rows}, rows[0].colours
(True, 3)
"""
import statistics
import time
from typing import NamedTuple, Optional

import numpy as np

import pytape

__all__ = ["SPARSE_SIZES", "CONSTRAINED_SIZES", "run_sparse", "format_sparse", "run_constrained",
           "format_constrained", "main_sparse"]

SPARSE_SIZES = {"quick": [100, 1000], "default": [1000, 10_000, 100_000]}
CONSTRAINED_SIZES = {"quick": [300], "default": [1000, 10_000]}
DENSE_MAX = 2000  # pytape's dense Hessian / Jacobian up to this n (n^2 doubles)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def constraints(x):
    return np.concatenate([x[:-2] * x[1:-1] * x[2:] - 1.0, [np.sum(x) - len(x)]])


class Row(NamedTuple):
    case: str
    n: int
    engine: str
    setup: float           # seconds, once
    per_call: float        # seconds, median
    nnz: int
    colours: Optional[int]  # sweeps per call (pytape's sparse rows)


def _pytape(case, x):
    f = rosenbrock if case == "hessian" else constraints
    t0 = time.perf_counter()
    fn = pytape.trace(f, x, elementwise=True)
    first = fn.sparse_hessian(x) if case == "hessian" else fn.sparse_jacobian(x)
    setup = time.perf_counter() - t0
    plans = fn._tapes[0].origin._sparse_plans
    plan = next(iter(plans.values()))
    call = fn.sparse_hessian if case == "hessian" else fn.sparse_jacobian
    return setup, call, first, plan.sweeps


def _array(case, x):
    f = rosenbrock if case == "hessian" else constraints
    t0 = time.perf_counter()
    fn = pytape.trace(f, x)
    call = fn.sparse_hessian if case == "hessian" else fn.sparse_jacobian
    first = call(x)
    plan = next(iter(fn._tapes[0]._sparse_plans.values()))
    return time.perf_counter() - t0, call, first, plan.sweeps


def _generated(case, x):
    import tempfile
    t0 = time.perf_counter()
    fn = pytape.trace(rosenbrock, x, elementwise=True)
    with tempfile.TemporaryDirectory() as cache:  # a fresh cache: the compile is part of the setup
        gen = fn.compile_c(directory=cache)
    first = gen.sparse_hessian(x)
    plan = fn._tapes[0].origin._sparse_plans["sparse_hessian"]
    return time.perf_counter() - t0, gen.sparse_hessian, first, plan.sweeps


def _dense(case, x):
    f = rosenbrock if case == "hessian" else constraints
    t0 = time.perf_counter()
    fn = pytape.trace(f, x, elementwise=True)
    call = fn.hessian if case == "hessian" else fn.jacobian
    first = call(x)
    return time.perf_counter() - t0, call, first, None


def _casadi(case, x):
    import casadi as ca
    n = len(x)
    t0 = time.perf_counter()
    s = ca.SX.sym("x", n)
    if case == "hessian":
        f = ca.sum1(100 * (s[1:] - s[:-1] ** 2) ** 2 + (1 - s[:-1]) ** 2)
        D = ca.hessian(f, s)[0]
    else:
        c = ca.vertcat(s[:-2] * s[1:-1] * s[2:] - 1, ca.sum1(s) - n)
        D = ca.jacobian(c, s)
    F = ca.Function("d", [s], [D])
    first = F(x)
    setup = time.perf_counter() - t0
    return setup, lambda v: F(v), first, None


def _as_array(M):
    if hasattr(M, "toarray"):
        return M.toarray()
    if hasattr(M, "full"):
        return np.asarray(M.full())
    return np.asarray(M)


def _nnz(M):
    if hasattr(M, "nnz") and not callable(M.nnz):
        return int(M.nnz)
    if hasattr(M, "nnz"):
        return int(M.nnz())
    return int(np.count_nonzero(M))


def _engines(n, case):
    out = [("pytape", _pytape), ("pytape-array", _array)]
    if case == "hessian":
        out.append(("pytape-generated", _generated))
    try:
        import casadi  # noqa: F401
        out.append(("casadi", _casadi))
    except ImportError:
        pass
    if n <= DENSE_MAX:
        out.append(("pytape-dense", _dense))
    return out


def run_sparse(sizes, repeat=5, log=None, cases=("hessian", "jacobian")):
    """Rows of (case, n, engine, setup s, per-call s, nnz, sweeps) for each size."""
    rows = []
    for case in cases:
        for n in sizes:
            rng = np.random.default_rng(n)
            x = rng.uniform(0.5, 1.5, n)
            made = {}
            for name, make in _engines(n, case):
                if log:
                    log(f"sparse {case} n={n}: {name} setup ...")
                made[name] = make(case, x)
            times = {name: [] for name in made}
            for r in range(repeat):
                xr = x + 0.01 * (r + 1)
                outs = {}
                for name, (_, call, _, _) in made.items():
                    t0 = time.perf_counter()
                    outs[name] = call(xr)
                    times[name].append(time.perf_counter() - t0)
                if r == 0:  # the engines agree at this point
                    want = outs["pytape"]
                    for name, got in outs.items():
                        if name != "pytape":
                            _check(want, got, f"{case} n={n} {name}")
            for name, (setup, _, first, sweeps) in made.items():
                rows.append(Row(case, n, name, setup, statistics.median(times[name]), _nnz(first), sweeps))
    return rows


def _check(want, got, what):
    if type(got).__module__.startswith("casadi"):  # a casadi DM: compare on the sparse entries
        got = _casadi_to_scipy(got)
    if hasattr(got, "toarray") and hasattr(want, "toarray"):
        diff = abs(want - got).max()
        scale = max(1.0, abs(want).max())
    else:
        w, g = _as_array(want), _as_array(got)
        diff, scale = np.abs(w - g).max(), max(1.0, np.abs(w).max())
    if not diff <= 1e-9 * scale:
        raise AssertionError(f"{what}: differs from pytape's sparse result by {diff:.3g}")


def _casadi_to_scipy(D):
    import scipy.sparse as sp
    s = D.sparsity()
    colind, row = np.array(s.colind()), np.array(s.row())
    return sp.csc_matrix((np.array(D.nonzeros()), row, colind), shape=D.shape).tocsr()


def _fmt_s(t):
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def format_sparse(rows):
    """The table: per case and n, each engine's setup and per-call times, and pytape's ratios."""
    lines = ["| case | n | engine | setup (pattern, colouring, first call) | per call (median) | "
             "per call / n | sweeps per call | casadi / pytape per call | casadi / pytape setup |",
             "|---|---|---|---|---|---|---|---|---|"]
    by = {(r.case, r.n, r.engine): r for r in rows}
    for r in rows:
        ratio = setup_ratio = ""
        if r.engine.startswith("pytape") and r.engine != "pytape-dense" and (r.case, r.n, "casadi") in by:
            c = by[(r.case, r.n, "casadi")]
            ratio, setup_ratio = f"{c.per_call / r.per_call:.2f}", f"{c.setup / r.setup:.2f}"
        label = "Hessian, chained Rosenbrock" if r.case == "hessian" else "Jacobian, banded + a dense row"
        lines.append(f"| {label} | {r.n:.0e} | {r.engine} | {_fmt_s(r.setup)} | {_fmt_s(r.per_call)} | "
                     f"{r.per_call / r.n * 1e9:.0f} ns | {r.colours if r.colours is not None else ''} | {ratio} | "
                     f"{setup_ratio} |")
    return "\n".join(lines)


def banded_objective(x):
    return np.sum((x - 0.3) ** 2) + 0.1 * np.sum(x[1:] * x[:-1] ** 2)


def banded_constraint(x):
    return x[1:] * x[:-1]


class Solve(NamedTuple):
    n: int
    engine: str
    seconds: float
    f: float
    iterations: int
    status: str


def _solve_pytape(n, sparse):
    import pytape.optimize
    from scipy.optimize import NonlinearConstraint
    t0 = time.perf_counter()
    res = pytape.optimize.minimize(banded_objective, np.ones(n), method="trust-constr", sparse=sparse,
                                   constraints=[NonlinearConstraint(banded_constraint, 0.2, np.inf)],
                                   options={"maxiter": 1000})
    took = time.perf_counter() - t0
    ok = res.success and res.constr_violation < 1e-6
    return took, float(res.fun), int(res.nit), "converged" if ok else res.message


def _solve_pytape_ipopt(n):
    import pytape.optimize
    from scipy.optimize import NonlinearConstraint
    t0 = time.perf_counter()
    res = pytape.optimize.ipopt(banded_objective, np.ones(n),
                                constraints=[NonlinearConstraint(banded_constraint, 0.2, np.inf)])
    return time.perf_counter() - t0, float(res.fun), int(res.nit), "converged" if res.success else res.message


def _solve_ipopt(n):
    import casadi as ca
    t0 = time.perf_counter()
    x = ca.SX.sym("x", n)
    f = ca.sumsqr(x - 0.3) + 0.1 * ca.sum1(x[1:] * x[:-1] ** 2)
    solver = ca.nlpsol("S", "ipopt", {"x": x, "f": f, "g": x[1:] * x[:-1]},
                       {"ipopt.print_level": 0, "print_time": 0, "ipopt.sb": "yes"})
    r = solver(x0=np.ones(n), lbg=0.2, ubg=np.inf)
    stats = solver.stats()
    return (time.perf_counter() - t0, float(r["f"]), int(stats["iter_count"]),
            "converged" if stats["success"] else stats["return_status"])


def run_constrained(sizes, log=None):
    """One whole solve per engine and size: rows of (n, engine, seconds, f, iterations, status)."""
    rows = []
    for n in sizes:
        runs = [("pytape trust-constr, sparse", lambda: _solve_pytape(n, True))]
        if n <= 1000:
            runs.append(("pytape trust-constr, dense", lambda: _solve_pytape(n, False)))
        try:
            import cyipopt  # noqa: F401
            runs.append(("pytape + ipopt (cyipopt)", lambda: _solve_pytape_ipopt(n)))
        except ImportError:
            pass
        try:
            import casadi  # noqa: F401
            runs.append(("casadi + ipopt", lambda: _solve_ipopt(n)))
        except ImportError:
            pass
        for name, run in runs:
            if log:
                log(f"constrained n={n}: {name} ...")
            rows.append(Solve(n, name, *run()))
    return rows


def format_constrained(rows):
    lines = ["| n | solver | time (whole solve) | f at the end | iterations | status | time / pytape sparse |",
             "|---|---|---|---|---|---|---|"]
    base = {r.n: r.seconds for r in rows if r.engine == "pytape trust-constr, sparse"}
    for r in rows:
        lines.append(f"| {r.n:.0e} | {r.engine} | {_fmt_s(r.seconds)} | {r.f:.6f} | {r.iterations} | {r.status} | "
                     f"{r.seconds / base[r.n]:.2f} |")
    return "\n".join(lines)


def main_sparse(mode, repeat, log):
    """``--sparse``: run and print the table; returns the exit status."""
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("the sparse benchmarks need scipy: pip install scipy")
        return 1
    rows = run_sparse(SPARSE_SIZES[mode], repeat, log)
    versions = ["pytape " + pytape.__version__]
    try:
        import casadi
        versions.append("casadi " + casadi.__version__)
    except ImportError:
        versions.append("casadi: not installed (pip install casadi)")
    print("engines: " + ", ".join(versions))
    print(f"times: setup once; per call the median of {repeat}, engines interleaved, each at a new point; "
          "results checked equal")
    print()
    print(format_sparse(rows))
    print()
    print("constrained: min sum((x - 0.3)^2) + 0.1 sum(x[1:] x[:-1]^2), x[1:] x[:-1] >= 0.2, from x = 1 "
          "(each solver once, tracing and setup included)")
    print()
    print(format_constrained(run_constrained(CONSTRAINED_SIZES[mode], log)))
    return 0
