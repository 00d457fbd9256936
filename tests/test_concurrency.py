"""Threads and fork: no lost gradient, no hang after fork, no spurious
TapeThreadError, and a stress test where threads record, sweep, replay,
re-trace and read gradients while the process forks.  Every result is exact:
each is checked against the same computation done alone."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import pytape

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait(pid, timeout):
    """The child's exit status, or None if it is still running after timeout (then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _child_works():
    """What a forked child does: record, sweep, set and add gradients, trace, replay."""
    x = pytape.Var(2.0)
    y = x * x + pytape.sin(x)
    y.backward()
    ok = abs(x.grad - (2 * 2.0 + np.cos(2.0))) < 1e-12
    x.grad = 0.0
    (x * 3.0).backward(inputs=[x])
    ok &= x.grad == 3.0
    fn = pytape.trace(lambda v: v * v if v > 0 else -v, 1.0)
    ok &= fn.gradient(np.array([2.0, -3.0])).tolist() == [4.0, -1.0]
    ok &= fn.hessian(3.0) == 2.0
    return ok


def _fork_a_working_child():
    """Fork; the child does _child_works() and exits.  Its exit status (None: hung and killed)."""
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists here
        try:
            code = 0 if _child_works() else 3
        except BaseException:  # noqa: BLE001
            code = 4
        os._exit(code)
    return _wait(pid, 30)


def _fork_during(busy, forks=12, pause=0.02):
    """Fork `forks` times while thread(s) run `busy` (which loops until the
    event is set); every child must finish its own work within 60 s."""
    stop = threading.Event()
    errors = []

    def run():
        try:
            busy(stop)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    time.sleep(0.2)
    statuses = []
    try:
        for _ in range(forks):
            time.sleep(pause)
            statuses.append(_fork_a_working_child())
    finally:
        stop.set()
        th.join()
    assert not errors
    assert statuses == [0] * forks, f"child exit codes (None: hung and killed): {statuses}"


@fork_only
def test_fork_while_another_thread_runs_backward_does_not_hang():
    # the leaves' gradients are added under a lock: a fork while another
    # thread held it left the child's next backward() waiting forever
    leaves = [pytape.Var(1.0) for _ in range(300_000)]

    def train(stop):
        s = sum(leaves[1:], leaves[0] * 1.0)
        while not stop.is_set():
            s.backward(retain_graph=True)

    _fork_during(train)


@fork_only
def test_fork_while_another_thread_adds_gradients_does_not_hang():
    cells = [pytape.Var(0.0) for _ in range(100_000)]

    def add(stop):
        y = pytape.Var(1.0)
        while not stop.is_set():
            y.backward(inputs=[y])
            for c in cells[:1000]:
                c.grad = 1.0

    _fork_during(add)


@fork_only
def test_fork_during_batch_replays_block_and_hessian_sweeps():
    fn = pytape.trace(lambda x: np.sum(pytape.sin(x) * x) if x[0] > -10 else x[0], np.ones(200))
    X = np.random.default_rng(0).normal(size=(400, 200))

    def sweeps(stop):
        while not stop.is_set():
            fn.gradient(X)
            fn.hessian(X[0])
            fn.jacobian(X[1])
            with pytape.Tape():
                v = [pytape.Var(float(u)) for u in X[2, :50]]
                pytape.autograd.grad(sum(a * b for a, b in zip(v, v[1:])), v)

    _fork_during(sweeps, forks=8)


@fork_only
def test_child_cannot_sweep_a_tape_of_a_thread_that_did_not_survive_fork():
    box, ready, stop = {}, threading.Event(), threading.Event()

    def owner():
        x = pytape.Var(3.0)
        box["y"] = x * x
        ready.set()
        stop.wait()

    th = threading.Thread(target=owner)
    th.start()
    ready.wait()
    try:
        pid = os.fork()
        if pid == 0:
            # a new thread in the child may get the dead owner's thread-local
            # address; the tape must still refuse it
            out = []

            def other():
                try:
                    box["y"].backward(retain_graph=True)
                    out.append("swept")
                except pytape.TapeThreadError:
                    out.append("refused")

            for _ in range(4):
                t = threading.Thread(target=other)
                t.start()
                t.join()
            try:
                box["y"].backward(retain_graph=True)
                out.append("swept")
            except pytape.TapeThreadError:
                out.append("refused")
            os._exit(0 if out == ["refused"] * 5 else 3)
        assert _wait(pid, 30) == 0
    finally:
        stop.set()
        th.join()


def test_no_gradient_update_is_lost_between_threads():
    # 8 threads x 200 backward calls on shared parameters, half with inputs=
    params = [pytape.Var(1.0), pytape.Var(2.0)]
    barrier = threading.Barrier(8)

    def work(k):
        barrier.wait()
        for i in range(200):
            y = params[0] * params[1]
            if (i + k) % 2:
                y.backward(inputs=params)
            else:
                y.backward()
            params[0].backward(inputs=[params[0]])  # d(leaf)/d(leaf) = 1, in Python
            params[1].backward()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert params[0].grad == 1600 * (2.0 + 1.0)
    assert params[1].grad == 1600 * (1.0 + 1.0)


def test_compiled_function_derivatives_in_the_thread_that_traced_it():
    # a worker re-traced f (its tape goes first); the first thread's jacobian
    # and hessian must use a tape it may sweep, not raise TapeThreadError
    fn = pytape.trace(lambda v: v * v if v > 0 else -v, 2.0)
    t = threading.Thread(target=lambda: fn.gradient(-3.0))
    t.start()
    t.join()
    assert fn.hessian(-3.0) == 0.0 and fn.hessian(3.0) == 2.0
    assert fn.jacobian(-3.0) == -1.0 and fn.jacobian(5.0) == 10.0
    assert fn.hvp(-3.0, 2.0) == 0.0 and fn.hvp(3.0, 2.0) == 4.0
    assert fn.jvp(-3.0, 2.0) == (3.0, -2.0) and fn.vjp(4.0, 1.0) == (16.0, 8.0)
    results = {}

    def worker(k):
        results[k] = (fn.hessian(3.0), fn.hessian(-3.0), fn.jacobian(float(k) + 1.0))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {k: (2.0, 0.0, 2.0 * (k + 1.0)) for k in range(4)}


def test_with_blocks_exited_out_of_order_leave_the_thread_usable():
    def gen(n):
        with pytape.Tape():
            x = pytape.Var(1.0)
            yield x * n
            yield x * (n + 1)

    g1, g2 = gen(1), gen(2)
    a, b = next(g1), next(g2)
    rest = list(g1) + list(g2)
    assert [v.value for v in (a, b, *rest)] == [1.0, 2.0, 2.0, 3.0]
    (pytape.Var(3.0) * 2).backward()
    y = pytape.Var(1.0) * 2  # once raised TapeConsumedError, forever in this thread
    y.backward()
    assert y.value == 2.0
    assert pytape.current_tape() is not None


def test_with_blocks_interleaved_restore_each_tape_in_turn():
    t1, t2, t3 = pytape.Tape(), pytape.Tape(), pytape.Tape()
    t1.__enter__()
    t2.__enter__()
    t3.__enter__()
    t2.__exit__(None, None, None)   # out of order: t3 stays current
    assert pytape.current_tape() is t3
    t3.__exit__(None, None, None)
    assert pytape.current_tape() is t1
    t1.__exit__(None, None, None)
    assert pytape.current_tape() not in (t1, t2, t3)


def test_thread_and_fork_stress_record_sweep_replay_retrace_exact():
    # threads record, sweep, replay, re-trace the same compiled function and
    # read gradients at once; each result equals the same computation alone
    def f(v):
        return v * v * v if v > 1 else (pytape.sin(v) if v > -1 else -v)

    def exact(v):
        return (v ** 3, 3 * v * v) if v > 1 else ((np.sin(v), np.cos(v)) if v > -1 else (-v, -1.0))

    fn = pytape.trace(f, 2.0)
    shared = pytape.Var(0.5)
    rng = np.random.default_rng(1)
    points = rng.uniform(-3, 3, size=(8, 60))
    failures = []
    barrier = threading.Barrier(8)

    def work(k):
        try:
            checked_work(k)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(("raised", repr(e)))

    def checked_work(k):
        barrier.wait()
        for v in points[k]:
            v = float(v)
            val, g = exact(v)
            got = (fn(v), fn.gradient(v))
            if not np.allclose(got, (val, g), rtol=1e-13, atol=0):
                failures.append(("replay", v, got))
            h = 6 * v if v > 1 else (-np.sin(v) if v > -1 else 0.0)
            if not np.isclose(fn.hessian(v), h, rtol=1e-13, atol=0):
                failures.append(("hessian", v))
            x = pytape.Var(v)
            y = f(x) * shared
            y.backward()
            if not np.isclose(x.grad, g * 0.5, rtol=1e-13):
                failures.append(("eager", v, x.grad))
            batch = fn.gradient(points[k, :8])
            if not np.allclose(batch, [exact(float(u))[1] for u in points[k, :8]], rtol=1e-13):
                failures.append(("batch", k))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    statuses = []
    if hasattr(os, "fork"):  # forks at random moments of all that: each child works
        for pause in rng.uniform(0.0, 0.05, size=4):
            time.sleep(pause)
            statuses.append(_fork_a_working_child())
    for th in threads:
        th.join()
    assert not failures, failures[:5]
    assert statuses == [0] * len(statuses), f"child exit codes (None: hung and killed): {statuses}"
    assert shared.grad == pytest.approx(sum(exact(float(v))[0] for v in points.ravel()), rel=1e-12)
