"""What ``facepulse live`` shows: a rich Live panel on a terminal, JSON lines for pipes.

:class:`TerminalDisplay` redraws one panel per update (HR, confidence, SNR, face, source
status, the pulse waveform and HR history as sparklines); :class:`JsonLinesOutput` writes
one JSON object per update; :class:`PlainOutput` one text line per update (stdout is not
a terminal and no JSON was asked for).
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from typing import IO, Any

import numpy as np

from facepulse.live.estimator import LiveUpdate

__all__ = ["JsonLinesOutput", "PlainOutput", "TerminalDisplay", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray | list[float], width: int = 60) -> str:
    """A one-line unicode sparkline of ``values`` (resampled to ``width``); NaN shows as space."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return ""
    if v.size > width:
        idx = np.linspace(0, v.size - 1, width).round().astype(int)
        v = v[idx]
    good = np.isfinite(v)
    if not good.any():
        return " " * v.size
    lo, hi = float(v[good].min()), float(v[good].max())
    span = hi - lo if hi > lo else 1.0
    chars = []
    for x in v:
        if not math.isfinite(x):
            chars.append(" ")
        else:
            chars.append(_BARS[min(len(_BARS) - 1, int((x - lo) / span * len(_BARS)))])
    return "".join(chars)


class JsonLinesOutput:
    """One JSON object per update on ``stream`` (default stdout), flushed at once."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __enter__(self) -> JsonLinesOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stream.flush()

    def show(self, update: LiveUpdate, info: dict[str, Any]) -> None:
        record = update.to_json()
        record["dropped"] = info.get("dropped", 0)
        if info.get("latency_ms") is not None:
            record["latency_ms"] = round(float(info["latency_ms"]), 1)
        self.stream.write(json.dumps(record, allow_nan=False) + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        pass


class PlainOutput:
    """One human-readable line per update (for logs and pipes)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def __enter__(self) -> PlainOutput:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stream.flush()

    def show(self, update: LiveUpdate, info: dict[str, Any]) -> None:
        hr = f"{update.hr_bpm:6.1f} bpm" if update.hr_bpm is not None else "   --    "
        snr = f"{update.snr_db:+5.1f} dB" if update.snr_db is not None else "   --   "
        self.stream.write(
            f"t={update.t_s:7.1f} s  HR {hr}  confidence {update.confidence:4.2f}  SNR {snr}  "
            f"face {'yes' if update.face else 'no '}  {update.status}\n"
        )
        self.stream.flush()

    def status(self, text: str) -> None:
        self.stream.write(f"{text}\n")
        self.stream.flush()


class TerminalDisplay:
    """A live panel (rich Live), redrawn at each update and on status changes."""

    def __init__(self, source_label: str, window_s: float, history: int = 120) -> None:
        from rich.console import Console

        self.console = Console()
        self.source_label = source_label
        self.window_s = window_s
        self.hr_history: deque[float] = deque(maxlen=history)
        self._update: LiveUpdate | None = None
        self._info: dict[str, Any] = {}
        self._status = "starting"
        self._live = None

    def __enter__(self) -> TerminalDisplay:
        from rich.live import Live

        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def show(self, update: LiveUpdate, info: dict[str, Any]) -> None:
        self._update = update
        self._info = info
        self._status = update.status
        self.hr_history.append(update.hr_bpm if update.hr_bpm is not None else float("nan"))
        if self._live is not None:
            self._live.update(self._render())

    def status(self, text: str) -> None:
        self._status = text
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        u = self._update
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold")
        table.add_column()
        if u is None or u.hr_bpm is None:
            fill = f" ({100 * u.window_fill:.0f}% of the {self.window_s:g} s window)" if u else ""
            hr_text = Text("--", style="bold dim")
            hr_text.append(f"  {self._status}{fill}", style="yellow")
        else:
            colour = "green" if u.confidence >= 0.6 else ("yellow" if u.confidence >= 0.3 else "red")
            hr_text = Text(f"{u.hr_bpm:5.1f} bpm", style=f"bold {colour}")
        table.add_row("heart rate", hr_text)
        if u is not None:
            bar = "█" * int(round(10 * u.confidence)) + "░" * (10 - int(round(10 * u.confidence)))
            table.add_row("confidence", f"{bar} {u.confidence:.2f}")
            table.add_row("SNR", "--" if u.snr_db is None else f"{u.snr_db:+.1f} dB")
            table.add_row("face", Text("yes", style="green") if u.face else Text("no face", style="bold red"))
            table.add_row("pulse", Text(sparkline(u.wave, 60), style="magenta"))
            table.add_row("HR history", Text(sparkline(list(self.hr_history), 60), style="cyan"))
            table.add_row("stream time", f"{u.t_s:.1f} s")
        extra = []
        if self._info.get("dropped"):
            extra.append(f"{self._info['dropped']} frames dropped")
        if self._info.get("latency_ms") is not None:
            extra.append(f"latency {self._info['latency_ms']:.0f} ms")
        table.add_row("status", Text(self._status + ("  " + ", ".join(extra) if extra else "")))
        return Panel(table, title=f"facepulse live: {self.source_label}", subtitle="Ctrl-C to stop")
