"""Reading a module's imports from its source: for the tests that keep layers and modules apart."""

from __future__ import annotations

import ast
from pathlib import Path


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
