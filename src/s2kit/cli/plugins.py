"""``s2kit plugins``: what is installed, and what each component's options are."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.markup import escape
from rich.table import Table

from s2kit.cli._common import JsonOption, command, console, print_json
from s2kit.core.registry import get_registry

app = typer.Typer(help="List installed plugins and show their options.", no_args_is_help=True)


def plugin_rows() -> list[dict[str, Any]]:
    """One row per component, plus one per plugin that provides none (broken or disabled)."""
    registry = get_registry()
    rows: list[dict[str, Any]] = []
    providing = set()
    for comp in registry.components():
        providing.add(id(comp.plugin))
        status, error = comp.status, comp.error
        if comp.plugin.status == "error":
            status, error = "error", comp.plugin.error
        rows.append(
            {
                "kind": comp.kind,
                "name": comp.name,
                "module": comp.module,
                "plugin": comp.plugin.name,
                "entry_point": comp.plugin.entry_point,
                "distribution": comp.plugin.distribution,
                "version": comp.plugin.version,
                "status": status,
                "error": error,
                "summary": comp.summary,
            }
        )
    for plugin in registry.plugins:
        if id(plugin) in providing:
            continue
        rows.append(
            {
                "kind": "-",
                "name": plugin.name,
                "module": plugin.module,
                "plugin": plugin.name,
                "entry_point": plugin.entry_point,
                "distribution": plugin.distribution,
                "version": plugin.version,
                "status": plugin.status,
                "error": plugin.error,
                "summary": "",
            }
        )
    return rows


_STATUS_STYLE = {"ok": "green", "error": "bold red", "conflict": "bold red", "disabled": "yellow"}


@app.command("list")
@command
def list_plugins(json: JsonOption = False) -> None:
    """List every plugin component: kind, name, module, entry point, distribution, version, status, error.

    The entry point is the name S2KIT_DISABLE_PLUGINS takes (a module loaded
    through S2KIT_PLUGINS has none: its module name is what it takes).
    """
    rows = plugin_rows()
    if json:
        print_json(rows)
        return
    table = Table(title="s2kit plugins")
    for column in ("kind", "name", "module", "entry point", "distribution", "version", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold", ratio=1)
    for row in rows:
        style = _STATUS_STYLE.get(row["status"], "")
        table.add_row(  # escaped: "list[float]" or "[Errno 2]" are text, not rich markup
            escape(row["kind"]),
            escape(row["name"]),
            escape(row["module"]),
            escape(row["entry_point"] or "-"),
            escape(row["distribution"] or "-"),
            escape(row["version"] or "-"),
            f"[{style}]{row['status']}[/]" if style else escape(row["status"]),
            escape(row["error"] or ""),
        )
    console.print(table)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: FieldInfo) -> Any:
    if field.default is PydanticUndefined:
        return "(required)" if field.default_factory is None else field.default_factory()
    return field.default


def config_options(model: type, prefix: str = "") -> list[dict[str, Any]]:
    """The options of a config model: name, type, default, help; a nested model's as ``outer.inner`` rows."""
    rows = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            rows += config_options(field.annotation, f"{prefix}{name}.")  # what --set spells: ros.topics.arm
            continue
        rows.append(
            {
                "option": f"{prefix}{name}",
                "type": _type_name(field.annotation),
                "default": _default(field),
                "required": field.is_required(),
                "help": field.description or "",
            }
        )
    return rows


@app.command("show")
@command
def show_plugin(
    kind: Annotated[str, typer.Argument(help="robot, planner, executor or skill.")],
    name: Annotated[str, typer.Argument(help="The component's registered name.")],
    json: JsonOption = False,
) -> None:
    """Show one component: where it comes from, and its config options with defaults and help."""
    registry = get_registry()
    info = registry.get(kind, name)
    options = config_options(info.cls.Config)
    details = info.cls.details()
    if json:
        print_json(
            {
                "kind": info.kind,
                "name": info.name,
                "module": info.module,
                "distribution": info.plugin.distribution,
                "version": info.plugin.version,
                "summary": info.summary,
                "doc": (info.cls.__doc__ or "").strip(),
                "options": options,
                "schema": info.cls.Config.model_json_schema(),
                "details": details,
            }
        )
        return
    source = f"{info.plugin.distribution} {info.plugin.version}" if info.plugin.distribution else info.plugin.module
    console.print(f"[bold]{info.kind} {escape(info.name)}[/] — {escape(info.summary)}")
    console.print(escape(f"module {info.module} · from {source}"), style="dim")
    table = Table(title="options")
    for column in ("option", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for opt in options:
        default = repr(opt["default"]) if not opt["required"] else "(required)"
        table.add_row(*(escape(str(v)) for v in (opt["option"], opt["type"], default, opt["help"])))
    if options:
        console.print(table)
    else:
        console.print("no options")
    for key, value in details.items():
        console.print(f"[bold]{escape(str(key))}[/]: {escape(str(value))}")
