"""One segment at a time (the farm's unit of work), without a cluster: the segments made one by one,
in any order, join into the same frames as the single-machine pipeline; a resumed farm job keeps
segments made out of order and those a worker finished after the coordinator died."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig, ResumeConfig
from midframe.engine.conversion import JobControl
from midframe.engine.frameloop import Counts
from midframe.engine.interpolators.blend import BlendInterpolator
from midframe.engine.manifest import VERIFY_LAST_SEGMENTS, load_manifest
from midframe.engine.probe import count_video_packets
from midframe.engine.ranges import PART_MARK, render_range, segment_ranges
from midframe.errors import Aborted
from midframe.farm.renderer import JobRenderer
from tests.engine_helpers import FF, LOSSLESS, b_frame_gop_clip, run_convert
from tests.media import read_frames

SEGMENT = ResumeConfig(segment_frames=12)
ENGINE = EngineConfig(name="blend", device="cpu")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """B-frames and keyframes every 10 frames, so most segments start between keyframes."""
    return b_frame_gop_clip(tmp_path_factory.mktemp("ranges") / "source.mp4")


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("reference") / "whole.mkv"
    run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE)
    return read_frames(out)


class ShuffledRenderer:
    """A ``pipeline.Renderer`` making the missing segments here, in a shuffled order, with
    ``render_range``; it can stop after ``stop_after`` segments, as a killed coordinator would."""

    def __init__(self, *, seed: int, stop_after: int | None = None, unrecorded: int = 0) -> None:
        self.order = random.Random(seed)
        self.stop_after = stop_after
        self.unrecorded = unrecorded  # made (file renamed into place) but never recorded
        self.made: list[int] = []
        self.read_back: list[str] = []  # segment files the checker read back, in order
        self.checker = JobRenderer(None, source=Path(), ffmpeg=FF, count_frames=self._count)  # type: ignore[arg-type]

    def _count(self, path: Path, *, ffmpeg) -> int | None:
        self.read_back.append(path.name)
        return count_video_packets(path, ffmpeg=ffmpeg)

    def kept_segments(self, manifest, work_dir, *, ffmpeg):
        return self.checker.kept_segments(manifest, work_dir, ffmpeg=ffmpeg)

    def render(self, job, info, *, work_dir, control, on_progress):
        done = {segment.start for segment in job.manifest.segments}
        todo = [span for span in segment_ranges(job.timeline.frames_out, job.plan.segment_frames) if span[0] not in done]
        self.order.shuffle(todo)
        interpolator = BlendInterpolator()
        for number, (start, end) in enumerate(todo):
            if self.stop_after is not None and number == self.stop_after:
                # A worker's attempt cut short: only its part file is left.
                (work_dir / f"seg-{end:09d}.mkv{PART_MARK}dead").write_bytes(b"half a segment")
                raise Aborted("coordinator killed")
            segment, _times = render_range(info=info, plan=job.plan, timeline=job.timeline, engine=job.engine,
                                           start=start, end=end, work_dir=work_dir, token=f"t{number}",
                                           interpolator=interpolator, ffmpeg=FF, control=JobControl())
            self.made.append(start)
            if self.stop_after is not None and number >= self.stop_after - self.unrecorded:
                # The worker's record, which names the file it read (the source, by content).
                (work_dir / f"{segment.file}.json").write_text(json.dumps(
                    {"file": segment.file, "start": start, "end": end, "source_end": segment.source_end,
                     "worker": "tcp://w:1", "source": asdict(job.manifest.fingerprint)}), encoding="utf-8")
                continue
            job.manifest.segments = sorted([*job.manifest.segments, segment], key=lambda item: item.start)
            job.manifest.save(work_dir)
        return Counts(), {}


def test_segments_made_one_by_one_in_any_order_equal_the_whole(source, reference, tmp_path):
    renderer = ShuffledRenderer(seed=3)
    out = tmp_path / "farm.mkv"
    run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE, renderer=renderer)
    assert renderer.made != sorted(renderer.made), "the order was not shuffled"
    frames = read_frames(out)
    assert frames.shape == reference.shape
    assert np.array_equal(frames, reference)


def test_a_resumed_farm_job_keeps_what_was_made_and_makes_only_the_rest(source, reference, tmp_path):
    out, work = tmp_path / "farm.mkv", tmp_path / "work"
    first = ShuffledRenderer(seed=5, stop_after=4, unrecorded=1)
    with pytest.raises(Aborted):
        run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE, renderer=first, work_dir=work)
    recorded = {segment.start for segment in load_manifest(work).segments}
    assert len(recorded) == 3 and len(first.made) == 4  # the fourth was made, never recorded
    second = ShuffledRenderer(seed=6)
    run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE, renderer=second, work_dir=work)
    assert not set(second.made) & set(first.made), "a segment made before the restart was made again"
    assert sorted(first.made + second.made) == [start for start, _ in segment_ranges(100, 12)]
    assert second.checker.workers["tcp://w:1"] == 1  # the unrecorded one's worker, from its record
    assert np.array_equal(read_frames(out), reference)
    assert not work.exists()


def test_a_resumed_farm_job_checks_every_size_but_reads_back_only_the_newest(source, reference, tmp_path):
    out, work = tmp_path / "farm.mkv", tmp_path / "work"
    with pytest.raises(Aborted):
        run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE,
                    renderer=ShuffledRenderer(seed=8, stop_after=6), work_dir=work)
    recorded = load_manifest(work).segments
    assert len(recorded) == 6 and all(segment.size for segment in recorded)
    grown = recorded[0]  # made the oldest below: not read back, so only its size can tell
    with open(work / grown.file, "ab") as handle:
        handle.write(b"\0")
    for age, segment in enumerate(recorded):  # file times, oldest first: as listed
        os.utime(work / segment.file, (1_000_000 + age, 1_000_000 + age))
    second = ShuffledRenderer(seed=9)
    run_convert(source, out, output=LOSSLESS, resume=SEGMENT, engine=ENGINE, renderer=second, work_dir=work)
    assert second.read_back == [segment.file for segment in recorded[-VERIFY_LAST_SEGMENTS:]]
    assert grown.start in second.made  # made again: its size was not the recorded one
    assert not {segment.start for segment in recorded[1:]} & set(second.made)
    assert np.array_equal(read_frames(out), reference)
