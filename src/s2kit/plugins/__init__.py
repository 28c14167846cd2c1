"""Built-in plugins. Each module here is registered through the ``s2kit``
entry-point group in pyproject.toml, exactly like a third-party plugin."""
