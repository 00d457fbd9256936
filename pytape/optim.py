"""Optimizers in the style of ``torch.optim``: ``SGD`` (with momentum) and
``Adam``; ``step()`` and ``zero_grad()``.  Parameters are ``Var`` leaves
(micrograd's modules) or ``pytape.Tensor`` leaves (the array layers of
``pytape.nn``), whose arrays are updated in place with numpy: the optimizer's
state (momentum, moments) is one array per parameter.

>>> import random, pytape
>>> from pytape.nn import MLP
>>> random.seed(0)
>>> model = MLP(1, [4, 1])
>>> opt = pytape.optim.Adam(model.parameters(), lr=0.05)
>>> for _ in range(200):
...     loss = sum((model([x]) - 2.0 * x) ** 2 for x in (-1.0, 0.5, 1.0))
...     opt.zero_grad(); loss.backward(); opt.step()
>>> loss.value < 1e-3
True
"""
import math
import numbers

import numpy as np

from .tensor import Tensor

__all__ = ["SGD", "Adam"]


def _hyper(name, value, low=0.0, high=math.inf, high_open=False):
    """value as a float in [low, high] ([low, high) with high_open); TypeError or ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__} ({value!r})")
    v = float(value)
    if not (math.isfinite(v) and low <= v <= high) or (high_open and v == high):
        bound = f"in [{low:g}, {high:g}{')' if high_open else ']'}" if high != math.inf else f"finite and >= {low:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


class _Optimizer:
    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got an empty parameter list")
        for p in self.params:
            if not getattr(p, "is_leaf", False) or not p.requires_grad:
                raise TypeError("optimizers take leaves that require grad (model.parameters())")

    def zero_grad(self):
        """Set every parameter's grad to 0 (a Tensor's without a pass over its memory)."""
        for p in self.params:
            p.zero_grad()

    @staticmethod
    def _grad_of(p, weight_decay):
        """p's gradient plus weight_decay * p: a float, or a new array for a Tensor."""
        if isinstance(p, Tensor):
            g = np.array(p.grad)
            if weight_decay:
                g += weight_decay * p.data
            return g
        return p.grad + weight_decay * p.data


class SGD(_Optimizer):
    """Stochastic gradient descent, torch.optim.SGD's update:
    ``v = momentum * v + g (+ weight_decay * p)``; ``p -= lr * v``.

    >>> import pytape
    >>> p = pytape.Var(1.0); opt = pytape.optim.SGD([p], lr=0.1)
    >>> (p * p).backward(); opt.step(); p.value
    0.8
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr, self.momentum = _hyper("SGD: lr", lr), _hyper("SGD: momentum", momentum)
        self.weight_decay = _hyper("SGD: weight_decay", weight_decay)
        self._v = [None] * len(self.params)

    def step(self):
        """One update from the parameters' current grad."""
        for k, p in enumerate(self.params):
            g = self._grad_of(p, self.weight_decay)
            array = isinstance(p, Tensor)
            v = g
            if self.momentum:  # torch's buffer: the first step's gradient, then momentum * v + g
                v = self._v[k]
                if v is None:
                    v = self._v[k] = g.copy() if array else g
                elif array:
                    v *= self.momentum
                    v += g
                else:
                    v = self._v[k] = self.momentum * v + g
            if array:
                data = p.data   # the leaf's own array (copied first if a tape still holds it)
                data -= self.lr * v
            else:
                p.data = p.data - self.lr * v


class Adam(_Optimizer):
    """Adam (Kingma and Ba), torch.optim.Adam's update with bias correction.

    >>> import pytape
    >>> p = pytape.Var(1.0); opt = pytape.optim.Adam([p], lr=0.1)
    >>> (p * p).backward(); opt.step(); round(p.value, 6)
    0.9
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2) such as (0.9, 0.999), not {betas!r}")
        self.betas = (_hyper("Adam: betas[0]", betas[0], 0.0, 1.0, True),
                      _hyper("Adam: betas[1]", betas[1], 0.0, 1.0, True))
        self.lr, self.eps = _hyper("Adam: lr", lr), _hyper("Adam: eps", eps)
        self.weight_decay = _hyper("Adam: weight_decay", weight_decay)
        self._m = [np.zeros(p.shape) if isinstance(p, Tensor) else 0.0 for p in self.params]
        self._s = [np.zeros(p.shape) if isinstance(p, Tensor) else 0.0 for p in self.params]
        self._t = 0

    def step(self):
        """One update from the parameters' current grad."""
        self._t += 1
        b1, b2 = self.betas
        c1, c2 = 1.0 - b1 ** self._t, 1.0 - b2 ** self._t
        for k, p in enumerate(self.params):
            g = self._grad_of(p, self.weight_decay)
            if isinstance(p, Tensor):  # in place, in torch's order of operations
                m, s = self._m[k], self._s[k]
                m *= b1
                m += (1.0 - b1) * g
                s *= b2
                np.multiply(g, g, out=g)
                g *= 1.0 - b2
                s += g
                denom = np.sqrt(s)
                denom /= math.sqrt(c2)
                denom += self.eps
                np.divide(m, denom, out=denom)
                denom *= self.lr / c1
                data = p.data   # the leaf's own array (copied first if a tape still holds it)
                data -= denom
                continue
            m = self._m[k] = b1 * self._m[k] + (1.0 - b1) * g
            s = self._s[k] = b2 * self._s[k] + (1.0 - b2) * g * g
            p.data = p.data - self.lr * (m / c1) / (math.sqrt(s / c2) + self.eps)
