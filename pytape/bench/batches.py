"""Batches of a traced array program over threads: ``fn.gradient(X)`` of a
``pytape.trace``'d function on rows X, the rows split over 1 thread and over
every core (``fn.threads``), in one run, the two interleaved.

>>> rows = run_batches({"elementwise": 500}, repeat=1, sample_ns=1_000_000)
>>> rows[0].case, rows[0].threads >= 1
('elementwise', True)
"""
from typing import NamedTuple

import numpy as np

import pytape

from .arrays import _fmt, format_table, round_robin, sample

__all__ = ["BATCH_CASES", "BATCH_SIZES", "run_batches", "format_batches"]

_W = np.random.default_rng(0).normal(size=(16, 16)) / 4.0


def _elementwise(x):
    return np.sum(np.tanh(x) ** 2 + np.exp(-x * x) * x)


def _layer(x):
    return np.sum(np.tanh(x @ _W) ** 2)


#: name -> (f of one 16-element row, what it is)
BATCH_CASES = {"elementwise": (_elementwise, "sum(tanh(x)**2 + exp(-x*x)*x), 16 elements"),
               "layer": (_layer, "sum(tanh(x @ W)**2), W 16x16")}
BATCH_SIZES = {"quick": 2000, "default": 40000}


class BatchRow(NamedTuple):
    case: str
    rows: int
    threads: int
    one: float   # ns per batch on 1 thread
    many: float  # ns per batch on `threads` threads


def run_batches(rows_of, repeat=5, sample_ns=200_000_000):
    """For each case (name -> rows): median ns of ``fn.gradient(X)`` on 1
    thread and on every core, interleaved; the gradients are checked equal."""
    out = []
    for name, n in rows_of.items():
        f = BATCH_CASES[name][0]
        fn = pytape.trace(f, np.zeros(16))
        cores = fn.threads  # its default: every core this process may use
        X = np.random.default_rng(1).normal(size=(n, 16))
        fn.threads = 1
        want = fn.gradient(X)
        fn.threads = cores
        if not np.array_equal(fn.gradient(X), want):
            raise AssertionError(f"{name}: the batch on {cores} threads differs from 1 thread")
        times = {1: [], cores: []}
        for k in round_robin([1, cores], repeat):
            fn.threads = k
            times[k].append(sample(lambda: fn.gradient(X), sample_ns))
        out.append(BatchRow(name, n, cores, float(np.median(times[1])), float(np.median(times[cores]))))
    return out


def format_batches(rows):
    """The table: ns per batch on 1 thread and on every core, and the speed-up."""
    head = ("program", "rows", "1 thread", "threads", "all threads", "speed-up")
    body = [(r.case + ": " + BATCH_CASES[r.case][1], str(r.rows), _fmt(r.one), str(r.threads), _fmt(r.many),
             f"{r.one / r.many:.2f}x") for r in rows]
    return format_table(head, body, right={1, 2, 3, 4, 5})
