"""Resume: a stopped conversion continues from its segments and ends identical to an uninterrupted one."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from midframe.config import EngineConfig, ResumeConfig
from midframe.engine.conversion import JobControl
from midframe.engine.ffmpeg import run
from midframe.engine.manifest import load_manifest
from midframe.errors import Aborted
from tests.engine_helpers import FF, LOSSLESS, b_frame_gop_clip, run_convert
from tests.media import read_frames

SEGMENT = ResumeConfig(segment_frames=12)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """B-frames and keyframes every 10 frames, so resuming seeks between keyframes."""
    return b_frame_gop_clip(tmp_path_factory.mktemp("resume") / "source.mp4")


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> dict[str, np.ndarray]:
    """Uninterrupted lossless runs to compare with."""
    folder = tmp_path_factory.mktemp("reference")
    factor = folder / "factor.mkv"
    run_convert(source, factor, output=LOSSLESS, resume=SEGMENT)
    fps = folder / "fps.mkv"
    run_convert(source, fps, output=LOSSLESS, resume=SEGMENT, engine=EngineConfig(name="blend", target_fps=Fraction(60)))
    return {"factor": read_frames(factor), "fps": read_frames(fps), "factor_path": factor}


def audio_packets(path: Path) -> list[str]:
    """Timestamps, sizes and hashes of every audio packet."""
    done = run([FF.ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "framemd5", "-"])
    lines = [line for line in done.stdout.decode().splitlines() if not line.startswith("#")]
    assert done.returncode == 0 and lines
    return lines


def _stop_at(frames: int) -> tuple[JobControl, callable]:
    control = JobControl()

    def on_progress(progress):
        if progress.frames_done >= frames:
            control.abort("test stop")

    return control, on_progress


def _interrupted(source: Path, target: Path, work: Path, at: int, **kwargs) -> None:
    control, on_progress = _stop_at(at)
    with pytest.raises(Aborted):
        run_convert(source, target, work_dir=work, output=LOSSLESS, resume=SEGMENT, control=control,
                    on_progress=on_progress, **kwargs)
    assert not target.exists()


@pytest.mark.parametrize("kind", ["factor", "fps"])
def test_resume_after_abort_is_frame_for_frame_identical(source, reference, tmp_path, kind):
    engine = EngineConfig(name="blend", target_fps=Fraction(60)) if kind == "fps" else None
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    total = len(reference[kind])
    _interrupted(source, target, work, at=int(total * 0.6), **({"engine": engine} if engine else {}))
    done = load_manifest(work).frames_done
    assert done >= int(total * 0.6)
    report = run_convert(source, target, work_dir=work, output=LOSSLESS, resume=SEGMENT,
                         **({"engine": engine} if engine else {}))
    assert report.resumed_from_frame == done
    assert np.array_equal(read_frames(target), reference[kind])
    assert not work.exists()
    if kind == "factor":
        assert audio_packets(target) == audio_packets(reference["factor_path"])


def test_damaged_last_segment_and_partial_file_are_redone(source, reference, tmp_path):
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    _interrupted(source, target, work, at=60)
    manifest = load_manifest(work)
    last = work / manifest.segments[-1].file
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])  # damaged after it was recorded
    (work / f"seg-{manifest.frames_done:09d}.mkv").write_bytes(b"\x1a\x45\xdf\xa3 half written")  # killed mid-write
    report = run_convert(source, target, work_dir=work, output=LOSSLESS, resume=SEGMENT)
    assert report.resumed_from_frame == manifest.segments[-2].end
    assert np.array_equal(read_frames(target), reference["factor"])


def test_resume_finishes_with_the_settings_it_started_with(source, reference, tmp_path):
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    _interrupted(source, target, work, at=40)
    changed = EngineConfig(name="blend", factor=3, batch_size=2)
    report = run_convert(source, target, work_dir=work, output=LOSSLESS, resume=ResumeConfig(segment_frames=5),
                         engine=changed)
    assert report.frames_out == 100 and report.resumed_from_frame > 0
    assert np.array_equal(read_frames(target), reference["factor"])


def test_changed_source_starts_over(source, tmp_path):
    copy = tmp_path / "source.mp4"
    copy.write_bytes(source.read_bytes())
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    _interrupted(copy, target, work, at=40)
    os.utime(copy, ns=(0, 0))  # touched: another file as far as resuming is concerned
    report = run_convert(copy, target, work_dir=work, output=LOSSLESS, resume=SEGMENT)
    assert report.resumed_from_frame == 0


def test_stop_during_the_join_rejoins_without_rendering(source, reference, tmp_path):
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    _interrupted(source, target, work, at=100)  # every frame made; stopped before the join
    assert load_manifest(work).frames_done == 100
    (work / "joined.mkv").write_bytes(b"half a join")
    calls = []
    report = run_convert(source, target, work_dir=work, output=LOSSLESS, resume=SEGMENT,
                         on_progress=calls.append)
    assert report.resumed_from_frame == 100 and report.model_s == 0
    assert calls[-1].frames_done == 100
    assert np.array_equal(read_frames(target), reference["factor"])


def test_resume_off_starts_over(source, tmp_path):
    target, work = tmp_path / "out.mkv", tmp_path / "work"
    _interrupted(source, target, work, at=40)
    report = run_convert(source, target, work_dir=work, output=LOSSLESS,
                         resume=ResumeConfig(enabled=False, segment_frames=12))
    assert report.resumed_from_frame == 0


def test_a_foreign_work_folder_is_not_deleted(source, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "holiday.jpg").write_bytes(b"precious")
    from midframe.errors import OutputError

    with pytest.raises(OutputError, match="not a midframe work folder"):
        run_convert(source, tmp_path / "out.mkv", work_dir=work)
    assert (work / "holiday.jpg").read_bytes() == b"precious"


def test_a_resumed_job_never_mixes_engines(source, tmp_path):
    """The manifest names the engine that really ran (here a fallback), and a resume runs that one or none."""
    from midframe.engine.pipeline import convert
    from midframe.errors import WeightsError
    from tests.engine_helpers import FF, RecordingBlend

    target, work = tmp_path / "out.mkv", tmp_path / "work"
    asked: list[str] = []

    control = JobControl()

    class StoppingBlend(RecordingBlend):
        """Stops the job itself at the pairs past source frame 35 (about 70 output frames sent): progress
        reports come at most every 0.25 s, so a stop asked for by one could come after the end."""

        def interpolate(self, batch):
            if self.stops and batch[-1].index > 35:
                control.abort("test stop")
            return super().interpolate(batch)

    def fell_back(settings):                       # asked for dis, got blend: what a fallback does
        asked.append(settings.name)
        engine = StoppingBlend()
        engine.stops = len(asked) == 1
        return engine

    common = dict(work_dir=work, output=LOSSLESS, resume=SEGMENT, ffmpeg=FF)
    with pytest.raises(Aborted):
        convert(source, target, engine=EngineConfig(name="dis"), make_interpolator=fell_back, control=control,
                **common)
    assert load_manifest(work).engine["name"] == "blend" and load_manifest(work).frames_done >= 40

    class OtherEngine(RecordingBlend):
        name = "dis"

    with pytest.raises(WeightsError, match="made with the blend engine"):
        convert(source, target, engine=EngineConfig(name="dis"), make_interpolator=lambda s: OtherEngine(), **common)
    report = convert(source, target, engine=EngineConfig(name="dis"), make_interpolator=fell_back, **common)
    assert asked == ["dis", "blend"] and (report.engine, report.engine_requested) == ("blend", "dis")
    assert report.resumed_from_frame >= 40
