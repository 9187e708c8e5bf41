"""Speed of each engine per resolution, peak memory, and the pipeline's overhead over the model.

For each engine and resolution a fresh child process decodes the first ``--frames`` frames of
bigbuckbunny.mp4 scaled to that size, loads the engine, interpolates every consecutive pair at t=0.5
(one warm-up pair first, not timed) in batches of ``--batch-size``, and reports interpolated frames per
second, peak RSS of the process and, on CUDA, ``torch.cuda.max_memory_allocated``. Then it runs
``midframe interpolate --engine rife --report`` on a 720p clip of ``--overhead-frames`` frames and
reports wall/model_s (the decode and encode threads should hide behind the model: target <= 1.20).
Prints a markdown table.

    python benchmarks/speed.py --frames 4                                  # CPU, all engines
    python benchmarks/speed.py --device cuda --engines rife --resolutions 1080p --frames 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def source_clip(path: str | None) -> Path:
    if path:
        return Path(path)
    from tests.footage import bigbuckbunny

    return bigbuckbunny()


def peak_rss_mib() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20


# --- one measurement, in a child process so that peak memory is its own -------------------------


def measure(engine: str, resolution: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from midframe.config import Config, EngineConfig, resolve_paths
    from midframe.engine.interpolators import FramePair, create_interpolator

    width, height = RESOLUTIONS[resolution]
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(source_clip(args.clip)), "-frames:v", str(args.frames),
         "-vf", f"scale={width}:{height}:flags=bicubic", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    settings = EngineConfig(name=engine, device=args.device, batch_size=args.batch_size)
    started = time.perf_counter()
    interpolator = create_interpolator(settings, models_dir=resolve_paths(Config()).models_dir)
    interpolator.load()
    load_s = time.perf_counter() - started
    pairs = [FramePair(i, frames[i], frames[i + 1], 0.5) for i in range(len(frames) - 1)]
    cuda = str(interpolator.device).startswith("cuda")
    try:
        interpolator.interpolate(pairs[:1])
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timed = pairs[1:]
        started = time.perf_counter()
        for k in range(0, len(timed), args.batch_size):
            interpolator.interpolate(timed[k : k + args.batch_size])
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        fp16 = bool(getattr(interpolator, "fp16", False))
    finally:
        interpolator.close()
    return {
        "engine": engine, "resolution": resolution, "device": str(interpolator.device), "fp16": fp16,
        "frames": len(timed), "fps": len(timed) / seconds, "s_per_frame": seconds / len(timed),
        "load_s": load_s, "peak_rss_mib": peak_rss_mib(), "cuda_peak_mib": cuda_peak,
        "threads": torch.get_num_threads(),
    }


def run_child(engine: str, resolution: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, resolution,
               "--frames", str(args.frames), "--device", args.device, "--batch-size", str(args.batch_size)]
    if args.clip:
        command += ["--clip", args.clip]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return {"engine": engine, "resolution": resolution, "error": last}
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the pipeline's overhead --------------------------------------------------------------------


def overhead(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="midframe-speed-") as tmp:
        clip = Path(tmp) / "clip720.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-i", str(source_clip(args.clip)), "-frames:v",
             str(args.overhead_frames), "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "ultrafast",
             "-crf", "12", "-an", str(clip)],
            check=True,
        )
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(Path(tmp) / "out.mp4"),
                   "--engine", "rife", "--device", args.device, "--batch-size", str(args.batch_size),
                   "--report", str(report), "-q"]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        process_s = time.perf_counter() - started
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["failed"])[-1]
            return {"error": last}
        data = json.loads(report.read_text())
    return {
        "frames_in": data["frames_in"], "frames_out": data["frames_out"], "wall_s": data["wall_s"],
        "model_s": data["model_s"], "process_s": process_s, "device": data.get("device"),
        "ratio": data["wall_s"] / data["model_s"], "process_ratio": process_s / data["model_s"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| engine | resolution | device | frames/s | s/frame | peak RSS (MiB) | peak CUDA (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['engine']} | {row['resolution']} | - | - | - | - | {row['error'][:60]} |")
            continue
        device = row["device"] + (" fp16" if row["fp16"] else "")
        cuda = f"{row['cuda_peak_mib']:.0f}" if row["cuda_peak_mib"] is not None else "-"
        lines.append(
            f"| {row['engine']} | {row['resolution']} | {device} | {row['fps']:.2f} | {row['s_per_frame']:.3f} "
            f"| {row['peak_rss_mib']:.0f} | {cuda} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="blend,dis,rife")
    parser.add_argument("--resolutions", default="360p,720p,1080p")
    parser.add_argument("--frames", type=int, default=5, help="source frames per clip (pairs = frames - 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--overhead-frames", type=int, default=30, help="720p frames for the overhead run; 0: skip")
    parser.add_argument("--clip", help="source clip (default: bigbuckbunny.mp4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "RESOLUTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 3:
        parser.error("--frames must be at least 3 (one warm-up pair, then timed pairs)")

    if args.child:
        print(json.dumps(measure(*args.child, args)))
        return 0

    rows = []
    for resolution in args.resolutions.split(","):
        if resolution not in RESOLUTIONS:
            parser.error(f"unknown resolution {resolution}; choose from {', '.join(RESOLUTIONS)}")
        for engine in args.engines.split(","):
            rows.append(run_child(engine, resolution, args))
            print(f"  {engine} {resolution}: done", file=sys.stderr, flush=True)
    print(table(rows))
    threads = next((row["threads"] for row in rows if row.get("engine") == "rife" and "threads" in row), "?")
    print(f"\n{args.frames - 2} timed pairs per cell after one warm-up pair; batch {args.batch_size}; "
          f"{os.cpu_count()} CPUs visible; torch threads for rife: {threads}")
    result: dict = {"rows": rows}
    if args.overhead_frames:
        ratio = overhead(args)
        result["overhead"] = ratio
        if "error" in ratio:
            print(f"\noverhead at 720p: not measured ({ratio['error']})")
        else:
            print(
                f"\noverhead at 720p ({ratio['frames_in']} -> {ratio['frames_out']} frames, rife on {ratio['device']}): "
                f"wall/model_s = {ratio['wall_s']:.1f}/{ratio['model_s']:.1f} s = {ratio['ratio']:.3f}; "
                f"whole process {ratio['process_s']:.1f} s = {ratio['process_ratio']:.3f} x model_s (target <= 1.20)"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
