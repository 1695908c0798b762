"""The exported folder's ``custom_interface.py``: the package's own inference code, generated into one file.

An exported folder must load with SpeechBrain alone (``foreign_class``, which fetches only the files it names),
so :func:`interface_source` writes the package modules the model needs into that one file: the closure of the
modules of the classes its ``hyperparams.yaml`` names and of the interfaces (:data:`INTERFACE_MODULES`), over
their ``speechbrain_ext`` imports (at module level and inside functions), in the order their module-level imports
need, with those imports removed (every name is then a global of the one file). The YAML's tags name the classes
as ``custom_interface.<Name>`` (:func:`rewrite_tags`). The export refuses, before writing, a module of the closure
that imports at module level a package SpeechBrain and transformers do not bring (pandas, sklearn...), and two
modules that define one top-level name differently. The file records where each class the YAML names came from
(:data:`ORIGINS_NAME`), so the package's own interfaces load the same folder with the package's classes
(:func:`speechbrain_ext.serving.model_interface.exported_classes`).
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from speechbrain_ext.serving.model_interface import EXPORTED_MODULE, ORIGINS_NAME

PACKAGE = "speechbrain_ext"
INTERFACE_MODULES = ("speechbrain_ext.serving.inference",)  # EmotionClassifier, EmotionRegressor and what they use
LOADER_DISTRIBUTIONS = ("speechbrain", "transformers", "torchaudio")  # what a folder's user installs
BUILTINS = set(dir(builtins))
TAG = re.compile(r"!(new|name|apply|module):(" + PACKAGE + r"(?:\.\w+)*)\.(\w+)(?=[\s\]},]|$)", re.MULTILINE)


def module_file(name: str) -> Path:
    """The source file of a package module."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"{name}: no such module of {PACKAGE}")
    return Path(spec.origin)


def _package_imports(tree: ast.Module, name: str) -> list[tuple[ast.stmt, str, bool]]:
    """Every ``speechbrain_ext`` import in module ``name``: (statement, module, at module level)."""
    top = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise ValueError(f"{name}:{node.lineno}: relative import; the exported interface needs absolute ones")
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in node.names):
            raise ValueError(f"{name}:{node.lineno}: `import {node.names[0].name}`; import the names it uses instead")
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == PACKAGE:
            found.append((node, node.module, id(node) in top))
    return found


def module_closure(roots) -> list[str]:
    """The package modules ``roots`` need (their imports at module level and inside functions), dependencies first.

    Example
    -------
    >>> order = module_closure(["speechbrain_ext.nn.models"])
    >>> order.index("speechbrain_ext.nn.pooling") < order.index("speechbrain_ext.nn.models")
    True
    """
    edges: dict[str, tuple[set, set]] = {}  # module -> (module-level imports, all imports)
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in edges:
            continue
        tree = ast.parse(module_file(name).read_text(encoding="utf-8"))
        found = _package_imports(tree, name)
        for node, module, _ in found:
            for alias in node.names:
                if _is_package(module) and importlib.util.find_spec(f"{module}.{alias.name}") is not None:
                    raise ValueError(f"{name}: imports the module {module}.{alias.name}; import the names it uses")
        edges[name] = ({m for _, m, top in found if top}, {m for _, m, _ in found})
        stack.extend(sorted(edges[name][1]))
    order: list[str] = []

    def visit(name: str, path: tuple) -> None:
        if name in order:
            return
        if name in path:
            raise ValueError(f"module-level import cycle: {' -> '.join(path + (name,))}")
        for dep in sorted(edges[name][0]):
            visit(dep, path + (name,))
        order.append(name)

    for name in sorted(edges):
        visit(name, ())
    return order


def _is_package(module: str) -> bool:
    return module_file(module).name == "__init__.py"


@functools.cache
def loader_modules() -> frozenset[str]:
    """Top-level modules a folder's user has: the standard library, SpeechBrain, transformers and what they require."""
    wanted, stack = set(), list(LOADER_DISTRIBUTIONS)
    while stack:
        dist = re.sub(r"[-_.]+", "-", stack.pop()).lower()
        if dist in wanted:
            continue
        wanted.add(dist)
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        stack.extend(re.match(r"[A-Za-z0-9_.-]+", r).group(0) for r in requires if "extra ==" not in r)
    provided = importlib.metadata.packages_distributions()
    names = {top for top, dists in provided.items() if any(re.sub(r"[-_.]+", "-", d).lower() in wanted for d in dists)}
    return frozenset(names | set(sys.stdlib_module_names) | {"__future__"})


def _bound_names(statement: ast.stmt) -> set[str]:
    """The module-level names a statement binds (not those inside its functions or classes)."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    names, stack = set(), [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        elif isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue  # their own scope
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _identities(statement: ast.stmt) -> dict[str, str]:
    """What each name a module-level statement binds must be in every module that binds it: the imported object,
    else the statement's code."""
    if isinstance(statement, ast.Import):
        return {
            (a.asname or a.name).split(".")[0]: a.name if a.asname else a.name.split(".")[0] for a in statement.names
        }
    if isinstance(statement, ast.ImportFrom):
        return {a.asname or a.name: f"{statement.module}.{a.name}" for a in statement.names}
    code = ast.unparse(statement)
    return {name: code for name in _bound_names(statement)}


class _Module:
    """One module's source, trimmed for the generated file."""

    def __init__(self, name: str, allowed: set[str]):
        self.name, self.path = name, module_file(name)
        self.lines = self.path.read_text(encoding="utf-8").splitlines()
        self.tree = ast.parse("\n".join(self.lines))
        self.edits: dict[int, tuple[int, list[str]]] = {}  # first line (0-based) -> (last line, replacement)
        for statement in self.tree.body:
            modules = (
                [a.name for a in statement.names]
                if isinstance(statement, ast.Import)
                else [statement.module]
                if isinstance(statement, ast.ImportFrom)
                else []
            )
            for module in modules:
                top = module.split(".")[0]
                if top != PACKAGE and top not in allowed:
                    raise ValueError(
                        f"{name}:{statement.lineno}: imports {module} at module level, which SpeechBrain and "
                        "transformers do not bring; import it inside the function that needs it"
                    )

    def bindings(self) -> list[tuple[ast.stmt, dict[str, str]]]:
        """The module-level statements that bind names of the one file: (statement, {name: identity})."""
        out = []
        for statement in self.tree.body:
            if isinstance(statement, ast.ImportFrom) and statement.module.split(".")[0] in (PACKAGE, "__future__"):
                continue
            names = {n: i for n, i in _identities(statement).items() if n != "__all__"}
            if names:
                out.append((statement, names))
        return out

    def drop(self, statement: ast.stmt, replacement: list[str] | None = None) -> None:
        self.edits[statement.lineno - 1] = (statement.end_lineno, replacement or [])

    def trim(self, shared: set[int]) -> None:
        """Mark the lines to drop: docstring, ``__future__``/package imports, ``__all__``, ``__main__`` blocks,
        and the statements another module already wrote (``shared``: their ids)."""
        body = self.tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            self.drop(body[0])
        for statement in body:
            if (
                id(statement) in shared
                or isinstance(statement, ast.ImportFrom)
                and statement.module == "__future__"
                or _bound_names(statement) == {"__all__"}
                or isinstance(statement, ast.If)
                and ast.unparse(statement.test) == "__name__ == '__main__'"
            ):
                self.drop(statement)
        parents = {id(child): node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        for node, _, _ in _package_imports(self.tree, self.name):
            indent = " " * node.col_offset
            aliases = [f"{indent}{a.asname} = {a.name}" for a in node.names if a.asname and a.asname != a.name]
            parent = parents.get(id(node))
            alone = parent is not None and any(
                getattr(parent, field, None) == [node] for field in ("body", "orelse", "finalbody")
            )
            self.drop(node, aliases or ([indent + "pass"] if alone else []))

    def text(self) -> str:
        lines, skip_to = [], -1
        for i, line in enumerate(self.lines):
            if i in self.edits:
                skip_to, replacement = self.edits[i]
                lines += replacement
            if i < skip_to:
                continue
            lines.append(line)
        text = "\n".join(lines).strip("\n")
        return re.sub(r"\n{4,}", "\n\n\n", text)


def _version() -> str:
    from speechbrain_ext import __version__

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{PACKAGE} {__version__}" + (f" (commit {commit})" if commit else "")


def interface_source(classes: dict[str, str], roots=INTERFACE_MODULES) -> str:
    """The ``custom_interface.py`` of a folder whose YAML names ``classes`` (name -> package module).

    Raises ``ValueError`` naming the module and the line: a module-level import of a package the loader lacks,
    or a name two modules of the closure define differently.

    Example
    -------
    >>> text = interface_source({"UtteranceModel": "speechbrain_ext.nn.models"})
    >>> imports = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    >>> [n.lineno for n in imports if ast.unparse(n).split()[1].startswith("speechbrain_ext")]
    []
    >>> "class EmotionClassifier(ModelInterface)" in text
    True
    """
    allowed = loader_modules()
    modules = [_Module(name, allowed) for name in module_closure([*roots, *sorted(set(classes.values()))])]
    owners: dict[str, tuple[str, str]] = {}  # name -> (module, identity)
    shared: set[int] = set()
    for module in modules:
        for statement, names in module.bindings():
            for name, identity in names.items():
                other, known = owners.setdefault(name, (module.name, identity))
                if known != identity or name in BUILTINS:
                    raise ValueError(
                        f"{module.name}:{statement.lineno} binds {name!r}, which {other} "
                        f"{'binds differently' if known != identity else 'uses as a builtin'}; the exported "
                        "custom_interface.py holds both in one namespace: rename one"
                    )
                if other != module.name and not isinstance(statement, (ast.Import, ast.ImportFrom)):
                    shared.add(id(statement))  # the same definition (a logger, say): written once
        module.trim(shared)
    missing = [n for n, m in classes.items() if owners.get(n, ("",))[0] != m]
    if missing:
        raise ValueError(f"the YAML names {missing}, which the generated interface does not define")
    generated = textwrap.fill(
        f"GENERATED by `hub export` from {_version()} (the paralinguistics recipe collection): its modules "
        f"{', '.join(m.name for m in modules)}, their package imports removed. Do not edit it by hand; re-export "
        f"the model instead. ``hyperparams.yaml`` names its classes as ``{EXPORTED_MODULE}.<Name>``.",
        width=116,
        break_on_hyphens=False,
    )
    header = f'''"""Interface of this model folder for SpeechBrain's ``foreign_class``: loads with SpeechBrain alone.

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="<this folder or hub id>", pymodule_file="custom_interface.py",
                          classname="EmotionClassifier")  # EmotionRegressor for a regressor (see README.md)

{generated}
"""

from __future__ import annotations

import gc as _gc
import sys as _sys
import types as _types

# foreign_class executes this file by its path without registering it: registered under its name (before any
# class is made: dataclasses look their module up), it is the module that the YAML's `{EXPORTED_MODULE}.<Name>`
# tags resolve to, so the interface and the model share their classes; a later folder's file takes the name over.
if getattr(_sys.modules.get(__name__), "__dict__", None) is not globals():
    _sys.modules[__name__] = next(
        m for m in _gc.get_referrers(globals()) if isinstance(m, _types.ModuleType) and m.__dict__ is globals()
    )

# Where the classes the YAML names came from: the package's interfaces load this folder with the package's classes.
{ORIGINS_NAME} = {dict(sorted(classes.items()))!r}
'''
    parts = [header]
    for module in modules:
        parts.append(f"# {'-' * 40} {module.name}\n\n{module.text()}\n")
    return "\n\n".join(parts)


def rewrite_tags(yaml_text: str) -> tuple[str, dict[str, str]]:
    """Retag every ``!new:speechbrain_ext.<module>.<Name>`` (and ``!name:``...) of a YAML text as ``custom_interface.<Name>``.

    Returns the text and the names with their modules; ``ValueError`` when two modules give one name.

    Example
    -------
    >>> text, classes = rewrite_tags("m: !new:speechbrain_ext.nn.models.UtteranceModel\\n  head: !new:torch.nn.Linear\\n")
    >>> print(text.strip()); classes
    m: !new:custom_interface.UtteranceModel
      head: !new:torch.nn.Linear
    {'UtteranceModel': 'speechbrain_ext.nn.models'}
    """
    classes: dict[str, str] = {}

    def retag(match: re.Match) -> str:
        module, name = match.group(2), match.group(3)
        if classes.setdefault(name, module) != module:
            raise ValueError(f"the YAML names {name} from both {classes[name]} and {module}; rename one")
        return f"!{match.group(1)}:{EXPORTED_MODULE}.{name}"

    return TAG.sub(retag, yaml_text), classes
