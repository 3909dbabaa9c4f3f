"""`facepulse synth`: write a synthetic face-video dataset with exact ground truth."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from facepulse.errors import ConfigError

# Parameter fields set by a dedicated option: errors name the option the user typed.
_OPTION_OF_FIELD = {
    "duration_s": "--duration-s",
    "camera.fps": "--fps",
    "camera.width": "--size",
    "camera.height": "--size",
    "codec.codec": "--codec",
    "codec.crf": "--crf",
}


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480); ConfigError naming --size otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--size={text!r}: must be WIDTHxHEIGHT, e.g. 640x480")
    return int(match.group(1)), int(match.group(2))


def parse_sets(items: list[str]) -> dict[str, object]:
    """``["physiology.hr_bpm=80", ...]`` -> ``{"physiology.hr_bpm": 80, ...}``."""
    from facepulse.synth.params import parse_value

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: must be SECTION.FIELD=VALUE, e.g. physiology.hr_bpm=80")
        out[key.strip()] = parse_value(value)
    return out


def _rename_field(err: ConfigError) -> ConfigError:
    message = str(err)
    for field, option in _OPTION_OF_FIELD.items():
        if message.startswith(f"{field}="):
            return ConfigError(option + message[len(field):])
    return err


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth_cmd(
        out_dir: Path = typer.Argument(..., help="Dataset folder (created; an unfinished one is resumed)."),
        n_videos: int = typer.Option(10, "--n-videos", help="Number of videos."),
        duration_s: float = typer.Option(30.0, "--duration-s", help="Length of each video (s)."),
        fps: float = typer.Option(30.0, "--fps", help="Frame rate (frames/s)."),
        size: str = typer.Option("640x480", "--size", help="Frame size WIDTHxHEIGHT (even numbers)."),
        scenario: str = typer.Option(
            "still", "--scenario",
            help="Preset: still, motion, lighting, dark-skin, compressed, hard, mixed (see docs/synthetic.md).",
        ),
        seed: int = typer.Option(0, "--seed", help="Master seed; the same seed gives the same bytes."),
        codec: str = typer.Option(None, "--codec", help="Force the codec: ffv1 (lossless) or h264."),
        crf: int = typer.Option(None, "--crf", help="Force the H.264 CRF (0-51)."),
        set_: list[str] = typer.Option(
            [], "--set", help="Force any parameter, e.g. --set physiology.hr_bpm=80 (repeatable)."
        ),
        face: str = typer.Option(
            None, "--face",
            help="Face to animate: an image, or a video (its first frame with a face); default the built-in photo.",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
        workers: int = typer.Option(None, "--workers", help="Videos in parallel (local: processes, default 1)."),
        executor: str = typer.Option("local", "--executor", help="Where videos are rendered: local or ray."),
        address: str = typer.Option(None, "--address", help="Ray cluster address; default a local Ray instance."),
    ) -> None:
        """Generate synthetic face videos with a known pulse (videos + per-frame truth + metadata)."""
        from facepulse.executors import make_executor
        from facepulse.synth.params import CameraParams, SynthParams
        from facepulse.synth.writer import write_dataset

        from facepulse.fileio import check_output_dir

        check_output_dir(out_dir, "OUT_DIR")
        width, height = parse_size(size)
        overrides = parse_sets(set_)
        if codec is not None:
            overrides["codec.codec"] = codec
        if crf is not None:
            overrides["codec.crf"] = crf
        face_path = None
        if face is not None:
            from facepulse.synth.scene import face_asset

            face_path = str(Path(face).expanduser().resolve())
            face_asset(face_path)  # no face / unreadable file: one line now, not per video
        try:
            base = SynthParams(
                duration_s=duration_s, camera=CameraParams(width=width, height=height, fps=fps), face=face_path,
            )
        except ConfigError as err:
            raise _rename_field(err) from None
        if n_videos < 1:
            raise ConfigError(f"--n-videos={n_videos}: must be at least 1")
        if seed < 0:
            raise ConfigError(f"--seed={seed}: must be a non-negative integer")
        runner = make_executor(executor, workers=workers, address=address)
        try:
            results = write_dataset(
                out_dir, n_videos=n_videos, scenario=scenario, seed=seed, base=base,
                overrides=overrides, progress=not quiet, executor=runner,
            )
        except ConfigError as err:
            raise _rename_field(err) from None
        skipped = sum(r.skipped for r in results)
        typer.echo(
            f"{out_dir}: {len(results) - skipped} videos written, {skipped} already there "
            f"({scenario}, {width}x{height}, {fps:g} fps, {duration_s:g} s each)"
        )
