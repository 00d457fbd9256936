"""Peak memory and time of a piece of code in a fresh Python process (Linux):
the training steps of :mod:`pytape.bench.training`, and ``pytape.checkpoint``
on a long time-stepping loop.

The peak is Linux's high-water mark of resident memory (VmHWM in
/proc/self/status), reset through /proc/self/clear_refs just before the
code runs, less the resident size then: what the code itself added at its
peak, imports and setup excluded.

>>> r = measured("import numpy as np", "a = np.ones(10**6)")
>>> r is None or (r[0] > 0 and r[1] > 4 * 10**6)
True
"""
import subprocess
import sys

__all__ = ["measured", "ode_checkpoint", "CHECKPOINT_SIZES", "format_checkpoint"]

_SCRIPT = """
import time
{setup}
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
t0 = time.perf_counter()
{code}
print(time.perf_counter() - t0, status("VmHWM") - before)
"""


def measured(setup, code, timeout=600):
    """(seconds, bytes) of ``code`` run once after ``setup`` in a fresh
    process: its wall time and the peak resident memory it added; None if
    the process failed (an engine not installed) or the system has no
    /proc/self/clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    r = subprocess.run([sys.executable, "-c", _SCRIPT.format(setup=setup, code=code)], capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode != 0 or len(r.stdout.split()) < 2:
        return None
    t, b = r.stdout.split()[-2:]
    return float(t), int(b)


#: the time-stepping loop: explicit Euler on x' = sin(x) - x^3 / 2, a state of
#: n elements, `steps` steps, checkpointed in blocks of `block` steps
CHECKPOINT_SIZES = {"quick": (1000, 1000, 50), "default": (1000, 10000, 100)}

_ODE = """
import numpy as np, pytape
n, steps, block, dt = {n}, {steps}, {block}, 1e-3
def run_block(x):
    for _ in range(block):
        x = x + dt * (np.sin(x) - 0.5 * x ** 3)
    return x
ck = pytape.checkpoint(run_block)
x = pytape.Tensor(np.linspace(-1.0, 1.0, n))
"""
_LOOP = """
y = x
for _ in range(steps // block):
    y = {call}(y)
np.sum(y ** 2).backward()
"""


def ode_checkpoint(n, steps, block):
    """{"plain": (s, bytes), "checkpoint": (s, bytes)}: the loop's gradient
    recorded step by step, and with each block of steps checkpointed."""
    setup = _ODE.format(n=n, steps=steps, block=block)
    return {name: measured(setup, _LOOP.format(call=call)) for name, call in
            (("plain", "run_block"), ("checkpoint", "ck"))}


def format_checkpoint(res, n, steps, block):
    """The two rows and the ratios."""
    p, c = res.get("plain"), res.get("checkpoint")
    if p is None or c is None:
        return "checkpointing: not measured (needs Linux's /proc/self/clear_refs)"
    return (f"{steps} steps of explicit Euler on {n} elements, gradient of the final state's sum of squares:\n"
            f"  recorded step by step:           {p[0]:.3f} s, peak memory {p[1] / 2 ** 20:.1f} MB\n"
            f"  checkpointed in blocks of {block}:  {c[0]:.3f} s, peak memory {c[1] / 2 ** 20:.1f} MB\n"
            f"  memory {p[1] / max(c[1], 1):.1f}x less, time {c[0] / p[0]:.2f}x")
