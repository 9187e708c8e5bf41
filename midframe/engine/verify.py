"""The last check before an output is published: does the file ffprobe sees match its plan?

What is checked (``problems``, pure): the video has exactly the planned frames and lasts
frames / fps (to within one output frame); every stream the plan keeps is there, of the planned
kind, with its codec where it was copied; and each kept audio stream starts and ends where it does
in the source, relative to the video: its start from the video's first frame, its end from where
the planned video ends (not the source's last frame, whose stored length a stream-copy trim or an
edit list may leave longer than a frame), times the slow-motion factor for audio slowed down.

The tolerance is one frame of each stream. A copied stream has the very same packets, so its first
and last packet are compared (containers differ in how they store priming and the last packet's
length, not in where packets are), to within one output video frame. A re-encoded one has new
packets, so what plays is compared, to within one output video frame, one output audio packet
(the encoder's priming and padding) and one source audio packet, slowed down with it (where the
source's sound starts inside its first packet: the skip samples of a ``-c:a copy`` cut). A real
desync (a stream moved by a fraction of a second) still fails. Audio that starts before the first
video frame may come out starting anywhere from there to the video's start: MP4 plays nothing before
the first frame, and a shift would move the end as well, which is checked as always. The output's
figures come from ffprobe (``stream_spans``: the packets of every stream, in one pass however many
streams there are); the source's were recorded by the probe's own packet pass (``VideoInfo.audio_spans``),
so verification never reads the source again.
``verify_output`` raises ``VerificationError`` with the figures; the caller then never moves the
file into place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.plan import OutputPlan
from midframe.engine.probe import StreamSpan, stream_spans
from midframe.engine.timeline import SlowMotion, Timeline
from midframe.engine.videoinfo import VideoInfo
from midframe.errors import MediaError, VerificationError


@dataclass(frozen=True)
class KeptStream:
    """A stream the plan keeps, as the output should have it."""

    kind: str
    codec: str | None  # copied: the source's codec; re-encoded: None (the encoder decides the name)
    start_offset: Fraction | None  # audio: its start minus the video's start, in the source
    end_offset: Fraction | None  # audio: its end minus the video's end, in the source
    copied: bool = True  # offsets of the first/last packet; else of what plays (start/end)
    slack: Fraction = Fraction(0)  # re-encoded: the source's longest packet, in output time


@dataclass(frozen=True)
class Expected:
    frames: int
    fps: Fraction
    streams: tuple[KeptStream, ...]  # in output order, after the video

    @property
    def duration(self) -> Fraction:
        return self.frames / self.fps


def _seconds(value: Fraction) -> str:
    return f"{float(value):.3f} s"


def problems(expected: Expected, found: Sequence[StreamSpan]) -> tuple[list[str], bool]:
    """What differs between the plan and the measured output: (sentences, whether the video is right)."""
    found = list(found)
    videos = [span for span in found if span.kind == "video"]
    if not videos:
        return ["it has no video stream"], False
    video, others = videos[0], [span for span in found if span.kind != "video" and span is not videos[0]]
    frame = 1 / expected.fps
    issues: list[str] = []
    if video.packets != expected.frames:
        issues.append(f"it has {video.packets} video frames, not the planned {expected.frames}")
    length = video.end - video.start
    if abs(length - expected.duration) >= frame:
        issues.append(f"its video lasts {_seconds(length)}, not the planned {_seconds(expected.duration)}")
    video_ok = not issues
    kinds = [stream.kind for stream in expected.streams]
    if [span.kind for span in others] != kinds:
        issues.append(f"it holds streams {[span.kind for span in others]}, not the planned {kinds}")
        return issues, video_ok
    for number, (want, span) in enumerate(zip(expected.streams, others), start=1):
        name = f"stream #{number} ({want.kind})"
        if want.codec is not None and span.codec != want.codec:
            issues.append(f"{name} is {span.codec}, not the copied {want.codec}")
        if span.packets == 0:
            issues.append(f"{name} is empty")
            continue
        begins, ends = (span.first, span.last) if want.copied else (span.start, span.end)
        allowed = frame if want.copied else frame + want.slack + span.longest
        for what, offset, expected_offset in (("starts", begins - video.start, want.start_offset),
                                              ("ends", ends - video.end, want.end_offset)):
            if expected_offset is None:
                continue
            if what == "starts" and expected_offset < 0 and expected_offset - allowed < offset < allowed:
                continue  # what came before the first video frame may be cut (MP4 plays none); a shift moves the end
            if abs(offset - expected_offset) >= allowed:
                issues.append(f"{name} {what} {_seconds(offset - expected_offset)} away from where it {what} in "
                              f"the source, relative to the video (allowed: under {_seconds(allowed)})")
    return issues, video_ok


def expected_output(info: VideoInfo, plan: OutputPlan, timeline: Timeline, source: Sequence[StreamSpan]) -> Expected:
    """The plan's figures, with each kept audio stream's offsets measured in the source (times the slow
    motion factor for audio slowed down with it), from its first video frame and from where the
    planned video ends on the source's clock."""
    by_index = {span.index: span for span in source}
    slow = Fraction(timeline.factor) if isinstance(timeline, SlowMotion) else Fraction(1)
    video_start = info.first_pts
    video_end = info.first_pts + timeline.duration_out / slow
    streams: list[KeptStream] = []
    for stream in plan.streams:
        if stream.action == "drop":
            continue
        span = by_index.get(stream.index)
        copied = stream.action == "copy"
        stretch = slow if stream.filter else Fraction(1)
        start_offset = end_offset = None
        if stream.kind == "audio" and span is not None and span.packets > 0:
            begins, ends = (span.first, span.last) if copied else (span.start, span.end)
            start_offset, end_offset = (begins - video_start) * stretch, (ends - video_end) * stretch
        streams.append(KeptStream(
            kind=stream.kind,
            codec=stream.codec if copied else None,
            start_offset=start_offset,
            end_offset=end_offset,
            copied=copied,
            slack=span.longest * stretch if span is not None else Fraction(0),
        ))
    return Expected(frames=timeline.frames_out, fps=timeline.fps_out, streams=tuple(streams))


def verify_output(path: Path, *, info: VideoInfo, plan: OutputPlan, timeline: Timeline, ffmpeg: FFmpeg) -> None:
    """Raise ``VerificationError`` (with the figures) unless ``path`` matches the plan."""
    audio = {stream.index for stream in plan.streams if stream.kind == "audio" and stream.action != "drop"}
    recorded = {span.index: span for span in info.audio_spans}
    if audio <= recorded.keys():  # the probe's packet pass measured them: the source is not read again
        source: Sequence[StreamSpan] = [recorded[index] for index in sorted(audio)]
    else:
        source = stream_spans(info.path, ffmpeg=ffmpeg, only=audio)
    try:
        found = stream_spans(path, ffmpeg=ffmpeg)
    except MediaError as exc:
        raise VerificationError(f"the finished output failed verification: it does not read back ({exc.reason})",
                                video_ok=False) from None
    issues, video_ok = problems(expected_output(info, plan, timeline, source), found)
    if issues:
        raise VerificationError("the finished output failed verification: " + "; ".join(issues), video_ok=video_ok)
