"""pytape as a drop-in for micrograd: ``pytape.Value`` and ``pytape.nn``."""
import math
import random

import numpy as np
import pytest

from pytape import Value
from pytape.nn import MLP, Layer, Module, Neuron


def make_moons(n, noise, seed):
    """Two interleaving half circles (like sklearn's make_moons), labels -1/+1."""
    rng = np.random.default_rng(seed)
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    X = np.vstack([
        np.column_stack([np.cos(t_out), np.sin(t_out)]),
        np.column_stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]),
    ])
    X += rng.normal(scale=noise, size=X.shape)
    y = np.hstack([-np.ones(n_out), np.ones(n_in)])
    return X, y


def svm_loss(model, X, y, alpha=1e-4):
    """micrograd's demo loss: max-margin + L2, and the accuracy."""
    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total = data_loss + reg_loss
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
    return total, sum(accuracy) / len(accuracy)


def test_mlp_trains_on_two_moons():
    # micrograd's demo program, unchanged but for the import lines
    random.seed(1337)
    np.random.seed(1337)
    X, y = make_moons(100, noise=0.1, seed=0)
    model = MLP(2, [16, 16, 1])
    assert len(model.parameters()) == 337
    first = None
    for k in range(100):
        total_loss, acc = svm_loss(model, X, y)
        if first is None:
            first = total_loss.data
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
    total_loss, acc = svm_loss(model, X, y)
    assert total_loss.data < first
    assert acc >= 0.95, acc


def test_value_api_like_micrograd():
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    # the numbers of micrograd's README example
    assert g.data == pytest.approx(24.7041, abs=1e-4)
    assert a.grad == pytest.approx(138.8338, abs=1e-4)
    assert b.grad == pytest.approx(645.5773, abs=1e-4)


def test_value_is_assignable_hashable_and_has_micrograd_methods():
    v = Value(2.0)
    v.data = 3.0
    v.grad = 0
    assert v.data == 3.0 and v.grad == 0.0
    assert isinstance(v, Value) and isinstance(v * 2, Value)
    seen = {v, Value(3.0)}
    assert len(seen) == 2 and v in seen
    for name in ("relu", "tanh", "exp", "backward"):
        assert callable(getattr(v, name))
    w = Value(0.5, (), "", label="w")  # micrograd's full constructor signature
    y = w.tanh() + w.exp() + w.relu()
    y.backward()
    assert w.grad == pytest.approx(1 - math.tanh(0.5) ** 2 + math.exp(0.5) + 1)
    assert repr(Value(1.0)).startswith("Var(1.0")


def test_nn_modules_match_micrograd_signatures():
    random.seed(0)
    n = Neuron(3, nonlin=False)
    assert len(n.parameters()) == 4
    layer = Layer(3, 2, nonlin=True)
    assert len(layer([1.0, 2.0, 3.0])) == 2
    m = MLP(3, [4, 4, 1])
    out = m([1.0, -1.0, 0.5])
    assert isinstance(out, Value)
    out.backward()
    assert any(p.grad != 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())
    assert isinstance(m, Module) and "MLP" in repr(m)


def test_against_micrograd_itself():
    """Same weights, same program: pytape and micrograd agree to rounding."""
    mg_engine = pytest.importorskip("micrograd.engine")
    mg_nn = pytest.importorskip("micrograd.nn")
    random.seed(42)
    ref = mg_nn.MLP(2, [16, 16, 1])
    random.seed(42)
    ours = MLP(2, [16, 16, 1])
    for p, q in zip(ref.parameters(), ours.parameters()):
        assert p.data == q.data
    X, y = make_moons(20, noise=0.1, seed=3)

    def loss(model, V):
        scores = [model([V(float(a)), V(float(b))]) for a, b in X]
        losses = [(1 + -float(yi) * s).relu() for yi, s in zip(y, scores)]
        return sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in model.parameters())

    lr_, lo_ = loss(ref, mg_engine.Value), loss(ours, Value)
    lr_.backward()
    lo_.backward()
    assert lo_.data == pytest.approx(lr_.data, rel=1e-12)
    for p, q in zip(ref.parameters(), ours.parameters()):
        assert q.grad == pytest.approx(p.grad, rel=1e-9, abs=1e-12)
