"""Speed of each engine per resolution against a plain reference forward pass, in one command.

Each cell is measured in a fresh child process (so that its peak memory is its own): it decodes the
first ``--frames`` frames of bigbuckbunny.mp4 scaled to the resolution, loads the engine, interpolates
every consecutive pair at t=0.5 in batches of the engine's own batch size, as the pipeline calls it
(OpenVINO: one pair per stream; one warm-up batch first, not timed; whole batches only), and reports
seconds per new frame and peak RSS. The ``reference`` cell is ``benchmarks/rife_reference.ReferenceRife``: IFNet v4.25 written
as plain functions of the same weights, eager PyTorch float32, default allocator, encoder run for both
frames of each pair, as someone else's script would run it. Cells run interleaved (every cell once per
round, ``--rounds`` rounds) and medians are reported, so a busy machine hurts all columns alike.

Then the whole product: ``midframe interpolate --engine rife --device cpu`` (default settings otherwise)
on a 720p clip of ``--whole-frames`` frames, timed from outside the process (start-up, probe, decode,
model, encode, join), once per round between reference cells; reported per new frame against the
reference's 720p time, and ``wall_s / model_s`` from its ``--report``. A first untimed run converts the
model for 720p if the cache does not have it yet (once per size).

Fraction of peak: convolution FLOPs of IFNet v4.25 for one new frame at the padded size (the flow
blocks, plus one encoder pass: each frame's features are reused by the next pair) over the time, against
the CPU's measured fp32 peak (one thread's best float32 matrix multiply times the cores used).

    python benchmarks/speed.py                                   # the README tables (CPU, ~15 min quiet)
    python benchmarks/speed.py --engines rife,reference --resolutions 720p --rounds 5
    python benchmarks/gpu.py                                     # the CUDA table (needs a GPU)
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
ENGINES = ("blend", "dis", "rife", "rife-torch", "reference")


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


# --- FLOPs and peak ---------------------------------------------------------------------------------


def conv_gflop(height: int, width: int) -> tuple[float, float]:
    """Convolution GFLOP (2 per multiply-add) of IFNet v4.25 at a frame size: (flow blocks, encoder)."""
    from midframe.engine.interpolators.rife.model import BLOCK_SCALES, BLOCK_WIDTHS, pad_multiple

    pad = pad_multiple(1.0)
    h, w = -(-height // pad) * pad, -(-width // pad) * pad
    flops = 0.0
    for k, (scale, width_k) in enumerate(zip(BLOCK_SCALES, BLOCK_WIDTHS, strict=True)):
        inputs = 15 if k == 0 else 28
        half = (h // scale // 2) * (w // scale // 2)
        quarter = half // 4
        flops += half * inputs * (width_k // 2) * 9 * 2  # stride-2 conv
        flops += quarter * (width_k // 2) * width_k * 9 * 2  # stride-2 conv
        flops += 8 * quarter * width_k * width_k * 9 * 2  # residual convs
        flops += half * width_k * 52 * 4 * 2  # 4x4 stride-2 transposed conv: 4 taps per output pixel
    half = (h // 2) * (w // 2)
    encoder = half * 3 * 16 * 9 * 2 + 2 * half * 16 * 16 * 9 * 2 + (h * w) * 16 * 4 * 4 * 2
    return flops / 1e9, encoder / 1e9


def measured_peak_gflops(threads: int) -> float:
    """One thread's best float32 2048^3 matrix multiply (GFLOP/s), times ``threads``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
        out = a @ b
        best = min(_timed(lambda: torch.mm(a, b, out=out)) for _ in range(6))
    finally:
        torch.set_num_threads(before)
    return 2 * 2048**3 / best / 1e9 * threads


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# --- one cell, in a child process ----------------------------------------------------------------------


def decode(clip: Path, frames: int, width: int, height: int):
    import numpy as np

    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(clip), "-frames:v", str(frames),
         "-vf", f"scale={width}:{height}:flags=bicubic", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def measure(engine: str, resolution: str, args: argparse.Namespace) -> dict:
    import torch

    width, height = RESOLUTIONS[resolution]
    frames = decode(source_clip(args.clip), args.frames, width, height)
    if engine == "reference":
        return measure_reference(frames, resolution)
    from midframe.config import Config, EngineConfig, resolve_paths
    from midframe.engine.interpolators import FramePair, create_interpolator

    name, _, backend = engine.partition("-")
    settings = EngineConfig(name=name, device=args.device, backend=backend or "auto")
    started = time.perf_counter()
    interpolator = create_interpolator(settings, models_dir=resolve_paths(Config()).models_dir)
    interpolator.load()
    pairs = [FramePair(i, frames[i], frames[i + 1], 0.5) for i in range(len(frames) - 1)]
    cuda = str(interpolator.device).startswith("cuda")
    batch = max(1, min(int(getattr(interpolator, "batch_size", 1) or 1), len(pairs) // 2))
    try:
        interpolator.interpolate(pairs[:batch])  # warm-up; for OpenVINO also the conversion, if not cached
        load_s = time.perf_counter() - started
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timed = pairs[batch : batch + (len(pairs) - batch) // batch * batch]
        started = time.perf_counter()
        for start in range(0, len(timed), batch):
            interpolator.interpolate(timed[start : start + batch])
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    finally:
        interpolator.close()
    return {
        "engine": engine, "resolution": resolution, "device": str(interpolator.device),
        "backend": getattr(interpolator, "backend", "-"), "frames": len(timed), "s_per_frame": seconds / len(timed),
        "load_s": load_s, "peak_rss_mib": peak_rss_mib(), "cuda_peak_mib": cuda_peak,
        "threads": int(getattr(interpolator, "threads", 0) or 0), "batch": batch,
    }


def measure_reference(frames, resolution: str) -> dict:
    import torch

    from benchmarks.rife_reference import ReferenceRife
    from midframe.config import Config, resolve_paths
    from midframe.engine.interpolators.rife.weights import load_state_dict

    model = ReferenceRife(load_state_dict(resolve_paths(Config()).models_dir))
    with torch.inference_mode():
        model(frames[0], frames[1])
        started = time.perf_counter()
        for i in range(1, len(frames) - 1):
            model(frames[i], frames[i + 1])
        seconds = time.perf_counter() - started
    count = len(frames) - 2
    return {"engine": "reference", "resolution": resolution, "device": "cpu", "backend": "torch eager",
            "frames": count, "s_per_frame": seconds / count, "load_s": 0.0, "peak_rss_mib": peak_rss_mib(),
            "cuda_peak_mib": None, "threads": torch.get_num_threads()}


def run_child(engine: str, resolution: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, resolution,
               "--frames", str(args.frames), "--device", args.device]
    if args.clip:
        command += ["--clip", args.clip]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return {"engine": engine, "resolution": resolution, "error": last}
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the whole product --------------------------------------------------------------------------------


def make_clip(args: argparse.Namespace, folder: Path) -> Path:
    clip = folder / "clip720.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source_clip(args.clip)), "-frames:v",
         str(args.whole_frames), "-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "fast", "-crf", "16",
         "-an", str(clip)],
        check=True,
    )
    return clip


def whole_process(clip: Path, folder: Path, args: argparse.Namespace, tag: str) -> dict:
    report = folder / f"report-{tag}.json"
    out = folder / f"out-{tag}.mp4"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--engine", "rife",
               "--device", "cpu", "--report", str(report), "-q"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    process_s = time.perf_counter() - started
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1]}
    data = json.loads(report.read_text())
    made = max(1, data["frames_interpolated"])
    return {"process_s": process_s, "wall_s": data["wall_s"], "model_s": data["model_s"], "new_frames": made,
            "frames_out": data["frames_out"], "s_per_new_frame": process_s / made,
            "backend": data.get("extra", {}).get("backend"), "threads": data.get("extra", {}).get("threads"),
            "batch": data.get("extra", {}).get("batch_size"),
            "decode_wait_s": data.get("extra", {}).get("decode_wait_s"),
            "encode_wait_s": data.get("extra", {}).get("encode_wait_s")}


# --- tables ---------------------------------------------------------------------------------------------


def median(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if key in row and row[key] is not None]
    return statistics.median(values) if values else None


def cell_table(cells: dict[tuple[str, str], list[dict]], peak: float) -> str:
    lines = [
        "| engine | backend | resolution | s / new frame | x reference | fp32 peak reached | peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for (engine, resolution), rows in cells.items():
        good = [row for row in rows if "error" not in row]
        if not good:
            lines.append(f"| {engine} | - | {resolution} | - | - | - | {rows[0].get('error', '')[:60]} |")
            continue
        seconds = median(good, "s_per_frame")
        reference = median([r for r in cells.get(("reference", resolution), []) if "error" not in r], "s_per_frame")
        ratio = f"{seconds / reference:.2f}" if reference and engine != "reference" else ("1" if engine == "reference" else "-")
        fraction = "-"
        if engine.startswith("rife") or engine == "reference":
            blocks, encoder = conv_gflop(*reversed(RESOLUTIONS[resolution]))
            work = blocks + encoder * (2 if engine == "reference" else 1)
            fraction = f"{work / seconds / peak:.0%}"
        backend = good[0]["backend"] + (f", batch {good[0]['batch']}" if good[0].get("batch", 1) > 1 else "")
        lines.append(f"| {engine} | {backend} | {resolution} | {seconds:.3f} | {ratio} | {fraction} "
                     f"| {median(good, 'peak_rss_mib'):.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"of {', '.join(ENGINES)}")
    parser.add_argument("--resolutions", default="360p,720p,1080p")
    parser.add_argument("--frames", type=int, default=7,
                        help="source frames per cell (timed pairs: frames - 1 - one batch, whole batches)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--whole-frames", type=int, default=100, help="720p frames for the whole-process run; 0: skip")
    parser.add_argument("--peak-gflops", type=float, help="the CPU's fp32 peak, if known (default: measured)")
    parser.add_argument("--clip", help="source clip (default: bigbuckbunny.mp4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "RESOLUTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames < 3:
        parser.error("--frames must be at least 3 (a warm-up batch, then timed pairs)")
    if args.child:
        print(json.dumps(measure(*args.child, args)))
        return 0

    engines = [e for e in args.engines.split(",") if e]
    resolutions = [r for r in args.resolutions.split(",") if r]
    for name in engines:
        if name not in ENGINES:
            parser.error(f"unknown engine {name}; choose from {', '.join(ENGINES)}")
    for resolution in resolutions:
        if resolution not in RESOLUTIONS:
            parser.error(f"unknown resolution {resolution}; choose from {', '.join(RESOLUTIONS)}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    peak = args.peak_gflops or measured_peak_gflops(cores)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    cells: dict[tuple[str, str], list[dict]] = {(e, r): [] for r in resolutions for e in engines}
    whole: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="midframe-speed-") as tmp:
        folder = Path(tmp)
        clip = make_clip(args, folder) if args.whole_frames else None
        if clip is not None:
            whole_process(clip, folder, args, "warm-up")  # converts for 720p once, if not cached yet
        for round_no in range(args.rounds):
            for key in cells:
                cells[key].append(run_child(*key, args))
                print(f"  round {round_no + 1}: {key[0]} {key[1]} done", file=sys.stderr, flush=True)
            if clip is not None:
                whole.append(whole_process(clip, folder, args, str(round_no)))
                if ("reference", "720p") not in cells:
                    cells[("reference", "720p")] = []
                cells[("reference", "720p")].append(run_child("reference", "720p", args))
                print(f"  round {round_no + 1}: whole process done", file=sys.stderr, flush=True)
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(cell_table(cells, peak))
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.frames - 2} to {args.frames - 3} timed pairs per cell "
          "after a warm-up batch (batches: the engine's own size); "
          f"{cores} cores; fp32 peak {peak:.0f} GFLOP/s "
          f"({'given' if args.peak_gflops else f'measured: one thread sgemm x {cores}'}); "
          f"load average before {load_before and f'{load_before[0]:.2f}'}, after {load_after and f'{load_after[0]:.2f}'}")
    result: dict = {"cells": {f"{e} {r}": rows for (e, r), rows in cells.items()}, "peak_gflops": peak,
                    "whole": whole, "load": [load_before, load_after]}
    good = [row for row in whole if "error" not in row]
    if good:
        reference = median([r for r in cells[("reference", "720p")] if "error" not in r], "s_per_frame")
        per_frame = median(good, "s_per_new_frame")
        ratio = median([{"r": row["wall_s"] / row["model_s"]} for row in good], "r")
        print(
            f"\nwhole process, `midframe interpolate --engine rife --device cpu` at 720p ({good[0]['new_frames']} new "
            f"frames, backend {good[0]['backend']}, batch {good[0].get('batch')}, threads {good[0]['threads']}): {per_frame:.3f} s per new frame = "
            f"{per_frame / reference:.2f} x the reference's {reference:.3f} s (target <= 0.45); "
            f"wall_s / model_s = {ratio:.3f} (target <= 1.10)"
        )
    elif whole:
        print(f"\nwhole process: not measured ({whole[0]['error']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
