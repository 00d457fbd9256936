"""Fixtures of the pytest-benchmark suite; the workloads themselves are in ``pytape/bench/workloads.py``,
the engines in ``pytape/bench/engines.py``.

Run:  python -m pytest pytape/bench/suites --benchmark-only -q
      PYTAPE_BENCH_FULL=1 ...    adds the large sizes (minutes)
      PYTAPE_BENCH_ROUNDS=N ...  rounds per benchmark (default 5)

Each workload has one benchmark group per size and phase ("chain D=1000:
record", "chain D=1000: backward"), so pytest-benchmark's table compares the
engines side by side.  Backward is timed with ``benchmark.pedantic`` on a fresh
recording made (untimed) by its ``setup``, since a backward sweep consumes its
recording.  Engines that are not installed (micrograd, torch) are skipped;
times are never asserted, gradients always are.
"""
import gc
import os

import pytest

from pytape import bench as B

FULL = os.environ.get("PYTAPE_BENCH_FULL", "") not in ("", "0")
ROUNDS = int(os.environ.get("PYTAPE_BENCH_ROUNDS", "5"))

_OPTIONAL = {"micrograd": "micrograd.engine", "torch": "torch"}


@pytest.fixture(scope="session", autouse=True)
def torch_on_one_thread():
    """torch runs on one thread, as pytape's sweeps do (on a shared 2-core
    machine its thread pool otherwise makes its times swing 10-50x)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture
def engine(request):
    """The engine named by the (indirect) parameter; skips one that is not installed."""
    name = request.param
    if name in _OPTIONAL:
        pytest.importorskip(_OPTIONAL[name])
    return B.get_engine(name)


@pytest.fixture
def bench_record(benchmark):
    """``bench_record(group, fn, *args)``: time ``fn(*args)`` (a recording) and return its last result."""

    def run(group, fn, *args):
        benchmark.group = group

        def setup():
            gc.collect()  # garbage of earlier rounds is collected outside the timing
            return args, {}

        return benchmark.pedantic(fn, setup=setup, rounds=ROUNDS, warmup_rounds=0)

    return run


@pytest.fixture
def bench_backward(benchmark):
    """``bench_backward(group, engine, record)``: time ``backward`` of recordings made by
    ``record()`` in the untimed setup; returns the last recording (swept) to check.

    An engine whose backward raises RecursionError (micrograd's recursive
    topological sort on a deep graph) is reported as xfail, never hidden.
    """

    def run(group, engine, record):
        benchmark.group = group
        last = []

        def setup():
            last.clear()
            gc.collect()
            last.append(record())
            return (last[0],), {}

        try:
            benchmark.pedantic(B.backward, setup=setup, rounds=ROUNDS, warmup_rounds=0)
        except RecursionError:
            if engine.name == "pytape":
                raise
            pytest.xfail(f"{engine.name}: RecursionError in backward (recursive topological sort)")
        return last[0]

    return run
