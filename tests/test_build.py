"""build_tape.py's sanitizer build (PYTAPE_SANITIZE=1) and CI's step that
runs the suite on it (.ci/run): the normal build's flags stay as they were."""
import json
import os
import subprocess
import sys

import pytest

import pytape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pytape.__file__)))
NORMAL = ["-std=c99", "-O3", "-fno-trapping-math", "-pthread", "-fvisibility=hidden", "-fno-plt"]


def _flags(sanitize):
    env = {k: v for k, v in os.environ.items() if k != "PYTAPE_SANITIZE"}
    if sanitize is not None:
        env["PYTAPE_SANITIZE"] = sanitize
    out = subprocess.run([sys.executable, "-c", "import json, build_tape as b; print(json.dumps([b.CFLAGS, b.LDFLAGS]))"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "build_tape.py")), reason="needs the source checkout")
def test_sanitize_flags_only_when_asked():
    for off in (None, "0", ""):
        assert _flags(off) == [NORMAL, ["-pthread"]]
    cflags, ldflags = _flags("1")
    for flag in ("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"):
        assert flag in cflags
    assert "-fsanitize=address,undefined" in ldflags and "-O3" not in cflags


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, ".ci", "run")), reason="needs the source checkout")
def test_ci_runs_the_suite_under_the_sanitizers():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    for part in ("PYTAPE_SANITIZE=1 python build_tape.py", "gcc -print-file-name=libasan.so", "detect_leaks=0",
                 "UBSAN_OPTIONS=halt_on_error=1", "pytest -p no:cacheprovider --capture=sys"):
        assert part in ci, part
