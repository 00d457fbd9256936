"""Bad input gets a clear exception, never a silent coercion (issue 9, defects
9 and 10, and two items of 11): each test names what is wrong and checks that
the message says so and what to do."""
import datetime
import decimal
import fractions
import os
import pathlib
import operator
import pickle
import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np
import pytest

import pytape
from pytape import _native, saved
from pytape.errors import TapeConsumedError, TapeFormatError, TapeThreadError

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
PYTAPE_HOME = str(pathlib.Path(pytape.__file__).resolve().parents[1])


def run_python(code, timeout=300):
    """Run code in a fresh interpreter importing this pytape; (returncode, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=PYTAPE_HOME)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout, cwd=tempfile.gettempdir(), env=env)
    return r.returncode, r.stdout, r.stderr


# ---- defect 9: inputs of the function API and of compiled functions ---------------

BAD_INPUTS = {
    "None": None,
    "complex": 1 + 1j,
    "numpy complex": np.complex128(1 + 1j),
    "complex array": np.array([1.0 + 1j, 2.0]),
    "masked array": np.ma.masked_array([1.0, 2.0], mask=[False, True]),
    "masked array, nothing masked": np.ma.masked_array([1.0, 2.0]),
    "list of masked rows": [np.ma.masked_array([1.0, 2.0], mask=[False, True])] * 2,
    "datetime64": np.datetime64("2020-01-01"),
    "timedelta64": np.timedelta64(5, "s"),
    "timedelta64 array": np.array([1, 2], dtype="timedelta64[s]"),
    "datetime": datetime.datetime(2020, 1, 1),
    "str": "1.5",
    "numpy str": np.str_("1.5"),
    "bytes": b"1",
    "Decimal": decimal.Decimal("1.5"),
    "list with None": [1.0, None],
    "object array with None": np.array([1.0, None], dtype=object),
    "list of str": ["1", "2"],
    "ragged list": [[1.0, 2.0], [3.0]],
    "dict": {"x": 1.0},
    "a Var": pytape.Var(1.0),
    "list of Vars": [pytape.Var(1.0), pytape.Var(2.0)],
    "dict holding None": {"x": 1.0, "y": None},
    "tuple holding a string": (1.0, "2"),
}
#: valid arguments of the function transformations (pytrees; Vars: nested), not of compiled functions
FOR_TRACES_ONLY = {"ragged list", "dict", "a Var", "list of Vars"}


def _calls():
    """(name, call(x), the name the message gives the argument)."""
    fn_scalar = pytape.trace(lambda x: x * 2.0, 1.0)
    fn_sum = pytape.trace(lambda x: np.sum(x * 2.0), np.zeros(2))
    return [
        ("grad", lambda x: pytape.grad(lambda x: x * 2.0)(x), "argument 0 of pytape.grad(f)"),
        ("value_and_grad", lambda x: pytape.value_and_grad(lambda x: x * 2.0)(x), "argument 0 of pytape.value_and_grad(f)"),
        ("jacobian", lambda x: pytape.jacobian(lambda x: x * 2.0)(x), "argument 0 of pytape.jacobian(f)"),
        ("hessian", lambda x: pytape.hessian(lambda x: x * 2.0)(x), "argument 0 of pytape.hessian(f)"),
        ("jvp", lambda x: pytape.jvp(lambda x: x * 2.0, (x,), (1.0,)), "argument 0 of pytape.jvp(f)"),
        ("vjp", lambda x: pytape.vjp(lambda x: x * 2.0, x), "argument 0 of pytape.vjp(f)"),
        ("hvp", lambda x: pytape.hvp(lambda x: x * 2.0, x, 1.0), "argument 0 of pytape.hvp(f)"),
        ("trace", lambda x: pytape.trace(lambda x: x * 2.0, x), "argument 0 of pytape.trace(f)"),
        ("fn(x)", lambda x: fn_scalar(x), "argument 0 of the traced function"),
        ("fn.gradient(x)", lambda x: fn_sum.gradient(x), "argument 0 of the traced function"),
    ]


@pytest.mark.parametrize("api", range(len(_calls())), ids=[c[0] for c in _calls()])
@pytest.mark.parametrize("bad", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_inputs_that_are_not_real_numbers_raise_type_error_naming_the_argument(api, bad):
    api_name, call, name = _calls()[api]
    if bad in FOR_TRACES_ONLY and api_name in ("grad", "value_and_grad", "jacobian", "hessian", "jvp", "vjp", "hvp"):
        pytest.skip("a pytree or Vars: valid for the function transformations (tests/test_compose.py)")
    with pytest.raises(TypeError) as err:
        call(BAD_INPUTS[bad])
    msg = str(err.value)
    assert name in msg, msg
    if "Var" in bad:
        assert "x.value" in msg, msg
    elif "masked" in bad:
        assert "masked array" in msg and "filled" in msg, msg
    else:
        assert "must be a real number" in msg and "numpy array" in msg, msg  # what is accepted


@pytest.mark.parametrize("x, expected", [
    (True, 1.0), (np.bool_(False), 0.0), (3, 3.0), (np.int32(3), 3.0), (np.uint8(3), 3.0),
    (np.float16(0.5), 0.5), (np.float32(0.5), 0.5), (fractions.Fraction(1, 2), 0.5), (np.array(2.0), 2.0),
])
def test_real_scalars_and_bools_are_accepted_as_numbers(x, expected):
    # bool: 0 or 1, as in numpy and in Var arithmetic (documented in the README)
    f = lambda x: x * x * 3.0  # noqa: E731
    assert pytape.grad(f)(x) == pytest.approx(6.0 * expected)
    assert pytape.trace(f, 1.0)(x) == pytest.approx(3.0 * expected ** 2)


@pytest.mark.parametrize("x", [[True, 2, 3.5], (1, 2.0, np.float32(3.5)), np.array([1, 2, 3], dtype=np.int8),
                               np.array([True, False, True]), np.array([1.0, 2.0], dtype=np.float16)])
def test_lists_tuples_and_real_arrays_are_accepted(x):
    expected = 2.0 * np.asarray(x, dtype=float)
    g = pytape.grad(lambda v: sum(vi * vi for vi in v))(x)  # a list or tuple is a pytree: its tree comes back
    assert type(g) is type(x) and np.array_equal(np.asarray(g, dtype=float), expected)
    if isinstance(x, np.ndarray):  # the dtype of a float array (float16 here); float64 otherwise
        assert g.dtype == (x.dtype if x.dtype.kind == "f" else np.float64)
    assert np.array_equal(pytape.trace(lambda v: np.sum(v * v), np.zeros(len(x))).gradient(x), expected)


@pytest.mark.parametrize("scalar", [np.complex128(1 + 1j), np.complex64(1 + 1j), np.timedelta64(5), np.str_("2")])
@pytest.mark.parametrize("op", ["mul", "add", "sub", "truediv", "pow"])
def test_a_numpy_scalar_that_is_not_real_is_refused_in_both_operand_orders(scalar, op):
    for x in (pytape.Var(2.0), pytape.Var(2.0) * 1.0):
        for call in (lambda: getattr(x, f"__{op}__")(scalar), lambda: getattr(x, f"__r{op}__")(scalar)):
            with pytest.raises(TypeError, match="real numbers"):
                call()
        if op in ("mul", "add", "sub", "truediv"):  # numpy's operator on the left: through Var.__array_ufunc__
            with pytest.raises(TypeError, match="real numbers"):
                getattr(operator, op)(scalar, x)


# ---- defect 10: errors that say what is wrong and what to do ---------------------

@pytest.mark.parametrize("make", [lambda: pytape.Var(2.0), lambda: pytape.Var(2.0) * 1.0], ids=["leaf", "result"])
def test_pow_with_a_modulus_says_it_has_none(make):
    x = make()
    with pytest.raises(TypeError, match=r"no modulus.*x \*\* y"):
        pow(x, 3, 5)
    assert pow(x, 3) == 8.0 and pow(x, 3, None) == 8.0


@pytest.mark.parametrize("argnums, exc, phrase", [
    ("a", TypeError, "argnums of pytape.grad must be an int or a tuple of ints"),
    (1.0, TypeError, "argnums of pytape.grad must be an int or a tuple of ints"),
    (True, TypeError, "must be an int or a tuple of ints"),
    ((0, "b"), TypeError, "must be an int or a tuple of ints"),
    ((0, 0), ValueError, "names an argument twice; list each argument once"),
])
def test_bad_argnums_fail_when_the_transform_is_made(argnums, exc, phrase):
    for make in (pytape.grad, pytape.value_and_grad, pytape.jacobian, pytape.jacfwd, pytape.jacrev, pytape.hessian):
        with pytest.raises(exc) as err:
            make(lambda x, y=1.0: x * y, argnums=argnums)
        assert phrase.replace("pytape.grad", make.__name__) in str(err.value).replace("pytape.", ""), str(err.value)


def test_argnums_naming_one_argument_twice_by_a_negative_index():
    with pytest.raises(ValueError, match="names an argument twice"):
        pytape.grad(lambda x, y: x * y, argnums=(1, -1))(1.0, 2.0)
    assert pytape.grad(lambda x, y: x * y, argnums=np.int64(1))(3.0, 4.0) == 3.0  # numpy ints are ints


@pytest.mark.parametrize("primals, tangents, what", [(1.0, (1.0,), "primals"), ((1.0,), 1.0, "tangents"),
                                                     (1.0, 1.0, "primals")])
def test_jvp_takes_tuples(primals, tangents, what):
    with pytest.raises(TypeError, match=rf"pytape.jvp takes {what} as a tuple .*jvp\(f, \(x,\), \(v,\)\)"):
        pytape.jvp(lambda x: x * 2.0, primals, tangents)


def test_compiled_jvp_vjp_hvp_check_the_vector_shape():
    fn = pytape.trace(lambda x: x * 2.0, np.zeros(3))
    fs = pytape.trace(lambda x: np.sum(x * x), np.zeros(3))
    x = np.ones(3)
    for call, name in ((lambda: fn.jvp(x, np.ones(2)), "v"), (lambda: fn.vjp(x, np.ones(4)), "u"),
                       (lambda: fs.hvp(x, np.ones(2)), "v"), (lambda: fn.jvp(x, np.ones((3, 1))), "v")):
        with pytest.raises(ValueError, match=rf"{name} has shape .* give {name} the shape of"):
            call()
    assert fn.jvp(x, np.ones(3))[1].tolist() == [2.0, 2.0, 2.0]
    assert fn.vjp(x, np.ones(3))[1].tolist() == [2.0, 2.0, 2.0]


def test_derivatives_of_a_function_without_arguments_say_there_is_nothing_to_differentiate():
    fn = pytape.trace(lambda: 1.0)
    assert fn() == 1.0
    for call, name in ((fn.gradient, "gradient"), (fn.value_and_grad, "gradient"), (fn.jacobian, "jacobian"),
                       (fn.hessian, "hessian")):
        with pytest.raises(TypeError, match=rf"fn.{name}\(\) of a function traced with no arguments.*call fn\(\)"):
            call()


def test_jacobian_mode_is_checked():
    fn = pytape.trace(lambda x: x * 2.0, np.zeros(2))
    with pytest.raises(ValueError, match="mode must be 'auto', 'fwd' or 'rev', not 'x'"):
        fn.jacobian(np.ones(2), mode="x")
    rec = pytape.program.Recording(lambda x: x * 2.0, (np.zeros(2),), 0)
    with pytest.raises(ValueError, match="mode must be"):
        rec.jacobian("forward")


@pytest.mark.parametrize("data", [5, 2.5, "PYTAPE-FN", [80, 89], None])
def test_from_bytes_takes_bytes_only(data):
    with pytest.raises(TypeError, match=r"from_bytes takes bytes \(what fn.to_bytes\(\) returned"):
        pytape.CompiledFunction.from_bytes(data)


def test_from_bytes_of_a_huge_int_raises_before_allocating():
    # bytes(10**10) would be 10 GB of zeros: under a 1 GB address-space cap that is a MemoryError
    code = f'''
        import resource, pytape
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2 ** 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            pytape.CompiledFunction.from_bytes(10 ** 10)
        except TypeError as e:
            print("TypeError", e)
        except MemoryError:
            print("MemoryError")
    '''
    if not sys.platform.startswith("linux"):
        pytest.skip("uses /proc and RLIMIT_AS")
    rc, out, err = run_python(code)
    assert rc == 0, err
    assert out.startswith("TypeError from_bytes takes bytes"), out
    ok = pytape.trace(lambda x: x * 3.0, 1.0).to_bytes()
    for data in (bytearray(ok), memoryview(ok)):
        assert pytape.CompiledFunction.from_bytes(data)(2.0) == 6.0


@pytest.mark.parametrize("shapes", [[[2 ** 32, 2 ** 32]], [[65536] * 4], [[0, 2 ** 63]], [[2 ** 64]]])
def test_from_bytes_refuses_shapes_whose_size_overflows(shapes):
    fn = pytape.trace(lambda: 1.0)
    fn()  # traced: no inputs, no leaves
    c = fn._main
    meta = {"name": "f", "policy": "retrace", "shapes": shapes, "scalar_in": [False] * len(shapes),
            "single": True, "out_shape": [], "out_slots": c.out_slots,
            "out_values": [float(v) for v in c.out_values], "guards": []}
    data = saved.dump(c.tape._c, meta)  # a valid checksum over a description that lies
    with pytest.raises(TapeFormatError, match="not a pytape compiled function"):
        pytape.CompiledFunction.from_bytes(data)


def _in_thread(f):
    out = {}

    def run():
        try:
            out["value"] = f()
        except BaseException as exc:  # noqa: BLE001 (reported to the test)
            out["error"] = exc

    t = threading.Thread(target=run, name="worker-7")
    t.start()
    t.join()
    return out


@pytest.mark.parametrize("view", ["table", "to_dot", "str", "stats_and_table", "grad", "tangent"])
def test_reading_another_threads_tape_names_that_thread_and_what_to_do(view):
    with pytape.Tape() as t:
        x = pytape.Var(2.0)
        y = x * 3.0
    calls = {"table": lambda: t.table(), "to_dot": lambda: pytape.to_dot(y), "str": lambda: str(t),
             "stats_and_table": lambda: pytape.display.table(t, max_rows=None), "grad": lambda: y.grad,
             "tangent": lambda: y.tangent}
    out = _in_thread(calls[view])
    err = out.get("error")
    assert isinstance(err, TapeThreadError), out
    msg = str(err)
    assert f"thread {threading.get_ident()} ('{threading.current_thread().name}')" in msg, msg
    assert "another thread" not in msg and "table()" in msg and "Call them in that thread" in msg, msg


def test_repr_of_a_result_never_raises_in_another_thread():
    x = pytape.Var(2.0)
    y = x * 3.0
    y.backward(retain_graph=True)
    out = _in_thread(lambda: (repr(y), str(y), repr(x)))
    assert "error" not in out, out
    r, s, rx = out["value"]
    assert r == s == "Var(6.0, grad=<on the tape of another thread>, op='mul_vc')"
    assert rx == "Var(2.0, grad=3.0)"
    assert repr(y) == "Var(6.0, grad=1.0, op='mul_vc')"  # in its own thread, the gradient


def test_out_of_memory_in_a_tangent_sweep_says_so():
    with pytest.raises(MemoryError) as err:
        _native.check(_native.lib.PT_E_NOMEM, "tangent")
    assert "tangent" in str(err.value) and "growing the tape" not in str(err.value)
    assert "retried" in str(err.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
@pytest.mark.not_under_asan("its shadow memory does not fit an RLIMIT_AS cap")
def test_a_tangent_sweep_that_cannot_allocate_raises_memory_error_naming_the_sweep():
    code = '''
        import resource, pytape
        with pytape.Tape() as t:
            x = pytape.Var(1.0)
            y = x * 1.0
            for _ in range(2_000_000):
                y = y * 1.0
        with open("/proc/self/statm") as f:
            vm = int(f.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm + 4 * 2 ** 20, hard))  # the tangents need 16 MB
        try:
            t.tangent_sweep({x: 1.0})
            print("swept")
        except MemoryError as e:
            print("MemoryError", e)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        t.tangent_sweep({x: 1.0})
        print(y.tangent)
    '''
    rc, out, err = run_python(code)
    assert rc == 0, err
    first, second = out.splitlines()
    assert first.startswith("MemoryError") and "tangent" in first and "growing the tape" not in first, first
    assert second == "1.0"  # the tape was intact: the sweep runs once memory is there


@pytest.mark.parametrize("make, exc, phrase", [
    (lambda p: pytape.optim.SGD(p, lr="a"), TypeError, "SGD: lr must be a real number, not str"),
    (lambda p: pytape.optim.SGD(p, lr=-0.1), ValueError, "SGD: lr must be finite and >= 0"),
    (lambda p: pytape.optim.SGD(p, lr=float("nan")), ValueError, "SGD: lr must be finite"),
    (lambda p: pytape.optim.SGD(p, lr=0.1, momentum=None), TypeError, "SGD: momentum must be a real number"),
    (lambda p: pytape.optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, "SGD: weight_decay must be"),
    (lambda p: pytape.optim.Adam(p, betas=(1.0, 2.0)), ValueError, r"Adam: betas\[0\] must be in \[0, 1\)"),
    (lambda p: pytape.optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be in \[0, 1\)"),
    (lambda p: pytape.optim.Adam(p, betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (lambda p: pytape.optim.Adam(p, lr="0.1"), TypeError, "Adam: lr must be a real number"),
    (lambda p: pytape.optim.Adam(p, eps=-1e-8), ValueError, "Adam: eps must be"),
])
def test_optimizer_hyperparameters_are_checked(make, exc, phrase):
    with pytest.raises(exc, match=phrase):
        make([pytape.Var(1.0)])


@pytest.mark.parametrize("call, exc, phrase", [
    (lambda t, y: pytape.to_dot(y, max_nodes="a"), TypeError, "max_nodes must be an int, not str"),
    (lambda t, y: t.to_dot(max_nodes=2.5), TypeError, "max_nodes must be an int, not float"),
    (lambda t, y: pytape.to_dot(y, max_nodes=0), ValueError, "max_nodes must be at least 1"),
    (lambda t, y: t.table(max_rows="a"), TypeError, "max_rows must be an int or None, not str"),
    (lambda t, y: t.table(max_rows=-1), ValueError, "max_rows must be at least 0"),
    (lambda t, y: pytape.display.table(t, max_rows=1.5), TypeError, "max_rows must be an int or None"),
])
def test_display_limits_are_checked(call, exc, phrase):
    with pytape.Tape() as t:
        y = pytape.Var(1.0) * 2.0 + 1.0
    with pytest.raises(exc, match=phrase):
        call(t, y)


@pytest.mark.parametrize("b", [np.bool_(True), np.bool_(False), True])
def test_var_times_a_bool_works_in_both_orders(b):
    for x in (pytape.Var(2.0), pytape.Var(2.0) * 1.0):
        assert (x * b).value == (b * x).value == 2.0 * float(b)
        assert (x + b).value == (b + x).value == 2.0 + float(b)
    x = pytape.Var(2.0)
    (x * np.bool_(True)).backward()
    assert x.grad == 1.0
    assert pytape.Var(np.bool_(True)).value == 1.0


def test_pickling_a_tape_says_what_pickles_instead():
    with pytape.Tape() as t:
        pytape.Var(1.0) * 2.0
    with pytest.raises(TypeError, match=r"a pytape.Tape cannot be pickled.*pytape.trace"):
        pickle.dumps(t)


def test_bench_with_an_empty_engine_list_is_an_error():
    for engines in ("", ","):
        rc, out, err = run_python(f"import sys; from pytape.__main__ import main; sys.exit(main(['bench', '--quick', "
                                  f"'--engines', {engines!r}]))")
        assert rc == 2, (rc, out, err)
        assert "--engines: an empty list; choose from pytape" in err and out == "", (out, err)


# ---- issue 9, item 11: promises of the README -----------------------------------------

def test_tangent_sweep_on_a_consumed_tape_raises_as_the_readme_says():
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `backward()` twice"))
    assert "tangent_sweep()" in row and "TapeConsumedError" in row
    with pytape.Tape() as t:
        x = pytape.Var(2.0)
        y = x * x
    y.backward()
    with pytest.raises(TapeConsumedError, match="no tangent sweep can run on it.*retain_graph=True"):
        t.tangent_sweep({x: 1.0})
    with pytape.Tape() as t:  # with retain_graph the tape stays sweepable
        x = pytape.Var(2.0)
        y = x * x
    y.backward(retain_graph=True)
    t.tangent_sweep({x: 1.0})
    assert y.tangent == 4.0


def test_readme_says_that_equality_compares_values_unlike_micrograd():
    text = README.read_text()
    section = text[text.index("What does not carry over"):text.index("## API")]
    assert "`==` compares values" in section and "`list.index`" in section and "`in`" in section
    # and it is so
    a, b = pytape.Var(1.0), pytape.Var(1.0)
    params = [a, b]
    assert params.index(b) == 0 and pytape.Var(1.0) in params
    assert next(i for i, q in enumerate(params) if q is b) == 1
    assert len({a, b}) == 2 and {a: 0, b: 1}[b] == 1


def test_readme_documents_the_accepted_inputs_and_bools():
    text = " ".join(README.read_text().split())
    assert "a bool counts as 0 or 1" in text and "masked arrays" in text and "`TypeError` naming the argument" in text
