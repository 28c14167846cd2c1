"""Executor ``mpc`` (Plan2Align-style refinement of any executor's chunks) and its critic."""
