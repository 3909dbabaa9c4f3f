"""`facepulse predict`, `facepulse methods`, `facepulse demo`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("methods")
    def methods_cmd() -> None:
        """List the available rPPG methods (and models)."""
        from facepulse.methods import METHODS

        for name in METHODS.names():
            typer.echo(f"{name:8s} {METHODS.describe(name)}")
