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
        exec(compile(code, "example.py", "exec"), {})  # as if saved as example.py
    # a block that states its output in comments prints exactly that, line by line
    prints = [ln for ln in code.splitlines() if ln.strip().startswith("print(")]
    promised = [ln.split("#", 1)[1].strip() for ln in prints if "#" in ln]
    if promised:
        assert len(promised) == len(prints), "state the output of every print of this block, or of none"
        assert out.getvalue().splitlines() == promised
