"""``s2kit serve``: an executor behind openpi's websocket protocol, for robots elsewhere."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from s2kit import hookimpl
from s2kit.cli._common import SetOption, command, console, warn
from s2kit.core.checkpoints import checkpoint_executor, read_config
from s2kit.core.config import apply_overrides, validate_model
from s2kit.core.errors import ConfigError
from s2kit.core.registry import get_registry
from s2kit.plugins.executors.remote.server import DEFAULT_MAX_BYTES, ObservationKeys, PolicyServer

app = typer.Typer()

DEFAULT_ROBOT = "hsr"


@app.command("serve")
@command
def serve(
    run: Annotated[
        Path | None,
        typer.Argument(metavar="RUN", help="A trained checkpoint folder, or a training run (its newest checkpoint)."),
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="Serve this executor plugin instead of RUN (e.g. replay); privileged ones are refused.")
    ] = None,
    robot: Annotated[
        str | None,
        typer.Option(help=f"Robot plugin whose spec (cameras, state, action spaces) the executor is set up for; default: the robot RUN was trained on, else {DEFAULT_ROBOT}."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 serves other machines too (use an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="S2KIT_API_KEY", show_envvar=True, help="Refuse clients that do not send 'Authorization: Api-Key KEY'."),
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            metavar="KEY=ROLE",
            help="A request key carrying a camera's image (repeatable; default: observation/image=head, observation/wrist_image=wrist).",
        ),
    ] = None,
    state_key: Annotated[str, typer.Option(help="Request key of the state vector.")] = "observation/state",
    prompt_key: Annotated[str, typer.Option(help="Request key of the instruction.")] = "prompt",
    max_bytes: Annotated[int, typer.Option(min=1, help="Requests larger than this get an error reply.")] = DEFAULT_MAX_BYTES,
    set_: SetOption = None,
) -> None:
    """Serve an executor over openpi's websocket protocol, so robot clients elsewhere can use it.

    Give a trained RUN or --executor. openpi's clients (WebsocketClientPolicy)
    work unchanged, and s2kit's executor `remote` is one too. --set options
    go to the executor (executor.KEY=VALUE or KEY=VALUE) or to the robot whose
    spec is served (robot.KEY=VALUE). See docs/serving.md.
    """
    if (run is None) == (executor is None):
        which = "not both" if run is not None else "one is needed"
        raise ConfigError(f"give RUN (a trained checkpoint or run folder) or --executor NAME: {which}")
    keys = _keys(image, state_key, prompt_key)
    overrides = [text if text.startswith(("executor.", "robot.")) else f"executor.{text}" for text in set_ or []]
    if run is not None:
        executor = checkpoint_executor(run)
        # JSON quoting keeps the path a string whatever it looks like ("123", "yes").
        overrides.insert(0, f"executor.checkpoint={json.dumps(str(run))}")
        robot = robot or _trained_on(run)
    sections = apply_overrides({"executor": {"name": executor}, "robot": {"name": robot or DEFAULT_ROBOT}}, overrides, ("executor", "robot"))

    registry = get_registry()
    built = registry.create("robot", sections["robot"])  # only its spec is served
    try:
        spec = built.spec  # type: ignore[attr-defined]
    finally:
        built.close()
    component = registry.create("executor", sections["executor"])
    try:
        server = PolicyServer(component, spec, keys=keys, host=host, port=port, api_key=api_key, max_bytes=max_bytes)  # type: ignore[arg-type]
        if api_key is None and not _loopback(host):
            warn(f"serving on {host} without an API key: anyone who can reach port {port} can use this executor (--api-key or S2KIT_API_KEY)")
        server.serve_forever(on_ready=lambda s: _announce(s, run))
        console.print("stopped")
    finally:
        component.close()


def _keys(image: list[str] | None, state: str, prompt: str) -> ObservationKeys:
    options: dict[str, Any] = {"state": state, "prompt": prompt}
    if image:
        pairs = [text.rpartition("=") for text in image]
        bad = [text for text, (key, sep, role) in zip(image, pairs) if not (key and sep and role)]
        if bad:
            raise ConfigError(f"--image {bad[0]!r}: expected KEY=ROLE, e.g. observation/image=head")
        options["images"] = {key: role for key, _, role in pairs}
    return validate_model(ObservationKeys, options, "serve")  # type: ignore[return-value]


def _trained_on(run: Path) -> str | None:
    """The robot a checkpoint's datasets were recorded on, where its config.json says and they agree."""
    raw = read_config(run)[1]
    datasets = raw.get("datasets") if isinstance(raw, dict) else None
    robots = {d.get("robot_type") for d in datasets if isinstance(d, dict)} if isinstance(datasets, list) else set()
    return robots.pop() if len(robots) == 1 and isinstance(next(iter(robots)), str) else None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _announce(server: PolicyServer, run: Path | None) -> None:
    spec, keys = server.spec, server.keys
    what = f"executor {server.executor.name!r}" + (f" ({run})" if run is not None else "")
    images = ", ".join(f"{key} -> {role}" for key, role in keys.images.items()) or "none"
    lines = [
        f"serving {what} for robot {spec.name!r}: chunks of {server.horizon} {server.space.name} actions",
        f"  websocket  {server.url}" + ("  (API key required)" if server.api_key else ""),
        f"  health     http://{server.address}/healthz",
        f"  images     {images}",
        f"  state      {keys.state} ({len(spec.state_names)} values)   prompt  {keys.prompt}",
        "Ctrl-C stops.",
    ]
    console.print("\n".join(lines), highlight=False, markup=False)


@hookimpl
def s2kit_register_commands(cli: typer.Typer) -> None:
    cli.command("serve")(serve)
