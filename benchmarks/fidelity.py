"""Fidelity: what each kind of file comes out as, and how close its kept frames stay to the source.

For each case (real footage, and clips generated here in the formats people drop in):

1. ``python3 -m midframe interpolate SRC -o OUT --factor 2 --engine blend`` with default settings,
   OUT in the source's container (the engine does not matter: only kept frames are scored);
2. a plain re-encode of SRC with the same encoder settings (``ffmpeg -i SRC -c:v <codec> -crf 18
   ...``, the output's pixel format), which never leaves YUV: the bound to meet;
3. the kept frames (the output frame at each source frame's time: frame 2k of a constant-rate
   source) and the re-encode's frames are decoded, like the source, with the conversion the
   source's tags call for (matrix, range; accurate rounding, full chroma interpolation), and
   compared with the source in RGB: the mean shift per channel (output minus source, in 1/255)
   and PSNR (over all pixels and channels; 8-bit peak, 16-bit for deeper sources). The bound:
   PSNR at most 0.3 dB below the re-encode's, and no channel's shift more than 0.15/255 further
   from zero than the re-encode's.

It prints one markdown table: what goes in, what comes out (ffprobe: codec, tag, pixel format,
rate, frames, audio, HDR10 metadata), and the figures of midframe and of the plain re-encode.

    python3 benchmarks/fidelity.py                   # every case (a few minutes on 2 cores)
    python3 benchmarks/fidelity.py --cases bbb,webm  # some of them
    python3 benchmarks/fidelity.py --json out.json   # the figures as JSON too
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from midframe.engine.writer import EncodeSpec  # noqa: E402
from tests.media import exact_rgb_filter, ffmpeg_exe, ffprobe_exe  # noqa: E402

HDR10_X265 = ("hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
              ":max-cll=1000,400")


# --- measuring -------------------------------------------------------------------------------------


def ffprobe(path: Path, *args: str) -> dict:
    done = subprocess.run([ffprobe_exe() or "ffprobe", "-v", "error", *args, "-of", "json", str(path)],
                          check=True, capture_output=True)
    return json.loads(done.stdout)


def video_stream(path: Path) -> dict:
    return next(s for s in ffprobe(path, "-show_streams")["streams"] if s["codec_type"] == "video")


def frame_times(path: Path) -> list[Fraction]:
    """Presentation time of every video frame, from the first one, in seconds (exact)."""
    video = video_stream(path)
    base = Fraction(video["time_base"])
    done = subprocess.run([ffprobe_exe() or "ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "packet=pts,dts,flags", "-of", "csv=p=0", str(path)], check=True, capture_output=True)
    stamps = []
    for line in done.stdout.decode().split():
        pts, dts, flags = (line.split(",") + ["", "", ""])[:3]
        if "D" in flags:
            continue
        stamp = pts if pts not in ("", "N/A") else dts
        if stamp not in ("", "N/A"):
            stamps.append(int(stamp))
    stamps.sort()
    return [(stamp - stamps[0]) * base for stamp in stamps]


def decode(path: Path, *, like: dict, deep: bool, frames: int | None = None) -> np.ndarray:
    """Frames of ``path`` as RGB, converted the way the source ``like`` (its ffprobe stream) calls for."""
    video = video_stream(path)
    pix_fmt = "rgb48le" if deep else "rgb24"
    tags = {**video, **{key: like[key] for key in ("color_space", "color_range") if key in like}}
    limit = ["-frames:v", str(frames)] if frames else []
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", *limit,
         "-vf", exact_rgb_filter(tags, pix_fmt), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True, capture_output=True,
    ).stdout
    dtype = np.uint16 if deep else np.uint8
    return np.frombuffer(raw, dtype).reshape(-1, int(video["height"]), int(video["width"]), 3)


@dataclass(frozen=True)
class Closeness:
    psnr: float  # dB
    shift: tuple[float, float, float]  # mean (output - source) per channel, in 1/255

    def brief(self) -> str:
        return f"{self.psnr:.2f} dB, shift {'/'.join(f'{value:+.2f}' for value in self.shift)}"


def closeness(output: np.ndarray, source: np.ndarray, *, deep: bool) -> Closeness:
    a = output.astype(np.float64)
    b = source.astype(np.float64)
    peak = 65535.0 if deep else 255.0
    mse = float(np.mean((a - b) ** 2))
    shift = tuple(float(v) * 255.0 / peak for v in (a - b).mean(axis=(0, 1, 2)))
    return Closeness(psnr=99.0 if mse == 0 else 10 * float(np.log10(peak**2 / mse)), shift=shift)  # type: ignore[arg-type]


def kept_indices(source: Path, output: Path) -> list[int]:
    """For each source frame, the output frame shown at its time (2k for a constant-rate source)."""
    src, out = frame_times(source), frame_times(output)
    position = {round(t * 1_000_000): i for i, t in enumerate(out)}
    found = []
    for t in src:
        key = round(t * 1_000_000)
        match = position.get(key)
        if match is None:  # rounding of the output's time base: the nearest one
            match = min(range(len(out)), key=lambda i: abs(out[i] - t))
        found.append(match)
    return found


def plain_reencode(source: Path, target: Path, *, codec: str, pix_fmt: str, crf: int = 18, preset: str = "medium",
                   frames: int | None = None) -> Path:
    """The same encoder settings as midframe's (``EncodeSpec.codec_args``), straight from the source's YUV."""
    spec = EncodeSpec(width=2, height=2, fps=Fraction(25), input_pix_fmt="rgb24", codec=codec, crf=crf, preset=preset,
                      pix_fmt=pix_fmt)
    limit = ["-frames:v", str(frames)] if frames else []
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-map", "0:v:0", "-fps_mode", "passthrough",
                    *limit, *spec.codec_args(), "-pix_fmt", pix_fmt, str(target)], check=True)
    return target


@dataclass
class Measured:
    case: str
    source: str  # what goes in
    output: str  # what comes out
    midframe: Closeness
    reencode: Closeness
    details: dict = field(default_factory=dict)

    @property
    def psnr_gap(self) -> float:
        """dB the kept frames are further from the source than the re-encode (negative: closer)."""
        return self.reencode.psnr - self.midframe.psnr

    @property
    def shift_excess(self) -> float:
        """How much further from zero the kept frames' mean shift is than the re-encode's, in the
        worst channel (1/255; negative: closer)."""
        return max(abs(a) - abs(b) for a, b in zip(self.midframe.shift, self.reencode.shift))


def describe(path: Path) -> dict:
    """What ffprobe says a file holds, in a few words and as figures."""
    info = ffprobe(path, "-show_streams", "-show_format")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = [s["codec_name"] for s in info["streams"] if s["codec_type"] == "audio"]
    packets = len(frame_times(path))
    rate = Fraction(video["r_frame_rate"])
    first = ffprobe(path, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames").get("frames") or [{}]
    hdr10 = sorted(item["side_data_type"].split()[0] for item in first[0].get("side_data_list", [])
                   if item.get("side_data_type", "").startswith(("Mastering", "Content light")))
    tag = video.get("codec_tag_string", "")
    words = [f".{path.suffix.lstrip('.')}", video["codec_name"] + (f" ({tag})" if tag == "hvc1" else ""), video["pix_fmt"]]
    transfer = video.get("color_transfer")
    if transfer and transfer != "unknown":
        words.append(f"{video.get('color_primaries')}/{transfer}/{video.get('color_space')}")
    elif video.get("color_space") not in (None, "unknown"):
        words.append(video["color_space"])
    if video.get("color_range") == "pc" or video["pix_fmt"].startswith("yuvj"):
        words.append("full range")
    if hdr10:
        words.append("HDR10 " + "+".join(hdr10))
    words.append(f"{rate.numerator}/{rate.denominator} fps" if rate.denominator != 1 else f"{rate.numerator} fps")
    words.append(f"{packets} frames")
    words.append("+".join(audio) if audio else "no audio")
    return {"text": ", ".join(words), "codec": video["codec_name"], "pix_fmt": video["pix_fmt"], "tag": tag,
            "rate": str(rate), "frames": packets, "audio": audio, "hdr10": hdr10, "container": path.suffix.lstrip(".")}


def measure(case: str, source: Path, workdir: Path, *, frames: int | None = None,
            run_midframe: Callable[[Path, Path], Path] | None = None) -> Measured:
    """One case: midframe's output and a plain re-encode, each compared with the source."""
    output = workdir / f"{case}.out{source.suffix}"
    output.unlink(missing_ok=True)
    made = (run_midframe or through_cli)(source, output)
    out = describe(made)
    src = video_stream(source)
    deep = int(src.get("bits_per_raw_sample") or 8) > 8 or "10" in src["pix_fmt"] or "12" in src["pix_fmt"]
    original = decode(source, like=src, deep=deep, frames=frames)
    count = len(original)
    kept = kept_indices(source, made)[:count]
    produced = decode(made, like=src, deep=deep, frames=max(kept) + 1)[kept]
    report = json.loads(made.with_suffix(".json").read_text()) if made.with_suffix(".json").exists() else {}
    codec = report.get("extra", {}).get("codec") or {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9",
                                                     "av1": "libsvtav1"}[out["codec"]]
    plain = plain_reencode(source, workdir / f"{case}.plain.mkv", codec=codec, pix_fmt=out["pix_fmt"], frames=count)
    again = decode(plain, like=src, deep=deep, frames=count)
    return Measured(case=case, source=describe(source)["text"], output=out["text"],
                    midframe=closeness(produced, original, deep=deep), reencode=closeness(again, original, deep=deep),
                    details={"output": out, "report": report})


def through_cli(source: Path, output: Path) -> Path:
    """``midframe interpolate`` with default settings (the engine aside); the file it wrote."""
    report = output.with_suffix(".json")
    subprocess.run([sys.executable, "-m", "midframe", "interpolate", str(source), "-o", str(output), "--factor", "2",
                    "--engine", "blend", "-q", "--report", str(report)], check=True, cwd=ROOT)
    return Path(json.loads(report.read_text())["output"])


# --- the cases ---------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def _real(seconds: float, size: str, *, tone: int | None = None) -> list[str]:
    """A slice of the real footage scaled down (lifelike colour and texture), with a tone at ``tone`` Hz
    sampling as its audio."""
    from tests import footage

    args = ["-t", str(seconds), "-i", str(footage.bigbuckbunny())]
    if tone:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={tone}:duration={seconds}", "-map", "0:v",
                 "-map", "1:a"]
    return args + ["-vf", f"scale={size}:flags=lanczos"]


def make_case(name: str, folder: Path, *, seconds: float = 2.0, size: str = "640:360") -> Path:
    """Build (or find) the source clip of case ``name`` in ``folder`` (``size``: of the tagged H.264 cases)."""
    folder.mkdir(parents=True, exist_ok=True)
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16"]
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "16"]
    cases: dict[str, tuple[str, list[str]]] = {
        "bt601": ("bt601.mp4", [*_real(seconds, size), *x264, "-pix_fmt", "yuv420p", "-colorspace", "smpte170m",
                                "-color_primaries", "smpte170m", "-color_trc", "smpte170m"]),
        "bt709": ("bt709.mp4", [*_real(seconds, size), *x264, "-pix_fmt", "yuv420p", "-colorspace", "bt709",
                                "-color_primaries", "bt709", "-color_trc", "bt709"]),
        "full": ("full.mkv", [*_real(seconds, size), *x264, "-pix_fmt", "yuvj420p", "-color_range", "pc",
                              "-colorspace", "bt709"]),
        "webm": ("vp9-opus.webm", [*_real(seconds, "320:180", tone=48000),
                                   "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "20",
                                   "-b:v", "0", "-c:a", "libopus"]),
        "avi": ("mpeg4-mp3.avi", [*_real(seconds, "320:180", tone=44100),
                                  "-c:v", "mpeg4", "-q:v", "2", "-c:a", "libmp3lame"]),
        "hevc10": ("hevc10-hlg.mp4", [*_real(seconds, "320:180", tone=48000),
                                      *x265, "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020",
                                      "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc",
                                      "-x265-params", "log-level=error", "-tag:v", "hvc1", "-c:a", "aac"]),
        "pq": ("hevc10-pq-hdr10.mp4", [*_real(seconds / 2, "320:180"), *x265, "-pix_fmt", "yuv420p10le",
                                       "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
                                       "-x265-params", f"log-level=error:{HDR10_X265}", "-tag:v", "hvc1"]),
        "av1": ("av1-10bit.mkv", [*_real(seconds / 2, "320:180"), "-c:v", "libsvtav1", "-preset", "12", "-crf", "20",
                                  "-pix_fmt", "yuv420p10le", "-colorspace", "bt709", "-color_primaries", "bt709",
                                  "-color_trc", "bt709"]),
        "prores": ("prores.mov", [*_real(seconds / 2, "320:180"), "-c:v", "prores_ks", "-profile:v", "2",
                                  "-pix_fmt", "yuv422p10le", "-colorspace", "bt709"]),
    }
    file_name, args = cases[name]
    target = folder / file_name
    if not target.exists():
        partial = target.with_name(f"partial-{target.name}")
        _ffmpeg(*args, str(partial))
        partial.rename(target)
    return target


CASES = ("bbb", "bt601", "bt709", "full", "webm", "avi", "hevc10", "pq", "av1", "prores")


def source_of(case: str, folder: Path) -> Path:
    if case == "bbb":
        from tests import footage

        return footage.bigbuckbunny()
    return make_case(case, folder)


def markdown(rows: Sequence[Measured]) -> str:
    lines = ["| case | what goes in | what comes out (default settings, `--factor 2`) | kept frames vs source "
             "| plain re-encode vs source | PSNR lost vs re-encode | extra shift vs re-encode |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.case} | {row.source} | {row.output} | {row.midframe.brief()} | {row.reencode.brief()} "
                     f"| {row.psnr_gap:+.2f} dB | {row.shift_excess:+.3f}/255 |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--workdir", type=Path, help="keep the clips and outputs here")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="midframe-fidelity-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = []
        for case in args.cases.split(","):
            rows.append(measure(case, source_of(case, workdir / "sources"), workdir))
            print(f"{case}: {rows[-1].midframe.brief()} (re-encode {rows[-1].reencode.brief()})", file=sys.stderr)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
