"""Benchmarks of pytape against other scalar autodiff engines: ``python -m pytape bench``.

Where things live (every public name is re-exported here, so
``from pytape import bench as B; B.chain_record(B.get_engine("pytape"), 100)``):

=====================  ==============================================================
``engines.py``         the engines compared: ``Engine`` and its subclasses, the
                       float floor ``F``, ``GenericMLP``, ``ENGINES``,
                       ``get_engine``, ``load_engine``, ``available_engines``
``workloads.py``       what is computed and checked: chain, rosenbrock, mlp
                       (``*_record``, ``*_check``, ``mlp_update``, ...),
                       ``Recording``, ``backward``, ``count_ops``, ``WORKLOADS``
``runner.py``          the timing: ``run_case``, ``Row`` (ns per repeat and phase)
``cli.py``             ``python -m pytape bench``: ``main`` (argparse), the sizes of
                       each mode (``SIZES``), ``format_table``, the machine line
``suites/``            the pytest-benchmark suites
                       (``pytest pytape/bench/suites --benchmark-only``)
=====================  ==============================================================

A new engine is a class in ``engines.py`` and an entry in ``ENGINES``; a new
workload is a ``*_record``/``*_check`` pair in ``workloads.py``, an entry in
``WORKLOADS`` and its sizes in ``cli.SIZES``.

Engines (``get_engine(name)``), each wrapped in an :class:`Engine` adapter:

* ``pytape``     -- this package (recording inside ``with pytape.Tape()``);
* ``reference``  -- ``pytape.reference.Value``, the pure-Python micrograd-style oracle;
* ``micrograd``  -- PyPI ``micrograd==0.1.0`` (``pip install pytape[bench]``), if importable;
* ``torch``      -- 0-d float64 tensors with ``requires_grad``, if importable;
* ``floor``      -- :class:`F`, a ``__slots__`` float wrapper that only computes
  values: the floor of any operator-overloading engine (record only);
* ``"module:Class"`` -- any micrograd-style ``Value`` class (``load_engine``).

Workloads, each a ``*_record`` function returning a :class:`Recording`, a
``*_check`` that raises ``AssertionError`` on a wrong value or gradient, and
``backward(rec)`` for the reverse sweep (timed separately):

* ``chain``: ``y = (y*0.5 + 0.25).relu() + y*0.5`` repeated D times, 5 ops a step;
* ``rosenbrock``: ``sum 100*(x[i+1]-x[i]**2)**2 + (1-x[i])**2`` on n leaves;
* ``mlp``: one training step of micrograd's 2-16-16-1 MLP on two moons
  (SVM max-margin loss + L2), with the parameter update timed too.

Times are reported in ns per scalar operation.  The operation count is
pytape's, used for every engine: ``5*D`` for the chain, ``len(tape)`` (leaf
instructions included) for the other workloads.

>>> eng = get_engine("pytape")
>>> rec = chain_record(eng, 100)
>>> backward(rec)
>>> chain_check(rec)            # raises unless grad == 1.0 and the value is right
>>> eng.grad(rec.inputs[0]), rec.nops
(1.0, 500)
"""
from .engines import (
    ENGINES, Engine, EngineError, EngineUnavailable, F, GenericMLP, available_engines, get_engine, load_engine,
)
from .workloads import (
    WORKLOADS, Recording, backward, chain_check, chain_record, count_ops, make_moons, mlp_check, mlp_expected,
    mlp_record, mlp_setup, mlp_update, rosenbrock_check, rosenbrock_point, rosenbrock_record,
)
from .runner import Row, run_case
from .cli import format_table, main

__all__ = [
    "Engine", "EngineError", "EngineUnavailable", "F", "GenericMLP", "Recording", "Row",
    "ENGINES", "WORKLOADS", "get_engine", "load_engine", "available_engines", "backward",
    "chain_record", "chain_check", "rosenbrock_point", "rosenbrock_record", "rosenbrock_check",
    "make_moons", "mlp_setup", "mlp_record", "mlp_check", "mlp_update", "mlp_expected",
    "count_ops", "run_case", "format_table", "main",
]
