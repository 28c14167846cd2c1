"""The dataset columns S2 trains its research switches on (``model.focus_*``, ``keep_prior``).

They are privileged simulator labels, recorded by ``s2kit collect`` where the
robot's privileged state has them: ``privileged.focus`` (where the subtask
needs the hand, relative to it, metres) and ``privileged.focus_uv`` (where
that item is in each camera's image, (u, v) in [-1, 1]).
"""

from __future__ import annotations

__all__ = ["FOCUS", "FOCUS_UV"]

FOCUS = "privileged.focus"
FOCUS_UV = "privileged.focus_uv"
