"""`facepulse preprocess`: run the face/ROI stage once per video into the HDF5 cache."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def _sigterm_as_interrupt(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    @app.command("preprocess")
    def preprocess_cmd(
        dataset_dir: Annotated[Path, typer.Argument(help="Dataset folder, in the layout of --dataset.")],
        dataset: Annotated[str, typer.Option("--dataset", help="Dataset reader (e.g. ubfc-rppg, synthetic).")],
        cache_dir: Annotated[
            Optional[Path],
            typer.Option("--cache-dir", help="Cache folder (default: $FACEPULSE_CACHE_DIR, else ~/.cache/facepulse)."),
        ] = None,
        size: Annotated[int, typer.Option("--size", help="Face crops are SIZE x SIZE pixels.")] = 72,
        workers: Annotated[
            Optional[int], typer.Option("--workers", help="Videos in parallel (local: processes, default 1; ray: at most).")
        ] = None,
        executor: Annotated[str, typer.Option("--executor", help="Where videos run: local or ray.")] = "local",
        address: Annotated[
            Optional[str], typer.Option("--address", help="Ray cluster address (head:6379); default a local Ray instance.")
        ] = None,
        detector: Annotated[str, typer.Option("--detector", help="Face detector: auto, mediapipe, haar.")] = "auto",
        no_clips: Annotated[bool, typer.Option("--no-clips", help="Store traces only, no face crops.")] = False,
        compression: Annotated[str, typer.Option("--compression", help="gzip, lzf or none.")] = "gzip",
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Track faces once per video and cache traces, face crops and references (HDF5)."""
        from facepulse.datasets import get_reader
        from facepulse.datasets.cache import PreprocessConfig, preprocess_dataset
        from facepulse.executors import make_executor
        from facepulse.paths import default_cache_dir

        if cache_dir is not None:
            from facepulse.fileio import check_output_dir

            check_output_dir(cache_dir, "--cache-dir")
        config = PreprocessConfig.create(size=size, detector=detector, clips=not no_clips, compression=compression)
        reader = get_reader(dataset, dataset_dir)
        runner = make_executor(executor, workers=workers, address=address)
        # `kill` (SIGTERM) stops as cleanly as Ctrl-C: workers remove their temporary files.
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            summary = preprocess_dataset(
                reader, cache_dir if cache_dir is not None else default_cache_dir(), config,
                progress=not quiet and sys.stderr.isatty(), executor=runner,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
        typer.echo(
            f"{summary.root}: {len(summary.written)} videos written, {len(summary.skipped)} already cached, "
            f"{len(summary.failed)} failed ({summary.frames} frames in {summary.elapsed_s:.1f} s, "
            f"{summary.frames_per_s:.0f} frames/s, peak {summary.peak_rss_mb:.0f} MiB per worker; {summary.executor})"
        )
        if summary.failed:
            from facepulse.errors import InputError

            for line in summary.failure_lines():
                typer.echo(f"  FAILED {line}", err=True)
            n = len(summary.failed)
            total = n + len(summary.written) + len(summary.skipped)
            raise InputError(f"{n} of {total} videos failed (listed above); the others are cached")
