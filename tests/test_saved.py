"""Compiled functions as bytes: round trips (to_bytes / from_bytes, pickle,
another process), and every truncation, byte flip or hand-made payload raises
TapeFormatError -- never a crash, never a wrong derivative."""
import hashlib
import json
import math
import multiprocessing
import pickle
import struct

import numpy as np
import pytest

import pytape
from pytape._native import KIND_GUARD, OP_KINDS
from pytape.saved import _HEADER, FORMAT_VERSION, MAGIC


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def branchy(x):
    if x[0] > 0.0:
        return pytape.sin(x[0]) * x[1] + pytape.where(pytape.less(x[1], 0.0), x[1] ** 2, 1.0)
    return pytape.exp(x[0]) - x[1]


POINTS = np.random.default_rng(0).uniform(-2, 2, (20, 2))


def test_round_trip_bytes_and_pickle():
    fn = pytape.trace(rosenbrock, np.zeros(5))
    data = fn.to_bytes()
    assert data.startswith(MAGIC) and isinstance(data, bytes)
    for g in (pytape.CompiledFunction.from_bytes(data), pickle.loads(pickle.dumps(fn))):
        X = np.random.default_rng(1).uniform(-2, 2, (8, 5))
        np.testing.assert_array_equal(g(X), fn(X))
        np.testing.assert_array_equal(g.gradient(X), fn.gradient(X))
        np.testing.assert_array_equal(g.hessian(X[0]), fn.hessian(X[0]))
        assert g.num_ops == fn.num_ops and g.to_bytes() == data


def test_outputs_that_fold_to_constants_round_trip():
    w = pytape.Var(1.5)  # a closed-over parameter: the second output depends on no input
    fn = pytape.trace(lambda x: [x * 2.0, pytape.exp(w) * 2.0, 4.0], 1.0)
    g = pytape.CompiledFunction.from_bytes(fn.to_bytes())
    want = [6.0, math.exp(1.5) * 2.0, 4.0]
    assert fn(3.0).tolist() == pytest.approx(want) and g(3.0).tolist() == pytest.approx(want)
    assert g.jacobian(3.0).tolist() == [2.0, 0.0, 0.0]


def test_loaded_copy_and_branches():
    fn = pytape.trace(branchy, np.array([1.0, 1.0]))
    want = [pytape.value_and_grad(branchy)(x) for x in POINTS]
    # a module-level f pickles along: the copy traces again where a guard fails
    g = pickle.loads(pickle.dumps(fn))
    for x, (v, d) in zip(POINTS, want):
        assert g(x) == pytest.approx(v, rel=1e-15)
        np.testing.assert_allclose(g.gradient(x), d, rtol=1e-15)
    # without f: a replay on another branch names the guard's line, never the wrong derivative
    h = pytape.CompiledFunction.from_bytes(fn.to_bytes())
    assert h.gradient(np.array([0.5, -1.0])).tolist() == pytest.approx(
        pytape.grad(branchy)(np.array([0.5, -1.0])).tolist(), rel=1e-15)
    with pytest.raises(pytape.BranchChangedError, match=r"test_saved.py:\d+ in branchy\(\).*without f"):
        h(np.array([-0.5, 1.0]))
    # with f given at load time it traces again
    k = pytape.CompiledFunction.from_bytes(fn.to_bytes(), f=branchy)
    np.testing.assert_allclose(k.gradient(POINTS), np.array([d for _, d in want]), rtol=1e-15)
    # a lambda does not pickle: the copy is loaded without f
    lam = pickle.loads(pickle.dumps(pytape.trace(lambda x: x if x > 0 else -x, 1.0)))
    assert lam.gradient(3.0) == 1.0
    with pytest.raises(pytape.BranchChangedError):
        lam.gradient(-3.0)


def _gradient_in_worker(fn, X):
    return fn.gradient(X)


def test_shipped_to_a_worker_process():
    fn = pytape.trace(rosenbrock, np.zeros(4))
    X = np.random.default_rng(2).uniform(-2, 2, (6, 4))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_gradient_in_worker, (fn, X))
    np.testing.assert_array_equal(got, fn.gradient(X))


# ---- bad bytes ------------------------------------------------------------------------

def _small():
    # a scalar tape (format version 1): tests/test_trace_arrays.py fuzzes tapes of array instructions
    return pytape.trace(branchy, np.array([1.0, -1.0]), elementwise=True).to_bytes()


def _reseal(body):
    """A payload with a valid checksum: what a careless or hostile writer makes."""
    return body + hashlib.sha256(body).digest()


def _parts(data):
    version, meta_len, n, nconst = _HEADER.unpack_from(data, len(MAGIC))
    head = len(MAGIC) + _HEADER.size
    meta = json.loads(data[head:head + meta_len])
    off = head + meta_len
    arrays = {}
    for key, dt in (("op", "<u2"), ("a", "<i4"), ("b", "<i4"), ("val", "<f8")):
        arrays[key] = np.frombuffer(data, dt, n, off).copy()
        off += n * np.dtype(dt).itemsize
    consts = np.frombuffer(data, "<f8", nconst, off).copy()
    return version, meta, arrays, consts


def _build(version, meta, arrays, consts):
    meta_b = json.dumps(meta).encode()
    n = len(arrays["op"])
    body = b"".join([MAGIC, _HEADER.pack(version, len(meta_b), n, len(consts)), meta_b]
                    + [arrays[k].tobytes() for k in ("op", "a", "b", "val")] + [consts.tobytes()])
    return _reseal(body)


def test_parts_rebuild_to_the_same_bytes():
    data = _small()
    assert _build(*_parts(data)) == data  # the helpers below edit real payloads


def test_every_truncation_raises():
    data = _small()
    for k in range(len(data)):
        with pytest.raises(pytape.TapeFormatError):
            pytape.CompiledFunction.from_bytes(data[:k])
    with pytest.raises(pytape.TapeFormatError):
        pytape.CompiledFunction.from_bytes(data + b"\0")


def test_random_byte_flips_raise():
    data = bytearray(_small())
    rng = np.random.default_rng(7)
    for _ in range(3000):
        bad = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(len(bad))] ^= int(rng.integers(1, 256))
        with pytest.raises(pytape.TapeFormatError):
            pytape.CompiledFunction.from_bytes(bytes(bad))


def _guard_index():
    ops = _parts(_small())[2]["op"]
    return int(np.flatnonzero(np.array(OP_KINDS)[ops] == KIND_GUARD)[0])


def _edits():
    """(what, edit of (version, meta, arrays, consts)) that a valid checksum must not get past."""
    def arr(key, i, v):
        def e(p):
            p[2][key][i] = v
        return e

    def meta(key, v):
        def e(p):
            p[1][key] = v
        return e

    return [
        ("opcode 0", arr("op", 3, 0)),
        ("unknown opcode", arr("op", 3, 60000)),
        ("operand after its instruction", arr("a", 3, 50)),
        ("negative operand", arr("a", 4, -7)),
        ("constant index out of range", arr("b", 4, 10**6)),
        ("leaf numbered out of order", arr("a", 1, 5)),
        ("a leaf where an input was", arr("op", 2, 1)),
        ("guard code", arr("val", _guard_index(), 99.0)),
        ("guard code not an integer", arr("val", _guard_index(), 2.5)),
        ("output slot outside the tape", meta("out_slots", [10**6])),
        ("more inputs than leaves", meta("shapes", [[3]])),
        ("output shape", meta("out_shape", [2, 2])),
        ("policy", meta("policy", "maybe")),
        ("description missing a field", lambda p: p[1].pop("guards")),
        ("newer version", lambda p: p.__setitem__(0, FORMAT_VERSION + 1)),
    ]


@pytest.mark.parametrize("what, edit", _edits(), ids=[w for w, _ in _edits()])
def test_hand_made_payloads_with_valid_checksums_raise(what, edit):
    parts = list(_parts(_small()))
    edit(parts)
    with pytest.raises(pytape.TapeFormatError):
        pytape.CompiledFunction.from_bytes(_build(*parts))


def test_fuzzed_instructions_with_valid_checksums_never_crash():
    # random instruction arrays behind a valid checksum: each loads (and then
    # computes something finite or not, without crashing) or raises TapeFormatError
    version, meta, arrays, consts = _parts(_small())
    rng = np.random.default_rng(11)
    n = len(arrays["op"])
    loaded = 0
    for _ in range(2000):
        a = {k: v.copy() for k, v in arrays.items()}
        key = ["op", "a", "b", "val"][rng.integers(4)]
        i = rng.integers(n)
        a[key][i] = a[key].dtype.type(rng.integers(-5, 70) if key != "val" else rng.normal() * 10)
        try:
            g = pytape.CompiledFunction.from_bytes(_build(version, meta, a, consts))
        except pytape.TapeFormatError:
            continue
        loaded += 1
        try:
            g.gradient(POINTS[:3])
        except pytape.BranchChangedError:
            pass
    assert loaded > 0  # some edits are harmless (a value, an opcode of the same kind)


def test_not_bytes():
    with pytest.raises(TypeError):
        pytape.CompiledFunction.from_bytes(3.5)
    with pytest.raises(pytape.TapeFormatError, match="header"):
        pytape.CompiledFunction.from_bytes(b"hello")
    assert struct.calcsize("<IIqq") == _HEADER.size
