"""A robot-side process that imports the core must not pay for torch or mujoco."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "mujoco", "onnx", "numba", "typer", "av")


def test_core_imports_no_heavy_stack() -> None:
    code = (
        "import sys, s2kit, s2kit.core, s2kit.core.runtime, s2kit.core.data, s2kit.core.metrics\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import s2kit.core pulled in: {out.stdout.strip()}"


def test_loading_every_plugin_stays_light() -> None:
    # Built-in plugin modules are imported whenever the registry loads (every
    # CLI call), so they too must keep heavy imports inside their components.
    code = (
        "import sys\n"
        "from s2kit.core.registry import load_registry\n"
        "load_registry()\n"
        "print(','.join(m for m in ('torch', 'mujoco') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
