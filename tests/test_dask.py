"""pytape/dask.py: compiled functions on dask arrays, lazily, chunk by chunk;
on a LocalCluster of two worker processes the tape travels once per worker."""
import numpy as np
import pytest

import pytape

da = pytest.importorskip("dask.array", reason="Dask is an optional extra: pip install \"pytape[dask]\"")


def energy(x, w):
    return np.sum(w * np.sin(x) ** 2) + x[0] * x[-1]


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 4)), rng.uniform(0.5, 1.5, size=(50, 4))


def test_values_and_gradients_equal_single_process_batches(points):
    X, W = points
    fn = pytape.trace(energy, X[0], W[0])
    dX, dW = da.from_array(X, chunks=(7, 2)), da.from_array(W, chunks=(7, 4))  # points split over chunks too
    v, (gx, gw) = fn.value_and_grad(dX, dW)
    assert isinstance(v, da.Array) and isinstance(gx, da.Array)  # lazy
    want_v, (want_gx, want_gw) = fn.value_and_grad(X, W)
    np.testing.assert_array_equal(v.compute(), want_v)
    np.testing.assert_array_equal(gx.compute(), want_gx)
    np.testing.assert_array_equal(gw.compute(), want_gw)
    np.testing.assert_array_equal(fn(dX, dW).compute(), fn(X, W))
    g = fn.gradient(dX, W)  # a numpy argument beside a dask one
    np.testing.assert_array_equal(g[0].compute(), want_gx)
    # argnums: only those gradients
    fa = pytape.trace(energy, X[0], W[0], argnums=0)
    np.testing.assert_array_equal(fa.gradient(dX, dW).compute(), want_gx)
    # the oracle: every row recorded afresh
    for k in (0, 33):
        np.testing.assert_allclose(gx.compute()[k], pytape.grad(energy)(X[k], W[k]), rtol=1e-14)


def test_vector_outputs_branches_and_errors(points):
    X, W = points
    fv = pytape.trace(lambda x: np.array([x[0] * x[1], np.sum(x)]), X[0], elementwise=True)
    np.testing.assert_array_equal(fv(da.from_array(X, chunks=10)).compute(), fv(X))
    with pytest.raises(TypeError, match="scalar output"):
        fv.gradient(da.from_array(X, chunks=10))

    def kinked(x):
        if x[0] > 0:  # a guard: chunks on either side trace their branch
            return np.sum(x ** 2)
        return np.sum(x ** 3)
    fk = pytape.trace(kinked, np.ones(4), elementwise=True)
    np.testing.assert_array_equal(fk.gradient(da.from_array(X, chunks=5)).compute(), fk.gradient(X))
    with pytest.raises(ValueError, match="batch axis of 50 points"):
        fk.gradient(da.from_array(X[:, :3], chunks=5))


@pytest.mark.not_under_asan("starts a cluster of worker processes (their C code is covered by the tests above)")
def test_a_cluster_of_two_processes_gets_the_tape_once_each(points):
    distributed = pytest.importorskip("dask.distributed")
    X, W = points
    fn = pytape.trace(energy, X[0], W[0])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        dX, dW = da.from_array(X, chunks=(5, 4)), da.from_array(W, chunks=(5, 4))  # 10 chunks
        v, (gx, gw) = fn.value_and_grad(dX, dW)
        got_v, got_gx = client.compute([v, gx], sync=True)
        want_v, (want_gx, _) = fn.value_and_grad(X, W)
        np.testing.assert_array_equal(got_v, want_v)
        np.testing.assert_array_equal(got_gx, want_gx)
        arrivals = client.run(lambda: __import__("pytape.dask").dask._Shipped.arrivals)
        assert len(arrivals) == 2 and sum(arrivals.values()) <= 2, arrivals  # not once per chunk (10)

        def kinked(x):  # a local function: it travels by cloudpickle, so workers trace the other branch
            if x[0] > 0:
                return np.sum(x ** 2)
            return np.sum(np.sin(x))
        fk = pytape.trace(kinked, np.ones(4), elementwise=True)
        got = client.compute(fk.gradient(da.from_array(X, chunks=(5, 4))), sync=True)
        np.testing.assert_array_equal(got, fk.gradient(X))
