"""The package's layout holds: one boundary module touches the C library, no
import circles, and the recording layer imports nothing above it."""
import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "pytape"
BOUNDARY = "_native"
RECORDING = {"_native", "errors", "tape", "anomaly", "var", "recording", "ops", "tensor", "array_ops"}


def modules():
    """{module name: source} of pytape's modules (a subpackage counts as one)."""
    found = {p.stem: p.read_text() for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    for pkg in PACKAGE.iterdir():
        if (pkg / "__init__.py").exists():
            found[pkg.name] = "\n".join(p.read_text() for p in pkg.rglob("*.py"))
    return found


def imports(source):
    """pytape modules a source imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = (node.module or "").split(".")[0]
            if base:
                out.add(base)
            else:  # from . import x, y
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytape."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pytape.")}
    return out


def test_only_the_boundary_touches_the_c_library():
    touching = [name for name, src in modules().items() if re.search(r"\b(lib|ffi)\.", src)]
    assert touching == [BOUNDARY], f"modules calling lib / ffi besides {BOUNDARY}: {touching}"


def test_no_import_circles_and_the_recording_layer_imports_nothing_above_it():
    mods = modules()
    graph = {name: imports(src) & set(mods) - {name} for name, src in mods.items()}
    for name in RECORDING:
        above = graph[name] - RECORDING
        assert not above, f"{name} (recording layer) imports {sorted(above)}"
    # a depth-first search for a cycle
    state = {}

    def visit(name, path):
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                raise AssertionError(f"import circle: {' -> '.join(path + [name, dep])}")
            if dep not in state:
                visit(dep, path + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
