"""The package layout: sub-packages by role, imports pointing down only, no circle, small modules.

The import graph is drawn from the code (every ``import`` statement, lazy ones inside functions included).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "speechbrain_ext"
# Lower layers never import higher ones; a layer may import itself (without circles).
LAYERS = {
    "utils": 0,
    "testing": 0,
    "evaluation": 1,
    "data": 2,
    "nn": 3,
    "training": 4,
    "methods": 5,
    "serving": 6,
    "analysis": 7,
}
ENTRY = 8  # the top-level modules keeping the commands' names (python -m speechbrain_ext.classify, ...)
ENTRY_LINES = 40
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """The package's modules that ``name`` imports (``from pkg import module`` resolved to the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name and target != "speechbrain_ext":
                found.add(target)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return -1  # the package's own __init__ imports nothing
    if parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return ENTRY


def test_every_module_is_in_a_known_layer():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LAYERS), f"sub-packages {sorted(packages)} vs the layers {sorted(LAYERS)}"


def test_imports_point_down_only():
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if layer(target) > layer(name) or layer(target) == ENTRY
    ]
    assert not upward, "imports running back up:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_circle():
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    circles = []

    def visit(node, stack):
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                circles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_check_sees_an_upward_import_and_a_circle(monkeypatch):
    monkeypatch.setitem(
        GRAPH, "speechbrain_ext.data.audio", GRAPH["speechbrain_ext.data.audio"] | {"speechbrain_ext.nn.pooling"}
    )
    with pytest.raises(AssertionError, match="data.audio -> speechbrain_ext.nn.pooling"):
        test_imports_point_down_only()
    monkeypatch.setitem(
        GRAPH, "speechbrain_ext.nn.pooling", GRAPH["speechbrain_ext.nn.pooling"] | {"speechbrain_ext.data.audio"}
    )
    with pytest.raises(AssertionError, match="import circles"):
        test_the_import_graph_has_no_circle()


def test_sub_packages_say_what_lives_there_and_what_they_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "Imports:" in doc, f"{init}: its docstring says what lives there and what it may import"


def test_modules_are_small_and_the_top_level_is_thin():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "data_prep").rglob("*.py"), *(ROOT / "recipes").rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"
    top_level = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert len([n for n in top_level.values() if n > ENTRY_LINES]) <= 5, top_level
    assert len(LAYERS) >= 5
