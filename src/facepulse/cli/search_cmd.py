"""`facepulse search`: AutoHR architecture search (DARTS) from an experiment file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        overrides: Annotated[
            Optional[list[str]],
            typer.Argument(help="Config overrides as dotted key=value, e.g. optim.max_epochs=5 search.order=second."),
        ] = None,
        config: Annotated[Path, typer.Option("--config", "-c", help="Experiment YAML with kind: search.")] = ...,
        resume: Annotated[
            bool, typer.Option("--resume/--no-resume", help="Continue from the run's last.ckpt if there is one.")
        ] = True,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Search an AutoHR cell; writes alphas.jsonl, genotype_epochNN.json, genotype.json and .png."""
        from facepulse.config import load_config
        from facepulse.errors import ConfigError
        from facepulse.nas.search import run_search

        from facepulse.fileio import check_output_dir

        cfg = load_config(config, overrides or [])
        check_output_dir(cfg.run_dir, "out_dir")
        if cfg.kind != "search":
            raise ConfigError(f"{config}: kind is {cfg.kind!r}; facepulse search needs kind: search")
        result = run_search(cfg, progress=False if quiet else None, resume=resume)
        resumed = "" if result.resumed_from_epoch is None else f" (resumed at epoch {result.resumed_from_epoch})"
        typer.echo(
            f"{cfg.name}: search done{resumed}\n"
            f"  genotype    {result.genotype_path}\n"
            f"  drawing     {result.png_path}\n"
            f"  alphas      {result.run_dir / 'alphas.jsonl'}\n"
            f"  last        {result.checkpoint}\n"
            f"  train it    facepulse train --config FILE.yaml model.name=autohr "
            f"model.params.genotype={result.genotype_path} model.params.channels=C "
            f"model.params.n_blocks={cfg.search.n_blocks}"
        )
