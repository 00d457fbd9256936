"""The AD tutorials' own engine, a numpy Tensor class (+ - * / with arrays
and constants, matmul, sum, mean, exp, log, backward, grad, zero_grad),
trains logistic regression by gradient descent: the same program on
pytape.Tensor, checked against PyTorch (float64) and, without torch, against
the object-array path and finite differences."""
import numpy as np
import pytest

import pytape

STEPS, LR = 200, 0.5


def data(seed=0, n=120, d=3):
    """Synthetic separable data: labels from a hyperplane, points kept off it by a margin."""
    rng = np.random.default_rng(seed)
    w_true = np.array([1.5, -2.0, 0.75])[:d]
    X = rng.normal(size=(4 * n, d))
    margin = X @ w_true
    keep = np.abs(margin) > 0.3
    X, margin = X[keep][:n], margin[keep][:n]
    return X, (margin > 0).astype(float)


def loss_of(X, y, w, b):
    """The tutorials' program: sigmoid from exp, cross-entropy from log and mean."""
    z = X @ w + b
    p = 1.0 / (1.0 + (-z).exp())
    return -(y * p.log() + (1.0 - y) * (1.0 - p).log()).mean()


def train_pytape(X, y, steps=STEPS, lr=LR, record=None):
    w = pytape.Tensor(np.zeros(X.shape[1]))
    b = pytape.Tensor(0.0)
    losses = []
    for step in range(steps):
        w.zero_grad()
        b.zero_grad()
        loss = loss_of(X, y, w, b)
        loss.backward()
        if record is not None:
            record(step, w.value.copy(), float(b.value), w.grad.copy(), float(b.grad))
        losses.append(loss.item())
        w.data -= lr * w.grad
        b.data -= lr * b.grad
    return w.value, float(b.value), losses


def loss_numpy(X, y, w, b):
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    return -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def test_training_matches_pytorch():
    torch = pytest.importorskip("torch")
    X, y = data()
    w, b, losses = train_pytape(X, y)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    wt = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    bt = torch.zeros((), dtype=torch.float64, requires_grad=True)
    for _ in range(STEPS):
        if wt.grad is not None:
            wt.grad.zero_()
            bt.grad.zero_()
        z = Xt @ wt + bt
        p = 1.0 / (1.0 + (-z).exp())
        loss = -(yt * p.log() + (1.0 - yt) * (1.0 - p).log()).mean()
        loss.backward()
        with torch.no_grad():
            wt -= LR * wt.grad
            bt -= LR * bt.grad
    assert np.allclose(w, wt.detach().numpy(), rtol=1e-10, atol=0)
    assert b == pytest.approx(bt.item(), rel=1e-10)
    assert losses[-1] == pytest.approx(loss.item(), rel=1e-10)


def test_training_against_object_arrays_and_finite_differences():
    X, y = data(seed=1)
    checked = []

    def check(step, w, b, gw, gb):
        if step % 50:
            return
        # the object-array path: the scalar engine, one instruction per element
        ow, ob = pytape.grad(lambda w_, b_: loss_numpy(X, y, w_, b_), argnums=(0, 1), elementwise=True)(w, b)
        assert np.allclose(gw, ow, rtol=1e-12, atol=1e-15) and gb == pytest.approx(ob, rel=1e-12, abs=1e-15)
        eps = 1e-6
        fd = [(loss_numpy(X, y, w + eps * e, b) - loss_numpy(X, y, w - eps * e, b)) / (2 * eps)
              for e in np.eye(len(w))]
        assert np.allclose(gw, fd, rtol=1e-5, atol=1e-8)
        checked.append(step)

    w, b, losses = train_pytape(X, y, record=check)
    assert checked == [0, 50, 100, 150]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:]))   # gradient descent descends
    assert losses[-1] < 0.25 * losses[0]
    assert np.array_equal((X @ w + b > 0).astype(float), y)                      # separable: all classified
    # the same loop through pytape.grad on numpy arrays (Tensors inside) gives the same weights
    w2, b2 = np.zeros(X.shape[1]), 0.0
    g = pytape.grad(lambda w_, b_: loss_numpy(X, y, w_, b_), argnums=(0, 1))
    for _ in range(STEPS):
        gw, gb = g(w2, b2)
        w2, b2 = w2 - LR * gw, b2 - LR * gb
    assert np.allclose(w2, w, rtol=1e-12) and b2 == pytest.approx(b, rel=1e-12)
