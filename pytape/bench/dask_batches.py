"""``python -m pytape bench --dask``: a compiled function's values and
gradients at 10^6 points (``--quick``: 10^5) on a Dask ``LocalCluster`` of
two worker processes (one thread each), against one process.

The function has about 100 instructions (a 4-input recurrence, traced with
``elementwise=True``).  Each run computes ``fn.value_and_grad`` at every
point and reduces the results on the workers (their sums), so the time is
the replays' and Dask's, not that of sending 40 MB of gradients back:

* one process, one thread: ``fn.value_and_grad(X)`` with ``fn.threads = 1``;
* one process, every core: ``fn.value_and_grad(X)`` (pytape's own threads);
* the cluster: the same on a dask array of the points (chunks of 10^5
  rows, made on the workers), ``fn.value_and_grad(dX)``.

Times are medians of the repeats after one warm-up run each (the cluster's
start is not timed; the tape's trip to the workers is, in the warm-up).

>>> rows = run_dask(20_000, repeat=1, cluster=False)
>>> [r[0] for r in rows], rows[0][2] > 0
(['one process, 1 thread', 'one process, every core'], True)
"""
import statistics
import time

import numpy as np

import pytape

__all__ = ["DASK_POINTS", "recurrence", "run_dask", "main_dask"]

DASK_POINTS = {"quick": 100_000, "default": 1_000_000}
CHUNK = 100_000


def recurrence(x):
    """About 100 instructions of a 4-input recurrence."""
    a, b, c, d = x[0], x[1], x[2], x[3]
    for _ in range(7):
        a, b, c, d = b * 0.9 + pytape.sin(c) * 0.1, c - 0.05 * a * d, d + 0.1 * pytape.tanh(a), 0.95 * d + 0.01 * b
    return a * a + b * c + d


def _points(n):
    return np.random.default_rng(0).uniform(-1, 1, size=(n, 4))


def _time(run, repeat):
    run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_dask(points, repeat=3, cluster=True, log=None):
    """Rows of (setting, workers, seconds, ns per point)."""
    fn = pytape.trace(recurrence, np.zeros(4), elementwise=True)
    X = _points(points)
    rows = []
    one = pytape.trace(recurrence, np.zeros(4), elementwise=True)
    one.threads = 1

    def local(f):
        def run():
            v, g = f.value_and_grad(X)
            return float(v.sum()), g.sum(axis=0)
        return run
    for name, f, workers in (("one process, 1 thread", one, 1), ("one process, every core", fn, fn.threads)):
        if log:
            log(f"dask bench: {name} ...")
        t = _time(local(f), repeat)
        rows.append((name, workers, t, t / points * 1e9))
    if cluster:
        import dask.array as da
        import distributed
        if log:
            log("dask bench: starting a LocalCluster of 2 processes ...")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=50) as lc, distributed.Client(lc) as client:
            dX = da.random.default_rng(0).uniform(-1, 1, size=(points, 4), chunks=(CHUNK, 4))

            def run():
                v, g = fn.value_and_grad(dX)
                return client.compute([v.sum(), g.sum(axis=0)], sync=True)
            if log:
                log("dask bench: the cluster ...")
            t = _time(run, repeat)
            rows.append(("LocalCluster, 2 processes x 1 thread", 2, t, t / points * 1e9))
    return rows


def main_dask(mode, repeat, log):
    """``--dask``: run and print the table; returns the exit status."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        print("the Dask benchmark needs dask and distributed: pip install \"pytape[dask]\"")
        return 1
    points = DASK_POINTS[mode]
    rows = run_dask(points, repeat, log=log)
    ops = pytape.trace(recurrence, np.zeros(4), elementwise=True).num_ops
    print(f"value and gradient of a {ops}-instruction function at {points:.0e} points, results summed on the "
          f"workers; median of {repeat} after a warm-up")
    print()
    print("| setting | workers | time | ns per point | speed-up vs 1 thread | per worker |")
    print("|---|---|---|---|---|---|")
    base = rows[0][2]
    for name, workers, t, per in rows:
        print(f"| {name} | {workers} | {t * 1e3:.0f} ms | {per:.0f} | {base / t:.2f}x | {base / t / workers:.2f} |")
    return 0
