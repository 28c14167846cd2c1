"""What the docs promise a reader: snippets that say where their names come from, every suite field documented."""

from __future__ import annotations

import ast
import builtins
import re

import pytest

from tests.conftest import ROOT

_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def _unbound_names(source: str) -> set[str]:
    """Names a snippet reads but never imports, defines or assigns (and that are not builtins)."""
    tree = ast.parse(source)
    bound: set[str] = set(dir(builtins))
    loaded: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound


@pytest.mark.parametrize("page", ["plugins.md"])
def test_every_python_snippet_shows_its_imports(page: str) -> None:
    blocks = _PYTHON_BLOCK.findall((ROOT / "docs" / page).read_text())
    assert blocks, f"no python snippets found in docs/{page}"
    missing = {block.splitlines()[0]: sorted(_unbound_names(block)) for block in blocks}
    assert {first: names for first, names in missing.items() if names} == {}


def test_simulation_md_documents_every_field_of_the_suite_file() -> None:
    from s2kit.plugins.robots.sim.tasks import Appearance, Suite

    page = (ROOT / "docs" / "simulation.md").read_text()
    section = page.split("### The suite file", 1)[1].split("\n#", 1)[0]
    documented = set(re.findall(r"^\| (.+?) \|", section, flags=re.MULTILINE))
    documented = {name.strip("`") for cell in documented for name in cell.split(", ")}
    fields = {*Suite.model_fields, *(f"appearance.{name}" for name in Appearance.model_fields)} - {"appearance"}
    assert fields - documented == set()


_PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_REPO_PATH = re.compile(r"(?<![\w./-])((?:src|scripts|benchmarks|examples|tests|docs)/[\w./-]*\w)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", _PAGES, ids=lambda p: p.name)
def test_every_repository_path_a_page_names_exists(page) -> None:
    text = re.sub(r"^```\n.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)  # plain blocks: trees, output
    named = {m.group(1).rstrip(".") for m in _REPO_PATH.finditer(text)}
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


@pytest.mark.parametrize("page", _PAGES, ids=lambda p: p.name)
def test_every_link_to_a_section_finds_its_heading(page) -> None:
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)#([\w-]+)\)", page.read_text()):
        linked = page if not target else (page.parent / target)
        headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.MULTILINE)
        if anchor not in {_anchor(h) for h in headings}:
            broken.append(f"{target}#{anchor}")
    assert broken == []


_SESSION = re.compile(r".{0,30}\bsessions?\s*#?\d+.{0,30}", flags=re.IGNORECASE)


@pytest.mark.parametrize("page", _PAGES, ids=lambda p: p.name)
def test_pages_speak_of_the_project_not_of_work_sessions(page) -> None:
    assert _SESSION.findall(page.read_text()) == []


def test_docstrings_and_comments_speak_of_the_project_not_of_work_sessions() -> None:
    sources = [p for part in ("src", "benchmarks", "scripts", "examples") for p in (ROOT / part).rglob("*")
               if p.suffix in {".py", ".md", ".yaml", ".sh"} and "egg-info" not in str(p)]
    assert sources
    assert {str(p.relative_to(ROOT)): _SESSION.findall(p.read_text()) for p in sources if _SESSION.search(p.read_text())} == {}
