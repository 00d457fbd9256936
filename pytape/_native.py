"""The binding layer: the only module that imports the compiled C tape.

It reads the op table from the library (names, kinds, opcodes) and turns C
status codes into Python exceptions.  ``cdata`` objects never leave pytape's
internals.
"""
import os

try:
    from ._tape_cffi import ffi, lib
except ImportError as exc:  # a source checkout that was never built
    raise ImportError(
        f"pytape's compiled module is missing from {os.path.dirname(os.path.abspath(__file__))}: "
        f"this looks like a source checkout without a build. Run `pip install -e .` (or "
        f"`python build_tape.py`) in the checkout, or run Python outside it to use an installed "
        f"pytape. ({exc})"
    ) from None

__all__ = ["ffi", "lib", "OPCODES", "OP_NAMES", "OP_KINDS", "raise_status", "check_owner"]

OP_NAMES = tuple(ffi.string(lib.pt_op_name(i)).decode() for i in range(lib.pt_num_ops()))
OP_KINDS = tuple(lib.pt_op_kind(i) for i in range(lib.pt_num_ops()))
#: base opcode of each primitive: unary ops and the (var, var) form of binary ops
OPCODES = {
    name: i
    for i, (name, kind) in enumerate(zip(OP_NAMES, OP_KINDS))
    if kind in (lib.PT_KIND_UNARY, lib.PT_KIND_VV)
}
UNARY = tuple(n for n, i in OPCODES.items() if OP_KINDS[i] == lib.PT_KIND_UNARY)
BINARY = tuple(n for n, i in OPCODES.items() if OP_KINDS[i] == lib.PT_KIND_VV)


class TapeConsumedError(RuntimeError):
    """A tape was used after ``backward()`` consumed it (no ``retain_graph``)."""


class TapeThreadError(RuntimeError):
    """A tape was used from a thread other than the one that records on it."""


_CONSUMED_HINTS = {
    "backward": (
        "backward() has already run through this tape and released it. "
        "To call backward() more than once on the same graph, pass "
        "retain_graph=True to every call but the last."
    ),
    "record": (
        "this Var was computed on a tape that backward() has consumed, so it "
        "cannot take part in new operations. Keep the graph with "
        "backward(retain_graph=True), or start from its number: x.detach() "
        "(a constant) or pytape.Var(x.value) (a new leaf)."
    ),
}


def check_owner(tape):
    """Raise TapeThreadError unless this thread records on ``tape``."""
    if not lib.pt_tape_is_owner(tape._p):
        raise_status(lib.PT_E_THREAD, "record", tape)


def raise_status(status, what="record", tape=None):
    """Raise the exception for a negative C status ``status``."""
    if status == lib.PT_E_NOMEM:
        if what == "backward":
            raise MemoryError(
                "pytape: out of memory allocating the adjoints for backward(); "
                "the tape is unchanged and backward() can be retried"
            )
        raise MemoryError("pytape: out of memory while growing the tape; the tape is unchanged")
    if status == lib.PT_E_FULL:
        raise MemoryError("pytape: the tape reached its maximum of 2**31 - 1 slots")
    if status == lib.PT_E_CONSUMED:
        raise TapeConsumedError(_CONSUMED_HINTS[what])
    if status == lib.PT_E_THREAD:
        owner = lib.pt_tape_owner(tape._p) if tape is not None else "another thread"
        raise TapeThreadError(
            f"this tape is recorded by thread {owner}; pytape records each "
            f"thread on its own tape and never shares one between threads. "
            f"Pass numbers (x.value) or detached copies (x.detach()) between "
            f"threads, and call backward() in the thread that recorded."
        )
    if status == lib.PT_E_SLOT:
        raise IndexError("pytape: slot outside the tape (internal error, please report)")
    if status == lib.PT_E_NONFINITE and tape is not None and what in ("backward", "tangent"):
        from . import anomaly  # anomaly mode stopped a sweep: name the operation and line
        raise (anomaly.backward_error(tape) if what == "backward" else anomaly.tangent_error(tape))
    if status in (lib.PT_E_ANOMALY, lib.PT_E_NONFINITE):
        raise FloatingPointError("pytape: a value is nan or inf (anomaly mode)")
    if status == lib.PT_E_OP:
        raise ValueError("pytape: opcode of the wrong kind (internal error, please report)")
    raise RuntimeError(f"pytape: unexpected status {status}")
