from __future__ import annotations

from pathlib import Path

import pytest

from s2kit.core.config import (
    apply_overrides,
    comma_list,
    compose_pipeline,
    default_pipeline,
    load_pipeline,
    load_yaml,
    parse_override,
)
from s2kit.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_default_pipeline_is_the_simulated_robot() -> None:
    data = default_pipeline()
    assert set(data) == {"robot", "planner", "executor", "runtime"}
    assert data["robot"]["name"] == "hsr"


def test_file_sections_replace_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "robot: {name: point, tolerance: 0.05}\nruntime: {max_steps: 12}\n")
    data = load_pipeline(path)
    assert data["robot"] == {"name": "point", "tolerance": 0.05}
    assert data["runtime"] == {"max_steps": 12}
    assert data["planner"]["name"] == "retrieval"  # untouched sections come from the default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("robot: {name: point\n", "not valid YAML at line 2"),
        ("- a\n- b\n", "must be a mapping of sections"),
        ("robots: {name: point}\n", "unknown section 'robots' (allowed: robot, planner, executor, skill, runtime)"),
        ("robot: {tolerance: 0.1}\n", "section 'robot' needs a 'name'"),
        ("robot: 3\n", "section 'robot' must be a mapping"),
        ("", "the pipeline file is empty"),
        ("# only a comment\n", "the pipeline file is empty"),
        ("{}\n", "the pipeline file is empty"),
        ("runtime: {episodes: 1}\nruntime: {episodes: 2}\n", "line 2, column 1: duplicate key 'runtime' (first given at line 1)"),
        ("robot:\n  name: point\n  name: hsr\n", "line 3, column 3: duplicate key 'name' (first given at line 2)"),
        ("executor: {name: s2, camera: {size: 64, size: 32}}\n", "duplicate key 'size'"),
    ],
)
def test_malformed_files_get_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pipeline(write(tmp_path, text))


def test_a_yaml_merge_may_still_override_what_it_brings_in() -> None:
    assert load_yaml("base: &b {size: 64, depth: 2}\nexecutor:\n  <<: *b\n  size: 32\n")["executor"] == {"size": 32, "depth": 2}


def test_a_negative_seed_is_refused_before_the_run() -> None:
    with pytest.raises(ConfigError, match="option 'seed' = -5: Input should be greater than or equal to 0"):
        compose_pipeline(None, runtime={"seed": -5})


@pytest.mark.parametrize("text", ["", "a,,b", "a,", ",a", " , "])
def test_an_empty_name_in_a_comma_list_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--suites '.*': an empty name in the comma-separated list"):
        comma_list(text, "--suites")


def test_a_comma_list_is_stripped_and_deduplicated() -> None:
    assert comma_list(" id , distractor,id", "--suites") == ["id", "distractor"]


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline("/nonexistent/p.yaml")


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("runtime.max_steps=100", ["runtime", "max_steps"], 100),
        ("runtime.safety_scale=0.5", ["runtime", "safety_scale"], 0.5),
        ("runtime.pace=true", ["runtime", "pace"], True),
        ("robot.start=[1, 2, 3]", ["robot", "start"], [1, 2, 3]),
        ("runtime.instruction=pick up the red cube", ["runtime", "instruction"], "pick up the red cube"),
        ("runtime.plan_period=null", ["runtime", "plan_period"], None),
        ("executor.camera.size=64", ["executor", "camera", "size"], 64),
    ],
)
def test_overrides_are_typed(text: str, path: list[str], value: object) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("max_steps=3", "unknown section 'max_steps'"), ("runtime=3", "expected SECTION.KEY=VALUE"), ("runtime.x", "expected")],
)
def test_bad_overrides_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_override(text)


def test_overrides_nest_and_do_not_touch_the_input() -> None:
    data = {"executor": {"name": "s2"}}
    out = apply_overrides(data, ["executor.budget.head=0.25", "executor.budget.wrist=0.5"])
    assert out["executor"] == {"name": "s2", "budget": {"head": 0.25, "wrist": 0.5}}
    assert data == {"executor": {"name": "s2"}}


def test_compose_replaces_a_section_for_another_plugin_and_applies_set_last(tmp_path: Path) -> None:
    path = write(tmp_path, "robot: {name: hsr, camera: 96}\nexecutor: {name: seek, horizon: 4}\n")
    config = compose_pipeline(
        path,
        components={"robot": "point", "executor": "seek"},
        runtime={"episodes": 3, "seed": None},
        overrides=["runtime.seed=7", "executor.gain=0.25"],
    )
    assert config.robot == {"name": "point"}  # hsr's options were not meant for point
    assert config.executor == {"name": "seek", "horizon": 4, "gain": 0.25}  # same plugin: options kept
    assert (config.runtime.episodes, config.runtime.seed) == (3, 7)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("runtime.max_step=3", "runtime: unknown option 'max_step' (allowed: episodes, seed, max_steps"),
        ("runtime.max_steps=many", "runtime: option 'max_steps' = 'many': Input should be a valid integer"),
        ("runtime.mode=fast", "option 'mode' = 'fast'"),
        ("runtime.safety_scale=2", "option 'safety_scale' = 2"),
    ],
)
def test_runtime_errors_name_the_key_and_value(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        compose_pipeline(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_misspelled_nested_key_names_the_keys_of_its_own_model() -> None:
    from pydantic import Field

    from s2kit.core.config import PluginConfig, validate_model

    class Inner(PluginConfig):
        topic: str = Field("a", description="A topic.")
        rate: float = Field(1.0, description="A rate.")

    class Outer(PluginConfig):
        name: str = Field("x", description="A name.")
        inner: Inner = Field(default_factory=Inner, description="Nested.")

    with pytest.raises(ConfigError, match=r"unknown option 'inner.topik' \(allowed: topic, rate\)$"):
        validate_model(Outer, {"inner": {"topik": "b"}}, "robot 'r'")
    with pytest.raises(ConfigError, match=r"unknown option 'nme' \(allowed: name, inner\)$"):
        validate_model(Outer, {"nme": "b"}, "robot 'r'")


# --- the optional skill section ---------------------------------------------------


def test_a_skill_named_on_the_command_line_acts_alone_unless_an_executor_is_named(tmp_path: Path) -> None:
    alone = compose_pipeline(components={"skill": "reach"}, overrides=["skill.horizon=4"])
    assert alone.skill == {"name": "reach", "horizon": 4}
    assert alone.executor is None  # the embedded default's executor is not implied
    assert set(alone.components) == {"robot", "planner", "skill"}
    both = compose_pipeline(components={"skill": "reach", "executor": "seek"})
    assert (both.skill, both.executor) == ({"name": "reach"}, {"name": "seek"})
    by_set = compose_pipeline(overrides=["skill.name=reach", "executor.name=seek"])
    assert by_set.executor == {"name": "seek"}
    # a file's own executor stays beside a skill named on the command line
    path = write(tmp_path, "executor: {name: seek, horizon: 4}\n")
    assert compose_pipeline(path, components={"skill": "reach"}).executor == {"name": "seek", "horizon": 4}
    # without a skill nothing changes: the default's executor fills in
    assert compose_pipeline().skill is None and compose_pipeline().executor == {"name": "s2"}


def test_a_file_naming_a_skill_and_no_executor_has_none(tmp_path: Path) -> None:
    path = write(tmp_path, "robot: {name: point}\nskill: {name: reach}\nexecutor: null\n")
    assert "executor" not in load_pipeline(path)
    config = compose_pipeline(path)
    assert config.skill == {"name": "reach"} and config.executor is None
    assert config.options("executor") == {}


@pytest.mark.parametrize(
    ("text", "override", "message"),
    [
        ("skill: {horizon: 4}\n", None, "section 'skill' needs a 'name'"),
        ("robot: {name: point}\n", "skill.horizon=4", "pipeline: section 'skill' needs a 'name'"),
    ],
)
def test_a_skill_section_without_a_name_is_one_clear_error(tmp_path: Path, text: str, override: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_pipeline(write(tmp_path, text), overrides=[override] if override else [])
