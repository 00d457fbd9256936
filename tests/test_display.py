"""Seeing the tape: table(), stats(), to_dot(), render() and the notebook display."""
import contextlib
import io
import pathlib
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import pytape
from pytape import Var


def textbook():
    """y = ln(x1) + x1*x2 - sin(x2) at (2, 5), each step kept: (tape, {name: Var})."""
    with pytape.Tape() as t:
        x1, x2 = Var(2.0), Var(5.0)
        v = {"x1": x1, "x2": x2}
        v["ln"] = pytape.log(x1)
        v["mul"] = x1 * x2
        v["add"] = v["ln"] + v["mul"]
        v["sin"] = pytape.sin(x2)
        v["y"] = v["add"] - v["sin"]
    return t, v


def slot(x):
    return x._hh >> pytape._native.ID_BITS if x.is_leaf else x.slot  # a leaf: its slot on the tape it was last placed on


# the evaluation trace of AD tutorials: value, adjoint of y, tangent along x1
TEXTBOOK = {
    "x1": (2.0, 5.5, 1.0),
    "x2": (5.0, 1.716, 0.0),
    "ln": (0.693, 1.0, 0.5),
    "mul": (10.0, 1.0, 5.0),
    "add": (10.693, 1.0, 5.5),
    "sin": (-0.959, -1.0, 0.0),
    "y": (11.652, 1.0, 5.5),
}


def parse_table(text):
    """(header, {slot name: row cells}) of a table()."""
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.split()[:2] == ["slot", "op"])
    rows = {}
    for line in lines[k + 1:]:
        if line.startswith("..."):
            continue
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells
    return lines[k].split(), rows


def check_textbook_rows(text, v, columns):
    header, rows = parse_table(text)
    assert header == ["slot", "op", "operands", "value"] + columns
    assert len(rows) == 7
    for name, expected in TEXTBOOK.items():
        cells = rows[f"v{slot(v[name])}"]
        numbers = [float(c) for c in cells[3:3 + 1 + len(columns)]]
        wanted = [expected[0]] + [expected[1 if c == "adjoint" else 2] for c in columns]
        assert numbers == pytest.approx(wanted, abs=5e-4), name
    # ops, operands and marks
    s = {name: f"v{slot(x)}" for name, x in v.items()}
    assert rows[s["x1"]][1:3] == ["leaf", "x0"] and rows[s["x1"]][-1] == "input"
    assert rows[s["x2"]][1:3] == ["leaf", "x1"] and rows[s["x2"]][-1] == "input"
    assert rows[s["ln"]][1:3] == ["log", s["x1"]]
    assert rows[s["mul"]][1:3] == ["mul", f"{s['x1']}, {s['x2']}"]
    assert rows[s["add"]][1:3] == ["add", f"{s['ln']}, {s['mul']}"]
    assert rows[s["sin"]][1:3] == ["sin", s["x2"]]
    assert rows[s["y"]][1:3] == ["sub", f"{s['add']}, {s['sin']}"]
    assert [r[0] for r in rows.values() if r[-1] == "output"] == [s["y"]]


def test_textbook_table_before_and_after_sweeps():
    t, v = textbook()
    assert str(t) == t.table()
    check_textbook_rows(t.table(), v, [])
    t.tangent_sweep({v["x1"]: 1.0})
    check_textbook_rows(t.table(), v, ["tangent"])
    v["y"].backward()
    check_textbook_rows(str(t), v, ["adjoint", "tangent"])


def test_table_prints_constants_as_numbers():
    with pytape.Tape() as t:
        x = Var(3.0)
        a = x * 2.5
        b = 1.25 - a
    _, rows = parse_table(t.table())
    assert rows[f"v{a.slot}"][1:3] == ["mul_vc", f"v{slot(x)}, 2.5"]
    assert rows[f"v{b.slot}"][1:3] == ["sub_cv", f"1.25, v{a.slot}"]
    assert float(rows[f"v{b.slot}"][3]) == 1.25 - 7.5
    assert [r[0] for r in rows.values() if r[-1] == "output"] == [f"v{b.slot}"]  # a is read, by b
    assert t.stats()["outputs"] == 1 and t.stats()["constants"] == 2


def test_stats_of_the_textbook_tape():
    t, _ = textbook()
    s = t.stats()
    assert s["instructions"] == len(t) == 7
    assert s["leaves"] == 2 and s["outputs"] == 1 and s["constants"] == 0
    assert s["ops"] == {"leaf": 2, "log": 1, "mul": 1, "add": 1, "sin": 1, "sub": 1}
    assert s["nbytes"] == t.nbytes >= s["used_nbytes"] == t.used_nbytes > 0


N = 10 ** 5


@pytest.fixture(scope="module")
def chain():
    """A 10^5-op chain, plus an unused side result (a second output)."""
    with pytape.Tape() as t:
        x = Var(0.5)
        y = x
        for _ in range(N // 2):
            y = pytape.tanh(y) * 1.5
        side = pytape.cos(x)
    return t, x, y, side


def test_large_tape_summary(chain):
    t, _, y, side = chain
    start = time.perf_counter()
    text = t.table()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0  # numpy over the tape and 40 formatted rows; ~5 ms here
    s = t.stats()
    assert s["ops"] == {"tanh": N // 2, "mul_vc": N // 2, "leaf": 1, "cos": 1}
    assert s["outputs"] == 2 and s["leaves"] == 1 and s["instructions"] == N + 2
    for name, count in s["ops"].items():
        assert f"{name} {count:,}" in text
    assert f"{t.nbytes:,} bytes allocated" in text and f"{t.used_nbytes:,} used" in text
    _, rows = parse_table(text)
    assert len(rows) == 40
    assert {"v0", "v1", f"v{y.slot}", f"v{side.slot}"} <= set(rows)
    assert rows[f"v{y.slot}"][-1] == rows[f"v{side.slot}"][-1] == "output"
    assert f"{N + 2 - 40:,} instructions not shown" in text
    assert float(rows[f"v{y.slot}"][3]) == pytest.approx(y.value, rel=1e-5)
    _, few = parse_table(t.table(max_rows=4))
    assert list(few) == ["v0", "v1", f"v{y.slot}", f"v{side.slot}"]


def test_small_tape_table_has_no_summary():
    t, _ = textbook()
    assert "instructions not shown" not in t.table() and "memory" not in t.table()
    assert len(parse_table(t.table(max_rows=3))[1]) == 3
    assert len(parse_table(t.table(max_rows=None))[1]) == 7


# ---- DOT ----------------------------------------------------------------------

def parse_dot(text):
    """({node: attrs}, [(tail, head, attrs)]) of the DOT pytape writes (one
    statement per line); fails on anything else."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph pytape {" and lines[-1] == "}"
    attr = r'(\w+)=("(?:[^"\\]|\\.)*"|[\w.]+)'
    nodes, edges = {}, []
    for line in lines[1:-1]:
        m = re.fullmatch(r"\s*(\w+)\s*(?:->\s*(\w+)\s*)?(?:\[(.*)\])?;", line)
        assert m, line
        attrs = {k: v.strip('"') for k, v in re.findall(attr, m[3] or "")}
        assert re.sub(attr, "", m[3] or "").replace(",", "").strip() == "", line
        if m[2]:
            edges.append((m[1], m[2], attrs))
        elif m[1] not in ("node", "edge", "graph"):
            assert m[1] not in nodes
            nodes[m[1]] = attrs
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes
    return nodes, edges


def dot_accepts(text):
    if shutil.which("dot"):
        r = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False)
        assert r.returncode == 0, r.stderr.decode()


def test_dot_of_the_textbook_example():
    t, v = textbook()
    v["y"].backward()
    text = pytape.to_dot(v["y"])
    assert text == t.to_dot(v["y"])
    nodes, edges = parse_dot(text)
    dot_accepts(text)
    assert set(nodes) == {f"v{slot(x)}" for x in v.values()}
    for name, (value, adjoint, _) in TEXTBOOK.items():
        label = nodes[f"v{slot(v[name])}"]["label"].split("\\n")
        assert float(label[1].removeprefix("value ")) == pytest.approx(value, abs=5e-4)
        assert float(label[2].removeprefix("grad ")) == pytest.approx(adjoint, abs=5e-4)
    s = {name: f"v{slot(x)}" for name, x in v.items()}
    assert sorted((a, b) for a, b, _ in edges) == sorted([
        (s["x1"], s["ln"]), (s["x1"], s["mul"]), (s["x2"], s["mul"]), (s["ln"], s["add"]),
        (s["mul"], s["add"]), (s["x2"], s["sin"]), (s["add"], s["y"]), (s["sin"], s["y"]),
    ])
    assert nodes[s["y"]]["label"].startswith(f"{s['y']} = {s['add']} - {s['sin']}")


def test_dot_holds_exactly_the_nodes_reaching_the_output():
    with pytape.Tape() as t:
        x, z = Var(1.5), Var(-2.0)
        unused = [z * 3.0]
        unused.append(pytape.sin(unused[0]) + x)  # reads x, but y does not read it
        sq = x * x
        y = sq + 1.0
        unused.append(pytape.exp(y))             # reads y, later than y
    nodes, edges = parse_dot(pytape.to_dot(y))
    assert set(nodes) == {f"v{slot(x)}", f"v{sq.slot}", f"v{y.slot}"}
    assert sorted((a, b) for a, b, _ in edges) == [(f"v{slot(x)}", f"v{sq.slot}")] * 2 + [(f"v{sq.slot}", f"v{y.slot}")]
    # the whole tape: every instruction, the three unread ones filled as outputs
    nodes, _ = parse_dot(t.to_dot())
    assert set(nodes) == {f"v{i}" for i in range(len(t))}
    filled = {n for n, a in nodes.items() if "filled" in a.get("style", "") and a["fillcolor"] != "#d6e6f5"}
    assert filled == {f"v{u.slot}" for u in unused[1:]}
    with pytest.raises(ValueError):
        pytape.Tape().to_dot(y)
    with pytest.raises(ValueError):
        pytape.to_dot(x)  # a leaf


def test_dot_of_a_big_graph_is_cut_near_the_output(chain):
    _, _, y, _ = chain
    start = time.perf_counter()
    text = pytape.to_dot(y, max_nodes=50)
    assert time.perf_counter() - start < 1.0
    nodes, edges = parse_dot(text)
    dot_accepts(text)
    assert set(nodes) - {"more"} == {f"v{i}" for i in range(y.slot - 49, y.slot + 1)}
    assert nodes["more"]["label"] == f"{y.slot + 1 - 50:,} more instructions not shown"
    assert [(a, b) for a, b, _ in edges if a == "more"] == [("more", f"v{y.slot - 49}")]
    assert len(parse_dot(pytape.to_dot(y))[0]) == 201  # the default: 200 and the note


def test_cut_keeps_the_nearest_operands_not_the_latest_slots():
    with pytape.Tape() as t:
        x = Var(0.3)
        a = x
        for _ in range(300):
            a = pytape.sin(a)
        y = a * x  # x is one step from y, 300 slots before it
    nodes, _ = parse_dot(t.to_dot(y, max_nodes=5))
    assert set(nodes) == {f"v{slot(x)}", f"v{y.slot}", f"v{a.slot}", f"v{a.slot - 1}", f"v{a.slot - 2}", "more"}


# ---- rendering ------------------------------------------------------------------

def test_render_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    t, v = textbook()
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz fails
    with pytest.raises(ImportError, match=r"pip install 'pytape\[viz\]'.*apt-get install graphviz"):
        pytape.render(v["y"], tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    assert t._repr_svg_() is None


def test_render_without_dot_says_what_to_install(monkeypatch, tmp_path):
    pytest.importorskip("graphviz")
    t, v = textbook()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot program there
    with pytest.raises(RuntimeError, match="dot.*apt-get install graphviz"):
        t.render(tmp_path / "g.svg")
    assert pytape.display.repr_svg(v["y"]) is None


def test_render_writes_svg(tmp_path):
    pytest.importorskip("graphviz")
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot program is not installed")
    t, v = textbook()
    v["y"].backward()
    path = pytape.render(v["y"], tmp_path / "g.svg")
    svg = pathlib.Path(path).read_text()
    assert svg.rstrip().endswith("</svg>") and "<svg" in svg
    root = ET.fromstring(svg)
    texts = " ".join(e.text or "" for e in root.iter() if e.tag.endswith("text"))
    s = {name: f"v{slot(x)}" for name, x in v.items()}
    assert f"{s['y']} = {s['add']} - {s['sin']}" in texts and "grad 5.5" in texts
    for svg in (t._repr_svg_(), pytape.display.repr_svg(v["y"])):
        assert ET.fromstring(svg).tag.endswith("svg")
    png = pytape.render(v["y"], str(tmp_path / "g.png"))
    assert pathlib.Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="extension"):
        pytape.render(v["y"], tmp_path / "graph")


# ---- the README's example and picture stay true to the code ---------------------------

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTION = (ROOT / "README.md").read_text().partition("## Seeing the tape")[2].partition("\n## ")[0]


@pytest.mark.skipif(not SECTION, reason="README.md not found beside tests/")
def test_readme_table_is_what_print_prints():
    code, shown = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", SECTION, re.S).groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == shown


@pytest.mark.skipif(not SECTION, reason="README.md not found beside tests/")
def test_committed_picture_shows_the_current_labels():
    assert "![" in SECTION and "(docs/example_graph.svg)" in SECTION
    svg = ET.parse(ROOT / "docs" / "example_graph.svg").getroot()
    drawn = sorted(e.text for e in svg.iter() if e.tag.endswith("text"))
    _, v = textbook()
    v["y"].backward()
    nodes, _ = parse_dot(pytape.to_dot(v["y"]))
    assert drawn == sorted(line for a in nodes.values() for line in a["label"].split("\\n"))


def test_dot_lays_out_a_leaf_shared_by_a_long_chain():
    # an RNN-like loop reads one weight at every step: without bounded layout
    # effort dot spent minutes on the 200 nodes nearest the output
    if not shutil.which("dot"):
        pytest.skip("Graphviz's dot program is not installed")
    w, h = pytape.Var(0.9), pytape.Var(0.1)
    for _ in range(500):
        h = pytape.tanh(w * h + 0.1)
    text = pytape.to_dot(h)
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, timeout=120)
    assert done.returncode == 0 and b"</svg>" in done.stdout
