from __future__ import annotations

import pytest
from typer.testing import CliRunner

from s2kit.cli._common import state
from s2kit.cli.main import build_app


@pytest.fixture
def invoke(cli_registry, monkeypatch):
    """Run the ``s2kit`` app in-process (CliRunner) with the test doubles, without --debug."""
    monkeypatch.setattr(state, "debug", False)
    app = build_app()
    runner = CliRunner()

    def _invoke(*args: str):
        return runner.invoke(app, list(args))

    return _invoke
