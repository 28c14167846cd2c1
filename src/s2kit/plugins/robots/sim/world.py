"""The tabletop world both simulated robots share: table, objects, containers.

A `Scene` is plain data (what is where, in which colours, under which light)
sampled from a task suite and a seed; `scene_xml` turns it and a robot's MJCF
fragment into one MuJoCo model. Everything is primitive geoms, so the model
compiles in milliseconds and renders fast off-screen.

Coordinates: metres, the robot's base frame at the world origin, +x forward,
+z up. The table's centre sits ``table_x`` in front of the robot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "COLOURS",
    "CONTAINERS",
    "SHAPES",
    "Item",
    "Scene",
    "hand_xml",
    "planar_base_xml",
    "scene_xml",
    "table_region",
    "where_on_table",
]

#: Object colours (RGB in [0, 1]). At least 8, as the task suites need.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.12, 0.25, 0.85),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (0.98, 0.50, 0.05),
    "purple": (0.55, 0.20, 0.70),
    "cyan": (0.10, 0.80, 0.85),
    "pink": (0.98, 0.55, 0.75),
    "brown": (0.50, 0.30, 0.12),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
    "gray": (0.55, 0.55, 0.55),
}

#: Graspable shapes and their size: half-extent, radius or (radius, half-height).
SHAPES = ("cube", "cylinder", "sphere")
CUBE_HALF = 0.02
CYLINDER = (0.02, 0.025)
SPHERE_R = 0.022

#: Container meshes: bowl and plate are round, the basket square. ``inner`` is the
#: radius (or half side) within which an object counts as inside/on it. A suite
#: may name containers of its own, each drawn with one of these meshes.
CONTAINERS: dict[str, dict[str, float]] = {
    "bowl": {"inner": 0.05, "wall": 0.035, "radius": 0.06},
    "plate": {"inner": 0.055, "wall": 0.008, "radius": 0.065},
    "basket": {"inner": 0.065, "wall": 0.05, "radius": 0.075},
}


def object_half_height(shape: str) -> float:
    return {"cube": CUBE_HALF, "cylinder": CYLINDER[1], "sphere": SPHERE_R}[shape]


@dataclass
class Item:
    """One thing on the table. ``kind`` is a shape, a container mesh or ``region``.

    ``rgb`` is the colour's RGB where a suite's palette defines the colour
    (None: the built-in `COLOURS`); ``noun`` is how instructions name a
    container a suite names itself ('dish', drawn as a plate; None: the mesh).
    """

    name: str
    kind: str
    colour: str
    xy: tuple[float, float]
    yaw: float = 0.0
    rgb: tuple[float, float, float] | None = None
    noun: str | None = None

    @property
    def is_object(self) -> bool:
        return self.kind in SHAPES

    @property
    def label(self) -> str:
        """How instructions name it: 'red cube', 'bowl', 'blue area'."""
        if self.kind == "region":
            return f"{self.colour} area"
        if self.kind in CONTAINERS:
            noun = self.noun or self.kind
            return noun if self.colour == "default" else f"{self.colour} {noun}"
        return f"{self.colour} {self.kind}"

    @property
    def colour_rgb(self) -> tuple[float, float, float]:
        """The RGB it is drawn in: the suite's palette entry, else the built-in colour."""
        return tuple(self.rgb) if self.rgb is not None else COLOURS[self.colour]  # type: ignore[return-value]


@dataclass
class Scene:
    """Everything a model needs besides the robot: items and appearance."""

    items: list[Item]
    table_rgb: tuple[float, float, float] = (0.62, 0.45, 0.30)
    floor_rgb: tuple[float, float, float] = (0.35, 0.35, 0.38)
    wall_rgb: tuple[float, float, float] = (0.80, 0.80, 0.78)
    light: float = 0.8
    light_dir: tuple[float, float, float] = (0.0, 0.3, -1.0)
    camera_jitter: dict[str, list[float]] = field(default_factory=dict)  # camera -> [dx, dy, dz, droll, dpitch, dyaw]

    def item(self, name: str) -> Item:
        for it in self.items:
            if it.name == name:
                return it
        raise KeyError(name)

    def describe(self, table_x: float, positions: dict[str, np.ndarray] | None = None) -> str:
        """Free text for planners: each item and where it is on the table now.

        ``positions`` (item name -> xyz) default to where items were placed.
        The wording is `where_on_table`'s, the same the oracle's subtasks use,
        so a planner can carry a location from the scene into its guidance.
        """
        parts = []
        for it in self.items:
            xy = positions[it.name][:2] if positions is not None and it.name in positions else it.xy
            parts.append(f"{it.label} at the {where_on_table(xy, table_x)}")
        return "on the table: " + ", ".join(parts)


def table_region(xy: tuple[float, float] | np.ndarray, centre_x: float) -> tuple[int, int]:
    """Where a point is on the table: depth (-1 near, 0 middle, 1 far from the robot)
    and side (-1 right, 0 centre, 1 left)."""
    depth = 1 if xy[0] > centre_x + 0.05 else -1 if xy[0] < centre_x - 0.05 else 0
    side = 1 if xy[1] > 0.07 else -1 if xy[1] < -0.07 else 0
    return depth, side


def where_on_table(xy: tuple[float, float] | np.ndarray, centre_x: float) -> str:
    """The table region in words: 'front right', 'back left', 'centre of the table', ..."""
    depth, side = table_region(xy, centre_x)
    depth_word = ("front", "centre", "back")[depth + 1]
    return f"{depth_word} {('right', '', 'left')[side + 1]}" if side else f"{depth_word} of the table"


def _rgba(rgb: tuple[float, float, float], alpha: float = 1.0) -> str:
    return f"{rgb[0]:.3f} {rgb[1]:.3f} {rgb[2]:.3f} {alpha:.3f}"


def _object_xml(it: Item, z_table: float) -> str:
    rgba = _rgba(it.colour_rgb)
    z = z_table + object_half_height(it.kind) + 0.001
    friction = 'friction="1.2 0.01 0.001" condim="4" contype="1" conaffinity="3"'  # the hand (contype 2) touches objects only
    if it.kind == "cube":
        geom = f'<geom name="{it.name}" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" rgba="{rgba}" mass="0.08" {friction}/>'
    elif it.kind == "cylinder":
        geom = f'<geom name="{it.name}" type="cylinder" size="{CYLINDER[0]} {CYLINDER[1]}" rgba="{rgba}" mass="0.08" {friction}/>'
    else:
        # condim 6 gives spheres rolling friction: a nudged ball slows down instead of rolling off the table
        rolling = friction.replace('friction="1.2 0.01 0.001" condim="4"', 'friction="1.2 0.02 0.005" condim="6"')
        geom = f'<geom name="{it.name}" type="sphere" size="{SPHERE_R}" rgba="{rgba}" mass="0.06" {rolling} solref="0.01 1"/>'
    return (
        f'<body name="{it.name}" pos="{it.xy[0]:.4f} {it.xy[1]:.4f} {z:.4f}" euler="0 0 {it.yaw:.4f}">'
        f'<freejoint name="{it.name}_free"/>{geom}</body>'
    )


def _container_xml(it: Item, z_table: float) -> str:
    spec = CONTAINERS[it.kind]
    rgb = {"bowl": (0.90, 0.90, 0.92), "plate": (0.97, 0.97, 0.97), "basket": (0.55, 0.38, 0.20)}[it.kind]
    if it.colour != "default":
        rgb = it.colour_rgb
    rgba = _rgba(rgb)
    r, wall = spec["radius"], spec["wall"]
    geoms = [f'<geom type="cylinder" size="{r:.3f} 0.004" pos="0 0 0.004" rgba="{rgba}"/>']
    if it.kind == "bowl":
        n = 12
        seg = 2 * r * np.sin(np.pi / n) * 0.55
        for k in range(n):
            a = 2 * np.pi * k / n
            geoms.append(
                f'<geom type="box" size="0.004 {seg:.4f} {wall / 2:.4f}" pos="{r * np.cos(a):.4f} {r * np.sin(a):.4f} '
                f'{wall / 2:.4f}" euler="0 0 {a:.4f}" rgba="{rgba}"/>'
            )
    elif it.kind == "basket":
        for dx, dy, sx, sy in ((r, 0, 0.004, r), (-r, 0, 0.004, r), (0, r, r, 0.004), (0, -r, r, 0.004)):
            geoms.append(f'<geom type="box" size="{sx} {sy} {wall / 2:.4f}" pos="{dx} {dy} {wall / 2:.4f}" rgba="{rgba}"/>')
    return (
        f'<body name="{it.name}" pos="{it.xy[0]:.4f} {it.xy[1]:.4f} {z_table:.4f}" euler="0 0 {it.yaw:.4f}">'
        + "".join(geoms)
        + "</body>"
    )


def _region_xml(it: Item, z_table: float) -> str:
    rgba = _rgba(it.colour_rgb, 0.9)
    return (
        f'<geom name="{it.name}" type="box" size="0.06 0.06 0.0005" pos="{it.xy[0]:.4f} {it.xy[1]:.4f} '
        f'{z_table + 0.0005:.4f}" rgba="{rgba}" contype="0" conaffinity="0"/>'
    )


def scene_xml(scene: Scene, robot: str, *, table_x: float, table_height: float, model_name: str) -> str:
    """One MJCF model: the world, the scene's items and the robot fragment.

    ``robot`` holds the robot's ``<worldbody>`` bodies first, then a line
    ``<!-- tail -->`` and any actuator/equality/contact sections.
    """
    bodies, _, tail = robot.partition("<!-- tail -->")
    z = table_height
    items = []
    for it in scene.items:
        if it.is_object:
            items.append(_object_xml(it, z))
        elif it.kind in CONTAINERS:
            items.append(_container_xml(it, z))
        else:
            items.append(_region_xml(it, z))
    lx, ly, lz = scene.light_dir
    light = scene.light
    return f"""
<mujoco model="{model_name}">
  <compiler angle="radian" autolimits="true" boundmass="0.01" boundinertia="0.0001"/>
  <option timestep="0.005" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <quality shadowsize="0"/>
    <global offwidth="640" offheight="480"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3" specular="0 0 0"/>
  </visual>
  <default>
    <geom solref="0.005 1" solimp="0.95 0.99 0.001"/>
    <joint damping="1" armature="0.05"/>
    <position kp="400" forcerange="-300 300"/>
  </default>
  <worldbody>
    <light directional="true" pos="0 0 3" dir="{lx} {ly} {lz}" diffuse="{light} {light} {light}" specular="0.1 0.1 0.1"/>
    <geom name="floor" type="plane" size="4 4 0.1" rgba="{_rgba(scene.floor_rgb)}"/>
    <geom name="wall" type="box" size="0.05 3 1.5" pos="2.2 0 1.5" rgba="{_rgba(scene.wall_rgb)}" contype="0" conaffinity="0"/>
    <body name="table" pos="{table_x} 0 {z / 2:.4f}">
      <geom name="table_top" type="box" size="0.3 0.45 {z / 2:.4f}" rgba="{_rgba(scene.table_rgb)}" friction="1 0.01 0.001"/>
    </body>
    {"".join(items)}
    {bodies}
  </worldbody>
  {tail}
</mujoco>
"""


def hand_xml(
    *,
    body: str,
    z: float,
    camera: str,
    camera_xyaxes: str,
    site: str,
    joint: str,
    mimic: str,
    joint_range: tuple[float, float],
    direction: int,
) -> str:
    """A parallel-gripper hand both robots share: palm, camera, grasp site, two fingers.

    ``direction`` is +1 when the fingers point along the parent's +z, -1
    along -z. The grasp site sits between the fingertips with its z axis
    along the fingers, so "hand pointing down" is the same orientation on
    every robot. Finger ``joint`` opens with positive values; ``mimic``
    (the other finger) must follow it through an equality constraint.
    """
    d = direction
    lo, hi = joint_range
    flip = "" if d > 0 else ' euler="3.14159 0 0"'
    collide = 'contype="2" conaffinity="0"'  # the hand touches objects only (they have conaffinity 3)

    def finger(name: str, y: float, joint_name: str, axis: int) -> str:
        return (
            f'<body name="{name}" pos="0 {y} {0.015 * d}" gravcomp="1">'
            f'<joint name="{joint_name}" axis="{axis} 0 0" range="{lo} {hi}" damping="0.5"/>'
            f'<geom type="box" size="0.012 0.005 0.04" pos="0 0 {0.045 * d}" rgba="0.2 0.2 0.2 1" {collide} mass="0.05"/>'
            "</body>"
        )

    return (
        f'<body name="{body}" pos="0 0 {z}" gravcomp="1">'
        f'<geom type="box" size="0.03 0.045 0.015" rgba="0.15 0.15 0.15 1" {collide} mass="0.3"/>'
        f'<camera name="{camera}" pos="0.035 0 0" xyaxes="{camera_xyaxes}" fovy="75"/>'
        f'<site name="{site}" pos="0 0 {0.085 * d}"{flip} size="0.005" rgba="0 0 0 0"/>'  # invisible to cameras
        + finger(f"{body}_finger_l", 0.02, joint, -d)
        + finger(f"{body}_finger_r", -0.02, mimic, d)
        + "</body>"
    )


def planar_base_xml(*, kp: tuple[float, float], force: tuple[float, float]) -> tuple[str, str]:
    """The virtual planar joints of a mobile base (odom_x, odom_y, odom_t) and their servos.

    Returns the joint elements (for the base body) and the actuator elements.
    ``kp`` and ``force`` are the servo stiffness and force limit for the
    translations and for the rotation; damping is a tenth of the stiffness.
    """
    joints = (
        '<joint name="odom_x" type="slide" axis="1 0 0" range="-1 1" damping="50"/>'
        '<joint name="odom_y" type="slide" axis="0 1 0" range="-1 1" damping="50"/>'
        '<joint name="odom_t" type="hinge" axis="0 0 1" range="-3.14 3.14" damping="20"/>'
    )
    actuators = "".join(
        f'<position name="{j}" joint="{j}" kp="{k:g}" kv="{k / 10:g}" forcerange="-{f:g} {f:g}"/>'
        for j, k, f in (("odom_x", kp[0], force[0]), ("odom_y", kp[0], force[0]), ("odom_t", kp[1], force[1]))
    )
    return joints, actuators
