"""The recording fast path (pytape/recording.py): handles, the registry of
tapes, fast and slow paths recording the same instructions, the current tape
per thread and per asyncio task."""
import asyncio

import numpy as np
import pytest

import pytape
from pytape import _native
from pytape.var import Leaf, Result


def program(x, y, c):
    """Every operand form: result-result, result-constant, constant-result,
    leaf-constant, leaf-result, unary on results and leaves."""
    a = x * c            # leaf, constant
    b = c - y            # constant, leaf
    d = a * b + a / 3.0  # results; result, constant
    e = 2.0 ** d - x     # constant, result; result, leaf
    return pytape.tanh(e) + pytape.sin(x) + pytape.relu(y * d)


def test_unregistered_tapes_record_the_same_tape_as_registered_ones():
    # more live tapes than handle ids: the later ones have id 0 and record by
    # the explicit path; their instructions, values and gradients are the same
    n = 2 ** _native.ID_BITS + 10
    runs = []
    pytape.tape._warned.clear()
    with pytest.warns(RuntimeWarning, match="tapes are alive, so this one records through the slow path"):
        for k in range(n):
            runs.append(pytape.Tape())
    for k, t in enumerate(runs):
        with t:
            x, y = pytape.Var(0.3 + k / n), pytape.Var(-0.7)
            z = program(x, y, 1.5)
        runs[k] = (t, x, y, z)
    ids = [t._c.id for t, *_ in runs]
    assert ids.count(0) >= 10 and len(set(i for i in ids if i)) == len([i for i in ids if i])
    first = runs[0][0].table(max_rows=None)
    for t, x, y, z in runs:
        assert len(t) == len(runs[0][0])
        assert [r.split()[1] for r in t.table(max_rows=None).splitlines()[1:]] == \
               [r.split()[1] for r in first.splitlines()[1:]]  # the same ops in the same order
    for k, (t, x, y, z) in enumerate(runs):
        w = z * 2.0 + z   # recorded on z's tape, by the fast path or the explicit one
        w.backward()
        eps = 1e-6
        f = lambda u: program(u, -0.7, 1.5) * 3.0  # noqa: E731  plain floats in, a float out
        assert x.grad == pytest.approx((f(x.value + eps) - f(x.value - eps)) / (2 * eps), rel=1e-6)
        assert w.value == pytest.approx(3.0 * z.value, rel=1e-15)


def test_ids_return_to_the_registry_when_tapes_are_freed():
    import gc
    gc.collect()
    for _ in range(3 * 2 ** _native.ID_BITS):  # many more tapes than ids, one at a time
        with pytape.Tape() as t:
            (pytape.Var(1.0) * 2.0).backward()
        assert t._c.id != 0
        del t
        gc.collect()


def test_results_are_results_and_leaves_leaves():
    x = pytape.Var(2.0)
    y = x * x
    assert type(x) is Leaf and type(y) is Result and isinstance(y, pytape.Var)
    assert pytape.Var.__call__ is not type.__call__  # pytape.Var(2.0) makes a leaf
    assert y.slot == len(y.tape) - 1 and x.slot is None


def test_results_of_two_tapes_never_mix():
    with pytape.Tape():
        a = pytape.Var(1.0) * 2.0
    with pytape.Tape():
        b = pytape.Var(1.0) * 3.0
    for f in (lambda: a + b, lambda: b * a, lambda: pytape.atan2(a, b), lambda: pytape.maximum(b, a)):
        with pytest.raises(ValueError, match="different tapes"):
            f()


def test_a_leaf_follows_its_partner_and_the_current_tape():
    x = pytape.Var(3.0)
    with pytape.Tape() as t1:
        y1 = x * 2.0
    with pytape.Tape() as t2:
        y2 = x * 5.0
    z1 = x * y1   # x joins t1 (its slot there), though t2 was used last
    assert z1.tape is t1 and y2.tape is t2
    z1.backward()
    assert x.grad == 12.0


def test_each_asyncio_task_has_its_current_tape():
    # the current tape lives in a context variable: a task's `with` block is
    # its own even while other tasks run in theirs (threads: test_tape.py)
    async def task(name):
        with pytape.Tape() as t:
            await asyncio.sleep(0)
            y = pytape.Var(1.0) * 2.0  # other tasks ran meanwhile, in their own blocks
            await asyncio.sleep(0)
            y = y + 1.0
        return t, y.tape

    async def main():
        return await asyncio.gather(*[task(k) for k in range(4)])

    for t, recorded_on in asyncio.run(main()):
        assert recorded_on is t and len(t) == 3


def test_fast_and_slow_paths_agree_on_every_form():
    # a numpy scalar constant takes the slow path, a float the fast one; with
    # recording off every operation computes plain values
    tables, grads = set(), set()
    for c in (1.5, np.float64(1.5)):
        with pytape.Tape() as t:
            x, y = pytape.Var(0.3), pytape.Var(-0.7)
            z = program(x, y, c)
        z.backward()
        tables.add(t.table(max_rows=None))
        grads.add((x.grad, y.grad))
    assert len(tables) == 1 and len(grads) == 1
    with pytape.Tape() as t3:  # an int constant records as its float
        z3 = program(pytape.Var(0.3), pytape.Var(-0.7), 3)
    with pytape.Tape() as t3f:
        program(pytape.Var(0.3), pytape.Var(-0.7), 3.0)
    assert t3.table(max_rows=None) == t3f.table(max_rows=None) and z3.value == program(0.3, -0.7, 3.0)
    assert z.value == program(0.3, -0.7, 1.5)  # the same rules on plain floats
    with pytape.no_grad():
        v = program(pytape.Var(0.3), pytape.Var(-0.7), 1.5)
    assert v.is_leaf and not v.requires_grad and v.value == z.value
