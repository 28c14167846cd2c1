"""The s2kit command line (typer stays inside this package)."""
