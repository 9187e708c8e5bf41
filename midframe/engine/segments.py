"""Output video as resumable segments, and the final join with the source's audio and subtitles.

Each segment is a complete file from its own encoder process (so it starts on a keyframe), ending
on a fixed grid of ``segment_frames`` output frames, or earlier when the job is stopped. When it is
closed it is synced to disk and only then recorded in the manifest.

The join reads the segments through ffmpeg's concat demuxer with exact per-segment durations and
copies them (no re-encode) into the target container, muxing the source's audio and subtitle
streams in the same pass: copied, or re-encoded only where the container cannot hold them.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from midframe.engine.ffmpeg import QUIET, FFmpeg, timeout_for_bytes
from midframe.engine.manifest import Manifest, Segment
from midframe.engine.plan import OutputPlan
from midframe.engine.preflight import rotation_args
from midframe.engine.timeline import Timeline
from midframe.engine.videoinfo import VideoInfo
from midframe.engine.writer import FrameWriter, encoder_failure
from midframe.fs.safe_write import fsync_file

CONCAT_LIST = "segments.ffconcat"
JOINED_STEM = "joined"


def segment_name(start: int, ext: str) -> str:
    return f"seg-{start:09d}{ext}"


def source_end(timeline: Timeline, last_output: int) -> int:
    frame = timeline.frame(last_output)
    return min(frame.source + (1 if frame.t > 0 else 0), timeline.frames_in - 1)


class SegmentSink:
    """Takes output frames in order from ``start`` and writes them as segments into ``work_dir``.

    At a segment's end the next encoder starts at once while the previous one finishes its file in
    the background; finished segments are synced and recorded in order as their encoders exit.
    """

    def __init__(
        self,
        *,
        work_dir: Path,
        manifest: Manifest,
        plan: OutputPlan,
        timeline: Timeline,
        start: int,
        ffmpeg: FFmpeg,
        threads: int | None = None,
        nice: int = 0,
    ) -> None:
        self.work_dir = work_dir
        self.threads = threads
        self.nice = nice
        self.manifest = manifest
        self.plan = plan
        self.timeline = timeline
        self.ffmpeg = ffmpeg
        self.next_index = start
        self._writer: FrameWriter | None = None
        self._segment_start = start
        self._segment_end = start
        self._closing: deque[tuple[FrameWriter, Segment]] = deque()

    def _open(self) -> FrameWriter:
        start = self.next_index
        size = self.plan.segment_frames
        self._segment_start = start
        self._segment_end = min((start // size + 1) * size, self.timeline.frames_out)
        path = self.work_dir / segment_name(start, self.plan.segment_ext)
        path.unlink(missing_ok=True)
        self._writer = FrameWriter(path, self.plan.encode, ffmpeg=self.ffmpeg, threads=self.threads,
                                   nice=self.nice)
        return self._writer

    def put(self, frame: np.ndarray) -> None:
        self._record_finished(wait=False)
        writer = self._writer or self._open()
        writer.write(frame)
        self.next_index += 1
        if self.next_index >= self._segment_end:
            self._end_segment()

    def _end_segment(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if writer.frames == 0:
            writer.abort()
            writer.path.unlink(missing_ok=True)
            return
        writer.close_input()
        segment = Segment(
            file=writer.path.name,
            start=self._segment_start,
            end=self.next_index,
            source_end=source_end(self.timeline, self.next_index - 1),
        )
        self._closing.append((writer, segment))

    def _record_finished(self, *, wait: bool) -> None:
        while self._closing:
            writer, segment = self._closing[0]
            if not wait and writer.running:
                return
            writer.finish()
            fsync_file(writer.path)
            self.manifest.segments.append(replace(segment, size=writer.path.stat().st_size))
            self.manifest.save(self.work_dir)
            self._closing.popleft()

    def close(self) -> None:
        """End the open segment (if any) and wait until every segment is written and recorded."""
        self._end_segment()
        self._record_finished(wait=True)

    def abort(self) -> None:
        """Kill the encoders of segments not yet recorded and delete their files."""
        writers = [writer for writer, _ in self._closing]
        self._closing.clear()
        if self._writer is not None:
            writers.append(self._writer)
            self._writer = None
        for writer in writers:
            writer.abort()
            # Aborting because the folder turned read-only or vanished: the cause is reported elsewhere.
            with contextlib.suppress(OSError):
                writer.path.unlink(missing_ok=True)


def _seconds(value: Fraction) -> str:
    micro = round(value * 1_000_000)
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


def write_concat_list(work_dir: Path, segments: list[Segment], fps: Fraction) -> Path:
    """The concat demuxer's list; each duration is exact to the microsecond, so nothing drifts."""
    lines = ["ffconcat version 1.0"]
    for segment in segments:
        start_us = round(Fraction(segment.start) / fps * 1_000_000)
        end_us = round(Fraction(segment.end) / fps * 1_000_000)
        lines += [f"file '{segment.file}'", f"duration {_seconds(Fraction(end_us - start_us, 1_000_000))}"]
    path = work_dir / CONCAT_LIST
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def join_command(
    *,
    ffmpeg: FFmpeg,
    concat_list: Path,
    info: VideoInfo,
    plan: OutputPlan,
    output: Path,
) -> list[str]:
    rotation_in, rotation_out = rotation_args(ffmpeg, plan.rotation)
    cmd = [ffmpeg.ffmpeg, *QUIET, "-v", "error", "-y", *rotation_in, "-f", "concat", "-safe", "0",
           "-i", str(concat_list)]
    # The source is the second input, shifted so its first video frame lands at 0 where the new
    # video starts: audio and subtitles keep their place, and its metadata and chapters come along.
    offset = info.start_time - info.first_pts
    cmd += ["-itsoffset", _signed_seconds(offset), "-i", str(info.path), "-map", "0:v:0"]
    codecs = ["-c", "copy"]
    if plan.bitstream_filter:
        codecs += ["-bsf:v", plan.bitstream_filter]
    if plan.encode.tag:
        codecs += ["-tag:v", plan.encode.tag]
    kept = [stream for stream in plan.streams if stream.action != "drop"]
    for number, stream in enumerate(kept, start=1):
        cmd += ["-map", f"1:{stream.index}"]
        if stream.action != "copy":
            codecs += [f"-c:{number}", stream.action]
            if stream.bitrate:
                codecs += [f"-b:{number}", stream.bitrate]
        if stream.filter:
            codecs += [f"-filter:{number}", stream.filter]
    cmd += [*codecs, "-map_metadata", "1", "-map_chapters", "1" if plan.chapters else "-1"]
    cmd += rotation_out
    if output.suffix.lower() in (".mp4", ".m4v", ".mov"):
        cmd += ["-movflags", "+faststart"]
    return cmd + [str(output)]


def _signed_seconds(value: Fraction) -> str:
    return ("-" if value < 0 else "") + _seconds(abs(value))


def join(
    *,
    work_dir: Path,
    segments: list[Segment],
    info: VideoInfo,
    plan: OutputPlan,
    fps: Fraction,
    ffmpeg: FFmpeg,
) -> Path:
    """Segments + source audio/subtitles -> ``work_dir/joined.<container>``, without re-encoding video."""
    output = work_dir / f"{JOINED_STEM}.{plan.container}"
    output.unlink(missing_ok=True)
    concat_list = write_concat_list(work_dir, segments, fps)
    # The join reads every segment and the source once and writes the segments' bytes again.
    segment_bytes = sum((work_dir / segment.file).stat().st_size for segment in segments
                        if (work_dir / segment.file).exists())
    done = ffmpeg.run(join_command(ffmpeg=ffmpeg, concat_list=concat_list, info=info, plan=plan, output=output),
                      timeout=timeout_for_bytes(info.size_bytes + 2 * segment_bytes), name="the muxer")
    if done.returncode != 0:
        output.unlink(missing_ok=True)
        raise encoder_failure(output, done.returncode, done.tail(), what="joining the segments into")
    fsync_file(output)
    return output
