"""Whole-process speed of short 720p conversions, against the model's own time and against the baselines.

Three figures, each from whole processes timed from outside, in one run, interleaved in rounds
(medians shown, so a busy machine hurts every column alike):

* ``midframe interpolate --engine rife --device cpu`` (default settings: x264 medium, crf 18, audio
  copied) on the first ``--rife-frames`` frames of Big Buck Bunny (1280x720, its 6-channel AAC kept),
  with the OpenVINO graph for 720p cached ("warm"): its time over the ``model_s`` of its own
  ``--report`` (seconds inside the interpolator), and over a plain PyTorch forward pass of the same
  weights (``benchmarks/rife_reference.py``: eager, float32, encoder run for both frames of each pair)
  making as many new frames from the same source frames (its seconds per frame, measured in a child
  process on ``--reference-frames`` of them after a warm-up pair, times the new frames midframe made).
* the same on its first run: an empty OpenVINO cache, so the graph conversion for 720p is in it (once).
* ``midframe interpolate --engine dis`` on ``--dis-frames`` frames against ffmpeg's ``minterpolate``
  with the settings of the README's quality tables (``mi_mode=mci:mc_mode=aobmc:me_mode=bidir``) making
  the same 2x output with the same encoder settings and the audio copied, one ffmpeg process.

    python benchmarks/whole_process.py                 # the README table (about 10 min on a quiet machine)
    python benchmarks/whole_process.py --rounds 1 --no-first-run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.speed import ffmpeg_exe, source_clip  # noqa: E402

MINTERPOLATE = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir"


def cut(source: Path, frames: int, target: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-map", "0:v:0", "-map", "0:a?",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "fast", "-crf", "16", "-c:a", "copy",
                    str(target)], check=True)
    return target


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def midframe(clip: Path, folder: Path, engine: str, tag: str, *, env: dict[str, str] | None = None) -> dict:
    out = folder / f"{engine}-{tag}.mp4"
    report = folder / f"{engine}-{tag}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--engine", engine,
               "--device", "cpu", "--report", str(report), "-q"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env or env_with())
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    data = json.loads(report.read_text())
    extra = data.get("extra", {})
    return {"process_s": seconds, "wall_s": data["wall_s"], "model_s": data["model_s"],
            "new_frames": data["frames_interpolated"], "frames_out": data["frames_out"],
            "join_s": extra.get("join_s"), "verify_s": extra.get("verify_s"),
            "encode_finish_s": extra.get("encode_finish_s")}


def reference(frames: int) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--child", "reference", "720p",
                           "--frames", str(frames), "--device", "cpu"], cwd=ROOT, capture_output=True, text=True,
                          env=env_with())
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def minterpolate(clip: Path, folder: Path, tag: str) -> dict:
    out = folder / f"minterpolate-{tag}.mp4"
    command = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-map", "0:v:0", "-map", "0:a?",
               "-vf", MINTERPOLATE.format(fps=50), "-c:v", "libx264", "-preset", "medium", "-crf", "18",
               "-pix_fmt", "yuv420p", "-c:a", "copy", str(out)]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return {"process_s": time.perf_counter() - started}


def first_run_env(folder: Path) -> dict[str, str]:
    """An empty cache beside the real weights: the run converts the graph for the size, as a first run does."""
    from midframe.config import Config, resolve_paths

    cache = folder / "first-run-cache"
    (cache / "midframe").mkdir(parents=True, exist_ok=True)
    models = cache / "midframe" / "models"
    if not models.exists():
        models.symlink_to(resolve_paths(Config()).models_dir)
    return env_with(XDG_CACHE_HOME=str(cache))


def med(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rife-frames", type=int, default=30)
    parser.add_argument("--dis-frames", type=int, default=40)
    parser.add_argument("--reference-frames", type=int, default=8, help="source frames of the reference cell")
    parser.add_argument("--no-first-run", action="store_true", help="skip the run with an empty graph cache")
    parser.add_argument("--clip", help="source (default: bigbuckbunny.mp4)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows: dict[str, list[dict]] = {"rife": [], "reference": [], "dis": [], "minterpolate": [], "rife-first": []}
    with tempfile.TemporaryDirectory(prefix="midframe-whole-") as tmp:
        folder = Path(tmp)
        source = source_clip(args.clip)
        rife_clip = cut(source, args.rife_frames, folder / "rife-clip.mp4")
        dis_clip = cut(source, args.dis_frames, folder / "dis-clip.mp4")
        midframe(rife_clip, folder, "rife", "warm-up")  # the 720p graph into the cache, if not there yet
        for number in range(args.rounds):
            tag = str(number)
            rows["rife"].append(midframe(rife_clip, folder, "rife", tag))
            rows["reference"].append(reference(args.reference_frames))
            rows["dis"].append(midframe(dis_clip, folder, "dis", tag))
            rows["minterpolate"].append(minterpolate(dis_clip, folder, tag))
            if number == 0 and not args.no_first_run:
                rows["rife-first"].append(midframe(rife_clip, folder, "rife", "first", env=first_run_env(folder)))
            print(f"  round {number + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    errors = {name: row["error"] for name, found in rows.items() for row in found if "error" in row}
    if errors:
        print(f"errors: {errors}")
    good = {name: [row for row in found if "error" not in row] for name, found in rows.items()}
    per_ref = med(good["reference"], "s_per_frame")
    print("| run | process s | model s | process / model | new frames | x reference | x minterpolate |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("rife", "rife-first"):
        if not good[name]:
            continue
        process, model = med(good[name], "process_s"), med(good[name], "model_s")
        ratio = med([{"r": r["process_s"] / r["model_s"]} for r in good[name]], "r")
        made = good[name][0]["new_frames"]
        versus = f"{process / (per_ref * made):.2f}" if per_ref else "-"
        label = "rife, graph cached" if name == "rife" else "rife, first run (graph converted)"
        print(f"| {label} ({args.rife_frames} frames) | {process:.2f} | {model:.2f} | {ratio:.3f} | {made} | {versus} | |")
    if per_ref:
        made = good["rife"][0]["new_frames"] if good["rife"] else 0
        print(f"| reference forward, same frames | {per_ref * made:.2f} | | | {made} | 1 | |")
    if good["dis"] and good["minterpolate"]:
        dis, mi = med(good["dis"], "process_s"), med(good["minterpolate"], "process_s")
        ratio = med([{"r": d["process_s"] / m["process_s"]} for d, m in zip(good["dis"], good["minterpolate"],
                                                                             strict=False)], "r")
        print(f"| dis ({args.dis_frames} frames) | {dis:.2f} | {med(good['dis'], 'model_s'):.2f} | "
              f"{dis / med(good['dis'], 'model_s'):.3f} | {good['dis'][0]['new_frames']} | | {ratio:.3f} |")
        print(f"| ffmpeg minterpolate (mci, aobmc, bidir) | {mi:.2f} | | | | | 1 |")
    print(f"\nmedians of {args.rounds} interleaved rounds (first run: one); reference {per_ref and f'{per_ref:.3f}'} "
          f"s per frame; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": [load_before, load_after]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
