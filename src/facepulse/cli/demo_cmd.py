"""`facepulse demo`: generate a synthetic face clip with a known pulse and measure it.

Nothing is downloaded: the clip is rendered by :mod:`facepulse.synth` from a face photo
shipped in scikit-image, so the demo shows the whole pipeline and its error on any machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Annotated[Path, typer.Option(help="Folder for the clip and the results.")] = Path("out/demo"),
        hr_bpm: Annotated[float, typer.Option(help="True heart rate of the synthetic subject.")] = 72.0,
        duration_s: Annotated[float, typer.Option(help="Clip length (s).")] = 20.0,
        method: Annotated[str, typer.Option(help="rPPG method (auto = fused, the default).")] = "auto",
        seed: Annotated[int, typer.Option(help="Random seed of the clip.")] = 0,
    ) -> None:
        """Render a 640x480 synthetic face clip with a known pulse, then run `predict` on it."""
        import json

        import numpy as np

        from facepulse.cli.predict_cmd import print_summary
        from facepulse.pipeline import predict
        from facepulse.report import write_csv, write_json, write_plot
        from facepulse.synth import SynthParams, write_video
        from facepulse.synth.writer import META_FILE, VIDEO_FILE
        from facepulse.fileio import check_output_dir

        check_output_dir(out, "--out")
        params = SynthParams(duration_s=duration_s).with_overrides(
            {
                "physiology.hr_bpm": hr_bpm,
                "camera.width": 640,
                "camera.height": 480,
                "motion.translation_rms_frac": 0.03,  # a little head motion, as in real use
                "motion.rotation_rms_deg": 2.0,
            }
        )
        clip_dir = out / "example"
        typer.echo(f"rendering a {duration_s:g} s synthetic face clip at {hr_bpm:g} bpm -> {clip_dir}")
        write_video(clip_dir, params, seed)
        video = clip_dir / VIDEO_FILE
        true_hr = float(np.mean(_true_hr(clip_dir)))

        result = predict(video, method=method)
        print_summary(result.summary())
        write_json(result, out / "result.json")
        write_csv(result, out / "result.csv")
        write_plot(result, out / "result.png")
        meta = json.loads((clip_dir / META_FILE).read_text())
        typer.echo(
            f"  truth       {true_hr:.1f} bpm (error {result.hr_bpm - true_hr:+.1f} bpm, "
            f"{meta['n_frames']} frames)\n"
            f"  wrote       {out / 'result.json'}, {out / 'result.csv'}, {out / 'result.png'}"
        )


def _true_hr(clip_dir: Path):
    """Per-frame true HR of a synthetic clip (from its frames.csv)."""
    import pandas as pd

    from facepulse.synth.writer import FRAMES_FILE

    return pd.read_csv(clip_dir / FRAMES_FILE)["hr_bpm"].to_numpy()
