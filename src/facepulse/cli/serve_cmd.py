"""`facepulse serve`: the live heart-rate web page (browser camera or a server-side source)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer


def _check_port_free(host: str, port: int) -> None:
    import socket

    from facepulse.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: cannot resolve ({err.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            raise ConfigError(f"{host}:{port}: cannot listen ({err.strerror}); pick another --port") from None


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this computer only).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        source: Annotated[
            Optional[str], typer.Option(help="Also offer a server-side SOURCE (camera, stream URL or file) to the page.")
        ] = None,
        realtime: Annotated[bool, typer.Option("--realtime/--fast", help="A file --source: play at its own speed.")] = True,
        loop: Annotated[bool, typer.Option("--loop", help="A file --source: start again at the end.")] = False,
        window: Annotated[float, typer.Option(help="Analysis window (s).")] = 10.0,
        update_every: Annotated[float, typer.Option(help="Seconds between updates.")] = 1.0,
        method: Annotated[str, typer.Option(help="rPPG method: auto (fused, the default) or one of `facepulse methods`.")] = "auto",
        detector: Annotated[str, typer.Option(help="Face detector: auto, mediapipe, haar.")] = "auto",
        max_sessions: Annotated[int, typer.Option(help="Browser camera sessions at once.")] = 4,
    ) -> None:
        """Serve the live heart-rate page: open it, press "Start camera"."""
        from facepulse.errors import ConfigError

        try:
            import uvicorn

            from facepulse.live.server import ServeConfig, create_app
        except ImportError as err:
            raise ConfigError(
                f"facepulse serve needs the web extras ({err.name} is missing): pip install 'facepulse[live]'"
            ) from None

        config = ServeConfig(
            window_s=window,
            update_every_s=update_every,
            method=method,
            detector=detector,
            source=source,
            realtime=realtime,
            loop=loop,
            max_sessions=max_sessions,
        )
        if source is not None:
            from facepulse.live.sources import parse_source

            parse_source(source)  # a missing file or camera fails here, before serving
        application = create_app(config)
        _check_port_free(host, port)
        shown = f"[{host}]" if ":" in host else host
        print(f"facepulse serve: open http://{shown}:{port}/ in a browser (Ctrl-C to stop)", file=sys.stderr)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"facepulse serve: listening on {host}: other computers can connect; their browsers allow "
                "the camera only over https (put a TLS proxy in front)",
                file=sys.stderr,
            )
        uvicorn.run(application, host=host, port=port, log_level="warning", ws_max_size=4 * 1024 * 1024)
