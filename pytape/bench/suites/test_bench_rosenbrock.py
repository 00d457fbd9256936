"""Workload (b): the n-dimensional Rosenbrock function on n leaves near x = 1."""
import os

import pytest

from pytape import bench as B

FULL = os.environ.get("PYTAPE_BENCH_FULL", "") not in ("", "0")
SIZES = [10**2, 10**3] + ([10**4] if FULL else [])
ENGINES = ["pytape", "reference", "micrograd", "torch"]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine", ENGINES + ["floor"], indirect=True)
def test_rosenbrock_record(bench_record, engine, n):
    rec = bench_record(f"rosenbrock n={n}: record", B.rosenbrock_record, engine, n)
    B.rosenbrock_check(rec, grads=False)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_rosenbrock_backward(bench_backward, engine, n):
    rec = bench_backward(f"rosenbrock n={n}: backward", engine, lambda: B.rosenbrock_record(engine, n))
    B.rosenbrock_check(rec)  # df/dx_i against the analytic gradient at 3 indices
