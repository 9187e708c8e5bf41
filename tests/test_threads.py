"""Thread coordination: the plan, and that ffmpeg's decoder and encoder commands carry it."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from midframe.config import EngineConfig
from midframe.engine.ffmpeg import find_ffmpeg
from midframe.engine.interpolators import create_interpolator
from midframe.engine.pipeline import batch_size_for, thread_plan_for
from midframe.engine.probe import probe
from midframe.engine.reader import FrameReader
from midframe.engine.threads import ENCODE_NICE, ThreadPlan, plan_threads
from midframe.engine.writer import EncodeSpec
from tests.media import make_clip


def test_a_model_that_fills_the_cores_leaves_ffmpeg_and_opencv_one_thread_each() -> None:
    # The encoder: a thread per core below the model's priority, so that its lookahead's last frames
    # are done at full speed once the model is done (one thread, at the model's priority, without nice).
    nice, encode = (ENCODE_NICE, 2) if hasattr(os, "setpriority") else (0, 1)
    assert plan_threads(cores=2, model_threads=2) == ThreadPlan(decode=1, encode=encode, opencv=1, encode_nice=nice)
    assert plan_threads(cores=8, model_threads=4) == ThreadPlan(decode=4, encode=4 * encode, opencv=4,
                                                                encode_nice=nice)
    assert plan_threads(cores=2, model_threads=2, model_uses_opencv=True) == ThreadPlan(1, encode, None, nice)
    assert plan_threads(cores=2, model_threads=0) == ThreadPlan(None, None, None)  # GPU or blend: defaults


def test_engines_say_what_they_use(tmp_path: Path) -> None:
    dis = create_interpolator(EngineConfig(name="dis"), models_dir=tmp_path)
    blend = create_interpolator(EngineConfig(name="blend"), models_dir=tmp_path)
    assert thread_plan_for(dis).opencv is None and thread_plan_for(dis).encode is not None
    assert thread_plan_for(blend) == ThreadPlan(None, None, None)
    assert batch_size_for(EngineConfig(name="blend"), blend) == 4
    assert batch_size_for(EngineConfig(name="blend", batch_size=7), blend) == 7


def test_decoder_and_encoder_commands_carry_the_thread_counts(tmp_path: Path) -> None:
    ffmpeg = find_ffmpeg()
    clip = make_clip(tmp_path / "clip.mp4", seconds=0.2, fps="25", size="64x48", audio=False)
    info = probe(clip, ffmpeg=ffmpeg)
    command = FrameReader(info, ffmpeg=ffmpeg, threads=1)._count_command()
    assert command[command.index("-threads") + 1] == "1" and command.index("-threads") < command.index("-i")
    assert "-filter_threads" in command
    assert "-threads" not in FrameReader(info, ffmpeg=ffmpeg)._count_command()
    frames = list(FrameReader(info, ffmpeg=ffmpeg, threads=1))
    assert len(frames) == info.frame_count  # ffmpeg accepts the options
    spec = EncodeSpec(width=64, height=48, fps=Fraction(25), input_pix_fmt="rgb24")
    encode = spec.command(ffmpeg, tmp_path / "out.mkv", threads=1)
    assert encode[-3:] == ["-threads", "1", str(tmp_path / "out.mkv")]
    assert "-threads" not in spec.command(ffmpeg, tmp_path / "out.mkv")
