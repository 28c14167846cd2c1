"""The plugin manager: built-ins and third-party plugins, one way in.

Every plugin, built-in or not, is a module named by an entry point in the
``s2kit`` group (datasette's and pytest's way: nothing a third party writes
is second class). Modules named in ``S2KIT_PLUGINS`` (comma-separated) are
loaded too, which lets a plugin be tried without installing it.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails
to import; here every entry point is loaded on its own, so a broken plugin is
reported (plugin, distribution, error) and the others keep working.

Environment:

* ``S2KIT_PLUGINS=mod.a,mod.b`` load these modules as plugins as well.
* ``S2KIT_DISABLE_PLUGINS=name,...`` skip these plugins (entry-point names).
* ``S2KIT_TRACE_PLUGINS=1`` trace every hook call to stderr.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from s2kit.core import hookspecs
from s2kit.core.config import PluginConfig, validate_model
from s2kit.core.errors import (
    PluginConflictError,
    PluginError,
    S2kitError,
    UnknownPluginError,
)
from s2kit.core.interfaces import KINDS, Component, Executor, Planner, Robot, Skill

__all__ = [
    "ENTRY_POINT_GROUP",
    "ComponentInfo",
    "PluginInfo",
    "Registry",
    "get_registry",
    "load_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "s2kit"

log = logging.getLogger(__name__)

_COMPONENT_HOOKS: dict[str, tuple[str, type[Component]]] = {
    "robot": ("s2kit_robots", Robot),
    "planner": ("s2kit_planners", Planner),
    "executor": ("s2kit_executors", Executor),
    "skill": ("s2kit_skills", Skill),
}
assert tuple(_COMPONENT_HOOKS) == KINDS


@dataclass
class PluginInfo:
    """One plugin module and how loading it went."""

    name: str
    module: str
    entry_point: str | None = None  # the entry-point name; None for a module named in S2KIT_PLUGINS
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # ok | error | disabled
    error: str | None = None
    plugin: ModuleType | None = field(default=None, repr=False)

    def describe(self) -> str:
        """``'name' (distribution dist 1.0)``, for error messages."""
        where = f"distribution {self.distribution} {self.version}" if self.distribution else f"module {self.module}"
        return f"plugin {self.name!r} ({where})"

    def fail(self, where: str, err: BaseException) -> None:
        self.status = "error"
        message = f"{where}: {type(err).__name__}: {err}"
        self.error = message if self.error is None else f"{self.error}; {message}"


@dataclass
class ComponentInfo:
    """One registered component class and the plugin that provides it."""

    kind: str
    name: str
    cls: type[Component]
    plugin: PluginInfo
    status: str = "ok"  # ok | conflict
    error: str | None = None

    @property
    def summary(self) -> str:
        doc = (self.cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def module(self) -> str:
        return self.cls.__module__


class Registry:
    """What is installed: plugins, the components they provide, and what went wrong."""

    def __init__(self, pm: pluggy.PluginManager, plugins: list[PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self._components: dict[str, dict[str, ComponentInfo]] = {kind: {} for kind in KINDS}
        self._conflicts: dict[tuple[str, str], list[ComponentInfo]] = {}
        for kind, (hook, base) in _COMPONENT_HOOKS.items():
            for plugin, result in self.call_each(hook):
                self._add_components(kind, base, plugin, result)

    # --- calling hooks, one plugin at a time --------------------------------

    def call_each(self, hook: str, *, raise_errors: bool = False, **kwargs: Any) -> list[tuple[PluginInfo, Any]]:
        """Call ``hook`` on each plugin separately; a plugin that raises is marked, not fatal.

        With ``raise_errors`` the exception propagates instead (for hooks whose
        failure is the caller's, such as a subscriber that cannot open its
        output). Calls go through the plugin manager, so ``S2KIT_TRACE_PLUGINS``
        sees them.
        """
        results = []
        for info in self.plugins:
            if info.status != "ok" or info.plugin is None:
                continue
            if not any(impl.plugin is info.plugin for impl in getattr(self.pm.hook, hook).get_hookimpls()):
                continue
            others = [p for p in self.pm.get_plugins() if p is not info.plugin]
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
            try:
                out = caller(**kwargs)
            except Exception as err:  # a plugin's bug must not take the CLI down
                if raise_errors:
                    raise
                info.fail(hook, err)
                log.error("%s failed in %s: %s: %s", info.describe(), hook, type(err).__name__, err)
                continue
            results.extend((info, value) for value in out if value is not None)
        return results

    def _add_components(self, kind: str, base: type[Component], plugin: PluginInfo, classes: Any) -> None:
        try:
            classes = list(classes)
        except TypeError:
            plugin.fail(_COMPONENT_HOOKS[kind][0], TypeError(f"must return a list of classes, got {classes!r}"))
            return
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                plugin.fail(_COMPONENT_HOOKS[kind][0], TypeError(f"{cls!r} is not a {base.__name__} subclass"))
                continue
            if not cls.name:
                plugin.fail(_COMPONENT_HOOKS[kind][0], TypeError(f"{cls.__name__} has no 'name'"))
                continue
            if not (isinstance(cls.Config, type) and issubclass(cls.Config, PluginConfig)):
                plugin.fail(_COMPONENT_HOOKS[kind][0], TypeError(f"{cls.__name__}.Config is not a PluginConfig"))
                continue
            info = ComponentInfo(kind=kind, name=cls.name, cls=cls, plugin=plugin)
            existing = self._components[kind].get(cls.name)
            if existing is None:
                self._components[kind][cls.name] = info
                continue
            clash = self._conflicts.setdefault((kind, cls.name), [existing])
            clash.append(info)
            message = _conflict_message(kind, cls.name, clash)
            for item in clash:
                item.status, item.error = "conflict", message

    # --- lookups ------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self._components[_check_kind(kind)])

    def components(self, kind: str | None = None) -> list[ComponentInfo]:
        """Every registered component (conflicting ones included), by kind then name."""
        kinds = KINDS if kind is None else (_check_kind(kind),)
        out = []
        for k in kinds:
            for name in sorted(self._components[k]):
                out.extend(self._conflicts.get((k, name), [self._components[k][name]]))
        return out

    def get(self, kind: str, name: str) -> ComponentInfo:
        """The component ``kind``/``name``; a one-line error if unknown or ambiguous."""
        found = self._components[_check_kind(kind)].get(name)
        if found is None:
            available = ", ".join(self.names(kind)) or "none installed"
            hint = ""
            broken = [p for p in self.plugins if p.status == "error"]
            if broken:
                hint = f"; {len(broken)} plugin(s) failed to load, see 's2kit plugins list'"
            raise UnknownPluginError(f"unknown {kind} {name!r} (available: {available}){hint}")
        if found.status == "conflict":
            raise PluginConflictError(found.error)
        return found

    def config(self, kind: str, name: str, options: Mapping[str, Any]) -> PluginConfig:
        """Validate ``options`` against the component's config model."""
        info = self.get(kind, name)
        return validate_model(info.cls.Config, options, f"{kind} {name!r}")  # type: ignore[return-value]

    def with_robot(self, kind: str, section: Mapping[str, Any], robot: str) -> dict[str, Any]:
        """``section`` with ``robot`` (a robot's name) filled in where the component has a ``robot`` option and the
        section sets none: an actor that ships a default per robot learns which one it drives."""
        if "robot" in self.get(kind, section["name"]).cls.Config.model_fields:
            return {"robot": robot, **section}
        return dict(section)

    def create(self, kind: str, section: Mapping[str, Any]) -> Component:
        """Build a component from a config section ``{name: ..., <options>}``."""
        name = section.get("name")
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} section needs a 'name' (available: {', '.join(self.names(kind)) or 'none'})")
        options = {k: v for k, v in section.items() if k != "name"}
        config = self.config(kind, name, options)
        cls = self.get(kind, name).cls
        try:
            return cls.create(config)
        except S2kitError:
            raise
        except Exception as err:
            raise PluginError(f"{kind} {name!r} failed to start: {type(err).__name__}: {err}") from err


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownPluginError(f"unknown plugin kind {kind!r} (kinds: {', '.join(KINDS)})")
    return kind


BUILTIN_DISTRIBUTION = "s2kit"


def _conflict_message(kind: str, name: str, clash: list[ComponentInfo]) -> str:
    """Who registers ``name`` twice, and how to keep the built-in (or pick one of two others).

    A built-in plugin is one whose distribution is s2kit. Disabling it would
    drop every other component it provides and let the newcomer run under the
    built-in's name, so the advice names only the other plugins.
    """
    builtin = [item.plugin for item in clash if item.plugin.distribution == BUILTIN_DISTRIBUTION]
    others = list(dict.fromkeys(item.plugin.name for item in clash if item.plugin not in builtin))
    who = " and ".join(
        ("built-in " if item.plugin in builtin else "") + item.plugin.describe() for item in clash
    )
    if builtin and others:
        removals = [_removal(item.plugin) for item in clash if item.plugin not in builtin]
        return (
            f"{kind} {name!r} is registered by {who}; to keep the built-in one, skip the other with "
            f"S2KIT_DISABLE_PLUGINS={','.join(others)} or {' and '.join(dict.fromkeys(removals))}"
        )
    choices = " or ".join(f"S2KIT_DISABLE_PLUGINS={plugin}" for plugin in dict.fromkeys(i.plugin.name for i in clash))
    return f"{kind} {name!r} is registered by {who}; uninstall one, or skip one with {choices}"


def _removal(plugin: PluginInfo) -> str:
    if plugin.distribution is None:
        return f"remove {plugin.module} from S2KIT_PLUGINS"
    return f"uninstall {plugin.distribution}"


# --- loading ------------------------------------------------------------------------


def _env_list(env: Mapping[str, str], key: str) -> list[str]:
    return [item.strip() for item in env.get(key, "").split(",") if item.strip()]


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook implementations of ``plugin`` that match no hookspec (a misspelled hook)."""
    return [
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec() and not any(impl.optionalhook for impl in caller.get_hookimpls())
    ]


def _register(pm: pluggy.PluginManager, info: PluginInfo, load: Any) -> None:
    try:
        module = load()
    except Exception as err:
        info.fail("import", err)
        return
    if pm.get_plugin(info.name) is not None:
        info.fail("register", ValueError(f"another plugin is already registered as {info.name!r}"))
        return
    try:
        pm.register(module, name=info.name)
    except Exception as err:
        info.fail("register", err)
        return
    unknown = _unknown_hooks(pm, module)
    if unknown:
        pm.unregister(module)
        info.fail("register", ValueError(f"unknown hook(s) {', '.join(unknown)}; see s2kit.core.hookspecs"))
        return
    info.plugin = module


def load_registry(
    *,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    modules: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Registry:
    """Load every plugin and collect their components.

    ``entry_points`` defaults to the installed ``s2kit`` group; ``modules`` are
    extra module names (as in ``S2KIT_PLUGINS``).
    """
    env = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if env.get("S2KIT_TRACE_PLUGINS", "").strip() not in ("", "0", "false", "no"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()

    disabled = set(_env_list(env, "S2KIT_DISABLE_PLUGINS"))
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    plugins: list[PluginInfo] = []
    seen: set[tuple[str, str]] = set()
    for ep in entry_points:
        if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
            continue
        seen.add((ep.name, ep.value))
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            entry_point=ep.name,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        plugins.append(info)
        if ep.name in disabled:
            info.status = "disabled"
            continue
        _register(pm, info, ep.load)

    for module_name in [*modules, *_env_list(env, "S2KIT_PLUGINS")]:
        info = PluginInfo(name=module_name, module=module_name)
        plugins.append(info)
        if module_name in disabled:
            info.status = "disabled"
            continue
        _register(pm, info, lambda m=module_name: importlib.import_module(m))

    pm.check_pending()  # guard: every registered hookimpl has a spec (checked per plugin above)
    return Registry(pm, plugins)


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Forget the process-wide registry (or replace it), e.g. after installing a plugin."""
    global _REGISTRY
    _REGISTRY = registry
