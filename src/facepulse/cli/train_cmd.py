"""`facepulse train`: run an experiment file (any training kind) with Lightning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        overrides: Annotated[
            Optional[list[str]],
            typer.Argument(help="Config overrides as dotted key=value, e.g. optim.lr=3e-4 data.clip_len=64."),
        ] = None,
        config: Annotated[Path, typer.Option("--config", "-c", help="Experiment YAML (see configs/).")] = ...,
        resume: Annotated[
            bool, typer.Option("--resume/--no-resume", help="Continue from the run's last.ckpt if there is one.")
        ] = True,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    ) -> None:
        """Train a model from an experiment file; checkpoints and logs go to <out_dir>/<name>/."""
        from facepulse.config import load_config
        from facepulse.train.runner import run_experiment

        from facepulse.fileio import check_output_dir

        cfg = load_config(config, overrides or [])
        check_output_dir(cfg.run_dir, "out_dir")
        result = run_experiment(cfg, resume=resume, progress=False if quiet else None)
        score = "n/a" if result.best_score is None else f"{result.best_score:.3f}"
        typer.echo(
            f"{cfg.name}: {result.epochs} epochs{' (resumed)' if result.resumed else ''}, "
            f"best {result.monitor} {score}\n"
            f"  best        {result.best_ckpt}\n"
            f"  last        {result.last_ckpt}\n"
            f"  config      {result.run_dir / 'config.yaml'}\n"
            f"  metrics     {result.metrics_csv}"
        )
