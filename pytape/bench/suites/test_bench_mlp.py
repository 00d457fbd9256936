"""Workload (c): one training step of micrograd's 2-16-16-1 MLP on 100 two-moons points
(forward + SVM loss, backward and the SGD update timed separately)."""
import pytest

from pytape import bench as B

N = 100
ENGINES = ["pytape", "reference", "micrograd", "torch"]


@pytest.mark.parametrize("engine", ENGINES + ["floor"], indirect=True)
def test_mlp_record(bench_record, engine):
    state = B.mlp_setup(engine, N)
    rec = bench_record(f"mlp N={N}: forward+loss", B.mlp_record, engine, state)
    B.mlp_check(rec, state, grads=False)


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_mlp_backward(bench_backward, engine):
    state = B.mlp_setup(engine, N)

    def record():
        engine.zero_grad(state.params)
        return B.mlp_record(engine, state)

    rec = bench_backward(f"mlp N={N}: backward", engine, record)
    B.mlp_check(rec, state)  # loss and all 337 gradients against the reference engine


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_mlp_update(benchmark, engine):
    state = B.mlp_setup(engine, N)
    benchmark.group = f"mlp N={N}: update"

    def setup():
        engine.zero_grad(state.params)
        B.backward(B.mlp_record(engine, state))
        return (engine, state), {}

    before = [engine.value(p) for p in state.params]
    benchmark.pedantic(B.mlp_update, setup=setup, rounds=5, warmup_rounds=0)
    after = [engine.value(p) for p in state.params]
    assert before != after and all(engine.grad(p) == 0.0 for p in state.params)
