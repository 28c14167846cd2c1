"""Robot modules import each other in one direction only: the simulator, the ROS driver and the bridge form no circle."""

from __future__ import annotations

from tests.imports import SRC, cycles, import_graph

ROBOTS = SRC / "s2kit" / "plugins" / "robots"


def test_the_cycle_finder_sees_a_circle_through_a_function_level_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_robot_modules_import_each_other_without_circles() -> None:
    graph = import_graph(ROBOTS)
    assert "s2kit.plugins.robots.sim.embodiment" in graph["s2kit.plugins.robots.ros.driver"]
    assert "s2kit.plugins.robots.ros.driver" in graph["s2kit.plugins.robots.sim.base"]  # SimRobot.create, inside
    assert cycles(graph) == []
