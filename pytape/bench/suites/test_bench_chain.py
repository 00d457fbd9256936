"""Workload (a): ``y = (y*0.5 + 0.25).relu() + y*0.5`` repeated D times (5 ops a step)."""
import os

import pytest

from pytape import bench as B

FULL = os.environ.get("PYTAPE_BENCH_FULL", "") not in ("", "0")
SIZES = [10**3, 10**4] + ([10**5, 10**6] if FULL else [])
ENGINES = ["pytape", "reference", "micrograd", "torch"]


@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("engine", ENGINES + ["floor"], indirect=True)
def test_chain_record(bench_record, engine, D):
    if D >= 10**6 and not engine.big:
        pytest.skip("D=10**6 runs on pytape and the float floor only")
    rec = bench_record(f"chain D={D}: record", B.chain_record, engine, D)
    B.chain_check(rec, grads=False)


@pytest.mark.parametrize("D", SIZES)
@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_chain_backward(bench_backward, engine, D):
    if D >= 10**6 and not engine.big:
        pytest.skip("D=10**6 runs on pytape only")
    rec = bench_backward(f"chain D={D}: backward", engine, lambda: B.chain_record(engine, D))
    B.chain_check(rec)  # dy/dx == 1.0 exactly
