"""What a search writes as it goes: the alpha history (``alphas.jsonl``) and genotypes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L

from facepulse.errors import InputError
from facepulse.models.genotype import Genotype
from facepulse.nas.draw import draw_genotype

if TYPE_CHECKING:
    from facepulse.nas.search_module import SearchModule

__all__ = ["AlphaLogger", "read_alpha_history", "write_cost", "write_genotype"]


class AlphaLogger(L.Callback):
    """Per epoch: one line of ``alphas.jsonl`` (with ``cost``: the expected and derived
    cost of the cells, :meth:`SearchModule.cost_summary`) + ``genotype_epochNN.json``; at
    the end ``genotype.json``, ``genotype.png`` and ``cost.json``. Lines of epochs that a resumed run redoes
    are dropped first, so the history has each epoch once."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    @property
    def history_path(self) -> Path:
        return self.run_dir / "alphas.jsonl"

    def on_train_start(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if not trainer.is_global_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lines = read_alpha_history(self.history_path) if self.history_path.is_file() else []
        keep = [rec for rec in lines if rec["epoch"] < trainer.current_epoch]
        self.history_path.write_text("".join(json.dumps(rec) + "\n" for rec in keep))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if not trainer.is_global_zero:
            return
        model = pl_module.model
        geno = pl_module.genotype()
        epoch = trainer.current_epoch
        record = {
            "epoch": epoch,
            "op_names": list(model.op_names),
            "alphas": model.alphas.detach().cpu().tolist(),
            "weights": model.op_weights().detach().cpu().tolist(),
            "genotype": geno.to_dict(),
            "cost": pl_module.cost_summary(geno),
        }
        edge_weights = model.edge_weights()
        if edge_weights is not None:  # PC-DARTS edge normalisation
            record["betas"] = model.betas.detach().cpu().tolist()
            record["edge_weights"] = edge_weights.detach().cpu().tolist()
        with self.history_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        geno.save(self.run_dir / f"genotype_epoch{epoch:02d}.json")

    def on_train_end(self, trainer: L.Trainer, pl_module: SearchModule) -> None:
        if trainer.is_global_zero:
            geno = pl_module.genotype()
            write_genotype(geno, self.run_dir)
            write_cost(pl_module.cost_summary(geno), self.run_dir)


def read_alpha_history(path: str | Path) -> list[dict[str, Any]]:
    """The records of an ``alphas.jsonl`` file (InputError naming a bad line)."""
    path = Path(path)
    records = []
    for k, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise InputError(f"{path}: line {k} is not valid JSON") from None
    return records


def write_genotype(genotype: Genotype, run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``genotype.json`` and ``genotype.png`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return genotype.save(run_dir / "genotype.json"), draw_genotype(genotype, run_dir / "genotype.png")


def write_frontier(frontier: list[dict[str, Any]], run_dir: str | Path, metric: str) -> Path:
    """Write the cost frontier of a search: ``frontier/cell_K.json`` (one genotype per cell,
    K = 0 the costliest, i.e. the search's own genotype) and ``frontier.json`` (their
    penalty, cost per second of video, search log weight and file)."""
    run_dir = Path(run_dir)
    folder = run_dir / "frontier"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("cell_*.json"):  # a resumed search may derive fewer cells
        old.unlink()
    rows = []
    for k, cell in enumerate(frontier):
        path = cell["genotype"].save(folder / f"cell_{k}.json")
        rows.append({"cell": k, "file": str(path.relative_to(run_dir)), "metric": metric,
                     **{key: v for key, v in cell.items() if key != "genotype"}})
    path = run_dir / "frontier.json"
    path.write_text(json.dumps(rows, indent=1) + "\n")
    return path


def write_cost(cost: dict[str, Any], run_dir: str | Path) -> Path:
    """Write the cost summary of a search (``cost.json``) into ``run_dir``."""
    path = Path(run_dir) / "cost.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cost, indent=1) + "\n")
    return path
