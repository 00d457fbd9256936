"""Neural-network building blocks with micrograd's API: ``Module``, ``Neuron``,
``Layer``, ``MLP``.

A micrograd program runs on pytape after changing its imports from
``micrograd.engine``/``micrograd.nn`` to ``pytape``/``pytape.nn``.

>>> import random, pytape
>>> from pytape.nn import MLP
>>> random.seed(0)
>>> model = MLP(2, [16, 16, 1])
>>> score = model([1.0, -2.0])
>>> score.backward()
>>> len(model.parameters()), all(isinstance(p.grad, float) for p in model.parameters())
(337, True)
"""
import random

from .var import Var

__all__ = ["Module", "Neuron", "Layer", "MLP"]


class Module:
    """Base class: ``parameters()`` and ``zero_grad()``.

    >>> from pytape.nn import Neuron
    >>> n = Neuron(3); n.zero_grad(); [p.grad for p in n.parameters()]
    [0.0, 0.0, 0.0, 0.0]
    """

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self):
        return []


class Neuron(Module):
    """w . x + b, followed by relu unless ``nonlin=False``.

    >>> from pytape.nn import Neuron
    >>> n = Neuron(2, nonlin=False)
    >>> out = n([1.0, 2.0])
    >>> abs(out.value - (n.w[0].value + 2 * n.w[1].value + n.b.value)) < 1e-12
    True
    """

    def __init__(self, nin, nonlin=True):
        self.w = [Var(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Var(0.0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` neurons on the same inputs; returns one Var when ``nout == 1``.

    >>> from pytape.nn import Layer
    >>> len(Layer(3, 4)([1.0, 2.0, 3.0]))
    4
    """

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: relu hidden layers and a linear output layer.

    >>> from pytape.nn import MLP
    >>> MLP(2, [4, 1])
    MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2), ReLUNeuron(2), ReLUNeuron(2)], Layer of [LinearNeuron(4)]]
    """

    def __init__(self, nin, nouts):
        sz = [nin] + list(nouts)
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
