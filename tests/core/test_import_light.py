"""The core stays contracts plus the loop.

A robot-side process that imports it must not pay for torch or a simulator;
its sources import nothing beyond the standard library, numpy, pydantic, yaml
and pluggy; and it names no executor, robot or simulator (those are plugins,
and a model's needs reach the core through hooks).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

import s2kit.core
from tests.imports import imports, package_of

HEAVY = ("torch", "mujoco", "onnx", "numba", "typer", "av")


def test_core_imports_no_heavy_stack() -> None:
    code = (
        "import sys, s2kit, s2kit.core, s2kit.core.runtime, s2kit.core.data, s2kit.core.metrics\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import s2kit.core pulled in: {out.stdout.strip()}"


def test_loading_every_plugin_stays_light() -> None:
    # Built-in plugin modules are imported whenever the registry loads (every
    # CLI call), so they too must keep heavy imports inside their components.
    code = (
        "import sys\n"
        "from s2kit.core.registry import load_registry\n"
        "load_registry()\n"
        "print(','.join(m for m in ('torch', 'mujoco') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- what core sources import ------------------------------------------------------------

CORE = Path(s2kit.core.__file__).parent
#: Third-party packages the core may import; everything else must be the standard library or s2kit.core.
ALLOWED = {"numpy", "pydantic", "pydantic_core", "yaml", "pluggy"}


def foreign_imports(source: str, package: str = "s2kit.core") -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source`` (functions included, ``if TYPE_CHECKING:`` left out)
    that is neither the standard library, an allowed package, nor ``s2kit.core``."""
    found: list[tuple[int, str]] = []
    for line, name in imports(source, package):
        core = name == "s2kit.core" or name.startswith("s2kit.core.")
        if core or name.split(".")[0] in ALLOWED | set(sys.stdlib_module_names):
            continue
        if not any(seen == line and name.startswith(f"{module}.") for seen, module in found):  # once per import
            found.append((line, name))
    return found


def test_the_checker_sees_imports_in_functions_and_skips_type_checking() -> None:
    source = (
        "import os, numpy\nfrom typing import TYPE_CHECKING\nimport torch\n"
        "if TYPE_CHECKING:\n    import typer\nelse:\n    import av\n"
        "def f():\n    from s2kit.workflows import video\n    from . import types\n    import mujoco.viewer\n"
    )
    assert foreign_imports(source) == [(3, "torch"), (7, "av"), (9, "s2kit.workflows"), (11, "mujoco.viewer")]


def test_core_sources_import_only_the_standard_library_numpy_pydantic_yaml_and_pluggy() -> None:
    offenders = [
        f"{path.relative_to(CORE.parent)}:{line} imports {name}"
        for path in sorted(CORE.rglob("*.py"))
        for line, name in foreign_imports(path.read_text(), package_of(path, CORE.parent.parent))
    ]
    assert not offenders, "\n".join(offenders)


# --- what core sources name ---------------------------------------------------------------

#: Executors, robots, simulators and middlewares are plugins: the core names none of them,
#: not even in a comment (whole words, any case; "s2" is not "s2kit").
NAMED_NOWHERE = ("s2", "baseline", "openpi", "hsr", "txg2", "agibot", "mujoco", "osmesa", "ros", "ros1", "ros2",
                 "rospy", "rclpy", "scripted", "oracle", "incontext")  # fmt: skip
#: A model's own data (S2's kept patches and focus labels): no identifier or key-like string of the core holds them.
NAMED_IN_NO_CODE = ("keep", "kept", "focus")


def named_concepts(source: str) -> list[tuple[int, str]]:
    """``(line, word)`` for each plugin concept ``source`` names (see the two lists above)."""
    found = []
    tree = ast.parse(source)
    doc_lines = {  # where docstrings start: prose, like comments
        node.body[0].value.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            continue
        words = {w.lower() for w in re.findall(r"[A-Za-z0-9]+", token.string)}
        if re.search(r"tx-g2", token.string, re.IGNORECASE):
            words.add("txg2")
        key = token.type == tokenize.STRING and token.start[0] not in doc_lines and not re.search(r"\s", token.string)
        code = token.type == tokenize.NAME or key  # an identifier, or a string that is a key (no spaces)
        banned = set(NAMED_NOWHERE) | (set(NAMED_IN_NO_CODE) if code else set())
        found += [(token.start[0], w) for w in sorted(words & banned)]
    return found


def test_the_name_checker_finds_plugin_names_and_model_keys() -> None:
    source = (
        '"""Runs on the HSR; keep it light."""\n'
        "KEEP = 'keep'  # S2's kept patches\n"
        "x = info['privileged.focus']\n"
        "s2kit_thing = 1  # s2kit is fine\n"
    )
    assert named_concepts(source) == [(1, "hsr"), (2, "keep"), (2, "keep"), (2, "s2"), (3, "focus")]


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_names_no_executor_robot_or_simulator(path: Path) -> None:
    found = named_concepts(path.read_text())
    assert not found, f"{path.relative_to(CORE.parent)} names plugin concepts: {found}"
