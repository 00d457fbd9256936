"""Recycling of large array buffers while a tape lives (csrc/array.h).

When the Python object of a large array result dies, no instruction can name
its slot again: the tape gives its value buffer back at once unless a sweep
reads it, and its adjoint buffer once the reverse sweep has passed it on.
The oracle for values and derivatives is the same program with every
intermediate result held alive (nothing is recycled then), which must give
the same numbers bit for bit, and closed forms.  The memory tests check that
recycling happens at all: without it each of them fails.
"""
import numpy as np
import pytest

import pytape
from pytape import _native
from pytape import tensor as tensor_module

N = 2 * _native.RECYCLE_MIN  # large enough to be recycled


def _x(seed=0, n=N):
    return np.random.default_rng(seed).uniform(0.2, 1.5, n)


# Programs whose temporaries die at once; each reads values in its sweeps
# (products, exp's own value, tanh's, max, matmul, prod): recycling a value a
# sweep reads gives a wrong gradient.
PROGRAMS = {
    "chain of constants": lambda x, c: np.sum((x * 0.5 + 0.25) * x - x * 0.125),
    "exp times its argument": lambda x, c: np.sum(np.exp(x * 0.5) * (x + 1.0)),
    "tanh squared": lambda x, c: np.sum(np.tanh(x * c) ** 2),
    "products of temporaries": lambda x, c: np.sum(x * x * (x + c) * (x - 1.0)),
    "max over rows": lambda x, c: np.sum(np.max((x * c + 1.0).reshape(-1, 8), axis=1)),
    "prod over rows": lambda x, c: np.sum(np.prod((x * 0.9 + 0.1).reshape(-1, 4), axis=1)),
    "matmul": lambda x, c: np.sum((x.reshape(-1, 64) * 2.0 @ np.ones((64, 3))) ** 2),
    "division": lambda x, c: np.sum((x + 1.0) / (x * c + 2.0)),
    "view and gather": lambda x, c: np.sum((x * c)[::2] * (x + 1.0)[1::2]),
}


def _run(program, seed=0):
    x = pytape.Tensor(_x(seed))
    c = pytape.Tensor(_x(seed + 1))
    with pytape.Tape():
        y = program(x, c)
        # new buffers after the program's temporaries died: each takes one
        # given back (and writes over it) if any was
        pads = [x * float(k) for k in range(8)]
    y.backward()
    assert len(pads) == 8
    return float(y.value), x.grad.copy(), c.grad.copy()


def _recycle_nothing(monkeypatch):
    """No result watched from now on in this test: nothing is recycled
    (every large result is made by tensor._result, which calls _watch)."""
    monkeypatch.setattr(tensor_module, "_watch", lambda tape, r, h: None)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_recycled_tape_gives_the_numbers_of_one_that_keeps_everything(name, monkeypatch):
    got = _run(PROGRAMS[name])
    _recycle_nothing(monkeypatch)
    want = _run(PROGRAMS[name])
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def test_recycled_gradient_matches_the_closed_form():
    # d/dx sum(exp(x/2) (x + 1)) = exp(x/2) (x + 1) / 2 + exp(x/2)
    x = pytape.Tensor(_x())
    with pytape.Tape():
        y = np.sum(np.exp(x * 0.5) * (x + 1.0))
    y.backward()
    v = x.value
    np.testing.assert_allclose(x.grad, np.exp(v / 2) * (v + 1) / 2 + np.exp(v / 2), rtol=1e-14)


def test_shared_adjoints_are_not_given_back(monkeypatch):
    # s = v + u passes its adjoint to both operands in one buffer; s dies, and
    # the buffer must not be handed to t's adjoint (allocated after it) while
    # v (swept last) still reads it
    a, cc = _x(2), _x(3)

    def program():
        x = pytape.Tensor(a)
        with pytape.Tape():
            v = x * 3.0
            s = v + np.exp(x * 0.5)
            del v
            y = np.sum(s * cc)
            del s
        y.backward()
        return x.grad

    got = program()
    _recycle_nothing(monkeypatch)
    want = program()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, cc * (3.0 + 0.5 * np.exp(a * 0.5)), rtol=1e-14)


def _chain(x, steps, keep):
    z = x * 1.0
    for _ in range(steps):
        z = z * 0.5 + 1.0
        if keep is not None:
            keep.append(z)
    return np.sum(z)


def test_a_chain_of_temporaries_records_in_the_memory_of_the_live_ones():
    # 40 temporaries of N elements; only a few are alive at any time
    x = pytape.Tensor(_x())
    with pytape.Tape() as recycled:
        y = _chain(x, 20, None)
    keep = []
    with pytape.Tape() as kept:
        _chain(x, 20, keep)
    one = N * 8
    assert recycled.nbytes < 4 * one, recycled.nbytes / one
    assert kept.nbytes > 20 * one, kept.nbytes / one
    before = recycled.nbytes
    y.backward()
    # the adjoints of dead temporaries go back once swept: a few new buffers, not 40
    assert recycled.nbytes - before < 4 * one, (recycled.nbytes - before) / one
    np.testing.assert_allclose(x.grad, np.full(N, 0.5 ** 20), rtol=1e-15)


def test_a_value_view_keeps_its_result_and_its_memory():
    a = _x()
    x = pytape.Tensor(a)
    with pytape.Tape():
        v = (x * 2.0 + 1.0).value  # the result object dies here; its view must not
        for _ in range(6):  # new buffers that could take its memory
            x = x * 3.0 - 1.0
        np.sum(x)
    np.testing.assert_array_equal(v, a * 2.0 + 1.0)


def test_live_results_keep_their_values_and_adjoints():
    a = _x()
    x = pytape.Tensor(a)
    with pytape.Tape():
        m = x * 2.0
        for _ in range(4):
            _ = np.sin(x * 3.0)  # dead temporaries around m
        y = np.sum(m * m + (m + 1.0) * 0.5)
    y.backward(retain_graph=True)
    g1 = x.grad.copy()
    np.testing.assert_array_equal(m.value, a * 2.0)
    np.testing.assert_allclose(m.grad, 2.0 * (a * 2.0) + 0.5, rtol=1e-15)
    x_leaf_grad = 2.0 * (2.0 * (a * 2.0) + 0.5)
    np.testing.assert_allclose(g1, x_leaf_grad, rtol=1e-15)
    # a second sweep over the same tape: the adjoints given back in the first are made again
    y.backward()
    np.testing.assert_allclose(m.grad, 2.0 * (a * 2.0) + 0.5, rtol=1e-15)


def test_small_results_are_not_watched():
    x = pytape.Tensor(np.ones(10))
    with pytape.Tape():
        small = x * 2.0
        big = pytape.Tensor(np.ones(N)) * 2.0
    assert not hasattr(small, "_w") or small._w is None
    assert big._w is not None and big._w() is big


def test_a_result_dying_in_another_thread_is_recycled_by_the_recording_one():
    import threading
    a = _x()
    x = pytape.Tensor(a)
    with pytape.Tape() as tape:
        box = [x * 2.0 + 1.0]
        y = box[0] * 3.0  # the + 1.0 result's value is not read by * 3.0's sweep

        def drop():
            box.clear()  # the last reference dies in this thread
        th = threading.Thread(target=drop)
        th.start()
        th.join()
        before = tape.nbytes
        z = x * 5.0  # recorded here: takes the buffer given back
        assert tape.nbytes == before
        out = np.sum(y + z)
    out.backward()
    np.testing.assert_allclose(x.grad, np.full(N, 11.0), rtol=0)
    np.testing.assert_array_equal(y.value, (a * 2.0 + 1.0) * 3.0)
