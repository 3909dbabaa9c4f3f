"""`facepulse export`: a training checkpoint to ONNX, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by `facepulse train` (.ckpt).")],
        onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write.")],
        opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    ) -> None:
        """Export a trained model to ONNX (runs with `facepulse predict --model FILE.onnx`)."""
        from facepulse.fileio import check_output_file
        from facepulse.models.inference import compare_onnx, export_onnx

        check_output_file(onnx, "--onnx")
        path = export_onnx(checkpoint, onnx, opset=opset)
        diff = compare_onnx(checkpoint, path)
        info = path.stat().st_size / 1e6
        typer.echo(f"{path}: {info:.2f} MB, max |onnxruntime - pytorch| = {diff:.2e} on a random clip batch")
