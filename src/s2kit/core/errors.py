"""Errors a user can cause, each with the exit code the CLI ends with.

Everything here is an `S2kitError`: the CLI prints its message as one line,
``Error: ...``, and exits with its ``exit_code``; the traceback is shown only
with ``--debug`` (or ``S2KIT_DEBUG=1``).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "EpisodeAborted",
    "PluginConflictError",
    "PluginError",
    "RobotError",
    "S2kitError",
    "UnknownPluginError",
]


class S2kitError(Exception):
    """Base class of the errors s2kit reports to a user as one line."""

    exit_code: int = 1


class ConfigError(S2kitError, ValueError):
    """A pipeline or component config is malformed: bad key, type or value."""

    exit_code = 2


class PluginError(S2kitError):
    """A plugin could not be loaded, registered or used."""

    exit_code = 2


class UnknownPluginError(PluginError, LookupError):
    """No plugin of that kind has that name."""


class PluginConflictError(PluginError):
    """Two plugins register the same name for the same kind."""


class DataError(S2kitError):
    """A dataset or recording is missing, corrupt or does not match."""

    exit_code = 2


class RobotError(S2kitError):
    """The robot (or its simulator) failed or could not be reached."""


class EpisodeAborted(RobotError):
    """The robot cannot go on with this episode (an object fell out of reach, the simulation
    became unstable); the episode ends as ``aborted`` and the run goes on with the next."""
