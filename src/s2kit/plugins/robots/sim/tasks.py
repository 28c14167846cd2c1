"""Task families, generalization suites, and success predicates from simulator state.

A suite (a YAML file, see ``suites/``) says which task families occur, which
colours and shapes, how many distractors and look-alikes, how instructions
are phrased, and how the appearance varies. `sample_episode(suite, seed)`
turns a suite and a seed into a `Scene` and a `Task`: the same seed always
gives the same scene and task. The ``semantic`` variant samples exactly the
``id`` scene of that seed and changes the task (another target, relation or
order); ``paraphrase`` keeps the ``id`` task and rewords it.

Subtask success is counted in order: a subtask whose predicate becomes true
before its turn is spoiled, and progress stops there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s2kit.core.config import describe_validation_error
from s2kit.core.errors import ConfigError
from s2kit.plugins.robots.sim.world import (
    COLOURS,
    CONTAINERS,
    SHAPES,
    Item,
    Scene,
    object_half_height,
)

__all__ = [
    "FAMILIES",
    "SUITES",
    "Progress",
    "Subtask",
    "Suite",
    "Task",
    "builtin_suites",
    "load_suite",
    "sample_episode",
]

FAMILIES = ("pick_place", "stack", "push", "sort", "tidy")
#: The built-in suites (``suites/<name>.yaml``): the training distribution first, then the
#: distribution shifts. The one place their names are declared (`SimRobot.suites`).
SUITES = ("id", "distractor", "appearance", "semantic", "paraphrase")


# --- suites --------------------------------------------------------------------------------


class Appearance(BaseModel):
    """How the look of the scene varies (colours are RGB in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    table: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.62, 0.45, 0.30)])
    floor: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.35, 0.35, 0.38)])
    wall: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.80, 0.80, 0.78)])
    light: tuple[float, float] = (0.8, 0.8)
    light_dir_jitter: float = Field(0.0, ge=0.0)
    camera_pos_jitter: float = Field(0.0, ge=0.0, description="Metres, uniform per axis.")
    camera_rot_jitter: float = Field(0.0, ge=0.0, description="Radians, uniform per axis.")


class Suite(BaseModel):
    """A generalization suite: a distribution over scenes and tasks."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    families: dict[str, float] = Field(description="Task family -> sampling weight.")
    target_colours: list[str]
    shapes: list[str] = Field(default_factory=lambda: list(SHAPES))
    distractors: tuple[int, int] = Field((1, 2), description="Inclusive range of extra random objects.")
    lookalikes: tuple[int, int] = Field((0, 0), description="Distractors differing from a target in one attribute.")
    distractor_colours: list[str] | None = Field(None, description="None: the target colours.")
    instructions: Literal["train", "paraphrase"] = "train"
    task_variant: Literal["none", "semantic"] = "none"
    appearance: Appearance = Field(default_factory=Appearance)

    def model_post_init(self, _: object) -> None:
        unknown = set(self.families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown task families {sorted(unknown)} (known: {', '.join(FAMILIES)})")
        for colour in [*self.target_colours, *(self.distractor_colours or [])]:
            if colour not in COLOURS:
                raise ValueError(f"unknown colour {colour!r} (known: {', '.join(COLOURS)})")
        if len(self.target_colours) < 3:
            raise ValueError("target_colours needs at least 3 colours (long-horizon tasks use three objects)")


def builtin_suites() -> list[str]:
    """Names of the suites that ship with s2kit, in `SUITES` order."""
    return list(SUITES)


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a user's suite file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(f"suite file {name_or_path!r} does not exist")
        text, origin = path.read_text(), str(path)
    else:
        if name_or_path not in builtin_suites():
            raise ConfigError(f"unknown suite {name_or_path!r} (built in: {', '.join(builtin_suites())}; or a path to a YAML file)")
        folder = resources.files("s2kit.plugins.robots.sim").joinpath("suites")
        text, origin = folder.joinpath(f"{name_or_path}.yaml").read_text(), f"suite {name_or_path}"
    try:
        data = yaml.safe_load(text)
        return Suite.model_validate(data)
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: not valid YAML: {err}") from None
    except ValidationError as err:
        raise ConfigError(f"{origin}: {describe_validation_error(err, Suite)}") from None


# --- tasks -----------------------------------------------------------------------------------


@dataclass
class Subtask:
    """One step of a task, with the predicate that says it is done.

    ``kind``: ``pick`` (obj held above the table), ``put`` (obj resting in or
    on container ``target``), ``stack`` (obj resting on object ``target``),
    ``push`` (obj inside region ``target``).
    """

    kind: str
    obj: str
    target: str | None
    text: str


@dataclass
class Task:
    family: str
    instruction: str
    subtasks: list[Subtask]

    @property
    def subtask_texts(self) -> list[str]:
        return [s.text for s in self.subtasks]


TEMPLATES: dict[str, dict[str, list[str]]] = {
    "train": {
        "pick_place": ["put the {a} in the {c}", "place the {a} in the {c}"],
        "stack": ["stack the {a} on the {b}", "put the {a} on top of the {b}"],
        "push": ["push the {a} to the {r}", "push the {a} into the {r}"],
        "sort": ["put the {a}, then the {b}, then the {c} in the basket"],
        "tidy": ["put the {a} in the bowl, the {b} on the plate and the {c} in the basket"],
    },
    # Phrasings the training set never uses.
    "paraphrase": {
        "pick_place": ["could you drop the {a} into the {c}?", "the {a} belongs in the {c}, move it there"],
        "stack": ["set the {a} down on top of the {b}", "build a tower with the {b} at the bottom and the {a} above it"],
        "push": ["slide the {a} over to the {r}", "nudge the {a} until it sits in the {r}"],
        "sort": ["first the {a}, next the {b}, and finally the {c}: all of them go into the basket"],
        "tidy": ["clean up: the {a} goes in the bowl, the {b} onto the plate, the {c} into the basket"],
    },
}


def _put_text(label: str, container: str) -> str:
    return f"put the {label} {'on' if container.endswith('plate') else 'in'} the {container}"


def _make_task(family: str, labels: dict[str, str], roles: dict[str, str], template: str) -> Task:
    """A task from roles (a, b, c objects; c/r container or region names) and a template."""
    L = labels  # noqa: N806  (item name -> label)
    if family == "pick_place":
        a, c = roles["a"], roles["c"]
        text = template.format(a=L[a], c=L[c])
        subs = [Subtask("pick", a, None, f"pick up the {L[a]}"), Subtask("put", a, c, _put_text(L[a], L[c]))]
    elif family == "stack":
        a, b = roles["a"], roles["b"]
        text = template.format(a=L[a], b=L[b])
        subs = [Subtask("pick", a, None, f"pick up the {L[a]}"), Subtask("stack", a, b, f"place the {L[a]} on the {L[b]}")]
    elif family == "push":
        a, r = roles["a"], roles["r"]
        text = template.format(a=L[a], r=L[r])
        subs = [Subtask("push", a, r, f"push the {L[a]} into the {L[r]}")]
    elif family == "sort":
        objs = [roles["a"], roles["b"], roles["c"]]
        text = template.format(a=L[objs[0]], b=L[objs[1]], c=L[objs[2]])
        subs = [Subtask("put", o, roles["basket"], _put_text(L[o], "basket")) for o in objs]
    elif family == "tidy":
        pairs = [(roles["a"], roles["bowl"]), (roles["b"], roles["plate"]), (roles["c"], roles["basket"])]
        text = template.format(a=L[pairs[0][0]], b=L[pairs[1][0]], c=L[pairs[2][0]])
        subs = [Subtask("put", o, c, _put_text(L[o], L[c])) for o, c in pairs]
    else:  # pragma: no cover - families are validated in Suite
        raise ValueError(family)
    return Task(family=family, instruction=text, subtasks=subs)


# Table-local sampling area (relative to the table centre) and footprint radii.
_AREA_U, _AREA_V = 0.12, 0.25
_RADIUS = {"cube": 0.035, "cylinder": 0.035, "sphere": 0.035, "region": 0.07, **{k: v["radius"] + 0.015 for k, v in CONTAINERS.items()}}


class _Placer:
    def __init__(self, rng: np.random.Generator, table_x: float) -> None:
        self.rng = rng
        self.table_x = table_x
        self.placed: list[tuple[float, float, float]] = []

    def place(self, kind: str) -> tuple[float, float]:
        xy = self.try_place(kind)
        if xy is None:
            raise RuntimeError(f"no room on the table for a {kind}")
        return xy

    def try_place(self, kind: str) -> tuple[float, float] | None:
        """A free spot, or None when the table is too full (distractors are then skipped)."""
        r = _RADIUS[kind]
        for _ in range(500):
            x = self.table_x + self.rng.uniform(-_AREA_U, _AREA_U)
            y = self.rng.uniform(-_AREA_V, _AREA_V)
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr) ** 2 for px, py, pr in self.placed):
                self.placed.append((x, y, r))
                return float(x), float(y)
        return None


def sample_episode(suite: Suite, seed: int, *, table_x: float) -> tuple[Scene, Task]:
    """The scene and task of episode ``seed`` under ``suite`` (deterministic)."""
    rng = np.random.default_rng([seed, 0])  # scene stream: shared by id, semantic and paraphrase
    families = sorted(suite.families)
    weights = np.array([suite.families[f] for f in families], dtype=float)
    family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
    placer = _Placer(rng, table_x)
    items: list[Item] = []
    used_labels: set[tuple[str, str]] = set()

    def new_object(colours: list[str], shapes: list[str], tag: str, required: bool = True) -> Item | None:
        choices = [(c, s) for c in colours for s in shapes if (c, s) not in used_labels]
        if not choices:
            if required:
                raise RuntimeError(f"no unused colour/shape among {colours} x {shapes}")
            return None
        c, s = choices[int(rng.integers(len(choices)))]
        xy = placer.place(s) if required else placer.try_place(s)
        yaw = float(rng.uniform(-0.6, 0.6))
        if xy is None:
            return None
        used_labels.add((c, s))
        it = Item(name=f"{tag}{len(items)}", kind=s, colour=c, xy=xy, yaw=yaw)
        items.append(it)
        return it

    def new_fixture(kind: str, colour: str = "default") -> Item:
        it = Item(name=f"{kind}{len(items)}", kind=kind, colour=colour, xy=placer.place(kind))
        items.append(it)
        return it

    colours, shapes = suite.target_colours, suite.shapes
    roles: dict[str, str] = {}
    if family == "pick_place":
        roles["c"] = new_fixture(str(rng.choice(["bowl", "plate", "basket"]))).name
        roles["a"] = new_object(colours, shapes, "obj").name
    elif family == "stack":
        roles["b"] = new_object(colours, ["cube"], "obj").name
        roles["a"] = new_object(colours, ["cube", "cylinder"], "obj").name
    elif family == "push":
        region_colour = str(rng.choice([c for c in COLOURS if c not in colours] or list(COLOURS)))
        region = Item(name="region", kind="region", colour=region_colour, xy=placer.place("region"))
        items.append(region)
        roles["r"] = region.name
        roles["a"] = new_object(colours, ["cube", "cylinder"], "obj").name
    elif family == "sort":
        roles["basket"] = new_fixture("basket").name
        for role in ("a", "b", "c"):
            roles[role] = new_object(colours, shapes, "obj").name
    else:  # tidy
        for kind in ("bowl", "plate", "basket"):
            roles[kind] = new_fixture(kind).name
        for role in ("a", "b", "c"):
            roles[role] = new_object(colours, shapes, "obj").name
    targets = [items_by_name(items, roles[r]) for r in ("a", "b") if r in roles]

    # distractors: look-alikes of a target (one attribute changed), then random ones
    n_look = int(rng.integers(suite.lookalikes[0], suite.lookalikes[1] + 1))
    for _ in range(n_look):
        t = targets[int(rng.integers(len(targets)))]
        if rng.random() < 0.5:  # same shape, another colour
            new_object([c for c in (suite.distractor_colours or colours) if c != t.colour], [t.kind], "look", False)
        else:  # same colour, another shape
            new_object([t.colour], [s for s in SHAPES if s != t.kind], "look", False)
    n_extra = int(rng.integers(suite.distractors[0], suite.distractors[1] + 1))
    for _ in range(n_extra):
        new_object(suite.distractor_colours or colours, shapes, "dis", False)

    labels = {it.name: it.label for it in items}
    template_rng = np.random.default_rng([seed, 1])
    train_template = TEMPLATES["train"][family][int(template_rng.integers(len(TEMPLATES["train"][family])))]
    if suite.task_variant == "semantic":
        roles = _semantic_variant(family, roles, items, np.random.default_rng([seed, 2]))
    template = train_template
    if suite.instructions == "paraphrase":
        options = TEMPLATES["paraphrase"][family]
        template = options[int(template_rng.integers(len(options)))]
    task = _make_task(family, labels, roles, template)
    scene = _appearance(suite, items, np.random.default_rng([seed, 3]))
    return scene, task


def items_by_name(items: list[Item], name: str) -> Item:
    return next(it for it in items if it.name == name)


def _semantic_variant(family: str, roles: dict[str, str], items: list[Item], rng: np.random.Generator) -> dict[str, str]:
    """Same scene, a semantically close but different task."""
    roles = dict(roles)
    others = [it.name for it in items if it.is_object and it.name not in roles.values()]
    if family == "stack":  # another relation: the other way round, when the base can be stacked on
        if items_by_name(items, roles["a"]).kind == "cube":
            roles["a"], roles["b"] = roles["b"], roles["a"]
        elif others:
            roles["a"] = others[int(rng.integers(len(others)))]
    elif family in ("pick_place", "push"):  # another target object
        if others:
            roles["a"] = others[int(rng.integers(len(others)))]
    elif family == "sort":  # another order
        roles["a"], roles["c"] = roles["c"], roles["a"]
    else:  # tidy: another assignment of objects to containers
        roles["a"], roles["b"] = roles["b"], roles["a"]
    return roles


def _appearance(suite: Suite, items: list[Item], rng: np.random.Generator) -> Scene:
    app = suite.appearance

    def pick(options: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        return tuple(options[int(rng.integers(len(options)))])  # type: ignore[return-value]

    jitter = {}
    for cam in ("head", "wrist", "wrist_left", "wrist_right"):
        pos = rng.uniform(-app.camera_pos_jitter, app.camera_pos_jitter, 3) if app.camera_pos_jitter else np.zeros(3)
        rot = rng.uniform(-app.camera_rot_jitter, app.camera_rot_jitter, 3) if app.camera_rot_jitter else np.zeros(3)
        jitter[cam] = [float(v) for v in (*pos, *rot)]
    d = app.light_dir_jitter
    light_dir = (float(rng.uniform(-d, d)), float(0.3 + rng.uniform(-d, d)), -1.0)
    return Scene(
        items=items,
        table_rgb=pick(app.table),
        floor_rgb=pick(app.floor),
        wall_rgb=pick(app.wall),
        light=float(rng.uniform(*app.light)),
        light_dir=light_dir,
        camera_jitter=jitter,
    )


# --- progress ----------------------------------------------------------------------------------


@dataclass
class WorldState:
    """What the predicates read: item positions, what is held, the table height."""

    positions: dict[str, np.ndarray]
    held: str | None
    table_height: float


def predicate(sub: Subtask, world: WorldState, scene: Scene) -> bool:
    p = world.positions[sub.obj]
    half = object_half_height(scene.item(sub.obj).kind)
    if sub.kind == "pick":
        return world.held == sub.obj and p[2] - half > world.table_height + 0.03
    if world.held == sub.obj:
        return False
    target = world.positions[sub.target] if sub.target else None
    assert target is not None
    if sub.kind == "put":
        spec = CONTAINERS[scene.item(sub.target).kind]
        inside = np.hypot(*(p[:2] - target[:2])) <= spec["inner"]
        return bool(inside and p[2] - half < world.table_height + spec["wall"] + 0.02)
    if sub.kind == "stack":
        base_half = object_half_height(scene.item(sub.target).kind)
        on_top = np.hypot(*(p[:2] - target[:2])) <= 0.025
        return bool(on_top and abs((p[2] - half) - (target[2] + base_half)) < 0.015)
    if sub.kind == "push":
        return bool(abs(p[0] - target[0]) <= 0.06 and abs(p[1] - target[1]) <= 0.06)
    raise ValueError(sub.kind)


@dataclass
class Progress:
    """Subtasks completed in the required order."""

    task: Task
    completed: int = 0
    spoiled: set[int] = field(default_factory=set)

    def update(self, world: WorldState, scene: Scene) -> int:
        n = len(self.task.subtasks)
        while self.completed < n and self.completed not in self.spoiled:
            if not predicate(self.task.subtasks[self.completed], world, scene):
                break
            self.completed += 1
        for j in range(self.completed + 1, n):
            # done before its turn: out of order, never credited
            if j not in self.spoiled and self.task.subtasks[j].kind != "pick" and predicate(self.task.subtasks[j], world, scene):
                self.spoiled.add(j)
        return self.completed

    @property
    def done(self) -> bool:
        return self.completed >= len(self.task.subtasks)
