"""The pytest-benchmark suites (not part of the default ``pytest`` run, whose testpaths are tests/).

Run:  pytest pytape/bench/suites --benchmark-only -q       (in the checkout)
      pytest --pyargs pytape.bench.suites --benchmark-only  (an installed pytape)

``conftest.py`` holds the fixtures and the environment knobs (PYTAPE_BENCH_FULL,
PYTAPE_BENCH_ROUNDS); each ``test_bench_*.py`` is one suite.
"""
