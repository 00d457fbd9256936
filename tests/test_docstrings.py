"""Every docstring example in the package runs and prints what it shows."""
import doctest
import importlib

import pytest

MODULES = [
    "pytape", "pytape.var", "pytape.ops", "pytape.tape", "pytape.nn", "pytape.reference", "pytape.bench", "pytape.anomaly", "pytape.functional", "pytape.autograd", "pytape.create_graph", "pytape.replay", "pytape.optimize", "pytape.optim",
    "pytape.display",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0  # the module does show examples
