"""The timing runner: ``run_case`` times every engine on one workload and size.

Each engine's timings go into a :class:`Row` (ns per repeat, per phase:
record, backward, update, total), with failures noted rather than raised.
"""
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .workloads import WORKLOADS, backward, count_ops

__all__ = ["Row", "run_case"]


@dataclass
class Row:
    """Timings of one engine on one workload and size: ns per repeat, per phase."""

    workload: str
    size: str
    engine: str
    nops: int
    record: List[int] = field(default_factory=list)
    backward: List[int] = field(default_factory=list)
    update: List[int] = field(default_factory=list)
    total: List[int] = field(default_factory=list)  # record + backward + update of complete repeats
    note: str = ""           # failure: "backward: RecursionError", "WRONG RESULT", ...
    detail: str = ""         # its message
    wrong: bool = False      # a check failed: the timings are of a wrong result
    dead: bool = False       # stop timing this engine (failed record or check)
    bytes_per_op: Optional[tuple] = None  # pytape: (used, allocated) bytes / len(tape) after backward

    def per_op(self, phase):
        """Median ns per op of a phase ('record', 'backward', 'update', 'total'), None if none."""
        xs = getattr(self, phase)
        return statistics.median(xs) / self.nops if xs and not self.wrong else None


def _timed(fn, *args, gc_on=True):
    """(fn(*args), ns it took); earlier garbage is collected first, outside the timing."""
    gc.collect()
    if not gc_on:
        gc.disable()
    try:
        t0 = time.perf_counter_ns()
        out = fn(*args)
        return out, time.perf_counter_ns() - t0
    finally:
        if not gc_on:
            gc.enable()


def _fail(row, stage, exc):
    row.note, row.detail = f"{stage}: {type(exc).__name__}", str(exc)
    row.dead = stage != "backward"  # after a failed backward, go on timing the record


def _run_once(wl, engine, size, state, row, check, gc_on):
    stage, rec = "record", None
    try:
        rec, t = _timed(wl.record, engine, size, state, gc_on=gc_on)
        row.record.append(t)
        if not engine.has_backward:
            if check:
                stage = "check"
                wl.check(rec, state, False)
            return
        if row.note:  # backward failed in an earlier repeat
            return
        stage = "backward"
        _, dt = _timed(backward, rec, gc_on=gc_on)
        row.backward.append(dt)
        t += dt
        if check:
            stage = "check"
            wl.check(rec, state, True)
        if rec.tape is not None:
            n = len(rec.tape)
            row.bytes_per_op = (rec.tape.used_nbytes / n, rec.tape.nbytes / n)
        if wl.update is not None:
            stage = "update"
            _, dt = _timed(wl.update, engine, state, gc_on=gc_on)
            row.update.append(dt)
            t += dt
        row.total.append(t)
    except AssertionError as exc:
        row.note, row.detail, row.wrong, row.dead = "WRONG RESULT", str(exc), True, True
    except Exception as exc:
        _fail(row, stage, exc)


def run_case(workload, size, engines, repeat=5, log=None, gc_on=True):
    """Time every engine on one workload and size; a list of :class:`Row` in ``engines`` order.

    Each repeat runs every engine once (record, backward, check on the first
    repeat, update for the MLP), starting the engine order one further on
    each repeat, so that slow drifts of a shared machine hit all engines alike.
    Exceptions are caught and noted in the row (micrograd's recursive
    topological sort raises RecursionError on deep graphs).  The cyclic
    garbage collector stays on during the timings, as in a real program,
    unless ``gc_on`` is false; garbage of earlier steps is collected untimed.

    >>> from pytape.bench.engines import get_engine
    >>> rows = run_case("chain", 100, [get_engine("pytape"), get_engine("floor")], repeat=1)
    >>> [(r.engine, r.nops, len(r.record), len(r.backward)) for r in rows]
    [('pytape', 500, 1, 1), ('floor', 500, 1, 0)]
    """
    wl = WORKLOADS[workload]
    label = f"{wl.label}{size}"
    rows = {e.name: Row(workload, label, e.name, count_ops(workload, size)) for e in engines}
    states = {}
    for e in engines:
        try:
            states[e.name] = wl.prepare(e, size)
        except Exception as exc:
            _fail(rows[e.name], "setup", exc)
    for r in range(repeat):
        k = r % len(engines)
        for e in engines[k:] + engines[:k]:
            if not rows[e.name].dead:
                _run_once(wl, e, size, states.get(e.name), rows[e.name], r == 0, gc_on)
    if log is not None:
        for row in rows.values():
            log(f"{workload} {label}: {row.engine:<10} {_progress(row)}")
    return list(rows.values())


def _progress(row):
    parts = [f"{p} {_ns(row.per_op(p))} ns/op" for p in ("record", "backward", "update") if getattr(row, p)]
    return "  ".join(parts + ([f"{row.note}: {row.detail}"] if row.note else []))


def _ns(x):
    return "-" if x is None else (f"{x:.1f}" if x < 100 else f"{x:,.0f}")


def _ratio(a, b):
    """a / b as a table cell ("2.50x", "12x"), "-" when either is missing."""
    if a is None or b is None or b <= 0:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"
