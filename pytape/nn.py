"""Neural-network building blocks: micrograd's scalar ones (``Module``,
``Neuron``, ``Layer``, ``MLP``: one ``Var`` per weight) and PyTorch-style
array ones (``Linear``, ``ReLU``, ``Tanh``, ``Sigmoid``, ``Sequential``,
``TensorMLP``, and the losses ``cross_entropy`` and ``mse_loss``: one
``pytape.Tensor`` per weight matrix, one instruction per layer operation).

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
import numbers
import random

import numpy as np

from .array_ops import log_softmax
from .tensor import Tensor
from .var import Var

__all__ = ["Module", "Neuron", "Layer", "MLP", "Linear", "ReLU", "Tanh", "Sigmoid", "Sequential", "TensorMLP",
           "cross_entropy", "mse_loss"]


class Module:
    """Base class: ``parameters()`` and ``zero_grad()``.

    >>> from pytape.nn import Neuron
    >>> n = Neuron(3); n.zero_grad(); [p.grad for p in n.parameters()]
    [0.0, 0.0, 0.0, 0.0]
    """

    def zero_grad(self):
        """Set every parameter's grad to zero (a Tensor's without a pass over its memory)."""
        for p in self.parameters():
            p.zero_grad()

    def parameters(self):
        """The leaves to train: a list of Vars (micrograd's modules) or Tensors (the array layers)."""
        return []

    def __call__(self, *args):
        return self.forward(*args)

    def forward(self, *args):  # pragma: no cover - the array layers' hook, as torch.nn.Module.forward
        raise NotImplementedError(f"{type(self).__name__} defines no forward()")


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


# =============================================================================
# array layers, in PyTorch's style
# =============================================================================

def _uniform(rng, bound, shape):
    """U(-bound, bound) from ``rng`` (a numpy Generator) or numpy's global state."""
    return (rng.uniform(-bound, bound, shape) if rng is not None else np.random.uniform(-bound, bound, shape))


def _size(name, n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{name} must be a positive integer, not {n!r}")
    return int(n)


class Linear(Module):
    """``x @ weight + bias``: a matrix product (BLAS) and a broadcast add, two
    instructions.  ``weight`` is a Tensor of shape (in_features,
    out_features) (the transpose of torch.nn.Linear's layout, so that the
    product needs no transposed view), ``bias`` of shape (out_features,);
    both start as torch.nn.Linear's, U(-1/sqrt(in), 1/sqrt(in)), drawn from
    ``rng`` (a numpy Generator) or numpy's global random state.

    >>> import numpy as np, pytape
    >>> layer = pytape.nn.Linear(3, 2, rng=np.random.default_rng(0))
    >>> y = layer(np.ones((4, 3)))
    >>> y.shape, [p.shape for p in layer.parameters()]
    ((4, 2), [(3, 2), (2,)])
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        self.in_features, self.out_features = _size("in_features", in_features), _size("out_features", out_features)
        bound = 1.0 / np.sqrt(self.in_features)
        self.weight = Tensor(_uniform(rng, bound, (self.in_features, self.out_features)))
        self.bias = Tensor(_uniform(rng, bound, (self.out_features,))) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y

    def parameters(self):
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None})"


class _Activation(Module):
    def parameters(self):
        return []

    def __repr__(self):
        return f"{type(self).__name__}()"


class ReLU(_Activation):
    """max(x, 0) elementwise (the op table's ``relu``, derivative 0 at 0).

    >>> import pytape
    >>> pytape.nn.ReLU()(pytape.Tensor([-1.0, 2.0])).value.tolist()
    [0.0, 2.0]
    """

    def forward(self, x):
        return np.maximum(x, 0.0) if not isinstance(x, Tensor) else x.relu()


class Tanh(_Activation):
    """tanh elementwise.

    >>> import pytape
    >>> round(float(pytape.nn.Tanh()(pytape.Tensor([0.5]))[0]), 6)
    0.462117
    """

    def forward(self, x):
        return np.tanh(x)


class Sigmoid(_Activation):
    """The logistic function elementwise (the op table's stable ``sigmoid``).

    >>> import pytape
    >>> pytape.nn.Sigmoid()(pytape.Tensor([0.0])).value.tolist()
    [0.5]
    """

    def forward(self, x):
        return x.sigmoid() if isinstance(x, Tensor) else 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


class Sequential(Module):
    """Modules applied in order; its parameters are theirs, in order.

    >>> import numpy as np, pytape
    >>> from pytape import nn
    >>> model = nn.Sequential(nn.Linear(4, 8, rng=np.random.default_rng(0)), nn.Tanh(), nn.Linear(8, 3))
    >>> model(np.zeros((5, 4))).shape, len(model.parameters()), len(model), type(model[1]).__name__
    ((5, 3), 4, 3, 'Tanh')
    """

    def __init__(self, *modules):
        for m in modules:
            if not callable(m):
                raise TypeError(f"Sequential takes modules (callables), not {type(m).__name__}")
        self.layers = list(modules)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x

    def parameters(self):
        return [p for m in self.layers if isinstance(m, Module) for p in m.parameters()]

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, k):
        return self.layers[k]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({k}): {m!r}" for k, m in enumerate(self.layers))
        return f"{type(self).__name__}({inner}\n)"


class TensorMLP(Sequential):
    """micrograd's ``MLP(nin, nouts)`` on arrays: ``Linear`` layers of the
    sizes ``[nin] + nouts``, each but the last followed by ``activation``
    (a module class: ``ReLU`` by default, ``Tanh``, ``Sigmoid``).  It maps a
    batch (n, nin) to (n, nouts[-1]) with two instructions per layer and one
    per activation.

    >>> import numpy as np, pytape
    >>> model = pytape.nn.TensorMLP(784, [256, 10], rng=np.random.default_rng(0))
    >>> model(np.zeros((128, 784))).shape, [p.shape for p in model.parameters()]
    ((128, 10), [(784, 256), (256,), (256, 10), (10,)])
    """

    def __init__(self, nin, nouts, activation=ReLU, rng=None):
        sizes = [_size("nin", nin)] + [_size("nouts[k]", n) for n in nouts]
        if len(sizes) < 2:
            raise ValueError("TensorMLP needs at least one layer size in nouts")
        layers = []
        for k in range(len(sizes) - 1):
            layers.append(Linear(sizes[k], sizes[k + 1], rng=rng))
            if k < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)


_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction, name):
    if reduction == "mean":
        return np.mean(loss)
    if reduction == "sum":
        return np.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, not {reduction!r}")


def cross_entropy(logits, target, reduction="mean"):
    """torch.nn.functional.cross_entropy: the negative log-likelihood of
    ``target`` under softmax(logits) along axis 1 (a stable log-softmax).
    ``logits`` (n, classes); ``target`` class indices (n,) of an integer
    dtype, or class probabilities of logits' shape; ``reduction`` "mean"
    (over the n rows), "sum" or "none" (one loss per row).

    >>> import numpy as np, pytape
    >>> z = pytape.Tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> loss = pytape.nn.cross_entropy(z, np.array([0, 2]))
    >>> round(loss.item(), 6), round(float(np.mean([np.log(1 + 2 * np.exp(-2.0)), np.log(3.0)])), 6)
    (0.669079, 0.669079)
    """
    shape = logits.shape if isinstance(logits, Tensor) else np.shape(logits)
    if len(shape) != 2:
        raise ValueError(f"cross_entropy: logits must have shape (n, classes), got {shape}")
    lsm = log_softmax(logits, axis=1)
    if isinstance(target, Tensor) and target.shape == tuple(shape[:1]):
        # class indices as a Tensor (pytape.trace's data inputs are float arrays): picked by a one-hot
        # comparison, recorded, so a replay with other labels needs no guard; their range is a guard
        valid = (target >= 0) & (target < shape[1]) & (target == np.floor(target))
        if not np.all(valid):
            raise ValueError(f"cross_entropy: class indices must be integers in [0, {shape[1]})")
        onehot = np.reshape(target, (shape[0], 1)) == np.arange(shape[1], dtype=np.float64)
        return _reduce(-np.sum(lsm * onehot, axis=1), reduction, "cross_entropy")
    t = np.asarray(target.value if isinstance(target, Tensor) else target)
    if t.dtype.kind in "iu":
        if t.shape != shape[:1]:
            raise ValueError(f"cross_entropy: class indices must have shape ({shape[0]},), got {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= shape[1]):
            raise ValueError(f"cross_entropy: class indices must be in [0, {shape[1]}), got {t.min()}..{t.max()}")
        picked = lsm[np.arange(shape[0]), t]
    elif t.dtype.kind in "f" or isinstance(target, Tensor):
        if t.shape != shape:
            raise ValueError(f"cross_entropy: class probabilities must have logits' shape {shape}, got {t.shape}")
        picked = np.sum(lsm * target, axis=1)
    else:
        raise TypeError(f"cross_entropy: target must be integer class indices or float probabilities, "
                        f"not dtype {t.dtype}")
    return _reduce(-picked, reduction, "cross_entropy")


def mse_loss(input, target, reduction="mean"):
    """torch.nn.functional.mse_loss: (input - target)^2, averaged over every
    element ("mean"), summed ("sum") or not ("none").

    >>> import pytape
    >>> pytape.nn.mse_loss(pytape.Tensor([1.0, 3.0]), [0.0, 1.0]).item()
    2.5
    """
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")
