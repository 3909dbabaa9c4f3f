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
        c = result.cost
        scale, unit = (1e-6, "MFLOPs") if c.get("metric") == "flops" else (1e3, "ms of CPU")
        cost_line = (
            f"  cost        cells {c['derived_cells'] * scale:.3g} {unit} per s of video as derived, "
            f"{c['expected_cells'] * scale:.3g} expected under the alphas (cost_weight {c['cost_weight']:g}"
            + (f"; whole network {c['derived_network_flops'] * 1e-6:.3g} MFLOPs/s" if "derived_network_flops" in c else "")
            + f"; {result.run_dir / 'cost.json'})\n"
        ) if c else ""
        frontier_lines = ""
        if result.frontier:
            frontier_lines = f"  frontier    {result.frontier_path} (cells from costly to cheap, one search):\n" + "".join(
                f"    cell_{k}  penalty {cell['penalty']:g}  cells {cell['cells_cost'] * scale:.3g} {unit}/s"
                + (f", network {cell['network_flops'] * 1e-6:.3g} MFLOPs/s" if "network_flops" in cell else "")
                + f", search log weight {cell['log_weight']:.2f}\n"
                for k, cell in enumerate(result.frontier)
            )
        typer.echo(
            f"{cfg.name}: search done{resumed}\n"
            f"  genotype    {result.genotype_path}\n"
            f"  drawing     {result.png_path}\n"
            f"  alphas      {result.run_dir / 'alphas.jsonl'}\n"
            f"  last        {result.checkpoint}\n"
            f"{cost_line}"
            f"{frontier_lines}"
            f"  train it    facepulse train --config FILE.yaml model.name=autohr "
            f"model.params.genotype={result.genotype_path} model.params.channels=C "
            f"model.params.n_blocks={cfg.search.n_blocks} model.normalize={cfg.model.normalize} "
            f"loss.name={cfg.loss.name}   (train it as it was searched)"
        )
