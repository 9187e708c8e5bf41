"""One planned segment made on its own: the unit of work of the render farm (``midframe.farm``).

A segment is output frames ``start .. end - 1`` of a planned job (the plan and timeline in its work
folder's manifest). It needs source frames from the one of ``start`` up to the one after the last
output frame's (the far side of its last interpolated pair), and the scene and dedup decisions'
context either side (``pairs.context``), so it decides what the whole run decides; the frame loop, the reader and the
encoder are the pipeline's own (``run_frames``), so a segment made here is the very file the
single-machine pipeline makes for that range.

The file is written under a name of its own (``<segment>.part-<token>``) and renamed to the
segment's name only once ffmpeg finished it and it is synced: two attempts at the same segment (a
worker thought dead that was not) never write into one file, and a killed attempt leaves only a
``.part`` file that the coordinator removes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from midframe.engine.conversion import JobControl
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.frameloop import first_source
from midframe.engine.interpolators.base import Interpolator
from midframe.engine.manifest import Segment
from midframe.engine.pipeline import frame_reader, run_frames, thread_plan_for
from midframe.engine.plan import OutputPlan
from midframe.engine.probe import VideoInfo
from midframe.engine.segments import segment_name, source_end
from midframe.engine.settings import EngineConfig
from midframe.engine.timeline import Timeline
from midframe.engine.writer import FrameWriter
from midframe.errors import EngineError
from midframe.fs.safe_write import fsync_file

PART_MARK = ".part-"


def segment_ranges(frames_out: int, segment_frames: int) -> list[tuple[int, int]]:
    """The job's segments on the plan's grid: ``[(start, end), ...]`` covering ``0 .. frames_out``."""
    return [(start, min(start + segment_frames, frames_out)) for start in range(0, frames_out, segment_frames)]


@dataclass(frozen=True)
class RangeTimes:
    """Where a segment's time went (seconds), for the farm's overhead figures."""

    first_frame_s: float  # from the start to the first output frame reaching the encoder (seek, first batch)
    model_s: float
    encode_finish_s: float  # from the last frame handed over to the file being synced and renamed
    total_s: float


class _OneFile:
    """The encode thread's sink for one segment: every frame into one file, renamed when complete."""

    def __init__(self, part: Path, plan: OutputPlan, *, ffmpeg: FFmpeg, threads: int | None, nice: int = 0) -> None:
        self.part = part
        self.writer = FrameWriter(part, plan.encode, ffmpeg=ffmpeg, threads=threads, nice=nice)
        self.first_put: float | None = None
        self.last_put = 0.0
        self.closed_at = 0.0

    def put(self, frame: np.ndarray) -> None:
        self.last_put = time.perf_counter()
        if self.first_put is None:
            self.first_put = self.last_put
        self.writer.write(frame)

    def close(self) -> None:
        self.writer.finish()
        fsync_file(self.part)
        self.closed_at = time.perf_counter()

    def abort(self) -> None:
        self.writer.abort()
        self.part.unlink(missing_ok=True)


def render_range(
    *,
    info: VideoInfo,
    plan: OutputPlan,
    timeline: Timeline,
    engine: EngineConfig,
    start: int,
    end: int,
    work_dir: Path,
    token: str,
    interpolator: Interpolator,
    ffmpeg: FFmpeg,
    control: JobControl | None = None,
) -> tuple[Segment, RangeTimes]:
    """Make output frames ``start .. end - 1`` into ``work_dir/<segment name>``; its record and times."""
    if not 0 <= start < end <= timeline.frames_out:
        raise ValueError(f"segment {start}..{end} outside the job's 0..{timeline.frames_out}")
    started = time.perf_counter()
    final = work_dir / segment_name(start, plan.segment_ext)
    part = final.with_name(f"{final.name}{PART_MARK}{token}")
    threads = thread_plan_for(interpolator)
    control = control or JobControl()
    ffmpeg = ffmpeg.watched_by(control.children)
    reader = frame_reader(info, plan, ffmpeg=ffmpeg, start=first_source(timeline, start, engine),
                          threads=threads.decode)
    sink = _OneFile(part, plan, ffmpeg=ffmpeg, threads=threads.encode, nice=threads.encode_nice)
    try:
        # The same timeline, ending at this segment: the loop stops there and reads no further.
        counts, _waits = run_frames(timeline=replace(timeline, frames_out=end), start=start, engine=engine,
                                    interpolator=interpolator, reader=reader, sink=sink, control=control)
        if sink.writer.frames != end - start:
            raise EngineError(f"segment {start}..{end} got {sink.writer.frames} of {end - start} frames")
        os.replace(part, final)
    except BaseException:
        sink.abort()
        raise
    done = time.perf_counter()
    segment = Segment(file=final.name, start=start, end=end, source_end=source_end(timeline, end - 1),
                      size=final.stat().st_size)
    first = (sink.first_put or done) - started
    times = RangeTimes(first_frame_s=round(first, 4), model_s=round(counts.model_s, 4),
                       encode_finish_s=round((sink.closed_at or done) - (sink.last_put or done), 4),
                       total_s=round(done - started, 4))
    return segment, times
