"""Reading a module's imports from its source: for the tests that keep layers and modules apart."""

from __future__ import annotations

import ast
from pathlib import Path

import s2kit

#: The source root: ``SRC / "s2kit"`` is the package.
SRC = Path(s2kit.__file__).parent.parent


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, those inside functions too, ``if TYPE_CHECKING:`` left out.

    ``package`` is the package the source belongs to (relative imports resolve against it);
    ``from a import b`` gives ``a.b`` when ``b`` may be a module, as ``a`` and ``a.b`` both.
    """
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            for child in node.orelse:  # type: ignore[attr-defined]
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative
                parts = package.split(".")
                base = parts[: max(0, len(parts) - (node.level - 1))]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at ``path`` under the source root ``root``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path, root: Path) -> str:
    """The package a module at ``path`` belongs to (itself, for an ``__init__.py``)."""
    name = module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules under ``root`` it imports (at import time or inside functions; TYPE_CHECKING aside)."""
    modules = {module_name(path, SRC): path for path in root.rglob("*.py")}
    return {
        name: {m for _, m in imports(path.read_text(), package_of(path, SRC)) if m in modules and m != name}
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: each one as the modules around it, starting and ending at the same one."""
    found, done = [], set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            circle = path[path.index(node) :] + [node]
            if frozenset(circle) not in done:
                done.add(frozenset(circle))
                found.append(circle)
            return
        for nxt in sorted(graph.get(node, ())):
            walk(nxt, [*path, node])

    for start in sorted(graph):
        walk(start, [])
    return found
