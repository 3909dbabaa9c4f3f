"""`facepulse models`: the models that ship in the package, with their measured figures."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models_cmd(
        as_json: Annotated[bool, typer.Option("--json", help="Print the model cards as JSON.")] = False,
    ) -> None:
        """List the packaged models (`predict --model NAME`), with their measured accuracy."""
        from facepulse.models.pretrained import DEFAULT_MODEL, pretrained_models

        models = pretrained_models()
        if as_json:
            typer.echo(json.dumps([{"name": m.name, "path": str(m.path), **m.card} for m in models], indent=1))
            return
        if not models:
            typer.echo("no packaged models in this installation")
            return
        for m in models:
            card = m.card
            default = "  (= --model default)" if m.name == DEFAULT_MODEL else ""
            typer.echo(f"{m.name}{default}")
            typer.echo(f"  {card.get('description', '')}")
            typer.echo(f"  file: {m.path} ({m.size_mb:.2f} MB)")
            for key in ("input", "trained_on"):
                if key in card:
                    typer.echo(f"  {key.replace('_', ' ')}: {card[key]}")
            for figure in card.get("figures", []):
                typer.echo(f"  measured: {figure}")
            if "source" in card:
                typer.echo(f"  figures from: {card['source']}")
