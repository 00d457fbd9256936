"""The README stays true to the code: its Python examples run, and its quick
start prints what it says."""
import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
#: optional extras an example may import (the digits example: pip install "pytape[examples]")
OPTIONAL = {"sklearn", "matplotlib", "torch", "dask"}
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if README.exists() else []


@pytest.mark.skipif(not BLOCKS, reason="README.md not found beside tests/")
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files an example writes (the digits loss curve) land here
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, "example.py", "exec"), {})  # as if saved as example.py
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL:
                raise
            pytest.skip(f"the example needs {exc.name}, an optional extra that is not installed")
    # a block that states its output in comments prints exactly that, line by line
    prints = [ln for ln in code.splitlines() if ln.strip().startswith("print(")]
    promised = [ln.split("#", 1)[1].strip() for ln in prints if "#" in ln]
    if promised:
        assert len(promised) == len(prints), "state the output of every print of this block, or of none"
        assert out.getvalue().splitlines() == promised


# the rows of the op table the README reaches otherwise than by name: through
# an operator or a function built from them
VIA = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "neg": "unary `-`",
       "clamp_min": "clip", "clamp_max": "clip", "where_t": "where", "where_f": "where",
       "chain": "`create_graph=True`"}
# functions of the namespace built from rows (and numpy's predicates, from comparisons)
NOT_ROWS = {"clip", "greater", "greater_equal", "isfinite", "isnan", "isinf", "isclose", "allclose", "nan_to_num",
            "angle", "sinc"}


def readme_functions():
    """The names the API table lists as `pytape.a b c ...`."""
    text = README.read_text()
    names = set()
    for row in re.findall(r"^\|.*$", text, re.M):
        for group in re.findall(r"`pytape\.([a-z_0-9]+(?: [a-z_0-9]+)+)`", row):
            names |= set(group.split())
    return names, text


def test_the_readme_lists_every_primitive_of_the_op_table():
    import pytape
    from pytape import _native

    listed, text = readme_functions()
    rows = set(_native.OPCODES)
    missing = rows - listed - set(VIA)
    assert not missing, f"rows of csrc/ops.def the README's API table does not list: {sorted(missing)}"
    stale = listed - rows - NOT_ROWS
    assert not stale, f"the README lists functions the op table does not have: {sorted(stale)}"
    assert all(hasattr(pytape, name) for name in listed)
    for name, how in VIA.items():
        assert name in rows, f"{name} is no longer a row of the op table: update VIA"
        assert how.split()[-1].strip("`") in text
