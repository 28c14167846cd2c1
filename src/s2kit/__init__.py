"""s2kit: a plugin-based planning/execution framework for VLA robots.

A plugin module writes ``from s2kit import hookimpl`` and implements some of
the ``s2kit_*`` hooks of `s2kit.core.hookspecs`.
"""

from __future__ import annotations

from s2kit._version import __version__
from s2kit.core.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
