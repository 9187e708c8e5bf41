"""The decode pipe: a video's frames as RGB numpy arrays, in order, none duplicated or dropped.

ffmpeg writes raw rgb24 (rgb48le for sources above 8 bits) to a pipe; every frame is read with
exact-size ``readinto`` calls into a fresh array, so nothing is copied twice and a wrong size can
never shift the stream. ``-fps_mode passthrough`` keeps ffmpeg from inventing or dropping frames.
The conversion to RGB is an explicit scale filter with the source's matrix and range and accurate
rounding (``midframe.engine.colour``), the inverse of the writer's.

Starting at source frame K (resume) is frame-exact: ffmpeg seeks to a keyframe before K and keeps
frames from K's timestamp on (``select``), and the first frame's timestamp (from ``showinfo``) is
checked; where a container seeks imprecisely the reader falls back to decoding from the start and
keeping frames by count, which is always exact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from loguru import logger

from midframe.engine.colour import Conversion
from midframe.engine.ffmpeg import QUIET, FFmpeg, FFmpegProcess
from midframe.engine.probe_tools import last_error_line
from midframe.engine.videoinfo import VideoInfo
from midframe.errors import MediaError

SEEK_MARGIN_S = Fraction(1)
_SHOWINFO_TB = re.compile(r"showinfo.*config in time_base: (\d+)/(\d+)")
_SHOWINFO_FIRST = re.compile(r"showinfo.*\bn:\s*0\s+pts:\s*(-?\d+)")


def decode_pix_fmt(info: VideoInfo) -> str:
    return "rgb48le" if info.high_bit_depth else "rgb24"


class _FirstFrameTime:
    """Collects, from showinfo's log lines, the time of the first frame that left the filters."""

    def __init__(self) -> None:
        self._time_base: Fraction | None = None
        self.value: Fraction | None = None
        self.seen = threading.Event()

    def __call__(self, line: str) -> None:
        if self.seen.is_set():
            return
        match = _SHOWINFO_TB.search(line)
        if match and int(match.group(2)):
            self._time_base = Fraction(int(match.group(1)), int(match.group(2)))
            return
        match = _SHOWINFO_FIRST.search(line)
        if match:
            if self._time_base is not None:
                self.value = int(match.group(1)) * self._time_base
            self.seen.set()


class FrameReader:
    """Iterate ``(source_index, frame)`` from ``start`` to the end of the video.

    ``keep_rotation``: frames as stored (the writer copies the rotation into the output's metadata);
    otherwise ffmpeg turns them upright. ``conversion``: the YUV -> RGB mapping (the plan's; by
    default the one the source's tags call for). A short read, a decode failure or fewer frames than the
    probe counted raise ``MediaError``; a decoder killed by a signal, or killed for making no
    progress while a frame was awaited (``ffmpeg.children``' deadline), raises ``ChildFailed``: that
    says nothing about the file. ``close()`` (any thread) stops it.
    """

    def __init__(
        self,
        info: VideoInfo,
        *,
        ffmpeg: FFmpeg,
        start: int = 0,
        keep_rotation: bool = True,
        pix_fmt: str | None = None,
        threads: int | None = None,
        conversion: Conversion | None = None,
    ) -> None:
        if not 0 <= start < info.frame_count:
            raise ValueError(f"start frame {start} outside 0..{info.frame_count - 1}")
        self.info = info
        self.ffmpeg = ffmpeg
        self.start = start
        self.keep_rotation = keep_rotation
        self.threads = threads  # decoder and filter threads; None: ffmpeg's choice
        self.pix_fmt = pix_fmt or decode_pix_fmt(info)
        self.conversion = conversion or info.conversion
        self.dtype = np.dtype(np.uint16) if self.pix_fmt.startswith("rgb48") else np.dtype(np.uint8)
        if keep_rotation:
            self.width, self.height = info.width, info.height
        else:
            self.width, self.height = info.display_size
        self.shape = (self.height, self.width, 3)
        self.frame_bytes = self.height * self.width * 3 * self.dtype.itemsize
        self._proc: FFmpegProcess | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.seeked = False

    # --- commands ---

    def _base(self) -> list[str]:
        """Everything before ``-i``: global and input options."""
        cmd = [self.ffmpeg.ffmpeg, *QUIET]
        if self.threads:
            cmd += ["-filter_threads", str(self.threads), "-threads", str(self.threads)]
        if self.keep_rotation:
            cmd.append("-noautorotate")
        return cmd

    def _output(self, filters: list[str]) -> list[str]:
        chain = [*filters, self.conversion.decode_filter(self.pix_fmt)]
        return ["-map", f"0:{self.info.video_index}", "-vf", ",".join(chain), *self.ffmpeg.fps_mode("passthrough"),
                "-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", self.pix_fmt, "pipe:1"]

    def _seek_command(self) -> list[str]:
        info, k = self.info, self.start
        stamps = info.timestamps
        target = info.first_pts + stamps[k]
        gap = stamps[k] - stamps[k - 1]
        position = max(Fraction(0), target - info.start_time - max(SEEK_MARGIN_S, 3 * gap))
        threshold = target - gap / 2
        return [
            *self._base(), "-v", "info", "-noaccurate_seek", "-ss", f"{float(position):.6f}", "-copyts",
            "-i", str(info.path),
            *self._output([f"select=gte(t\\,{float(threshold):.9f})", "showinfo=checksum=0"]),
        ]

    def _count_command(self) -> list[str]:
        filters = [f"select=gte(n\\,{self.start})"] if self.start else []
        return [*self._base(), "-v", "error", "-i", str(self.info.path), *self._output(filters)]

    # --- reading ---

    def _read_into(self, frame: np.ndarray) -> int:
        proc = self._proc
        if proc is None:
            return 0
        view = frame.data.cast("B")
        got = 0
        while got < self.frame_bytes:
            n = proc.read_into(view[got:])
            if not n:
                break
            got += n
        return got

    def _next_frame(self) -> np.ndarray | None:
        frame = np.empty(self.shape, dtype=self.dtype)
        got = self._read_into(frame)
        if got == self.frame_bytes:
            return frame
        if got and not self._closed:
            self._raise_if_killed()
            raise MediaError(self.info.path, f"is truncated or damaged: a frame ended after {got} of {self.frame_bytes} bytes",
                             incomplete=True)
        return None

    def _raise_if_killed(self) -> None:
        """After the pipe ended early: the decoder's death by a signal or by its deadline, not the file's fault."""
        proc = self._proc
        if proc is None:
            return
        proc.wait()
        failure = proc.failure()
        if failure is not None:
            raise failure

    def _start(self, cmd: list[str], on_line=None) -> None:
        with self._lock:
            if self._closed:
                return
            self._proc = FFmpegProcess(cmd, stdout=True, on_line=on_line, name="decode",
                                       children=self.ffmpeg.children, title="the decoder")

    def _open_seeked(self) -> np.ndarray | None:
        """Start at ``self.start`` by seeking; the first frame, or None when it did not land exactly."""
        first_time = _FirstFrameTime()
        self._start(self._seek_command(), on_line=first_time)
        frame = self._next_frame()
        if frame is None and not self._closed:
            self._raise_if_killed()
        if frame is None or self._closed:
            return None
        first_time.seen.wait(10)
        stamps = self.info.timestamps
        expected = self.info.first_pts + stamps[self.start]
        tolerance = (stamps[self.start] - stamps[self.start - 1]) / 4
        if first_time.value is not None and abs(first_time.value - expected) <= tolerance:
            self.seeked = True
            return frame
        logger.debug(
            "seek to frame {} of {} landed at {} not {}; decoding from the start",
            self.start, self.info.path.name, first_time.value, expected,
        )
        self._stop_process()
        return None

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        info = self.info
        expected = info.frame_count - self.start
        first: np.ndarray | None = None
        if self.start:
            first = self._open_seeked()
        if first is None and not self._closed:
            self._start(self._count_command())
            first = self._next_frame()
        index = self.start
        frame = first
        while frame is not None:
            yield index, frame
            index += 1
            if index - self.start >= expected:
                break
            frame = self._next_frame()
        self._finish(index - self.start, expected)

    def _finish(self, produced: int, expected: int) -> None:
        proc = self._proc
        if proc is None or self._closed:
            return
        if produced >= expected:
            self._stop_process()
            return
        code = proc.wait()
        failure = proc.failure()
        if failure is not None:
            raise failure
        reason = last_error_line(proc.stderr_tail(3), self.info.path)
        if code != 0:
            raise MediaError(self.info.path, f"cannot be decoded: {reason or f'ffmpeg exited with {code}'}")
        frame_no = self.start + produced
        raise MediaError(
            self.info.path,
            f"is truncated or damaged: decoding stopped at frame {frame_no} of {self.info.frame_count}"
            + (f" ({reason})" if reason else ""),
            incomplete=True,
        )

    def _stop_process(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()

    def close(self) -> None:
        """Stop decoding now; safe from any thread and more than once."""
        self._closed = True
        self._stop_process()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

