"""The README stays true to the code: its Python examples run, and its quick
start prints what it says."""
import contextlib
import io
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if README.exists() else []


@pytest.mark.skipif(not BLOCKS, reason="README.md not found beside tests/")
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_blocks_run(code):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    # a block that states its output in a comment prints exactly that
    for line, printed in zip([ln for ln in code.splitlines() if ln.startswith("print(") and "#" in ln],
                             out.getvalue().splitlines()):
        assert printed == line.split("#", 1)[1].strip()
