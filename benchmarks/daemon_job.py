"""The per-job fixed cost of a running daemon: a short clip's whole job, less the model's time.

Starts the real daemon (``midframe watch``) on temporary folders, with timers around its job flow (the
whole job: identity hash, probe, trial encodes and muxes, model, encode, join, verification, publish)
and around the pipeline's pieces, and drops ``--jobs`` distinct copies of a short 720p clip (the first
``--frames`` frames of Big Buck Bunny with its 6-channel AAC, each remuxed with its own title so that none
is a duplicate) into its inbox one after another. The first job is a warm-up (the daemon's first
imports, the OpenVINO graph for 720p converted if the cache has none); the others are reported:
seconds per job outside the model (``model_s``: inside the interpolator's calls; the first call
includes loading the compiled graph from the cache, shown as its own column, "graph load", estimated as
the first batch's time less a later batch's).

    python benchmarks/daemon_job.py                 # rife, 30 frames, 4 jobs (the README table)
    python benchmarks/daemon_job.py --engine dis --frames 40
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LAUNCHER = r"""
import json, os, sys, time
import midframe.engine.pipeline as pipeline
import midframe.engine.frameloop as frameloop

record = {}
out = os.environ["MIDFRAME_BENCH_TIMES"]

def timed(module, name):
    real = getattr(module, name)
    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            record[name + "_s"] = record.get(name + "_s", 0.0) + time.perf_counter() - started
    setattr(module, name, call)

for name in ("probe", "prepare", "join", "verify_output", "choose_scenes"):
    timed(pipeline, name)
real_convert = pipeline.convert
def convert(*args, **kwargs):
    report = real_convert(*args, **kwargs)
    record["report"] = {"wall_s": report.wall_s, "model_s": report.model_s, "extra": report.extra,
                        "frames_interpolated": report.frames_interpolated}
    return report
pipeline.convert = convert
real_flush = frameloop.FrameLoop._flush
def flush(self):
    had = len(self._batch)
    started = time.perf_counter()
    try:
        return real_flush(self)
    finally:
        if had:
            record.setdefault("batches", []).append(time.perf_counter() - started)
frameloop.FrameLoop._flush = flush

from midframe.daemon.jobs.flow import JobFlow
real_run = JobFlow.run
def run(self, job, config):
    record.clear()
    started = time.perf_counter()
    try:
        return real_run(self, job, config)
    finally:
        record["job_s"] = time.perf_counter() - started
        record["name"] = job.name
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")
JobFlow.run = run

from midframe.cli import main
sys.argv = ["midframe", *sys.argv[1:]]
sys.exit(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="rife")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=4, help="the first is a warm-up")
    args = parser.parse_args()

    from benchmarks.speed import ffmpeg_exe, source_clip
    from tests.daemon_process import DaemonProcess, wait_for

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="midframe-daemon-job-") as tmp:
        folder = Path(tmp)
        clips = []
        base = folder / "base.mp4"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(source_clip(None)), "-frames:v", str(args.frames),
                        "-c:v", "libx264", "-preset", "fast", "-crf", "16", "-c:a", "copy", str(base)], check=True)
        for number in range(args.jobs):
            clip = folder / f"clip-{number}.mp4"
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(base), "-map", "0", "-c", "copy",
                            "-metadata", f"title=clip {number}", str(clip)], check=True)
            clips.append(clip)
        times = folder / "times.jsonl"
        launcher = folder / "launch.py"
        launcher.write_text(LAUNCHER)

        class Timed(DaemonProcess):
            def start(self, **kwargs):  # type: ignore[no-untyped-def]
                self.runs += 1
                self.stderr_path = self.root / f"daemon-{self.runs}.log"
                self.proc = subprocess.Popen(
                    [sys.executable, str(launcher), "watch", "--config", str(self.config_path)], cwd=ROOT,
                    env={**self.env, "MIDFRAME_BENCH_TIMES": str(times)}, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=open(self.stderr_path, "wb"),  # noqa: SIM115
                    start_new_session=True)
                wait_for(self._answers, timeout=60, what=f"the daemon to answer (log: {self.stderr_path})")
                return self

        daemon = Timed(folder / "daemon", {"engine": {"name": args.engine, "device": "cpu"},
                                           "output": {"preset": "medium"}, "logging": {"level": "WARNING"}})
        daemon.start()
        try:
            for number, clip in enumerate(clips, start=1):
                shutil.copy(clip, daemon.root / clip.name)
                os.replace(daemon.root / clip.name, daemon.inbox / clip.name)
                jobs = daemon.wait_jobs_final(number, timeout=900)
                failed = [job for job in jobs if job["state"] != "done"]
                if failed:
                    raise SystemExit(f"a job failed: {failed}\n{daemon.log()}")
            daemon.client().stop()
            daemon.wait_exit(60)
        finally:
            daemon.stop_if_running()
        records = [json.loads(line) for line in times.read_text().splitlines()]
    load_after = os.getloadavg()

    print("| job | whole job s | model s | outside the model s | graph load s (in model s) | probe | plan and trials "
          "| encoder's last frames | join | verify |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    outside = []
    for number, record in enumerate(records):
        report = record.get("report", {})
        model = report.get("model_s", 0.0)
        batches = record.get("batches", [])
        graph = batches[0] - statistics.median(batches[1:]) if len(batches) > 2 else 0.0
        extra = report.get("extra", {})
        label = "warm-up" if number == 0 else str(number)
        fixed = record["job_s"] - model
        if number:
            outside.append(fixed)
        print(f"| {label} | {record['job_s']:.2f} | {model:.2f} | {fixed:.2f} | {graph:.2f} | "
              f"{record.get('probe_s', 0):.2f} | {record.get('prepare_s', 0):.2f} | {extra.get('encode_finish_s', 0):.2f} "
              f"| {record.get('join_s', 0):.2f} | {record.get('verify_output_s', 0):.2f} |")
    if outside:
        print(f"\nmedian outside the model, jobs after the warm-up: {statistics.median(outside):.2f} s "
              f"({args.engine}, {args.frames} frames 1280x720); load average before {load_before[0]:.2f}, "
              f"after {load_after[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
