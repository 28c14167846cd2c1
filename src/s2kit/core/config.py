"""Pipeline configuration: YAML files, ``--set`` overrides, one-line errors.

A pipeline is a mapping with ``robot``, ``planner`` and ``executor`` sections,
each ``{name: <plugin>, <options>...}``, an optional ``skill`` section of the
same shape, plus ``runtime``. A pipeline that names a skill may leave the
executor out: the skill then acts alone. Each plugin declares
its options as a pydantic model deriving from `PluginConfig` (extra keys
forbidden), so a misspelled key is an error that names it and the allowed
ones. Validation of a section against its plugin's model happens in the
registry, which knows the plugins; this module knows only the shape.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit.core.errors import ConfigError

__all__ = [
    "COMPONENT_SECTIONS",
    "SECTIONS",
    "PipelineConfig",
    "PluginConfig",
    "RuntimeConfig",
    "apply_overrides",
    "comma_list",
    "compose_pipeline",
    "default_pipeline",
    "describe_validation_error",
    "load_pipeline",
    "load_yaml",
    "parse_override",
    "validate_model",
    "validate_pipeline",
]

COMPONENT_SECTIONS = ("robot", "planner", "executor", "skill")
SECTIONS = (*COMPONENT_SECTIONS, "runtime")


class PluginConfig(BaseModel):
    """Base of every plugin's config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RuntimeConfig(BaseModel):
    """How the control loop runs."""

    model_config = ConfigDict(extra="forbid")

    # episode
    episodes: int = Field(1, ge=1, description="Episodes to run.")
    seed: int = Field(0, ge=0, description="Seed of the first episode; episode i uses seed + i.")
    max_steps: int = Field(300, ge=1, description="Control steps before an episode is cut off.")
    instruction: str | None = Field(
        None,
        description="The instruction to follow. Simulated task suites bring their own; "
        "a real robot needs one here or via --set runtime.instruction=...",
    )

    # executing chunks
    execute_horizon: int = Field(8, ge=1, description="Actions of each chunk sent before asking for the next.")
    mode: Literal["sync", "async"] = Field(
        "sync",
        description="async computes the next chunk while the current one executes and splices it "
        "in by time, dropping actions whose time has passed.",
    )
    pace: bool | None = Field(
        None,
        description="Hold commands to the robot's control rate; default: only for real-time robots.",
    )

    # planning
    progress: Literal["robot", "executor"] = Field(
        "robot",
        description="What moves the guidance to the next subtask: the robot's progress where it reports one "
        "(a simulator's predicates) and the executor's subtask_done; or only the executor's subtask_done, "
        "with the robot's count kept from the planner too (non-privileged progress; the count still scores).",
    )
    plan_period: int | None = Field(
        None, ge=1, description="Also re-query the planner every N steps (None: only at start and subtask ends)."
    )

    # safety
    safety_scale: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Scales the robot's maximum per-step change; only tightening (<= 1) is allowed.",
    )


class PipelineConfig(BaseModel):
    """A validated pipeline: its component sections and the runtime options.

    ``skill`` is optional; ``executor`` is None only when a skill acts alone.
    """

    model_config = ConfigDict(extra="forbid")

    robot: dict[str, Any]
    planner: dict[str, Any]
    executor: dict[str, Any] | None = None
    skill: dict[str, Any] | None = None
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        """The component sections the pipeline names, by section (absent ones left out)."""
        return {s: getattr(self, s) for s in COMPONENT_SECTIONS if getattr(self, s) is not None}

    def options(self, section: str) -> dict[str, Any]:
        """The section's plugin options, without its ``name`` (empty for an absent section)."""
        return {k: v for k, v in (getattr(self, section) or {}).items() if k != "name"}


# --- loading -------------------------------------------------------------------


def default_pipeline() -> dict[str, Any]:
    """The embedded default pipeline (the simulated robot), as a mapping."""
    text = resources.files("s2kit.pipelines").joinpath("default.yaml").read_text()
    return _parse_yaml(text, "the embedded default pipeline")


def load_pipeline(path: str | Path | None) -> dict[str, Any]:
    """Read a pipeline YAML file (or the embedded default when ``path`` is None).

    Returns the raw mapping; missing sections are taken from the default,
    except the executor of a file that names a skill (see `_without_default_executor`).
    """
    data, given = _load(path)
    return _without_default_executor(data, given)


def _load(path: str | Path | None) -> tuple[dict[str, Any], set[str]]:
    """The file's sections over the default's, and which sections the file gave."""
    base = default_pipeline()
    if path is None:
        return base, set()
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {str(path)!r} does not exist") from None
    except OSError as err:
        raise ConfigError(f"cannot read pipeline file {str(path)!r}: {err.strerror}") from None
    data = _parse_yaml(text, str(path))
    if not data:  # an empty file is a mistake, not a request for the default (which is: no file at all)
        raise ConfigError(
            f"{path}: the pipeline file is empty (give robot, planner and executor sections, "
            "or leave the file out for the default pipeline)"
        )
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown section {unknown[0]!r} (allowed: {', '.join(SECTIONS)})"
        )
    given: set[str] = set()
    for section, value in data.items():
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: section {section!r} must be a mapping, got {type(value).__name__}")
        if section in COMPONENT_SECTIONS and "name" not in value:
            raise ConfigError(f"{path}: section {section!r} needs a 'name' (the plugin to use)")
        base[section] = dict(value)
        given.add(section)
    return base, given


def _without_default_executor(data: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """Drop the embedded default's executor from a pipeline that names a skill.

    The default's executor stands in for a pipeline that names no actor; one
    that names a skill and no executor (in its file, by ``--executor`` or by
    ``--set executor...``) means the skill to act alone.
    """
    if data.get("skill") and "executor" not in given:
        data.pop("executor", None)
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (at any depth).

    Plain PyYAML keeps the last of two equal keys, so a second ``runtime:``
    section would silently replace the first. Keys a merge (``<<``) brings in
    may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first.line + 1})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (`yaml.YAMLError` naming the key and both lines)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{origin}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a pipeline must be a mapping of sections, got {type(data).__name__}")
    return data


def comma_list(text: str, what: str) -> list[str]:
    """The names in a comma-separated option (``a,b``), stripped, duplicates dropped.

    An empty item (``""``, ``a,,b``, ``a,``) is a `ConfigError` naming ``what``
    (the option, e.g. ``--suites``): it is a typo, never a request for nothing.
    """
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"{what} {text!r}: an empty name in the comma-separated list")
    return list(dict.fromkeys(items))


# --- overrides -------------------------------------------------------------------


def parse_override(text: str, sections: Iterable[str] | None = SECTIONS) -> tuple[list[str], Any]:
    """Split ``section.key[.sub]=value`` into its key path and a YAML-typed value.

    ``sections`` are the allowed first parts (None: any key path, one part or more,
    for configs that are not pipelines, such as training's).

    The value is parsed as a YAML scalar or flow collection (``3``, ``0.5``,
    ``true``, ``null``, ``[1, 2]``, ``{a: 1}``); anything else stays a string.
    Final type coercion is the config model's job.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE")
    path = key.split(".")
    if not all(path):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    if sections is not None:
        allowed = tuple(sections)
        if path[0] not in allowed:
            raise ConfigError(f"--set {key}: unknown section {path[0]!r} (allowed: {', '.join(allowed)})")
        if len(path) < 2:
            raise ConfigError(f"--set {key}: expected SECTION.KEY=VALUE, e.g. runtime.max_steps=100")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str], sections: Iterable[str] | None = SECTIONS) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``section.key=value`` override applied (see `parse_override`)."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text, sections)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: {part!r} is not a mapping")
            node = child
        node[path[-1]] = value
    return out


# --- validation and its one-line errors --------------------------------------------


def validate_model(model: type[BaseModel], data: Mapping[str, Any], where: str) -> BaseModel:
    """Validate ``data`` against ``model``; a ConfigError naming the key on failure.

    ``where`` names what is being configured, e.g. ``"executor 'idle'"``.
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(f"{where}: {describe_validation_error(err, model)}") from None


def validate_overrides(model: type[BaseModel], overrides: Iterable[str], where: str) -> BaseModel:
    """A config that is not a pipeline (training's, export's) from ``key=value`` overrides alone."""
    return validate_model(model, apply_overrides({}, overrides, sections=None), where)


def describe_validation_error(err: ValidationError, model: type[BaseModel]) -> str:
    """The first problem of a validation error, as one readable clause.

    A misspelled key is reported before the required key it was meant to be.
    """
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_nested_model(model, first["loc"][:-1]).model_fields) or "none"
        return f"unknown option {loc!r} (allowed: {allowed})"
    if kind == "missing":
        return f"option {loc!r} is required"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 60 else type(value).__name__
    message = first["msg"]
    if loc:
        return f"option {loc!r} = {shown}: {message}"
    return message


def _nested_model(model: type[BaseModel], path: Iterable[Any]) -> type[BaseModel]:
    """The model a nested key path leads to (``section.key`` -> the model of that key), as far as it goes."""
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


def validate_pipeline(data: Mapping[str, Any]) -> PipelineConfig:
    """Check the pipeline's shape and its runtime section (plugins are checked by the registry).

    ``skill`` may be absent; so may ``executor`` when a skill is named.
    """
    for section in COMPONENT_SECTIONS:
        value = data.get(section)
        if value is None and (section == "skill" or (section == "executor" and data.get("skill") is not None)):
            continue
        if not isinstance(value, Mapping) or not value.get("name"):
            raise ConfigError(f"pipeline: section {section!r} needs a 'name' (the plugin to use)")
        if not isinstance(value["name"], str):
            raise ConfigError(f"pipeline: {section}.name must be a string, got {value['name']!r}")
    runtime = validate_model(RuntimeConfig, data.get("runtime") or {}, "runtime")
    return PipelineConfig(
        **{s: dict(data[s]) for s in COMPONENT_SECTIONS if data.get(s) is not None},
        runtime=runtime,
    )



def compose_pipeline(
    path: str | Path | None = None,
    *,
    components: Mapping[str, str | None] | None = None,
    runtime: Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
) -> PipelineConfig:
    """The pipeline a command line asks for, validated.

    Starts from ``path`` (or the embedded default). ``components`` maps a
    section to a plugin name (``--robot NAME``, ``--skill NAME``): a different
    name starts that section afresh, since the file's options were meant for
    the other plugin. ``runtime`` sets runtime options (``--episodes``,
    ``--seed``); ``overrides`` (``--set``) are applied last and win. A
    pipeline that names a skill but no executor (neither in its file nor on
    the command line) has none: the embedded default's executor is left out.
    """
    data, given = _load(path)
    for section, name in (components or {}).items():
        if name is None:
            continue
        if section not in COMPONENT_SECTIONS:
            raise ConfigError(f"unknown section {section!r} (allowed: {', '.join(COMPONENT_SECTIONS)})")
        given.add(section)
        if (data.get(section) or {}).get("name") != name:
            data[section] = {"name": name}
    if runtime:
        data["runtime"] = {**(data.get("runtime") or {}), **{k: v for k, v in runtime.items() if v is not None}}
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    given.update(parse_override(text)[0][0] for text in overrides)
    return validate_pipeline(_without_default_executor(data, given))
