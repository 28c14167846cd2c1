from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from s2kit.core.errors import (
    ConfigError,
    PluginConflictError,
    PluginError,
    UnknownPluginError,
)
from s2kit.core.registry import load_registry

GOOD = """
from s2kit import hookimpl
from tests.doubles import ConstantExecutor

class Other(ConstantExecutor):
    '''Another constant executor.'''
    name = "other"

@hookimpl
def s2kit_executors():
    return [Other]
"""

CLASH = """
from s2kit import hookimpl
from tests.doubles import ConstantExecutor

class Seek(ConstantExecutor):
    name = "seek"

@hookimpl
def s2kit_executors():
    return [Seek]
"""


def make_module(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source))


def make_distribution(root: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution (dist-info on sys.path) declaring s2kit entry points."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[s2kit]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_come_through_the_entry_point_group_like_any_plugin() -> None:
    registry = load_registry(env={})
    planner = registry.get("planner", "instruction")
    assert planner.plugin.distribution == "s2kit" and planner.plugin.version
    assert registry.get("executor", "replay").plugin.name == "replay"


def test_third_party_distribution_is_found_and_attributed(site: Path) -> None:
    make_module(site, "good_plugin", GOOD)
    make_distribution(site, "good-dist", "2.5", {"good": "good_plugin"})
    registry = load_registry(env={})
    info = registry.get("executor", "other")
    assert (info.plugin.distribution, info.plugin.version, info.module) == ("good-dist", "2.5", "good_plugin")
    assert info.summary == "Another constant executor."


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_work(site: Path) -> None:
    make_module(site, "broken_plugin", "raise ImportError('needs libfoo')\n")
    make_module(site, "good_plugin", GOOD)
    make_distribution(site, "broken-dist", "0.1", {"broken": "broken_plugin"})
    make_distribution(site, "good-dist", "1.0", {"good": "good_plugin"})
    registry = load_registry(env={})
    broken = next(p for p in registry.plugins if p.name == "broken")
    assert broken.status == "error" and broken.distribution == "broken-dist"
    assert broken.error == "import: ImportError: needs libfoo"
    assert registry.get("executor", "other")  # the good one still works
    with pytest.raises(UnknownPluginError, match="1 plugin\\(s\\) failed to load"):
        registry.get("executor", "missing")


def test_a_misspelled_hook_is_an_error_for_that_plugin(site: Path) -> None:
    make_module(site, "typo_plugin", "from s2kit import hookimpl\n@hookimpl\ndef s2kit_executor():\n    return []\n")
    registry = load_registry(modules=["typo_plugin"], env={})
    typo = next(p for p in registry.plugins if p.name == "typo_plugin")
    assert typo.status == "error" and "unknown hook(s) s2kit_executor" in typo.error
    assert registry.pm.get_plugin("typo_plugin") is None


def test_a_hook_that_raises_or_returns_junk_marks_only_its_plugin(site: Path) -> None:
    make_module(site, "raising_plugin", "from s2kit import hookimpl\n@hookimpl\ndef s2kit_robots():\n    raise RuntimeError('boom')\n")
    make_module(site, "junk_plugin", "from s2kit import hookimpl\n@hookimpl\ndef s2kit_planners():\n    return [object]\n")
    registry = load_registry(modules=["raising_plugin", "junk_plugin", "tests.doubles"], env={})
    by_name = {p.name: p for p in registry.plugins}
    assert by_name["raising_plugin"].error == "s2kit_robots: RuntimeError: boom"
    assert "is not a Planner subclass" in by_name["junk_plugin"].error
    assert "point" in registry.names("robot")  # the other plugins' components are all there


def test_two_plugins_with_one_name_give_one_error_naming_both(site: Path) -> None:
    make_module(site, "clash_plugin", CLASH)
    make_distribution(site, "clash-dist", "3.0", {"clash": "clash_plugin"})
    registry = load_registry(modules=["tests.doubles"], env={})
    with pytest.raises(PluginConflictError) as err:
        registry.get("executor", "seek")
    message = str(err.value)
    assert "executor 'seek' is registered by" in message
    assert "plugin 'clash' (distribution clash-dist 3.0)" in message
    assert "plugin 'tests.doubles' (module tests.doubles)" in message
    # two third-party plugins: either may be the one to skip, so both are named
    assert "S2KIT_DISABLE_PLUGINS=clash or S2KIT_DISABLE_PLUGINS=tests.doubles" in message
    assert [c.status for c in registry.components("executor") if c.name == "seek"] == ["conflict", "conflict"]
    # disabling one of them resolves it
    registry = load_registry(modules=["tests.doubles"], env={"S2KIT_DISABLE_PLUGINS": "clash"})
    assert registry.get("executor", "seek").plugin.name == "tests.doubles"
    assert next(p for p in registry.plugins if p.name == "clash").status == "disabled"


IMPOSTOR = """
from s2kit import hookimpl
from tests.doubles import ConstantExecutor

class Impostor(ConstantExecutor):
    name = "s2"

@hookimpl
def s2kit_executors():
    return [Impostor]
"""


def test_a_third_party_taking_a_builtin_name_is_the_one_the_advice_disables(site: Path) -> None:
    make_module(site, "impostor_plugin", IMPOSTOR)
    make_distribution(site, "impostor-dist", "0.3", {"impostor": "impostor_plugin"})
    registry = load_registry(env={})
    with pytest.raises(PluginConflictError) as err:
        registry.get("executor", "s2")
    message = str(err.value)
    assert "built-in plugin 's2' (distribution s2kit" in message
    assert "plugin 'impostor' (distribution impostor-dist 0.3)" in message
    assert "S2KIT_DISABLE_PLUGINS=impostor or uninstall impostor-dist" in message
    assert "S2KIT_DISABLE_PLUGINS=s2" not in message
    # following the advice keeps the built-in s2 and everything its plugin provides
    fixed = load_registry(env={"S2KIT_DISABLE_PLUGINS": "impostor"})
    assert fixed.get("executor", "s2").plugin.distribution == "s2kit"
    assert fixed.get("executor", "baseline").plugin.distribution == "s2kit"


def test_plugins_from_the_environment_variable(site: Path) -> None:
    make_module(site, "good_plugin", GOOD)
    registry = load_registry(env={"S2KIT_PLUGINS": "good_plugin, tests.doubles"})
    assert "other" in registry.names("executor") and "point" in registry.names("robot")


def test_tracing_reports_hook_calls(capsys: pytest.CaptureFixture[str]) -> None:
    load_registry(modules=["tests.doubles"], env={"S2KIT_TRACE_PLUGINS": "1"})
    err = capsys.readouterr().err
    assert "s2kit_robots" in err and "s2kit_executors" in err


def test_create_validates_options_and_reports_start_failures(registry) -> None:
    robot = registry.create("robot", {"name": "point", "tolerance": 0.1})
    assert robot.config.tolerance == 0.1
    with pytest.raises(ConfigError, match="robot 'point': unknown option 'tolerence' \\(allowed: task, tolerance"):
        registry.create("robot", {"name": "point", "tolerence": 0.1})
    with pytest.raises(ConfigError, match="option 'tolerance' = -1"):
        registry.create("robot", {"name": "point", "tolerance": -1})
    with pytest.raises(PluginError, match="robot 'point' failed to start: ValueError"):
        registry.create("robot", {"name": "point", "task": "reach a,b,c"})
    with pytest.raises(UnknownPluginError, match="unknown robot 'hsrr' \\(available: .*point"):
        registry.create("robot", {"name": "hsrr"})
    with pytest.raises(UnknownPluginError, match="unknown plugin kind 'robots'"):
        registry.names("robots")


def test_create_builds_what_the_class_returns_for_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Registry.create`` calls ``cls.create(config)``: a robot plugin returns its ROS driver for a ROS backend."""
    make_module(
        tmp_path,
        "twofaced",
        """
from s2kit import hookimpl
from s2kit.core.config import PluginConfig
from s2kit.core.interfaces import Planner


class Config(PluginConfig):
    real: bool = False


class Fake(Planner):
    name = "twofaced"
    Config = Config

    def plan(self, instruction, observation, **kwargs):
        raise NotImplementedError


class Real(Fake):
    pass


class Chooser(Fake):
    @classmethod
    def create(cls, config):
        return Real(config) if config.real else cls(config)


@hookimpl
def s2kit_planners():
    return [Chooser]
""",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry(entry_points=[], modules=["twofaced"], env={})
    assert type(registry.create("planner", {"name": "twofaced"})).__name__ == "Chooser"
    assert type(registry.create("planner", {"name": "twofaced", "real": True})).__name__ == "Real"
