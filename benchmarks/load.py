"""Load test of the daemon: many small videos dropped into the inbox at once.

Runs the real daemon (``python -m midframe watch``) on temporary folders, moves N distinct small clips
into the inbox in one burst, and checks that every one is converted exactly once, in the order it
arrived, while the daemon's memory (RSS) stays flat. Prints the figures (and JSON with ``--json``).

    python benchmarks/load.py                    # 200 files, inotify events, then the polling observer
    python benchmarks/load.py --files 20 --observer polling
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.daemon_process import DaemonProcess  # noqa: E402
from tests.media import ffmpeg_exe, make_clip  # noqa: E402


def make_clips(folder: Path, count: int) -> list[Path]:
    """``count`` different tiny clips: one encode, then stream-copied remuxes with a distinct title each
    (same pictures, different bytes, so none is skipped as a duplicate)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = make_clip(folder / "base.mkv", seconds=0.4, size="64x48")
    clips = []
    for index in range(count):
        target = folder / f"clip-{index:04d}.mkv"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(base), "-map", "0", "-c", "copy",
                        "-metadata", f"title=load clip {index}", str(target)], check=True)
        clips.append(target)
    base.unlink()
    return clips


class RssSampler:
    def __init__(self, pid: int, interval: float) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler")

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - started, self.process.memory_info().rss))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(root: Path, *, files: int, polling: bool, settle: float = 0.5, sample_s: float = 0.25) -> dict:
    """Drop ``files`` clips at once into a fresh daemon's inbox; returns the figures (raises on a miss)."""
    clips = make_clips(root / "clips", files)
    daemon = DaemonProcess(root / "run", {
        "engine": {"name": "blend"},
        "daemon": {"settle_seconds": settle, "polling": polling, "rescan_seconds": 30},
        "logging": {"level": "WARNING"},
    })
    staging = daemon.root / "staging"          # same file system: each drop below is one rename
    staging.mkdir()
    for clip in clips:
        os.replace(clip, staging / clip.name)
    daemon.start()
    try:
        with RssSampler(daemon.proc.pid, sample_s) as rss:
            started = time.monotonic()
            for clip in clips:
                os.replace(staging / clip.name, daemon.inbox / clip.name)
            jobs = daemon.wait_jobs_final(files, timeout=30 + 5.0 * files)
            wall = time.monotonic() - started
        daemon.client().stop()
        daemon.wait_exit(30)
    finally:
        daemon.stop_if_running()

    names = [clip.name for clip in clips]
    by_id = sorted(jobs, key=lambda job: job["id"])
    states = {job["state"] for job in jobs}
    outputs = daemon.visible_outputs()
    finished_order = [job["name"] for job in sorted(jobs, key=lambda job: job["finished_at"])]
    figures = {
        "files": files,
        "observer": "polling" if polling else "events",
        "jobs": len(jobs),
        "states": sorted(states),
        "outputs": len(outputs),
        "converted_once": len(jobs) == files and states == {"done"} and len(outputs) == files
                          and sorted(o.replace(".50fps", "") for o in outputs) == names,
        "queue_order_kept": [job["name"] for job in by_id] == names and finished_order == names,
        "wall_s": round(wall, 1),
        "per_file_s": round(wall / files, 2),
        **rss_figures(rss.samples),
    }
    return figures


def rss_figures(samples: list[tuple[float, int]]) -> dict:
    values = [rss for _, rss in samples]
    if not values:
        return {}
    mib = 1 << 20
    quarter = max(1, len(values) // 4)
    return {
        "rss_samples": len(values),
        "rss_start_mib": round(values[0] / mib, 1),
        "rss_peak_mib": round(max(values) / mib, 1),
        "rss_end_mib": round(values[-1] / mib, 1),
        # After warm-up: the median of the second quarter against the median of the last quarter.
        "rss_warm_mib": round(statistics.median(values[quarter:2 * quarter] or values) / mib, 1),
        "rss_last_quarter_mib": round(statistics.median(values[-quarter:]) / mib, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--observer", choices=["events", "polling", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args()
    kinds = {"events": [False], "polling": [True], "both": [False, True]}[args.observer]
    ok = True
    for polling in kinds:
        with tempfile.TemporaryDirectory(prefix="midframe-load-") as tmp:
            figures = run_load(Path(tmp), files=args.files, polling=polling)
        ok = ok and figures["converted_once"] and figures["queue_order_kept"]
        if args.json:
            print(json.dumps(figures))
        else:
            print(f"{figures['observer']:>8}: {figures['files']} files in {figures['wall_s']} s "
                  f"({figures['per_file_s']} s each); converted once: {figures['converted_once']}; "
                  f"order kept: {figures['queue_order_kept']}; RSS MiB start {figures['rss_start_mib']}, "
                  f"warm {figures['rss_warm_mib']}, peak {figures['rss_peak_mib']}, "
                  f"last quarter {figures['rss_last_quarter_mib']}, end {figures['rss_end_mib']}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
