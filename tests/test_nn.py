"""The array layers of pytape.nn (Linear, activations, Sequential, TensorMLP,
cross_entropy, mse_loss) and pytape.optim on Tensor parameters: against
numpy's formulas, finite differences, and PyTorch's nn / optim (when
installed) from the same weights.  micrograd's scalar modules are tested in
test_micrograd.py."""
import numpy as np
import pytest

import pytape
from test_array_functional import fd_grad
from pytape import nn

RNG = np.random.default_rng(11)
X = RNG.normal(size=(12, 5))
Y = RNG.integers(0, 3, 12)


def np_cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    lsm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.mean(lsm[np.arange(len(y)), y])


def test_linear_is_x_at_w_plus_b_and_its_gradients():
    layer = nn.Linear(5, 3, rng=np.random.default_rng(0))
    W, b = layer.weight.value.copy(), layer.bias.value.copy()
    assert np.all(np.abs(W) <= 1 / np.sqrt(5)) and W.shape == (5, 3) and b.shape == (3,)
    out = layer(X)
    np.testing.assert_allclose(out.value, X @ W + b, rtol=1e-14)
    loss = np.sum(np.sin(out))
    loss.backward()
    f_W = lambda w: np.sum(np.sin(X @ w + b))  # noqa: E731
    f_b = lambda c: np.sum(np.sin(X @ W + c))  # noqa: E731
    np.testing.assert_allclose(layer.weight.grad, fd_grad(f_W, W), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(layer.bias.grad, fd_grad(f_b, b), rtol=1e-7, atol=1e-9)
    no_bias = nn.Linear(5, 3, bias=False)
    assert len(no_bias.parameters()) == 1 and no_bias(X).shape == (12, 3)


def test_activations():
    x = pytape.Tensor([-1.5, -0.0, 0.5, 2.0])
    for module, f, d in ((nn.ReLU(), lambda v: np.maximum(v, 0), lambda v: (v > 0).astype(float)),
                         (nn.Tanh(), np.tanh, lambda v: 1 - np.tanh(v) ** 2),
                         (nn.Sigmoid(), lambda v: 1 / (1 + np.exp(-v)), lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2)):
        x.zero_grad()
        y = module(x)
        np.testing.assert_allclose(y.value, f(x.value), rtol=1e-15)
        np.sum(y).backward()
        np.testing.assert_allclose(x.grad, d(x.value), rtol=1e-14)
        assert module.parameters() == []


def test_sequential_and_tensor_mlp():
    model = nn.TensorMLP(5, [7, 4, 3], activation=nn.Tanh, rng=np.random.default_rng(2))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"] and len(model) == 5
    assert [p.shape for p in model.parameters()] == [(5, 7), (7,), (7, 4), (4,), (4, 3), (3,)]
    Ws = [p.value for p in model.parameters()]
    h = np.tanh(X @ Ws[0] + Ws[1])
    h = np.tanh(h @ Ws[2] + Ws[3])
    np.testing.assert_allclose(model(X).value, h @ Ws[4] + Ws[5], rtol=1e-13)
    assert model[0] is model.layers[0]
    with pytest.raises(TypeError, match="modules"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="positive integer"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="at least one"):
        nn.TensorMLP(3, [])


def test_cross_entropy_and_mse_loss_against_numpy_and_finite_differences():
    Z = RNG.normal(size=(12, 3)) * 3
    z = pytape.Tensor(Z)
    loss = nn.cross_entropy(z, Y)
    assert loss.item() == pytest.approx(np_cross_entropy(Z, Y), rel=1e-14)
    loss.backward()
    np.testing.assert_allclose(z.grad, fd_grad(lambda a: np_cross_entropy(a, Y), Z), rtol=1e-6, atol=1e-9)
    P = np.eye(3)[Y]  # one-hot probabilities: the same loss
    assert nn.cross_entropy(z, P).item() == pytest.approx(loss.item(), rel=1e-14)
    per_row = nn.cross_entropy(z, Y, reduction="none")
    assert per_row.shape == (12,) and nn.cross_entropy(z, Y, reduction="sum").item() == pytest.approx(
        float(np.sum(per_row.value)), rel=1e-14)
    big = pytape.Tensor([[1000.0, 0.0], [0.0, -1000.0]])  # stable: no overflow
    assert nn.cross_entropy(big, np.array([1, 0])).item() == pytest.approx(500.0, rel=1e-12)
    m = nn.mse_loss(z, Z + 1.0)
    assert m.item() == pytest.approx(1.0, rel=1e-14)
    assert nn.mse_loss(z, 0.0, reduction="sum").item() == pytest.approx(float(np.sum(Z ** 2)), rel=1e-14)


@pytest.mark.parametrize("bad, match", [
    ((np.array([0, 3]),), r"in \[0, 3\)"), ((np.array([0]),), r"shape \(2,\)"),
    ((np.zeros((2, 2)),), "logits' shape"), ((np.array(["a", "b"]),), "dtype"),
    ((np.array([0, 1]), "average"), "reduction")])
def test_cross_entropy_refuses_bad_targets(bad, match):
    z = pytape.Tensor(np.zeros((2, 3)))
    with pytest.raises((ValueError, TypeError), match=match):
        nn.cross_entropy(z, *bad)


def test_zero_grad_of_a_module():
    model = nn.TensorMLP(5, [4, 3], rng=np.random.default_rng(0))
    nn.cross_entropy(model(X), Y).backward()
    assert any(np.abs(p.grad).max() > 0 for p in model.parameters())
    model.zero_grad()
    assert all(not p.grad.any() for p in model.parameters())


# ---- the optimizers on Tensors ------------------------------------------------------------

def _numpy_sgd(w, grads, lr, momentum, wd):
    """torch.optim.SGD's update, by hand."""
    buf = None
    for g in grads:
        g = g + wd * w
        buf = g if buf is None else momentum * buf + g if momentum else g
        w = w - lr * (buf if momentum else g)
    return w


def _numpy_adam(w, grads, lr, b1, b2, eps, wd):
    m = s = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        w = w - (lr / (1 - b1 ** t)) * m / (np.sqrt(s) / np.sqrt(1 - b2 ** t) + eps)
    return w


@pytest.mark.parametrize("opt", ["sgd", "sgd-momentum", "adam", "adam-wd"])
def test_optimizers_on_tensors_follow_torchs_update(opt):
    """Steps on a quadratic whose gradient is known (A w - c): the weights
    after five steps equal the hand-written update, in place (the leaf keeps
    its array object between steps when no tape holds it)."""
    rng = np.random.default_rng(4)
    A = rng.normal(size=(4, 4))
    A = A @ A.T + np.eye(4)
    c, w0 = rng.normal(size=4), rng.normal(size=4)
    w = pytape.Tensor(w0)
    o = {"sgd": lambda: pytape.optim.SGD([w], lr=0.05),
         "sgd-momentum": lambda: pytape.optim.SGD([w], lr=0.05, momentum=0.9, weight_decay=0.01),
         "adam": lambda: pytape.optim.Adam([w], lr=0.05),
         "adam-wd": lambda: pytape.optim.Adam([w], lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)}[opt]()
    grads, cur = [], w0
    for _ in range(5):
        o.zero_grad()
        loss = 0.5 * (w @ (A @ w)) - c @ w
        loss.backward()
        del loss
        grads.append(A @ cur - c)
        np.testing.assert_allclose(w.grad, grads[-1], rtol=1e-13)
        o.step()
        cur = w.value.copy()
        # the hand-written update from the same gradients
    want = {"sgd": lambda: _numpy_sgd(w0, grads, 0.05, 0.0, 0.0),
            "sgd-momentum": lambda: _numpy_sgd(w0, grads, 0.05, 0.9, 0.01),
            "adam": lambda: _numpy_adam(w0, grads, 0.05, 0.9, 0.999, 1e-8, 0.0),
            "adam-wd": lambda: _numpy_adam(w0, grads, 0.05, 0.8, 0.99, 1e-8, 0.1)}[opt]()
    np.testing.assert_allclose(w.value, want, rtol=1e-12, atol=1e-14)


def test_a_past_tape_keeps_its_values_after_a_step():
    """The step writes the leaf's array in place, after copying it if a tape
    still holds it: the tape's second sweep reads the values it recorded."""
    w = pytape.Tensor([1.0, 2.0])
    opt = pytape.optim.SGD([w], lr=0.5)
    with pytape.Tape():
        y = w * w
    s = np.sum(y)
    s.backward(retain_graph=True)
    opt.step()
    assert w.value.tolist() == [0.0, 0.0]
    s.backward()   # d(sum w^2)/dw at the recorded w = (1, 2), added to the grad
    assert w.grad.tolist() == [4.0, 8.0] and y.value.tolist() == [1.0, 4.0]


def test_against_pytorch_nn_and_optim():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    Xb, yb = rng.normal(size=(32, 8)), rng.integers(0, 4, 32)
    model = nn.TensorMLP(8, [16, 4], rng=rng)
    tmodel = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).double()
    with torch.no_grad():
        for (tl, layer) in ((tmodel[0], model[0]), (tmodel[2], model[2])):
            tl.weight.copy_(torch.from_numpy(layer.weight.value.T.copy()))   # torch stores (out, in)
            tl.bias.copy_(torch.from_numpy(layer.bias.value.copy()))
    opt = pytape.optim.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    for _ in range(10):
        opt.zero_grad()
        loss = nn.cross_entropy(model(Xb), yb)
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(Xb)), torch.from_numpy(yb))
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(model[0].weight.value, tmodel[0].weight.detach().numpy().T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model[2].bias.value, tmodel[2].bias.detach().numpy(), rtol=1e-9, atol=1e-12)
    tm = torch.nn.functional.mse_loss(torch.from_numpy(Xb), torch.zeros(32, 8, dtype=torch.float64))
    assert nn.mse_loss(pytape.Tensor(Xb), np.zeros((32, 8))).item() == pytest.approx(tm.item(), rel=1e-14)


def test_the_readmes_digits_example_trains_to_95_percent(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    import pathlib
    import re
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme.read_text(), re.S) if "load_digits" in b]
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(code, "digits_example.py", "exec"), ns)
    assert ns["accuracy"] >= 0.95
    losses = ns["losses"]
    assert len(losses) == 200 and np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    try:
        import matplotlib  # noqa: F401,F811
    except ImportError:
        assert not (tmp_path / "digits_loss.png").exists()
    else:
        assert (tmp_path / "digits_loss.png").stat().st_size > 1000
