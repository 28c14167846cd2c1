"""Robot modules import each other in one direction only: the simulator, the ROS driver and the bridge form no circle."""

from __future__ import annotations

from pathlib import Path

import s2kit
from tests.imports import imports, module_name, package_of

SRC = Path(s2kit.__file__).parent.parent
ROBOTS = SRC / "s2kit" / "plugins" / "robots"


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``root`` it imports (at import time or inside functions; TYPE_CHECKING aside)."""
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


def test_the_cycle_finder_sees_a_circle_through_a_function_level_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_robot_modules_import_each_other_without_circles() -> None:
    graph = import_graph(ROBOTS)
    assert "s2kit.plugins.robots.sim.embodiment" in graph["s2kit.plugins.robots.ros.driver"]
    assert "s2kit.plugins.robots.ros.driver" in graph["s2kit.plugins.robots.sim.base"]  # SimRobot.create, inside
    assert cycles(graph) == []
