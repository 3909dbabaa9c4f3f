"""`facepulse predict`, `facepulse methods`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def print_summary(summary: dict, *, file=None) -> None:
    """A short human-readable summary of a prediction."""
    out = file or sys.stdout
    hr_range = (
        f"{summary['hr_min_bpm']:.1f}-{summary['hr_max_bpm']:.1f} bpm"
        if summary["hr_min_bpm"] is not None
        else "n/a"
    )
    print(
        f"{summary['source']}: {summary['frames']} frames, {summary['duration_s']:.1f} s "
        f"at {summary['fps']:.2f} fps, method {summary['method']}\n"
        f"  heart rate  {summary['hr_bpm']:.1f} bpm (windowed range {hr_range})\n"
        f"  quality     SNR {summary['snr_db']:.1f} dB, "
        + (f"confidence {summary['confidence']:.2f}, " if summary.get("confidence") is not None else "")
        + f"{summary['windows_valid']}/{summary['windows']} windows valid\n"
        f"  no face     {summary['frames_without_face']} frames",
        file=out,
    )
    for line in summary.get("warnings", []):
        print(f"  warning     {line}", file=out)
    if summary.get("hrv_reason"):
        print(f"  HRV         not reported: {summary['hrv_reason']}", file=out)


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        video: Annotated[Path, typer.Argument(help="Video file, or a folder of numbered frames.")],
        method: Annotated[
            str,
            typer.Option(help="rPPG method: auto (all regions x methods, fused by quality, HR tracked) "
                         "or one of `facepulse methods`."),
        ] = "auto",
        window: Annotated[float, typer.Option(help="HR window length (s).")] = 10.0,
        step: Annotated[float, typer.Option(help="HR window step (s).")] = 1.0,
        fps: Annotated[
            Optional[float], typer.Option(help="Frame rate of a frame folder (files carry their own).")
        ] = None,
        json_path: Annotated[Optional[Path], typer.Option("--json", help="Write JSON here.")] = None,
        csv_path: Annotated[
            Optional[Path], typer.Option("--csv", help="Write the windowed HR series as CSV here.")
        ] = None,
        plot_path: Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG report here.")] = None,
        band_min: Annotated[float, typer.Option(help="Lowest HR searched (bpm).")] = 42.0,
        band_max: Annotated[float, typer.Option(help="Highest HR searched (bpm).")] = 210.0,
        detector: Annotated[str, typer.Option(help="Face detector: auto, mediapipe, haar.")] = "auto",
        face_index: Annotated[
            Optional[int], typer.Option(help="Which face: 0 = largest (default), 1 = next...")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        model: Annotated[
            Optional[Path],
            typer.Option(
                "--model",
                help="A deep model instead of --method: 'default' (or another name of `facepulse models`), "
                "a .ckpt of `facepulse train`, or an .onnx of `facepulse export`.",
            ),
        ] = None,
        adapt: Annotated[
            bool,
            typer.Option("--adapt", help="Fine-tune the --model (.ckpt) on this video without labels first "
                         "(SiNC spectral priors), then predict."),
        ] = False,
        adapt_steps: Annotated[
            int, typer.Option("--adapt-steps", help="Optimisation steps of --adapt (its time bound).")
        ] = 40,
    ) -> None:
        """Pulse waveform and heart rate of the face in VIDEO."""
        from facepulse.errors import NoFaceError
        from facepulse.fileio import check_output_file
        from facepulse.pipeline import predict
        from facepulse.report import write_csv, write_json, write_plot

        # refuse an output path that cannot be written before the video is decoded
        for option, path in (("--json", json_path), ("--csv", csv_path), ("--plot", plot_path)):
            if path is not None:
                check_output_file(path, option)
        if face_index is not None and face_index < 0:
            from facepulse.errors import ConfigError

            raise ConfigError(f"--face-index={face_index}: must be 0 (largest face) or more")
        if adapt and (model is None or adapt_steps < 1):
            from facepulse.errors import ConfigError

            raise ConfigError("--adapt needs --model and --adapt-steps >= 1")
        try:
            result = predict(
                video,
                fps=fps,
                method=method,
                window_s=window,
                step_s=step,
                band_bpm=(band_min, band_max),
                detector=detector,
                face_index=face_index,
                progress=not quiet and sys.stderr.isatty(),
                model=model,
                adapt_steps=adapt_steps if adapt else 0,
            )
        except NoFaceError:
            if face_index:  # "no face" may mean "not that many faces"
                _check_face_index(video, face_index, detector, fps)
            raise
        print_summary(result.summary())
        for path, writer in ((json_path, write_json), (csv_path, write_csv), (plot_path, write_plot)):
            if path is not None:
                writer(result, path)
                print(f"  wrote       {path}")

    @app.command("methods")
    def methods_cmd() -> None:
        """List the available rPPG methods."""
        from facepulse.methods import METHODS

        typer.echo(f"{'auto':8s} Every skin region x every method below, fused by signal quality, HR tracked (default)")
        for name in METHODS.names():
            typer.echo(f"{name:8s} {METHODS.describe(name)}")


def _check_face_index(video: Path, face_index: int, detector: str, fps: float | None) -> None:
    """After "no face": NoFaceError saying how many faces the video shows, when the
    requested ``--face-index`` is out of range (faces counted on a few sampled frames)."""
    from facepulse.errors import NoFaceError
    from facepulse.face.tracker import count_faces

    most = count_faces(video, detector, fps=fps)
    if most == 0:
        return  # really no face: the original message stands
    if face_index >= most:
        shown = "1 face" if most == 1 else f"up to {most} faces"
        raise NoFaceError(
            f"{video}: --face-index {face_index} is out of range: the video shows {shown} "
            f"(valid indices 0..{most - 1})"
        )
