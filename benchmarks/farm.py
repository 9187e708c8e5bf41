"""The render farm on one machine: speed-up with 1 and 2 worker processes, the per-segment overhead,
and from those a projection for N GPU workers on a 1 Gbit/s share.

It makes a long clip (ffmpeg's test pattern), converts it once in this process (the single-machine
pipeline), then starts a real Dask scheduler and 1, then 2, ``midframe farm worker`` processes
(``--nthreads 1`` each, one OpenCV/BLAS thread each) and converts it through the farm coordinator.
Every output is checked frame for frame against the single-machine one (lossless ffv1). Per segment
it reports what the farm adds to the engine's own work: the scheduler's round trip (an empty task),
the decode seek to the segment's first frame, the encoder's finish (last frame in to file synced and
renamed) and the coordinator's join. The projection uses those figures with an engine rate you give
(``--gpu-fps``; not measured here, this machine has no GPU) and the bytes each segment moves over the
share. Prints markdown; note the load average beside the figures (the machine may be shared).

    python benchmarks/farm.py                         # 60 s of 320x180, dis, 5 s segments
    python benchmarks/farm.py --seconds 120 --engine blend --gpu-fps 90 --share-mbit 1000
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _one_thread() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def _frames_md5(path: Path, ffmpeg: str) -> str:
    import subprocess

    done = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-map", "0:v", "-f", "md5", "-"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def seek_cost(clip: Path, ffmpeg, *, at: int) -> dict[str, float]:
    """Seconds to the first frame decoding from frame 0 and from frame ``at`` (a segment's start)."""
    from midframe.engine.probe import probe
    from midframe.engine.reader import FrameReader

    info = probe(clip, ffmpeg=ffmpeg)
    result = {}
    for name, start in (("from_start", 0), ("seek", at)):
        began = time.perf_counter()
        with FrameReader(info, ffmpeg=ffmpeg, start=start) as reader:
            next(iter(reader))
        result[name] = time.perf_counter() - began
    return result


def scheduler_round_trip(address: str, *, tasks: int = 20) -> float:
    """Median seconds for an empty task: submit, schedule on a worker, run, result back."""
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as client:
        times = []
        for number in range(tasks):
            began = time.perf_counter()
            client.submit(abs, -number, pure=False).result()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def farm_run(cluster, clip: Path, out: Path, *, settings, ffmpeg) -> tuple[float, object]:
    from midframe.engine.interpolators import create_interpolator
    from midframe.engine.pipeline import convert
    from midframe.farm.coordinator import FarmCoordinator

    coordinator = FarmCoordinator(cluster.address, resources={}, fallback_local=False, convert=convert, ffmpeg=ffmpeg)
    coordinator.start()
    try:
        deadline = time.monotonic() + 60
        while coordinator.state()["workers"] != len(cluster.workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        began = time.perf_counter()
        report = coordinator.convert(clip, out, work_dir=out.with_suffix(".work"), engine=settings.engine,
                                     output=settings.output, resume=settings.resume,
                                     make_interpolator=lambda s: create_interpolator(s, models_dir=out.parent),
                                     ffmpeg=ffmpeg)
        return time.perf_counter() - began, report
    finally:
        coordinator.close()


def projection(*, segments: int, frames_per_segment: int, overhead_s: float, join_s_per_mb: float,
               source_mb: float, output_mb: float, gpu_fps: float, share_mbit: float,
               workers: list[int]) -> list[dict[str, float]]:
    """Wall time for N workers: the segments' compute spread over N, but never faster than the share
    moves their bytes (each worker reads its source range and writes its segment; the join reads the
    segments and writes the output), then the join on the coordinator."""
    share_mb_s = share_mbit / 8
    per_segment = frames_per_segment / gpu_fps + overhead_s
    traffic_mb = source_mb + 3 * output_mb
    join_s = max(output_mb * join_s_per_mb, 2 * output_mb / share_mb_s)
    rows = []
    for n in workers:
        compute = math.ceil(segments / n) * per_segment
        share = traffic_mb / share_mb_s
        wall = max(compute, share) + join_s
        rows.append({"workers": n, "compute_s": compute, "share_s": share, "join_s": join_s, "wall_s": wall,
                     "speedup": (segments * per_segment + join_s) / wall})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--engine", default="dis", choices=["dis", "blend", "rife"])
    parser.add_argument("--segment-seconds", type=float, default=5.0)
    parser.add_argument("--gpu-fps", type=float, default=60.0,
                        help="output frames/s of one GPU worker for the projection (an assumption)")
    parser.add_argument("--gpu-source-mbit", type=float, default=8.0, help="projected source bitrate")
    parser.add_argument("--gpu-output-mbit", type=float, default=16.0, help="projected output bitrate")
    parser.add_argument("--film-minutes", type=float, default=90.0, help="projected film length")
    parser.add_argument("--share-mbit", type=float, default=1000.0)
    args = parser.parse_args()
    _one_thread()

    from midframe.config import ResumeConfig, config_from_mapping
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator
    from midframe.engine.pipeline import convert
    from tests.farm_cluster import Cluster
    from tests.media import make_clip

    ffmpeg = find_ffmpeg()
    settings = config_from_mapping({"engine": {"name": args.engine, "device": "cpu", "factor": 2},
                                    "output": {"codec": "ffv1", "pix_fmt": "gbrp"},
                                    "resume": {"segment_seconds": args.segment_seconds}})
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    with tempfile.TemporaryDirectory(prefix="midframe-farm-bench-") as tmp:
        folder = Path(tmp)
        clip = make_clip(folder / "long.mkv", seconds=args.seconds, size=args.size, audio=True,
                         extra_output_args=["-g", "50"])
        local = folder / "local.mkv"
        began = time.perf_counter()
        local_report = convert(clip, local, work_dir=folder / "local.work", engine=settings.engine,
                               output=settings.output, resume=settings.resume,
                               make_interpolator=lambda s: create_interpolator(s, models_dir=folder), ffmpeg=ffmpeg)
        local_s = time.perf_counter() - began
        reference = _frames_md5(local, ffmpeg.ffmpeg)
        runs = {}
        cluster = Cluster(folder / "cluster", delay_s=0.0)
        cluster.root.mkdir()
        try:
            cluster.start_scheduler()
            worker_config = {"engine": {"name": args.engine, "device": "cpu"}, "logging": {"level": "WARNING"}}
            for count in (1, 2):
                while len(cluster.workers) < count:
                    cluster.start_worker(worker_config)
                out = folder / f"farm{count}.mkv"
                wall, report = farm_run(cluster, clip, out, settings=settings, ffmpeg=ffmpeg)
                assert _frames_md5(out, ffmpeg.ffmpeg) == reference, f"the {count}-worker output differs"
                runs[count] = (wall, report)
            round_trip = scheduler_round_trip(cluster.address)
        finally:
            cluster.stop()
        segment_frames = int(local_report.frames_out / local_report.extra["segments"])
        seek = seek_cost(clip, ffmpeg, at=segment_frames // 2 * 3)  # a segment start in the middle
        output_mb = local.stat().st_size / 1e6
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3

    one, two = runs[1][0], runs[2][0]
    records = runs[2][1].extra["farm_segments"]
    encode_finish = statistics.median(r["encode_finish_s"] for r in records)
    first_frame = statistics.median(r["first_frame_s"] for r in records)
    per_segment = statistics.median(r["total_s"] for r in records)
    join_s = runs[2][1].extra["join_s"]
    print(f"## Farm on this machine: {args.seconds:.0f} s of {args.size}, {args.engine}, factor 2, "
          f"{len(records)} segments of {segment_frames} output frames, ffv1")
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs\n")
    print("| run | wall s | speed-up vs 1 worker | output |")
    print("|---|---:|---:|---|")
    print(f"| single machine (this process) | {local_s:.1f} | {one / local_s:.2f} | reference |")
    print(f"| farm, 1 worker | {one:.1f} | 1.00 | identical |")
    print(f"| farm, 2 workers | {two:.1f} | {one / two:.2f} | identical |")
    print("\n| per segment | seconds |")
    print("|---|---:|")
    print(f"| a segment on a worker (median) | {per_segment:.3f} |")
    print(f"| scheduler round trip (empty task, median) | {round_trip:.4f} |")
    print(f"| decoder's first frame: from frame 0 / from a segment start (seek) | "
          f"{seek['from_start']:.3f} / {seek['seek']:.3f} |")
    print(f"| first output frame reaches the encoder (seek, first batch; median) | {first_frame:.3f} |")
    print(f"| encoder finish: last frame in to file synced and renamed (median) | {encode_finish:.3f} |")
    print(f"| join on the coordinator (whole job, {output_mb:.1f} MB) | {join_s:.3f} |")

    overhead = round_trip + max(0.0, seek["seek"] - seek["from_start"]) + encode_finish
    fps_out = float(settings.engine.factor) * 25
    film_frames = int(args.film_minutes * 60 * fps_out)
    film_segment_s = ResumeConfig().segment_seconds  # the daemon's default segment length
    segments = math.ceil(film_frames / (film_segment_s * fps_out))
    rows = projection(segments=segments, frames_per_segment=int(film_segment_s * fps_out),
                      overhead_s=overhead, join_s_per_mb=join_s / max(output_mb, 1e-6),
                      source_mb=args.gpu_source_mbit / 8 * args.film_minutes * 60,
                      output_mb=args.gpu_output_mbit / 8 * args.film_minutes * 60,
                      gpu_fps=args.gpu_fps, share_mbit=args.share_mbit, workers=[1, 2, 4, 8, 16])
    print(f"\n## Projection: a {args.film_minutes:.0f} min film at {fps_out:.0f} fps out, {segments} segments of "
          f"{film_segment_s:.0f} s, "
          f"GPU workers at {args.gpu_fps:.0f} output fps each (assumed), {args.gpu_source_mbit:.0f} Mbit/s in, "
          f"{args.gpu_output_mbit:.0f} Mbit/s out, a {args.share_mbit:.0f} Mbit/s share, "
          f"{overhead:.3f} s overhead per segment (measured above)\n")
    print("| GPU workers | compute s | share s | join s | wall min | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['workers']} | {row['compute_s']:.0f} | {row['share_s']:.0f} | {row['join_s']:.0f} | "
              f"{row['wall_s'] / 60:.1f} | {row['speedup']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
