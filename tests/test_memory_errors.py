"""Allocation failures become MemoryError and leave the tape intact.

Run in a subprocess whose address space is capped, so that the tape's
doubling growth (and then the adjoint array) cannot be allocated."""
import os
import subprocess
import sys
import textwrap

import pytest

import pytape

SCRIPT = textwrap.dedent('''
    import resource
    import pytape

    def vm_bytes():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * 4096

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm_bytes() + 300 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    x = pytape.Var(1.0)
    with pytape.Tape() as t:
        y = x * 1.0
        try:
            while True:
                y = y * 1.0
        except MemoryError as e:
            assert "the tape is unchanged" in str(e), e
        n = len(t)
        try:  # the adjoints may not fit either: also a MemoryError, tape intact
            y.backward()
            swept = True
        except MemoryError as e:
            assert "backward" in str(e), e
            swept = False
    assert len(t) == n and not t.consumed or swept
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if not swept:
        y.backward()
    assert len(t) == n and x.grad == 1.0, (len(t), n, x.grad)
    print("ok", n)
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
@pytest.mark.not_under_asan("its shadow memory does not fit an RLIMIT_AS cap")
def test_out_of_memory_raises_and_keeps_the_tape(tmp_path):
    # import the same pytape as this test, not a source folder in the cwd
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pytape.__file__)))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    n = int(out.stdout.split()[1])
    assert n > 1_000_000  # the cap was reached by the tape, not by something else
