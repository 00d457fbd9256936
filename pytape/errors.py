"""pytape's exceptions, in one place.

Beside these, pytape raises Python's own: ``TypeError`` and ``ValueError`` for
bad arguments, ``MemoryError`` when a tape cannot grow (the tape is then
unchanged), ``FloatingPointError`` in anomaly mode (``pytape.detect_anomaly``).
``pytape/_native.py`` turns the C tape's status codes into them.

>>> import pytape
>>> x = pytape.Var(2.0)
>>> y = x * x
>>> y.backward()
>>> try:
...     y.backward()
... except pytape.TapeConsumedError:
...     print("consumed")
consumed
"""

__all__ = ["TapeConsumedError", "TapeThreadError", "BranchChangedError", "TapeFormatError",
           "GradcheckError", "MixedTapesError"]


class TapeConsumedError(RuntimeError):
    """A tape was used after ``backward()`` consumed it (no ``retain_graph``)."""


class TapeThreadError(RuntimeError):
    """A tape was used from a thread other than the one that records on it."""


class BranchChangedError(RuntimeError):
    """A replay (``pytape.trace``) reached a comparison whose outcome differs
    from the trace, and the function may not (or cannot) be traced again."""


class TapeFormatError(ValueError):
    """Bytes that are not a compiled function pytape can load (truncated,
    corrupted, another format or a newer version)."""


class GradcheckError(RuntimeError):
    """The tape's derivatives and central finite differences disagree."""


class MixedTapesError(ValueError):
    """An operation combined results recorded on two different tapes."""


class OuterVar(Exception):
    """Internal: f, recorded by a function transformation on a fresh tape,
    used a Var from outside its arguments (a closure over a leaf or a result
    of another tape).  pytape/functional.py then records f on the outer tape
    (pytape/nested.py) instead of treating that Var as a constant."""
