"""`facepulse evaluate`: score an rPPG method on a dataset (per video and windowed HR)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        dataset: Annotated[str, typer.Option("--dataset", help="Dataset reader (e.g. ubfc-rppg, synthetic).")],
        data: Annotated[Path, typer.Option("--data", help="Dataset folder.")],
        method: Annotated[
            str, typer.Option("--method", help="rPPG method: auto (fused, the default) or one of `facepulse methods`.")
        ] = "auto",
        window: Annotated[float, typer.Option("--window", help="HR window length (s).")] = 10.0,
        step: Annotated[float, typer.Option("--step", help="HR window step (s).")] = 1.0,
        out: Annotated[
            Optional[Path], typer.Option("--out", help="Write results.json, CSVs, summary.md and plots here.")
        ] = None,
        cache_dir: Annotated[
            Optional[Path],
            typer.Option("--cache-dir", help="Preprocessing cache to reuse/fill (default: that of `preprocess`, "
                         "$FACEPULSE_CACHE_DIR, else ~/.cache/facepulse)."),
        ] = None,
        split_file: Annotated[
            Optional[Path], typer.Option("--split-file", help="YAML/JSON with train/val/test subject lists.")
        ] = None,
        split: Annotated[str, typer.Option("--split", help="Which list of --split-file to evaluate.")] = "test",
        reference: Annotated[str, typer.Option("--reference", help="Reference HR from: ppg, or hr (dataset HR).")] = "ppg",
        band_min: Annotated[float, typer.Option(help="Lowest HR searched (bpm).")] = 42.0,
        band_max: Annotated[float, typer.Option(help="Highest HR searched (bpm).")] = 210.0,
        workers: Annotated[
            Optional[int], typer.Option("--workers", help="Videos preprocessed in parallel (local: processes, default 1).")
        ] = None,
        executor: Annotated[str, typer.Option("--executor", help="Where preprocessing runs: local or ray.")] = "local",
        address: Annotated[
            Optional[str], typer.Option("--address", help="Ray cluster address (head:6379); default a local Ray instance.")
        ] = None,
        size: Annotated[int, typer.Option("--size", help="Face-crop size of the cache (see preprocess).")] = 72,
        detector: Annotated[str, typer.Option("--detector", help="Face detector: auto, mediapipe, haar.")] = "auto",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        model: Annotated[
            Optional[Path],
            typer.Option("--model", help="Evaluate a trained model (.ckpt or .onnx) instead of --method."),
        ] = None,
    ) -> None:
        """Per-video and windowed HR errors of METHOD on a dataset, against its reference PPG."""
        from facepulse.datasets import get_reader
        from facepulse.datasets.cache import PreprocessConfig
        from facepulse.errors import ConfigError
        from facepulse.eval.evaluate import evaluate_dataset, make_estimator, write_report
        from facepulse.executors import make_executor
        from facepulse.paths import default_cache_dir

        if reference not in ("ppg", "hr"):
            raise ConfigError(f"--reference={reference!r}: must be ppg or hr")
        from facepulse.fileio import check_output_dir

        for option, folder in (("--out", out), ("--cache-dir", cache_dir)):
            if folder is not None:  # before the evaluation runs, not after
                check_output_dir(folder, option)
        if model is not None:
            estimator = make_estimator("model", str(model))
        else:
            estimator = make_estimator("method", method)
        runner = make_executor(executor, workers=workers, address=address)
        if cache_dir is None:  # the cache `facepulse preprocess` fills: face tracking runs once
            cache_dir = default_cache_dir()
        reader = get_reader(dataset, data)
        records = reader.records()
        if split_file is not None:
            from facepulse.eval.splits import load_split

            records = load_split(split_file).assign(records)[_split_name(split)]
            if not records:
                raise ConfigError(f"{split_file}: split {split!r} lists no subject of {dataset}")
        config = None
        if model is not None:  # face crops of the model's own size
            config = PreprocessConfig.create(size=estimator.info.size, detector=detector, clips=True)
        else:  # preprocess's defaults: the same cache folder
            config = PreprocessConfig.create(size=size, detector=detector, clips=True)
        report = evaluate_dataset(
            reader, estimator, records=records, cache_dir=cache_dir, config=config,
            window_s=window, step_s=step, band_bpm=(band_min, band_max), reference=reference,  # type: ignore[arg-type]
            executor=runner, progress=not quiet and sys.stderr.isatty(),
        )
        typer.echo(report.markdown(), nl=False)
        if out is not None:
            paths = write_report(report, out)
            typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
        if report.failed:
            from facepulse.errors import InputError

            for vid, msg in report.failed.items():
                typer.echo(f"  FAILED {vid}: {msg}", err=True)
            n, total = len(report.failed), len(report.failed) + len(report.videos)
            raise InputError(f"{n} of {total} videos have no result (listed above); they are not in the metrics")


def _split_name(name: str) -> str:
    from facepulse.errors import ConfigError
    from facepulse.eval.splits import SPLIT_NAMES

    if name not in SPLIT_NAMES:
        raise ConfigError(f"--split={name!r}: must be one of {', '.join(SPLIT_NAMES)}")
    return name
