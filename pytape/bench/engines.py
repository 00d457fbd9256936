"""The engines the benchmark compares, each behind an :class:`Engine` adapter.

``get_engine(name)`` gives one by name (a key of ``ENGINES``) or by
``"module:Class"`` (``load_engine``); ``available_engines`` skips the optional
ones that are not installed.  :class:`F` is the float-wrapper floor, and
:class:`GenericMLP` the micrograd-style MLP built from any engine's leaves
(``Engine.mlp`` for engines without one of their own).
"""
import functools
import random
from contextlib import nullcontext
from importlib import import_module

import pytape
import pytape.nn

__all__ = [
    "Engine", "EngineError", "EngineUnavailable", "F", "GenericMLP", "ENGINES",
    "get_engine", "load_engine", "available_engines",
]


class EngineError(ValueError):
    """An engine name or ``module:Class`` spec that cannot be used."""


class EngineUnavailable(EngineError, ImportError):
    """An optional engine (micrograd, torch) that is not installed."""


class Engine:
    """How the workloads drive one micrograd-style scalar engine.

    The defaults fit any class with micrograd's ``Value`` API: ``Value(data)``,
    ``+ - * / **`` (also with floats on either side), ``relu()``,
    ``backward()``, ``.data`` and ``.grad``.  Subclasses adapt pytape, torch
    and the float floor.

    >>> from pytape.reference import Value
    >>> from pytape.bench.workloads import backward, chain_record
    >>> eng = Engine("reference", Value)
    >>> rec = chain_record(eng, 10); backward(rec); eng.grad(rec.inputs[0])
    1.0
    """

    has_backward = True  #: False for the float floor: it records values only
    big = False          #: runs the largest default sizes (chain D=10**6) outside --full

    def __init__(self, name, Value=None, version=""):
        self.name, self.Value, self.version = name, Value, version

    def leaf(self, v):
        """A new input (leaf) holding the float ``v``."""
        return self.Value(v)

    def recording(self):
        """Context manager around one recording; its value becomes ``Recording.tape``."""
        return nullcontext()

    def backward(self, y):
        y.backward()

    def grad(self, x):
        """The gradient of leaf ``x`` as a float."""
        return float(x.grad)

    def value(self, y):
        return float(y.data)

    def mlp(self, nin, nouts):
        """A micrograd-style MLP on this engine (the caller seeds ``random``)."""
        return GenericMLP(self.leaf, nin, nouts)

    def zero_grad(self, params):
        for p in params:
            p.grad = 0.0

    def update(self, params, lr):
        for p in params:
            p.data -= lr * p.grad

    def __repr__(self):
        return f"<Engine {self.name}{' ' + self.version if self.version else ''}>"


class PytapeEngine(Engine):
    big = True

    def __init__(self):
        super().__init__("pytape", pytape.Var, pytape.__version__)

    def recording(self):
        return pytape.Tape()

    def mlp(self, nin, nouts):
        return pytape.nn.MLP(nin, nouts)


class MicrogradEngine(Engine):
    def __init__(self):
        try:
            from micrograd.engine import Value
        except ImportError as exc:
            raise EngineUnavailable(f"micrograd is not installed ({exc}); pip install micrograd==0.1.0") from None
        super().__init__("micrograd", Value, _dist_version("micrograd"))

    def mlp(self, nin, nouts):
        from micrograd.nn import MLP
        return MLP(nin, nouts)


class TorchEngine(Engine):
    def __init__(self):
        try:
            import torch
        except ImportError as exc:
            raise EngineUnavailable(f"torch is not installed ({exc})") from None
        super().__init__("torch", None, torch.__version__)
        self.torch = torch
        # 0-d tensors gain nothing from intra-op threads, and idle OpenMP
        # workers spinning after each op would steal the other core from
        # whichever engine runs next
        torch.set_num_threads(1)

    def leaf(self, v):
        return self.torch.tensor(v, dtype=self.torch.float64, requires_grad=True)

    def grad(self, x):
        return 0.0 if x.grad is None else float(x.grad)

    def value(self, y):
        return y.item()

    def zero_grad(self, params):
        for p in params:
            p.grad = None

    def update(self, params, lr):
        with self.torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= lr * p.grad


class F:
    """The float-wrapper floor: operators compute floats and nothing else.

    >>> y = (F(1.0) * 0.5 + 0.25).relu() + 1 - F(2.0) ** 2
    >>> y.v
    -2.25
    """

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __add__(self, o):
        return F(self.v + (o.v if type(o) is F else o))

    def __sub__(self, o):
        return F(self.v - (o.v if type(o) is F else o))

    def __mul__(self, o):
        return F(self.v * (o.v if type(o) is F else o))

    def __truediv__(self, o):
        return F(self.v / (o.v if type(o) is F else o))

    def __pow__(self, o):
        return F(self.v ** (o.v if type(o) is F else o))

    def __rsub__(self, o):
        return F(o - self.v)

    def __rtruediv__(self, o):
        return F(o / self.v)

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        return F(-self.v)

    def relu(self):
        return F(self.v if self.v > 0.0 else 0.0)


class FloorEngine(Engine):
    has_backward = False
    big = True

    def __init__(self):
        super().__init__("floor", F)

    def value(self, y):
        return y.v


def _reference_value():
    from pytape.reference import Value
    return Value


def _dist_version(dist):
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:
        return ""


#: built-in engines by name, in table order
ENGINES = {
    "pytape": PytapeEngine,
    "reference": lambda: Engine("reference", _reference_value()),
    "micrograd": MicrogradEngine,
    "torch": TorchEngine,
    "floor": FloorEngine,
}


def load_engine(spec):
    """An :class:`Engine` for the micrograd-style class named by ``"module:Class"``.

    The class is checked on ``relu(x*x + 1)`` at x = 2 (gradient 4) first, so a
    bad spec fails here with a clear :class:`EngineError`.

    >>> load_engine("pytape.reference:Value").name
    'pytape.reference:Value'
    >>> try:
    ...     load_engine("nosuchmodule:Value")
    ... except EngineError as exc:
    ...     print(exc)
    --engine nosuchmodule:Value: cannot import module 'nosuchmodule' (No module named 'nosuchmodule')
    """
    mod, sep, attr = spec.partition(":")
    if not (sep and mod and attr):
        raise EngineError(f"--engine {spec}: expected MODULE:CLASS, e.g. pytape.reference:Value")
    try:
        module = import_module(mod)
    except Exception as exc:
        raise EngineError(f"--engine {spec}: cannot import module {mod!r} ({exc})") from None
    try:
        Value = functools.reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise EngineError(f"--engine {spec}: module {mod!r} has no attribute {attr!r}") from None
    if not callable(Value):
        raise EngineError(f"--engine {spec}: {attr!r} is not a class")
    engine = Engine(spec, Value)
    try:
        x = engine.leaf(2.0)
        y = (x * x + 1.0).relu()
        engine.backward(y)
        ok = engine.grad(x) == 4.0 and engine.value(y) == 5.0
    except Exception as exc:
        raise EngineError(
            f"--engine {spec}: not a micrograd-style Value class (Value(data), operators, "
            f"relu(), backward(), .data, .grad): {type(exc).__name__}: {exc}"
        ) from None
    if not ok:
        raise EngineError(f"--engine {spec}: relu(x*x + 1) at x = 2 gave a wrong value or gradient")
    return engine


def get_engine(name):
    """The :class:`Engine` named ``name`` (a key of ``ENGINES``, or ``"module:Class"``).

    Raises :class:`EngineUnavailable` for an optional engine that is not
    installed, :class:`EngineError` for an unknown name.

    >>> get_engine("floor").has_backward
    False
    """
    if ":" in name:
        return load_engine(name)
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)} or MODULE:CLASS")
    return ENGINES[name]()


def available_engines(names=tuple(ENGINES)):
    """(engines that import, {name: reason} for those that do not)."""
    engines, missing = [], {}
    for name in names:
        try:
            engines.append(get_engine(name))
        except EngineUnavailable as exc:
            missing[name] = str(exc)
    return engines, missing


class _Neuron:
    def __init__(self, leaf, nin, nonlin):
        self.w = [leaf(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = leaf(0.0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act


class GenericMLP:
    """micrograd's MLP (same parameter order and initialisation) on any engine's leaves.

    >>> from pytape.reference import Value
    >>> random.seed(0); m = GenericMLP(Value, 2, [16, 16, 1])
    >>> len(m.parameters()), type(m([1.0, 2.0])).__name__
    (337, 'Value')
    """

    def __init__(self, leaf, nin, nouts):
        sz = [nin] + list(nouts)
        self.layers = [[_Neuron(leaf, sz[i], i != len(nouts) - 1) for _ in range(sz[i + 1])] for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = [n(x) for n in layer]
        return x[0] if len(x) == 1 else x

    def parameters(self):
        return [p for layer in self.layers for n in layer for p in n.w + [n.b]]
