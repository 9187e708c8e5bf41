"""The CUDA table in one command: RIFE at 1080p, 2x, fp16, eager against the fast path, then end to end.

Not run yet: no GPU was lent to the sessions that wrote it; the README's GPU table says "not measured".
On a machine whose torch sees CUDA:

    python benchmarks/gpu.py                    # pytest -m cuda, then the table
    python benchmarks/gpu.py --skip-tests --frames 200

1. ``pytest -m cuda`` (the CUDA tests; they skip where torch sees no GPU).
2. Model speed on 1080p frames of bigbuckbunny.mp4, new frames per second (each new frame: one encoder
   pass for the incoming frame, reused by the next pair, and one flow pass at t=0.5), for each path:
   ``eager`` (fp16, contiguous, no compilation) and ``fast`` (fp16, channels-last, ``torch.compile``
   with CUDA graphs, uint8 uploads from pinned memory on a second stream), batch sizes 1 and auto, with
   ``torch.cuda.max_memory_allocated`` as peak memory. The first calls of the fast path compile (minutes);
   they are warm-up, not timed.
3. End to end: ``midframe interpolate --engine rife --device cuda`` on a 1080p clip of ``--frames``
   frames (decode, scenes, model, x264 encode, join), output frames per second of wall time.

Targets from issue 11 (an H200): at least 400 model fps and 150 end-to-end fps at 1080p.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed import decode, ffmpeg_exe, source_clip  # noqa: E402


def model_speed(frames, *, fast: bool, batch: int) -> dict:
    import torch

    from midframe.config import Config, resolve_paths
    from midframe.engine.interpolators.rife.model import IFNet, pad_multiple
    from midframe.engine.interpolators.rife.torch_net import TorchNetwork
    from midframe.engine.interpolators.rife.weights import load_state_dict

    model = IFNet()
    model.load_state_dict(load_state_dict(resolve_paths(Config()).models_dir))
    model.eval().requires_grad_(False)
    device = torch.device("cuda", 0)
    network = TorchNetwork(model, device=device, dtype=torch.float16, model_scale=1.0, pad_multiple=pad_multiple(1.0),
                           fast=fast)

    def run(start: int) -> None:
        group = [frames[(start + k) % len(frames)] for k in range(batch + 1)]
        prepared = network.prepare(group)
        network.interpolate(prepared[:-1], prepared[1:], [0.5] * batch, like=group[0])

    with torch.inference_mode():
        for k in range(3):  # warm-up: compilation and CUDA graph capture happen here
            run(k)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        rounds = max(3, 60 // batch)
        started = time.perf_counter()
        for k in range(rounds):
            run(k * batch)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return {"path": "fast" if fast else "eager", "compiled": network.compiled, "batch": batch,
            "model_fps": rounds * batch / seconds, "peak_mib": torch.cuda.max_memory_allocated() / 2**20}


def end_to_end(frame_count: int, folder: Path, clip_source: str | None) -> dict:
    clip = folder / "clip1080.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source_clip(clip_source)), "-frames:v",
         str(frame_count), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "fast", "-crf", "16", "-an", str(clip)],
        check=True,
    )
    report = folder / "report.json"
    command = [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(folder / "out.mp4"),
               "--engine", "rife", "--device", "cuda", "--report", str(report), "-q"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    process_s = time.perf_counter() - started
    data = json.loads(report.read_text())
    return {"frames_out": data["frames_out"], "process_s": process_s, "wall_s": data["wall_s"],
            "model_s": data["model_s"], "fps": data["frames_out"] / process_s, "extra": data.get("extra", {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240, help="1080p frames for the end-to-end run")
    parser.add_argument("--clip", help="source clip (default: bigbuckbunny.mp4)")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("torch sees no CUDA device: nothing measured", file=sys.stderr)
        return 2
    if not args.skip_tests:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"], cwd=ROOT,
                       check=False)
    frames = list(decode(source_clip(args.clip), 16, 1920, 1080))
    from midframe.engine.interpolators.rife.torch_net import cuda_batch_size

    auto = cuda_batch_size(torch.cuda.mem_get_info()[0])
    rows = [model_speed(frames, fast=fast, batch=batch) for fast in (False, True) for batch in sorted({1, auto})]
    with tempfile.TemporaryDirectory(prefix="midframe-gpu-") as tmp:
        whole = end_to_end(args.frames, Path(tmp), args.clip)
    name = torch.cuda.get_device_name(0)
    print("| path | batch | model fps (1080p, fp16) | peak GPU memory (MiB) |")
    print("|---|---:|---:|---:|")
    for row in rows:
        label = row["path"] + ("" if row["path"] == "eager" or row["compiled"] else " (compile unavailable)")
        print(f"| {label} | {row['batch']} | {row['model_fps']:.1f} | {row['peak_mib']:.0f} |")
    print(f"\nend to end (`midframe interpolate --engine rife --device cuda`, {args.frames} frames of 1080p in, "
          f"{whole['frames_out']} out): {whole['fps']:.1f} output fps (wall {whole['process_s']:.1f} s, "
          f"model {whole['model_s']:.1f} s) on {name}, torch {torch.__version__}")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "model": rows, "end_to_end": whole}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
