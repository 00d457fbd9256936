"""Record once, replay many: Rosenbrock n = 10^4 (9·10^4 instructions).

Reported per call; per operation divide by fn.num_ops (the closing figures
quote ns per operation for value + gradient, target <= 10 ns)."""
import numpy as np
import pytest

import pytape


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


N = 10_000
POINTS = np.random.default_rng(0).uniform(0.5, 1.5, (100, N))


def analytic_grad0(x):
    return -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])


def test_trace_once(benchmark):
    benchmark.group = "Rosenbrock n=10^4: trace vs replay vs re-record"
    fn = benchmark.pedantic(pytape.trace, args=(rosenbrock, np.ones(N)), rounds=3)
    assert fn.num_ops == 9 * N - 9


def test_replay_value_and_grad_100_points(benchmark):
    benchmark.group = "Rosenbrock n=10^4: trace vs replay vs re-record"
    fn = pytape.trace(rosenbrock, np.ones(N))

    def run():
        return [fn.value_and_grad(x) for x in POINTS]

    out = benchmark.pedantic(run, rounds=3)
    assert out[7][1][0] == pytest.approx(analytic_grad0(POINTS[7]))


def test_rerecord_value_and_grad_100_points(benchmark):
    benchmark.group = "Rosenbrock n=10^4: trace vs replay vs re-record"
    vg = pytape.value_and_grad(rosenbrock)
    out = benchmark.pedantic(lambda: [vg(x) for x in POINTS], rounds=1)
    assert out[7][1][0] == pytest.approx(analytic_grad0(POINTS[7]))
