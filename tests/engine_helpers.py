"""Interpolators and shortcuts for the pipeline tests (real ffmpeg, the real blend engine)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midframe.config import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.ffmpeg import find_ffmpeg, run
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.blend import BlendInterpolator, blend
from midframe.engine.pipeline import convert
from midframe.engine.preflight import rotation_args
from tests.media import make_clip, probe_json

FF = find_ffmpeg()
LOSSLESS = OutputConfig(codec="ffv1", pix_fmt="gbrp")
FAST = OutputConfig(preset="ultrafast")
# Frames alternately 0.4 frame late: a real variable-frame-rate stream with millisecond timestamps.
VFR_ARGS = ["-vf", "settb=1/1000,setpts=(N+0.4*mod(N\\,2))/25/TB", *FF.fps_mode("passthrough"),
            "-enc_time_base", "1/1000"]


class RecordingBlend(BlendInterpolator):
    """The blend engine, recording every batch it is given; ``delay_s`` slows each batch down."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.batches: list[list[tuple[int, float]]] = []
        self.loaded = self.closed = False

    def load(self) -> None:
        self.loaded = True

    def interpolate(self, batch: Sequence[FramePair]) -> list[np.ndarray]:
        self.batches.append([(pair.index, pair.t) for pair in batch])
        if self.delay_s:
            time.sleep(self.delay_s)
        return [blend(pair.a, pair.b, pair.t) for pair in batch]

    def close(self) -> None:
        self.closed = True


def create(settings: EngineConfig, models_dir: Path) -> RecordingBlend:
    """Registry factory for subprocess tests: blend slowed by $MIDFRAME_TEST_DELAY seconds a batch."""
    return RecordingBlend(float(os.environ.get("MIDFRAME_TEST_DELAY", "0")))


def run_convert(
    source: Path,
    destination: Path,
    *,
    engine: EngineConfig | None = None,
    output: OutputConfig = FAST,
    resume: ResumeConfig | None = None,
    interpolator: RecordingBlend | None = None,
    work_dir: Path | None = None,
    **kwargs,
):
    engine = engine or EngineConfig(name="blend", factor=2, batch_size=4)
    made = interpolator or RecordingBlend()
    return convert(
        source,
        destination,
        work_dir=work_dir or destination.with_name(f".{destination.name}.work"),
        engine=engine,
        output=output,
        resume=resume or ResumeConfig(segment_frames=16),
        make_interpolator=lambda settings: made,
        ffmpeg=FF,
        **kwargs,
    )


def stream(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def b_frame_clip(path: Path) -> Path:
    """1.2 s of 160x120 at 25 fps with three B-frames, bt709 tags, audio and a subtitle track."""
    return make_clip(path, seconds=1.2, fps="25", size="160x120", subtitles=True,
                     extra_output_args=["-bf", "3", "-colorspace", "bt709", "-color_primaries", "bt709",
                                        "-color_trc", "bt709"])


def b_frame_gop_clip(path: Path) -> Path:
    """2 s of 128x96 at 25 fps, audio, three B-frames and a keyframe every 10 frames: segments of 12
    frames mostly start between keyframes, behind B-frames."""
    return make_clip(path, seconds=2.0, fps="25", size="128x96",
                     extra_output_args=["-bf", "3", "-g", "10", "-keyint_min", "10"])


def rotated_copy(source: Path, target: Path, degrees: int) -> Path:
    """``source`` stream-copied with a display rotation (the way each ffmpeg version spells it)."""
    before, after = rotation_args(FF, degrees)
    done = run([FF.ffmpeg, "-v", "error", "-y", *before, "-i", str(source), "-map", "0", "-c", "copy", *after, str(target)])
    assert done.returncode == 0, done.stderr
    return target


def stream_packets(path: Path, selector: str) -> list[tuple[float, float]]:
    """(pts, duration) in seconds of every packet of one stream (dts where it has no pts, as in AVI)."""
    done = run([FF.ffprobe, "-v", "error", "-select_streams", selector, "-show_entries",
                "packet=pts_time,dts_time,duration_time", "-of", "csv=p=0", str(path)])
    rows = [line.split(",")[:3] for line in done.stdout.decode().split() if line]
    return [(float(pts if pts != "N/A" else dts), float(length) if length != "N/A" else 0.0)
            for pts, dts, length in rows if (pts, dts) != ("N/A", "N/A")]


def assert_audio_in_sync(source: Path, output: Path, *, tolerance: float = 0.002) -> None:
    """Same audio codec and packets, the last one at the same time relative to the first video frame.

    (The last, not the first: an mp4 marks its AAC priming packet as discarded before 0, which a
    matroska file cannot say, so there the whole file starts one packet earlier; and the length of
    a short last packet is lost in matroska.)
    """
    assert stream(probe_json(output), "audio")["codec_name"] == stream(probe_json(source), "audio")["codec_name"]
    ends = []
    for path in (source, output):
        video, audio = stream_packets(path, "v:0"), stream_packets(path, "a:0")
        ends.append(max(pts for pts, _ in audio) - min(pts for pts, _ in video))
        assert audio
    assert len(stream_packets(source, "a:0")) == len(stream_packets(output, "a:0"))
    assert abs(ends[0] - ends[1]) < tolerance, ends


def missing_cuda_device() -> str:
    """A CUDA device this machine lacks: ``cuda`` without GPUs, else one past the last (``cuda:N``)."""
    import torch

    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
