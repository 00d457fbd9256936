"""``python -m pytape bench``: the command line (``main``), its run modes and the report.

``SIZES`` holds the sizes of each mode (``--quick``, default, ``--full``);
``format_table`` prints the results of ``run_case``.
"""
import argparse
import datetime
import os
import platform
import sys

from .engines import ENGINES, EngineError, available_engines, load_engine
from .runner import _ns, _ratio, run_case
from .workloads import WORKLOADS
from .arrays import ARRAY_ENGINES, main_arrays
from .sparse import main_sparse
from .dask_batches import main_dask
from .generated_c import main_codegen

__all__ = ["SIZES", "BIG", "format_table", "main"]


#: sizes per mode; in the default mode, sizes in BIG run only on engines with ``big``
SIZES = {
    "quick": {"chain": [100, 1000], "rosenbrock": [100], "mlp": [10]},
    "default": {"chain": [10**3, 10**4, 10**5, 10**6], "rosenbrock": [10**2, 10**3, 10**4], "mlp": [100]},
    "full": {"chain": [10**3, 10**4, 10**5, 10**6], "rosenbrock": [10**2, 10**3, 10**4, 10**5], "mlp": [100]},
}
BIG = {("chain", 10**6)}


def format_table(rows):
    """The results as a text table; speed-ups are other engine / pytape, case by case.

    >>> from pytape.bench.runner import Row
    >>> print(format_table([
    ...     Row("chain", "D=100", "pytape", 500, record=[5000], backward=[2500], total=[7500]),
    ...     Row("chain", "D=100", "reference", 500, record=[40000], backward=[60000], total=[100000]),
    ... ]))
    workload  size   engine     ops  record  backward  update  total  pytape× rec  pytape× total  note
    --------  -----  ---------  ---  ------  --------  ------  -----  -----------  -------------  ----
    chain     D=100  pytape     500    10.0       5.0           15.0
    chain     D=100  reference  500    80.0       120            200        8.00x            13x
    """
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
    p.add_argument("--engines", default=None, metavar="LIST",
                   help=f"built-in engines to compare (default: {','.join(ENGINES)}; with --arrays: "
                   f"{','.join(ARRAY_ENGINES)}; missing optional ones are skipped)")
    p.add_argument("--arrays", action="store_true",
                   help="benchmark pytape.Tensor (array instructions) against numpy's own kernels, PyTorch, "
                   "HIPS autograd and JAX instead: per-op overhead, bandwidth, BLAS, logistic regression, "
                   "MLP, tape bytes per instruction (with --quick: small sizes)")
    p.add_argument("--sparse", action="store_true",
                   help="benchmark sparse Hessians and Jacobians (pattern, colouring, compressed sweeps) against "
                   "CasADi's and pytape's dense ones (with --quick: small sizes)")
    p.add_argument("--dask", action="store_true",
                   help="benchmark a compiled function's values and gradients at 10^6 points on a Dask "
                   "LocalCluster of 2 processes against one process (with --quick: 10^5)")
    p.add_argument("--codegen", action="store_true",
                   help="benchmark generated C (fn.compile_c()) against the replay, jax.jit and CasADi on the "
                   "chained Rosenbrock function, value and gradient (with --quick: n = 10^3)")
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
    if args.arrays + args.sparse + args.dask + args.codegen > 1:
        p.error("choose one of --arrays, --sparse, --dask, --codegen")
    if args.arrays:
        return _arrays(p, args)
    if args.sparse:
        return _sparse(p, args)
    if args.dask:
        return _other(p, args, "--dask", main_dask)
    if args.codegen:
        return _other(p, args, "--codegen", main_codegen)
    if args.engines is None:
        args.engines = ",".join(ENGINES)
    workloads = [w for w in args.workloads.split(",") if w]
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad or not workloads:
        p.error(f"--workloads: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(WORKLOADS)}")
    names = [n for n in args.engines.split(",") if n]
    bad = [n for n in names if n not in ENGINES]
    if bad or not (names or args.engine):
        p.error(f"--engines: {'unknown ' + ', '.join(bad) if bad else 'an empty list'}; choose from {', '.join(ENGINES)} "
                f"(use --engine MODULE:CLASS for your own)")
    try:
        custom = [load_engine(spec) for spec in dict.fromkeys(args.engine)]
    except EngineError as exc:
        p.error(str(exc))
    engines, missing = available_engines(names)
    if not engines and not custom:
        p.error(f"--engines: none of {', '.join(names)} can run here ("
                + "; ".join(f"{n}: {why}" for n, why in missing.items()) + "); install one, or choose others")
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


def _arrays(p, args):
    """``--arrays``: the array benchmarks (pytape/bench/arrays.py)."""
    if args.full or args.engine or args.deep:
        p.error("--arrays takes --quick, --repeat and --engines only")
    names = [n for n in (args.engines or ",".join(ARRAY_ENGINES)).split(",") if n]
    bad = [n for n in names if n not in ARRAY_ENGINES]
    if bad or not names:
        p.error(f"--engines: {'unknown ' + ', '.join(bad) if bad else 'an empty list'} for --arrays; "
                f"choose from {', '.join(ARRAY_ENGINES)}")
    mode = "quick" if args.quick else "default"
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    print(f"pytape bench --arrays ({mode}), {started}")
    print(f"machine: {_machine()}")
    return main_arrays(mode, args.repeat, names, log)


def _sparse(p, args):
    """``--sparse``: sparse Hessians and Jacobians (pytape/bench/sparse.py)."""
    return _other(p, args, "--sparse", main_sparse)


def _other(p, args, flag, main_of):
    """``--sparse``, ``--dask`` or ``--codegen``: a table of their own, quick or default sizes."""
    if args.full or args.engine or args.deep or args.engines:
        p.error(f"{flag} takes --quick and --repeat only")
    mode = "quick" if args.quick else "default"
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"pytape bench {flag} ({mode}), {started}")
    print(f"machine: {_machine()}")
    return main_of(mode, args.repeat, lambda msg: print(msg, file=sys.stderr, flush=True))


if __name__ == "__main__":
    sys.exit(main())
