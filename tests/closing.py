"""Count how often each component a registry builds is closed."""

from __future__ import annotations

from typing import Any

import pytest

from s2kit.core.registry import Registry


def count_closes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """From now on, every component the registry builds, in build order; ``closes_seen`` counts its ``close`` calls."""
    made: list[Any] = []
    create = Registry.create

    def counting_create(self: Registry, section: str, values: Any) -> Any:
        component = create(self, section, values)
        close = component.close
        component.closes_seen = 0

        def counted_close() -> None:
            component.closes_seen += 1
            close()

        component.close = counted_close
        made.append(component)
        return component

    monkeypatch.setattr(Registry, "create", counting_create)
    return made
