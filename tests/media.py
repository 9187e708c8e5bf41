"""Generated test clips and frame readers, built with the real ffmpeg binary."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np


def ffmpeg_exe() -> str:
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ffprobe_exe() -> str | None:
    return shutil.which("ffprobe")


def make_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    fps: str = "25",
    size: str = "320x240",
    audio: bool = True,
    subtitles: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    source: str = "testsrc2",
    extra_output_args: list[str] | None = None,
) -> Path:
    """A clip of ffmpeg's moving test pattern, optionally with a 440 Hz tone and a subtitle track."""
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={fps}:duration={seconds}"]
    maps = ["-map", "0:v"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        maps += ["-map", "1:a"]
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello midframe\n\n", encoding="utf-8")
        cmd += ["-i", str(srt)]
        maps += ["-map", f"{2 if audio else 1}:s"]
    cmd += maps + ["-c:v", codec, "-pix_fmt", pix_fmt]
    if codec == "libx264":
        cmd += ["-preset", "ultrafast", "-crf", "12"]
    if audio:
        cmd += ["-c:a", "aac" if path.suffix in {".mp4", ".mov", ".m4v"} else "libopus" if path.suffix == ".webm" else "aac"]
    if subtitles:
        cmd += ["-c:s", "mov_text" if path.suffix in {".mp4", ".mov"} else "srt"]
    cmd += (extra_output_args or []) + [str(path)]
    subprocess.run(cmd, check=True)
    return path


def probe_json(path: Path) -> dict:
    """ffprobe's view of a file, for assertions independent of midframe's own probe."""
    exe = ffprobe_exe()
    assert exe, "ffprobe is needed by the tests"
    out = subprocess.run(
        [exe, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


# ffprobe's colour-space names -> swscale's matrix names, written out here so the tests do not
# take the code under test's word for them.
_MATRIX = {"bt709": "bt709", "bt470bg": "bt601", "smpte170m": "bt601", "bt2020nc": "bt2020", "fcc": "fcc",
           "smpte240m": "smpte240m"}


def exact_rgb_filter(video: dict, pix_fmt: str) -> str:
    """The scale filter a careful player's conversion amounts to: the stream's matrix and range (untagged:
    bt709 from 1280 wide or 577 high, else bt601), accurate rounding, full chroma interpolation."""
    width, height = int(video["width"]), int(video["height"])
    matrix = _MATRIX.get(video.get("color_space", ""), "bt709" if width >= 1280 or height > 576 else "bt601")
    full = video.get("color_range") == "pc" or str(video.get("pix_fmt", "")).startswith("yuvj")
    return (f"scale=in_color_matrix={matrix}:in_range={'pc' if full else 'tv'}:flags=accurate_rnd+full_chroma_int,"
            f"format={pix_fmt}")


def read_frames(path: Path, *, pix_fmt: str = "rgb24", frames: int | None = None) -> np.ndarray:
    """The video frames of ``path`` (all, or the first ``frames``) as an N x H x W x 3 array, decoded by
    ffmpeg the exact way (``exact_rgb_filter``)."""
    info = probe_json(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    width, height = int(video["width"]), int(video["height"])
    limit = ["-frames:v", str(frames)] if frames is not None else []
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-vsync", "passthrough", *limit,
         "-vf", exact_rgb_filter(video, pix_fmt), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True,
        capture_output=True,
    ).stdout
    dtype = np.uint16 if pix_fmt.startswith("rgb48") else np.uint8
    return np.frombuffer(raw, dtype=dtype).reshape(-1, height, width, 3)


def decode_rgb(path: Path, *, size: tuple[int, int], vf: str | None = None, frames: int | None = None) -> np.ndarray:
    """The video frames of ``path`` through the filter ``vf`` (all, or the first ``frames``) as an
    N x H x W x 3 rgb24 array, ``size`` being (W, H) after the filter; ffmpeg's default conversion
    (``read_frames`` is the exact one), each frame once whatever its timestamp (a ``select`` leaves gaps)."""
    filters = ["-vf", vf] if vf else []
    limit = ["-frames:v", str(frames)] if frames is not None else []
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), *filters, *limit, "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1], size[0], 3)


def psnr(a: np.ndarray, b: np.ndarray, *, peak: float | None = None) -> float:
    """PSNR in dB of ``a`` against ``b`` over every pixel and channel; the peak is 65535 for 16-bit
    frames, else 255 (or ``peak``); identical frames score 99, so means and differences stay numbers."""
    if peak is None:
        peak = 65535.0 if a.dtype == np.uint16 else 255.0
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(peak**2 / mse))


NOISE_EXTENSIONS = ("mp4", "mkv", "mov", "avi", "webm", "m4v", "mts", "m2ts", "wmv", "flv", "ts", "mpg")
# Seeds whose noise ffprobe takes for a one-frame raw H.263 stream (found by probing 1500 seeds).
NOISE_TAKEN_FOR_VIDEO = (200, 1297, 1427)


def noise(seed: int) -> tuple[str, bytes]:
    """A file name with a video extension and 3 KB to 200 KB of random bytes, the same for each seed."""
    rng = random.Random(seed)
    size = rng.choice([200_000, 20_000, 3000, 60_000])
    return f"noise{seed}.{NOISE_EXTENSIONS[seed % len(NOISE_EXTENSIONS)]}", rng.randbytes(size)


def declaring_huge_frames(path: Path, *, side: int = 16000) -> Path:
    """A 0.5 MB Matroska file whose header declares ``side`` x ``side`` frames (at most 65535): five raw
    frames of 256x256, the track's PixelWidth and PixelHeight (two bytes each, 256) patched."""
    small = path.with_name(f"{path.stem}-256{path.suffix}")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=256x256:r=25:d=0.2",
                    "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(small)], check=True)
    data = bytearray(small.read_bytes())
    small.unlink()
    for element in (b"\xb0\x82\x01\x00", b"\xba\x82\x01\x00"):  # PixelWidth, PixelHeight = 256
        at = data.index(element)
        data[at + 2:at + 4] = side.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path
