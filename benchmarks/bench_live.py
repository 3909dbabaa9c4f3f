"""Live heart rate: latency, update rate, CPU and memory of `facepulse live` and `facepulse serve`.

    python benchmarks/bench_live.py --out out/bench_live                        # everything
    python benchmarks/bench_live.py --skip-serve --soak-min 0 --duration-s 30   # quick look
    python benchmarks/bench_live.py --only-soak --soak-min 60                   # the hour-long soak

Parts (each writes JSON/CSV under --out and prints a Markdown summary):

- ``live``: ``facepulse live CLIP --realtime --loop --json-lines`` for --duration-s seconds.
  Latency per update (``latency_ms`` of the JSON lines: capture of the newest frame the
  update includes -> update ready); an average frame waits half the update period more
  for the update that includes it. CPU (% of one core) and RSS of the process, sampled
  each second with psutil.
- ``serve``: ``facepulse serve`` with one headless Chromium whose fake camera plays the
  clip (Y4M); latency as the page sees it (capture time of the newest frame -> update
  shown), update rate, CPU and RSS of the server and, separately, of the browser.
- ``soak``: ``live`` on the looped clip for --soak-min minutes, RSS sampled every minute.

Default clip: the first UBFC-rPPG dev video found under ../shared/data (a real face), else
a rendered synthetic one. The machine's cores are all used (the project VM has 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def find_clip(out: Path) -> Path:
    for candidate in sorted((ROOT.parent / "shared/data/ubfc_rppg_dev").glob("*/vid.*")):
        return candidate
    from facepulse.synth import SynthParams, write_video

    folder = out / "synthetic_clip"
    write_video(folder, SynthParams(duration_s=60).with_overrides({"camera.width": 640, "camera.height": 480}), 0)
    return folder / "video.mkv"


class Sampler:
    """CPU (% of one core) and RSS (MB) of a process tree, every ``every_s`` seconds."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.every_s = every_s
        self.rows: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._procs: dict[int, object] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self):
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        out = []
        for p in procs:
            if p.pid not in self._procs:
                self._procs[p.pid] = p
                try:
                    p.cpu_percent(None)  # prime
                except psutil.Error:
                    pass
            out.append(self._procs[p.pid])
        return out

    def _run(self) -> None:
        import psutil

        start = time.monotonic()
        self._tree()
        while not self._stop.wait(self.every_s):
            cpu = rss = 0.0
            for p in self._tree():
                try:
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            self.rows.append((time.monotonic() - start, cpu, rss))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        a = np.asarray(self.rows) if self.rows else np.zeros((1, 3))
        steady = a[len(a) // 5 :] if len(a) > 5 else a  # skip start-up (imports, model load)
        return {
            "cpu_pct_mean": round(float(steady[:, 1].mean()), 1),
            "cpu_pct_p95": round(float(np.percentile(steady[:, 1], 95)), 1),
            "rss_mb_mean": round(float(steady[:, 2].mean()), 1),
            "rss_mb_max": round(float(a[:, 2].max()), 1),
        }


def _pct(values, q):
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def bench_live(clip: Path, duration_s: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "facepulse.cli", "live", str(clip), "--realtime", "--loop", "--json-lines",
           "--duration", str(duration_s)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    stdout, stderr = proc.communicate()
    wall_s = time.monotonic() - started
    usage = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"live failed: {stderr}")
    updates = [json.loads(line) for line in stdout.splitlines()]
    (out / "live_updates.jsonl").write_text(stdout)
    lat = [u["latency_ms"] for u in updates if u.get("latency_ms") is not None]
    ts = [u["t_s"] for u in updates]
    return {
        "part": "live",
        "clip": str(clip),
        "duration_s": duration_s,
        "wall_s": round(wall_s, 1),
        "updates": len(updates),
        "update_rate_hz": round((len(updates) - 1) / (ts[-1] - ts[0]), 3) if len(ts) > 1 else None,
        "latency_newest_frame_ms_p50": _pct(lat, 50),
        "latency_newest_frame_ms_p95": _pct(lat, 95),
        "latency_average_frame_ms_p50": round(_pct(lat, 50) + 500.0, 1) if lat else None,
        "dropped_frames": updates[-1].get("dropped") if updates else None,
        "hr_bpm_median": round(float(np.median([u["hr_bpm"] for u in updates if u["hr_bpm"] is not None])), 1),
        **usage,
        "summary_line": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_serve(clip: Path, duration_s: float, out: Path) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    from facepulse.io.video import open_video
    from facepulse.live.fakecam import write_y4m

    import cv2

    y4m = out / "fakecam.y4m"
    source = open_video(clip)
    n_frames = int(source.info.fps * min(duration_s + 30, (source.info.duration_s or 1e9)))

    def frames():
        for i, (_, frame) in enumerate(source):
            if i >= n_frames:
                return
            yield cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)

    write_y4m(y4m, frames(), source.info.fps)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "facepulse.cli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    driver = None
    try:
        for _ in range(300):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={y4m}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        server_usage = Sampler(server.pid)
        browser_usage = Sampler(driver.service.process.pid)
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "start-camera").click()
        time.sleep(duration_s)
        page = driver.execute_script(
            "const s = window.facepulse; return {sent: s.seq, acked: s.acked, skipped: s.skipped, session: s.session}"
        )
        server_stats, browser_stats = server_usage.stop(), browser_usage.stop()
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(profile, ignore_errors=True)
        y4m.unlink(missing_ok=True)
    rows = page["session"]
    (out / "serve_session.json").write_text(json.dumps(rows))
    lat = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    ts = [r["t_s"] for r in rows]
    return {
        "part": "serve (one headless Chromium, fake camera 320x240)",
        "clip": str(clip),
        "duration_s": duration_s,
        "updates": len(rows),
        "update_rate_hz": round((len(ts) - 1) / (ts[-1] - ts[0]), 3) if len(ts) > 1 else None,
        "frames_sent": page["sent"],
        "frames_sent_per_s": round(page["sent"] / duration_s, 1),
        "frames_skipped_by_page": page["skipped"],
        "latency_newest_frame_ms_p50": _pct(lat, 50),
        "latency_newest_frame_ms_p95": _pct(lat, 95),
        "latency_average_frame_ms_p50": round(_pct(lat, 50) + 500.0, 1) if lat else None,
        "hr_bpm_median": round(float(np.median([r["hr_bpm"] for r in rows if r["hr_bpm"] is not None])), 1)
        if any(r["hr_bpm"] is not None for r in rows) else None,
        "server": server_stats,
        "browser": browser_stats,
    }


def bench_soak(clip: Path, minutes: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "facepulse.cli", "live", str(clip), "--realtime", "--loop", "--json-lines",
           "--duration", str(minutes * 60)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import psutil

    p = psutil.Process(proc.pid)
    samples = []
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    start = time.monotonic()
    while proc.poll() is None:
        try:
            samples.append((round((time.monotonic() - start) / 60, 2), round(p.memory_info().rss / 2**20, 1)))
        except psutil.Error:
            break
        print(f"soak: {samples[-1][0]:.0f} min, RSS {samples[-1][1]:.1f} MB, {len(lines)} updates", flush=True)
        for _ in range(60):
            if proc.poll() is not None:
                break
            time.sleep(1)
    proc.wait()
    reader.join(timeout=5)
    stderr = proc.stderr.read()
    (out / "soak_rss.csv").write_text("minute,rss_mb\n" + "".join(f"{m},{r}\n" for m, r in samples))
    rss = np.array([r for _, r in samples])
    mins = np.array([m for m, _ in samples])
    after = mins >= 2  # after start-up
    slope = float(np.polyfit(mins[after], rss[after], 1)[0]) if after.sum() >= 3 else None
    lat = [json.loads(x).get("latency_ms") for x in lines]
    lat = [x for x in lat if x is not None]
    return {
        "part": "soak",
        "clip": str(clip),
        "minutes": minutes,
        "returncode": proc.returncode,
        "updates": len(lines),
        "rss_mb_at_2_min": float(rss[after][0]) if after.any() else None,
        "rss_mb_last": float(rss[-1]),
        "rss_mb_max": float(rss.max()),
        "rss_slope_mb_per_hour_after_2_min": round(60 * slope, 2) if slope is not None else None,
        "latency_newest_frame_ms_p50": _pct(lat, 50),
        "latency_newest_frame_ms_p95": _pct(lat, 95),
        "summary_line": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/bench_live"))
    ap.add_argument("--clip", type=Path, default=None)
    ap.add_argument("--duration-s", type=float, default=60.0, help="length of the live and serve runs")
    ap.add_argument("--soak-min", "--duration-min", dest="soak_min", type=float, default=60.0,
                    help="soak length in minutes (0: skip)")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--only-soak", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clip = args.clip or find_clip(args.out)
    results = []
    if not args.only_soak and not args.skip_live:
        results.append(bench_live(clip, args.duration_s, args.out))
        print(json.dumps(results[-1], indent=1), flush=True)
    if not args.only_soak and not args.skip_serve:
        results.append(bench_serve(clip, args.duration_s, args.out))
        print(json.dumps(results[-1], indent=1), flush=True)
    if args.soak_min > 0:
        results.append(bench_soak(clip, args.soak_min, args.out))
        print(json.dumps(results[-1], indent=1), flush=True)
    machine = {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    (args.out / "results.json").write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
