"""The layers of docs/architecture.md import each other only downwards."""

from __future__ import annotations

from tests.imports import SRC, import_graph

#: Layer -> the layers its modules may import (``s2kit`` itself, the version and ``hookimpl``, counts as core).
MAY_IMPORT = {
    "core": {"core"},
    "datasets": {"core", "datasets"},
    "learning": {"core", "datasets", "learning"},
    "workflows": {"core", "datasets", "workflows"},
    "plugins": {"core", "datasets", "learning", "workflows", "plugins"},
    "cli": {"core", "datasets", "learning", "workflows", "cli"},
}


def layer(module: str) -> str:
    part = (module.split(".") + [""])[1]
    return part if part in MAY_IMPORT else "core"  # s2kit, s2kit._version


def allowed(module: str, imported: str) -> bool:
    if layer(imported) in MAY_IMPORT[layer(module)]:
        return True
    # a plugin's own commands (s2kit_register_commands) use the CLI's shared options and error handling
    return layer(module) == "plugins" and module.endswith(".cli") and imported == "s2kit.cli._common"


def test_each_layer_imports_only_the_layers_below_it() -> None:
    graph = import_graph(SRC / "s2kit")
    wrong = sorted(f"{m} imports {i}" for m, imports in graph.items() for i in imports if not allowed(m, i))
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_core_importing_a_workflow_and_cli_importing_a_plugin() -> None:
    assert not allowed("s2kit.core.runtime", "s2kit.workflows.video")
    assert not allowed("s2kit.cli.run", "s2kit.plugins.executors.s2.executor")
    assert allowed("s2kit.plugins.executors.remote.cli", "s2kit.cli._common")
    assert allowed("s2kit.workflows.subscribers", "s2kit")
