"""`facepulse live`: rolling heart rate from a camera, a network stream or a file."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("live")
    def live_cmd(
        source: Annotated[
            str,
            typer.Argument(help="Camera index (0) or device (/dev/video0), stream URL (rtsp://, http://, HLS), or a file."),
        ],
        window: Annotated[float, typer.Option(help="Analysis window: each update uses the last N seconds.")] = 10.0,
        update_every: Annotated[float, typer.Option(help="Seconds between updates.")] = 1.0,
        realtime: Annotated[
            bool, typer.Option("--realtime/--fast", help="Files: play at their own speed, or as fast as possible.")
        ] = False,
        loop: Annotated[bool, typer.Option("--loop", help="Files: start again at the end (time keeps running).")] = False,
        json_lines: Annotated[
            bool, typer.Option("--json-lines", help="One JSON object per update on stdout (t_s, hr_bpm, confidence, snr_db, face).")
        ] = False,
        method: Annotated[str, typer.Option(help="rPPG method: auto (fused, the default) or one of `facepulse methods`.")] = "auto",
        detector: Annotated[str, typer.Option(help="Face detector: auto, mediapipe, haar.")] = "auto",
        face_index: Annotated[Optional[int], typer.Option(help="Which face: 0 = largest (default), 1 = next...")] = None,
        duration: Annotated[Optional[float], typer.Option(help="Stop after this many seconds of stream time.")] = None,
        stall_timeout: Annotated[float, typer.Option(help="A camera or stream silent this long is an error (s).")] = 10.0,
        open_timeout: Annotated[float, typer.Option(help="Give up connecting to a stream after this long (s).")] = 10.0,
        max_width: Annotated[int, typer.Option(help="Downscale wider frames to this width (pixels).")] = 640,
        size: Annotated[Optional[str], typer.Option(help="Cameras: ask for this size, WIDTHxHEIGHT.")] = None,
        fps: Annotated[Optional[float], typer.Option(help="Cameras: ask for this frame rate.")] = None,
    ) -> None:
        """Live heart rate from SOURCE, updated every second from the last --window seconds."""
        from facepulse.cli.synth_cmd import parse_size
        from facepulse.live.display import JsonLinesOutput, PlainOutput, TerminalDisplay
        from facepulse.live.session import LivePipeline, run_live
        from facepulse.live.sources import open_live_source

        camera_size = parse_size(size) if size is not None else None
        pipeline = LivePipeline(window, update_every_s=update_every, detector=detector, method=method, face_index=face_index)
        src = open_live_source(
            source,
            realtime=realtime,
            loop=loop,
            max_width=max_width,
            camera_size=camera_size,
            camera_fps=fps,
            open_timeout_s=open_timeout,
            stall_timeout_s=stall_timeout,
        )
        if json_lines:
            out = JsonLinesOutput(sys.stdout)
        elif sys.stdout.isatty():
            out = TerminalDisplay(src.label, window)
        else:
            out = PlainOutput(sys.stdout)

        def on_update(update, stats) -> None:
            latency = stats.update_latency_s[-1] * 1000 if stats.update_latency_s else None
            out.show(update, {"dropped": stats.dropped, "latency_ms": latency})

        def on_idle(idle_s: float, stats) -> None:
            if idle_s > 1.0:
                out.status(f"waiting for frames ({idle_s:.0f} s)")

        try:
            with src, out:
                stats = run_live(src, pipeline, on_update, on_idle=on_idle, duration_s=duration)
        finally:
            pipeline.close()
        s = stats.summary()
        print(
            f"facepulse live: {src.label}: {s['frames']} frames ({s['frames_with_face']} with a face), "
            f"{s['updates']} updates, {s['dropped']} dropped, update latency p50 "
            f"{s['update_latency_ms_p50']} ms",
            file=sys.stderr,
        )
