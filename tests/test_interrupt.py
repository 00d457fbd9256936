"""Ctrl-C during a long C call takes effect promptly (issue 9): a batch replay
runs as C calls of about 0.1 s (pytape/_native.py, _chunks), and Python
raises KeyboardInterrupt between two; the compiled function works afterwards.

Each case runs in a subprocess that sends itself SIGINT from a timer thread,
so that a late KeyboardInterrupt cannot reach pytest."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import pytape

SCRIPT = textwrap.dedent('''
    import os, signal, sys, threading, time
    import numpy as np
    import pytape

    method = sys.argv[1]

    def f(x):
        s = x[0] * 1.0
        for i in range(1000):
            s = pytape.sin(s) * x[i % 4] + x[(i + 1) % 4]
        return s

    fn = pytape.trace(f, np.ones(4))
    call = getattr(fn, method)
    rng = np.random.default_rng(0)
    # a batch of about 2 s on this machine, now (under a sanitizer too)
    X = rng.uniform(-1, 1, (500, 4))
    start = time.perf_counter()
    call(X)
    rows = int(len(X) * 2.0 / (time.perf_counter() - start))
    X = rng.uniform(-1, 1, (rows, 4))
    start = time.perf_counter()
    full = call(X)
    whole = time.perf_counter() - start

    sent = []
    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)
    timer = threading.Timer(0.5, interrupt)
    try:
        timer.start()
        call(X)
        late = None  # the whole batch ran: the interrupt came after it
    except KeyboardInterrupt:
        late = time.perf_counter() - sent[0]
    timer.join()
    # the same compiled function, after the interrupt: the same numbers
    again = call(X[:1000])
    assert np.array_equal(again, full[:1000]), "a different result after the interrupt"
    assert np.array_equal(call(X[7]), full[7])
    print(whole, late)
''')


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="sends itself SIGINT")
@pytest.mark.parametrize("method", ["__call__", "gradient"])
def test_ctrl_c_stops_a_long_batch_replay_promptly(tmp_path, method):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pytape.__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT, method], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    whole, late = out.stdout.split()
    whole = float(whole)
    assert late != "None", f"KeyboardInterrupt never came during a {whole:.1f} s batch"
    # the interrupt came 0.5 s into a batch of ~2 s: at its end (~1.5 s) before
    # the batch was split, within about 0.1 s now
    assert float(late) < 0.3 * whole, (float(late), whole)


def test_block_sweeps_of_a_long_tape_take_fewer_seeds_a_call(monkeypatch):
    # the same bound as on a tape of more than 2^20 instructions, here on a
    # short one: each C call of a Jacobian or Hessian sweeps at most
    # BLOCK_WORK / len(tape) seeds (pytape/program.py), same numbers
    import numpy as np
    from pytape import _native, program

    fn = pytape.trace(lambda x: np.sin(x) * x[::-1] + x ** 2, np.ones(40), elementwise=True)  # scalar tapes
    g = pytape.trace(lambda x: np.sum(np.sin(x) * x[::-1]), np.ones(40), elementwise=True)
    x = np.linspace(0.1, 2.0, 40)

    def results():
        return [fn.jacobian(x, mode="rev"), fn.jacobian(x, mode="fwd"), g.hessian(x)]

    before = results()
    n = max(fn.num_ops, g.num_ops)
    widths = []
    for name, seeds_arg in (("backward_block", 1), ("tangent_block", 1), ("hvp_block", 2)):
        def wrapped(self, *args, _sweep=getattr(_native.CTape, name), _k=seeds_arg):
            widths.append((np.shape(args[_k])[1], len(self)))
            return _sweep(self, *args)
        monkeypatch.setattr(_native.CTape, name, wrapped)
    monkeypatch.setattr(program, "BLOCK_WORK", 6 * n, raising=False)
    after = results()
    assert len(widths) >= 3 * 40 // 6
    assert all(w <= 6 * n // length for w, length in widths), widths
    for a, b in zip(before, after):
        assert np.array_equal(a, b)
