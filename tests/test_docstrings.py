"""Every docstring example in the package runs and prints what it shows."""
import doctest
import importlib

import pytest

MODULES = [
    "pytape", "pytape._native", "pytape.errors", "pytape.tape", "pytape.anomaly", "pytape.var", "pytape.recording",
    "pytape.ops", "pytape.program", "pytape.functional", "pytape.checks", "pytape.higher_order", "pytape.autograd",
    "pytape.tracing", "pytape.saved", "pytape.optimize", "pytape.optim", "pytape.display", "pytape.nn",
    "pytape.reference", "pytape.bench", "pytape.bench.engines", "pytape.bench.workloads", "pytape.bench.runner",
    "pytape.bench.cli", "pytape.bench.arrays", "pytape.bench.second_order", "pytape.bench.training", "pytape.bench.memory", "pytape.bench.batches", "pytape.checkpointing",
    "pytape.nested", "pytape.array_adjoints", "pytape.array_rules", "pytape.sparse", "pytape.bench.sparse",
    "pytape.dask", "pytape.bench.dask_batches", "pytape.codegen", "pytape.bench.generated_c",
]
#: the optional extra a module's examples need (they skip without it)
NEEDS = {"pytape.sparse": "scipy", "pytape.bench.sparse": "scipy", "pytape.optimize": "scipy", "pytape.dask": "dask",
         "pytape.bench.dask_batches": "dask"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0  # the module does show examples
