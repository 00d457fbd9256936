"""The ``python -m pytape bench`` command line, run in a subprocess on its --quick sizes."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import pytape

# run the same pytape as this test imports (installed, or the built checkout),
# from a folder with no pytape/ source tree in it
PYTAPE_HOME = str(Path(pytape.__file__).resolve().parents[1])


def run(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [PYTAPE_HOME, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "pytape", *args], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=timeout)


def table_rows(stdout):
    """{(workload, size, engine): cells} of the results table."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] in ("chain", "rosenbrock", "mlp"):
            rows[tuple(cells[:3])] = cells
    return rows


@pytest.fixture(scope="module")
def quick():
    return run("bench", "--quick", "--repeat", "1")


def test_quick_run_prints_a_table_with_speedups(quick):
    assert quick.returncode == 0, quick.stderr
    out = quick.stdout
    assert "machine:" in out and "CPUs" in out and "Python" in out
    header = next(line for line in out.splitlines() if line.startswith("workload"))
    for col in ("engine", "record", "backward", "total", "pytape× rec", "pytape× total"):
        assert col in header
    rows = table_rows(out)
    for wl, size in (("chain", "D=100"), ("chain", "D=1000"), ("rosenbrock", "n=100"), ("mlp", "N=10")):
        assert (wl, size, "pytape") in rows and (wl, size, "reference") in rows
        ref = rows[(wl, size, "reference")]
        assert ref[-1].endswith("x") and ref[-2].endswith("x"), ref  # both speed-ups of pytape over reference
        assert (wl, size, "floor") in rows
    assert "bytes per op, used" in out  # pytape's tape memory per op
    assert "chain D=1000: pytape" in quick.stderr  # progress, one line per engine and size


def test_micrograd_recursion_error_is_reported(quick):
    pytest.importorskip("micrograd.engine")
    row = table_rows(quick.stdout)[("chain", "D=1000", "micrograd")]
    assert "RecursionError" in " ".join(row)


def test_custom_engine_is_compared_with_pytape():
    r = run("bench", "--quick", "--repeat", "1", "--engines", "pytape",
            "--workloads", "chain,rosenbrock,mlp", "--engine", "pytape.reference:Value")
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    for key in (("chain", "D=100"), ("chain", "D=1000"), ("rosenbrock", "n=100"), ("mlp", "N=10")):
        cells = rows[key + ("pytape.reference:Value",)]
        assert cells[-1].endswith("x"), cells


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:Value", "cannot import module 'no_such_module_xyz'"),
    ("pytape.reference:NoSuchClass", "has no attribute 'NoSuchClass'"),
    ("pytape:Tape", "not a micrograd-style Value class"),
    ("pytape.reference", "expected MODULE:CLASS"),
])
def test_bad_engine_fails_clearly(spec, message):
    r = run("bench", "--quick", "--engine", spec)
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_usage_without_a_command():
    for args in ((), ("frobnicate",)):
        r = run(*args)
        assert r.returncode == 2 and "usage: python -m pytape" in r.stderr


def test_deep_lets_recursive_engines_finish():
    pytest.importorskip("micrograd.engine")
    r = run("bench", "--quick", "--repeat", "1", "--engines", "pytape,micrograd", "--workloads", "chain", "--deep")
    assert r.returncode == 0, r.stderr
    row = table_rows(r.stdout)[("chain", "D=1000", "micrograd")]
    assert "RecursionError" not in " ".join(row) and row[-1].endswith("x"), row
    assert "recursion limit 10**6" in r.stdout


def test_arrays_quick_prints_its_table():
    r = run("bench", "--arrays", "--quick", "--repeat", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "machine:" in out and "pytape bench --arrays (quick)" in out
    header = next(line for line in out.splitlines() if line.startswith("case"))
    for col in ("engine", "record", "backward", "total", "vs pytape"):
        assert col in header
    cases = ("ops", "elementwise", "arithmetic", "sum(axis=0)", "max(axis=1)", "matmul", "logreg", "mlp")
    rows = {}
    lines = out.splitlines()
    first = lines[:next(k for k, line in enumerate(lines) if line.startswith("program"))]  # the main table's part
    for line in first:
        cells = line.split()
        if cells and cells[0] in cases:
            rows.setdefault(cells[0], {})[next(c for c in cells if c in ("pytape", "pytape-trace", "numpy", "torch",
                                                                          "autograd", "jax", "jax-jit"))] = line
    assert set(rows) == set(cases)
    for case, engines in rows.items():
        assert "pytape" in engines and "numpy" in engines and "pytape-trace" in engines, case
        assert engines["pytape-trace"].rstrip().endswith("x"), engines["pytape-trace"]  # a traced replay, timed
        assert engines["numpy"].rstrip().endswith("x"), engines["numpy"]  # its ratio against pytape
        for name in ("torch", "autograd", "jax"):  # optional engines: a row each when installed
            try:
                __import__(name)
            except ImportError:
                assert name not in engines and f"{name}: not installed" in out
            else:
                assert name in engines, (case, name)
    assert "bytes per array instruction" in out and "scalar Var instruction" in out
    assert "ops 100 ops, n=10: pytape" in r.stderr  # progress, one line per engine and size
    # the second-order table: pytape's hvp / grad on each program, a number
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("program") and "hvp / grad" in line)
    table = lines[start + 2:lines.index("", start)]
    mine = {line.split()[0]: line for line in table if " pytape " in line}
    assert set(mine) == {"rosenbrock", "mlp"}, table
    for line in mine.values():  # a ratio, printed (its size is the benchmark's business: a shared machine is noisy)
        assert float(line.split()[-1]) > 0.0, line
    # the training steps: a row per model and engine, others against pytape
    start = next(k for k, line in enumerate(lines) if line.startswith("model") and "vs pytape" in line)
    table = lines[start + 2:]
    assert {line.split()[0] for line in table if " pytape " in line} == {"mlp", "digits"}
    assert "training digits: pytape" in r.stderr


def test_arrays_rejects_scalar_engines():
    r = run("bench", "--arrays", "--quick", "--engines", "micrograd")
    assert r.returncode == 2 and "for --arrays" in r.stderr and r.stdout == ""


def test_sparse_quick_prints_its_tables():
    pytest.importorskip("scipy")
    r = run("bench", "--sparse", "--quick", "--repeat", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "pytape bench --sparse (quick)" in out and "machine:" in out
    rows = [line for line in out.splitlines() if line.startswith("| Hessian") or line.startswith("| Jacobian")]
    mine = [line for line in rows if "| pytape |" in line]
    assert len(mine) == 4  # two cases at two sizes
    for line in mine:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[6] in ("3", "4"), line   # sweeps per call: the colourings' minimum (+1 for the dense row)
    solves = [line for line in out.splitlines() if line.startswith("| 3e+02 |")]
    assert any("pytape trust-constr, sparse" in line and "converged" in line for line in solves)
    with_casadi = True
    try:
        import casadi  # noqa: F401
    except ImportError:
        with_casadi = False
    assert any("| casadi |" in line for line in rows) == with_casadi
    assert ("casadi: not installed" in out) != with_casadi
    assert r.stderr.count("setup ...") >= 4  # progress, a line per engine and size


def test_sparse_rejects_other_options():
    r = run("bench", "--sparse", "--engines", "pytape")
    assert r.returncode == 2 and "--sparse takes" in r.stderr


@pytest.mark.not_under_asan("starts a cluster of worker processes")
def test_dask_quick_prints_its_table():
    pytest.importorskip("dask.distributed")
    r = run("bench", "--dask", "--quick", "--repeat", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| one process") or line.startswith("| Local")]
    assert len(rows) == 3, r.stdout
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2].endswith(" ms") and float(cells[4].rstrip("x")) > 0, line
