"""Tapes (pytape/tape.py): one instruction per operation at any scale, the
default and `with` tapes, their lifetime and memory, consumption, threads."""
import gc
import math
import threading
import tracemalloc
import weakref

import pytest

import pytape
from pytape import Var


def chain(y, depth):
    """The benchmark chain: the gradient of each step is exactly 1."""
    for _ in range(depth):
        y = (y * 0.5 + 0.25).relu() + y * 0.5
    return y


def _rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def test_tape_holds_one_instruction_per_operation():
    with pytape.Tape() as t:
        x1, x2 = Var(2.0), Var(5.0)
        y = pytape.log(x1) + x1 * x2 - pytape.sin(x2)
    # 2 leaves (recorded on first use) + log, mul, add, sin, sub
    assert len(t) == 7
    assert y.tape is t
    assert t.num_leaves == 2


def test_chain_of_a_million_operations():
    x = Var(1.0)
    with pytape.Tape() as t:
        y = chain(x, 200_000)  # 5 ops per step
    assert len(t) == 1_000_001
    y.backward()
    assert x.grad == 1.0
    assert t.used_nbytes / len(t) <= 32  # 18 per instruction + constants + adjoint


def test_a_constant_on_every_operation_stays_within_32_bytes():
    with pytape.Tape() as t:
        x = Var(0.5)
        y = x
        for k in range(100_000):  # a few constants, used over and over
            y = (y * 0.999 + 0.25) if k % 2 else (1.0 - y) * 0.5
    y.backward()
    assert t.stats()["constants"] <= 10
    assert t.used_nbytes / len(t) <= 18 + 8 + 0.1  # instruction + adjoint; constants shared
    # distinct constants each take their 8 bytes, and stay correct
    with pytape.Tape() as t2:
        x = Var(2.0)
        z = sum(x * float(k) for k in range(1000))
    z.backward()
    assert x.grad == sum(range(1000)) and t2.stats()["constants"] >= 999


def test_recording_keeps_no_python_object_per_operation():
    x = Var(1.0)
    chain(x, 100)  # warm up caches
    gc.collect()
    tracemalloc.start()
    y = chain(x, 20_000)  # 100,000 operations
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 200_000, current  # a Python object per op would be several MB
    y.backward()
    assert x.grad == 1.0


def test_backward_consumes_and_next_operation_starts_fresh_tape():
    x = Var(2.0)
    y = x * x
    t1 = y.tape
    y.backward()
    assert t1.consumed
    z = x * x
    assert z.tape is not t1 and not z.tape.consumed
    assert y.value == 4.0 and y.grad == 1.0  # still readable after consumption


def test_consumed_tape_is_freed_when_unreferenced():
    x = Var(2.0)
    y = x * x
    ref = weakref.ref(y.tape)
    y.backward()
    del y
    gc.collect()
    assert ref() is None


def test_unreferenced_default_tape_is_released_without_backward():
    # an evaluation loop that never calls backward must not grow one tape forever
    x = Var(2.0)
    y = x * 3.0
    ref = weakref.ref(y.tape)
    del y
    assert ref() is None
    assert len((x * 3.0).tape) == 2


@pytest.mark.not_under_asan("its quarantine keeps freed memory, so RSS grows")
def test_training_loop_memory_is_flat():
    import random

    random.seed(1)
    model = pytape.nn.MLP(2, [8, 8, 1])
    xs = [[random.uniform(-1, 1), random.uniform(-1, 1)] for _ in range(8)]
    refs = []
    rss = []
    for it in range(1000):
        loss = sum((model(x) - 0.5) ** 2 for x in xs) * (1.0 / len(xs))
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.01 * p.grad
        refs.append(weakref.ref(loss.tape))
        if it in (100, 999):
            gc.collect()
            rss.append(_rss_kib())
    del loss
    gc.collect()
    assert sum(r() is not None for r in refs) == 0  # every iteration's tape was freed
    assert rss[1] - rss[0] < 4096, rss  # < 4 MiB growth over 900 iterations


def test_backward_twice_without_retain_graph():
    x = Var(1.0)
    y = x * 2.0
    y.backward()
    with pytest.raises(pytape.TapeConsumedError, match="retain_graph"):
        y.backward()
    assert x.grad == 2.0  # the failed call changed nothing


def test_var_from_consumed_tape_in_new_operation():
    x = Var(1.0)
    y = x * 2.0
    y.backward()
    for op in (lambda: y * 2.0, lambda: y + y, lambda: pytape.sin(y), lambda: 1.0 - y, lambda: x * y):
        with pytest.raises(pytape.TapeConsumedError, match="consumed"):
            op()
    assert (y.detach() * 2.0).value == 4.0  # the documented way out


def test_vars_from_different_tapes_cannot_mix():
    with pytape.Tape():
        a = Var(1.0) * 1.0
    with pytape.Tape():
        b = Var(2.0) * 1.0
    with pytest.raises(ValueError, match="different tapes"):
        a + b
    with pytest.raises(ValueError, match="different tapes"):
        pytape.atan2(a, b)


def test_other_thread_cannot_record_or_backward_on_a_tape():
    x = Var(1.0)
    y = x * 2.0
    errors = []

    def other():
        for op in (lambda: y * 2.0, lambda: pytape.exp(y), lambda: y.backward()):
            try:
                op()
            except pytape.TapeThreadError as e:
                errors.append(str(e))

    th = threading.Thread(target=other)
    th.start()
    th.join()
    assert len(errors) == 3 and "thread" in errors[0]
    y.backward()  # the owner still can, and the tape is intact
    assert x.grad == 2.0


def test_threads_record_on_their_own_tapes_concurrently():
    results = {}
    barrier = threading.Barrier(4)

    def work(k):
        x = Var(1.0 + k)
        barrier.wait()
        y = x * 0.0
        for _ in range(3000):
            y = y + pytape.sin(x) * x  # d/dx = sin x + x cos x per step
        y.backward()
        results[k] = x.grad

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(4):
        x = 1.0 + k
        assert results[k] == pytest.approx(3000 * (math.sin(x) + x * math.cos(x)), rel=1e-12)


def test_shared_parameter_across_threads():
    # a leaf (parameter) is shared; each thread records on its own tape and the
    # sweeps add into the same grad cell under a lock
    w = Var(3.0)

    def work():
        for _ in range(200):
            (w * 2.0).backward()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert w.grad == 4 * 200 * 2.0


def test_default_tape_survives_a_with_block():
    x = Var(2.0)
    y = x * 2.0  # on the default tape
    with pytape.Tape() as t:
        z = x * 3.0
    assert z.tape is t
    w = x * 4.0  # back on the same default tape as y
    assert w.tape is y.tape
    s = y + w
    s.backward()
    assert x.grad == 6.0


def test_reading_adjoints_from_another_thread_is_refused_not_a_crash():
    # the owner's backward() runs without the GIL and may replace the adjoint
    # array; another thread reading .grad of a result meanwhile once read freed
    # memory (a segfault).  Now C refuses: TapeThreadError, every time.
    box, done, seen = {}, threading.Event(), {"refused": 0, "other": []}

    def owner():
        try:
            for _ in range(15):
                y = pytape.Var(0.5)
                for _ in range(20_000):
                    y = y * 0.999 + 0.0001
                box["v"] = y
                y.backward(retain_graph=True)
        finally:
            done.set()

    def reader():
        while not done.is_set():
            v = box.get("v")
            if v is None:
                continue
            for attempt in (lambda: v.grad, lambda: v.tangent, lambda: setattr(v, "grad", 1.0), v.tape.table):
                try:
                    attempt()
                except pytape.TapeThreadError:
                    seen["refused"] += 1
                except Exception as exc:  # noqa: BLE001
                    seen["other"].append(repr(exc))

    threads = [threading.Thread(target=owner), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["refused"] > 0 and not seen["other"]
