"""engine auto for real: a clip of two real scenes spliced, one small and slow (where dis rebuilds frames
better), one a crop of fast full-resolution motion (where RIFE does); the per-scene choices in the report,
the frames each scene got, and a resumed job keeping the recorded choices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from midframe.config import Config, EngineConfig, OutputConfig, ResumeConfig, resolve_paths
from midframe.engine.conversion import JobControl
from midframe.engine.interpolators import create_interpolator
from midframe.engine.interpolators.base import FramePair
from midframe.engine.interpolators.dis import DisInterpolator
from midframe.engine.manifest import Manifest, load_manifest
from midframe.engine.pipeline import convert, use_recorded_scenes
from midframe.errors import Aborted, WeightsError
from midframe.interpolate_command import interpolate_file, work_dir_for
from tests.auto_clips import FAST, SLOW, spliced_clip
from tests.engine_helpers import FF
from tests.media import psnr, read_frames

ROOT = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def spliced(tmp_path_factory, bigbuckbunny: Path) -> tuple[Path, np.ndarray]:
    clip = tmp_path_factory.mktemp("auto") / "spliced.mkv"
    return clip, spliced_clip(bigbuckbunny, clip)


def test_auto_chooses_per_scene_and_each_scene_gets_its_engine(tmp_path: Path, spliced, rife_weights: Path):
    clip, frames = spliced
    out, report = tmp_path / "out.mkv", tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "midframe", "interpolate", str(clip), "-o", str(out), "--engine", "auto",
         "--factor", "2", "--codec", "ffv1", "--pix-fmt", "gbrp", "--device", "cpu", "--report", str(report), "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["engine"] == "auto" and data["engine_requested"] == "auto"
    scenes = data["scenes"]
    assert [(s["start"], s["end"], s["engine"]) for s in scenes] == [(0, SLOW, "dis"), (SLOW, SLOW + FAST, "rife")]
    for scene in scenes:
        assert scene["samples"] >= 1
        loser = "rife" if scene["engine"] == "dis" else "dis"
        assert scene["scores"][scene["engine"]] > scene["scores"][loser] + 0.5

    made = read_frames(out)
    assert len(made) == 2 * len(frames)
    assert np.array_equal(made[0::2], frames)  # kept frames bit-exact
    # Each scene's in-between frames are its chosen engine's: much closer to that engine's own frame for
    # the pair than to the other's.
    engines = {name: create_interpolator(EngineConfig(name=name, device="cpu"), models_dir=rife_weights)
               for name in ("rife", "dis")}
    try:
        for engine in engines.values():
            engine.load()
        for k, expected in ((3, "dis"), (15, "dis"), (SLOW + 4, "rife"), (SLOW + 12, "rife")):
            own = {name: engine.interpolate([FramePair(k, frames[k], frames[k + 1], 0.5)])[0]
                   for name, engine in engines.items()}
            other = "rife" if expected == "dis" else "dis"
            assert psnr(made[2 * k + 1], own[expected]) > psnr(made[2 * k + 1], own[other]) + 3.0, k
    finally:
        for engine in engines.values():
            engine.close()
    # The cut between the scenes is held, not morphed.
    assert np.array_equal(made[2 * (SLOW - 1) + 1], frames[SLOW - 1]) or np.array_equal(made[2 * (SLOW - 1) + 1], frames[SLOW])


def test_a_resumed_job_keeps_the_recorded_choices(tmp_path: Path, spliced, rife_weights: Path):
    clip, _frames = spliced
    out = tmp_path / "out.mkv"
    engine = EngineConfig(name="auto", device="cpu")
    output = OutputConfig(codec="ffv1", pix_fmt="gbrp")
    resume = ResumeConfig(segment_frames=8)
    paths = resolve_paths(Config())
    control = JobControl()

    def stop_early(progress) -> None:
        if progress.frames_done >= 30:
            control.abort("test")

    with pytest.raises(Aborted):
        interpolate_file(clip, out, engine=engine, output=output, resume=resume, paths=paths, show_progress=False,
                         control=control, on_progress=stop_early)
    work_dir = work_dir_for(out.absolute())
    manifest = load_manifest(work_dir)
    assert manifest is not None and manifest.frames_done > 0 and manifest.engine_scenes is not None
    chosen = [(s["start"], s["end"], s["engine"]) for s in manifest.engine_scenes]
    assert chosen == [(0, SLOW, "dis"), (SLOW, SLOW + FAST, "rife")]
    # A record that differs from what choosing again would give: the resumed job must follow the record.
    manifest.engine_scenes = [dict(s, engine="rife" if s["engine"] == "dis" else "dis") for s in manifest.engine_scenes]
    manifest.save(work_dir)
    report = interpolate_file(clip, out, engine=engine, output=output, resume=resume, paths=paths,
                              show_progress=False, resume_previous=True)
    assert report.resumed_from_frame > 0 and report.engine == "auto"
    assert [(s["start"], s["end"], s["engine"]) for s in report.scenes] == [
        (0, SLOW, "rife"), (SLOW, SLOW + FAST, "dis")]


def test_recorded_choices_need_their_engines():
    manifest = Manifest(source="x", fingerprint=None, destination_suffix=".mkv", engine={}, output={},  # type: ignore[arg-type]
                        resume={}, plan={}, frames_out=10,
                        engine_scenes=[{"start": 0, "end": 5, "engine": "rife", "scores": {}, "samples": 0}])
    dis = DisInterpolator()
    with pytest.raises(WeightsError, match="rife"):
        use_recorded_scenes(dis, manifest)  # auto without RIFE's weights is dis alone
    manifest.engine_scenes = [{"start": 0, "end": 5, "engine": "dis"}]
    assert [c.engine for c in use_recorded_scenes(dis, manifest)] == ["dis"]
    manifest.engine_scenes = None
    assert use_recorded_scenes(dis, manifest) == []


class FarmLike:
    """A ``pipeline.Renderer`` that makes each segment as a farm worker does: a fresh engine built from the
    manifest's settings, given the manifest's per-scene choices (``use_recorded_scenes``), segments in a
    shuffled order."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self.choices_seen: list[list[dict]] = []

    def kept_segments(self, manifest, work_dir, *, ffmpeg):
        return list(manifest.segments)

    def render(self, job, info, *, work_dir, control, on_progress):
        import random

        from midframe.engine.frameloop import Counts
        from midframe.engine.ranges import render_range, segment_ranges

        assert job.manifest.engine_scenes is not None, "the coordinator did not choose before handing out segments"
        spans = segment_ranges(job.timeline.frames_out, job.plan.segment_frames)
        random.Random(4).shuffle(spans)
        for number, (start, end) in enumerate(spans):
            manifest = load_manifest(work_dir)  # what a worker reads
            engine = EngineConfig.model_validate(manifest.engine)
            interpolator = create_interpolator(engine, models_dir=self.models_dir)
            interpolator.load()
            try:
                self.choices_seen.append([c.to_json() for c in use_recorded_scenes(interpolator, manifest)])
                segment, _ = render_range(info=info, plan=job.plan, timeline=job.timeline, engine=engine, start=start,
                                          end=end, work_dir=work_dir, token=f"t{number}", interpolator=interpolator,
                                          ffmpeg=FF, control=JobControl())
            finally:
                interpolator.close()
            job.manifest.segments = sorted([*job.manifest.segments, segment], key=lambda item: item.start)
            job.manifest.save(work_dir)
        return Counts(), {}


def test_farm_segments_use_the_coordinator_s_choice(tmp_path: Path, spliced, rife_weights: Path):
    clip, frames = spliced
    engine = EngineConfig(name="auto", device="cpu")
    settings = {"engine": engine, "output": OutputConfig(codec="ffv1", pix_fmt="gbrp"),
                "resume": ResumeConfig(segment_frames=16), "ffmpeg": FF,
                "make_interpolator": lambda s: create_interpolator(s, models_dir=rife_weights)}
    alone = convert(clip, tmp_path / "alone.mkv", work_dir=tmp_path / "w1", **settings)
    farm = FarmLike(rife_weights)
    spread = convert(clip, tmp_path / "farm.mkv", work_dir=tmp_path / "w2", renderer=farm, **settings)
    assert spread.engine == "auto" and spread.scenes == alone.scenes
    assert [(s["start"], s["end"], s["engine"]) for s in spread.scenes] == [(0, SLOW, "dis"), (SLOW, SLOW + FAST, "rife")]
    assert len(farm.choices_seen) == 6 and all(seen == spread.scenes for seen in farm.choices_seen)
    one, other = read_frames(tmp_path / "alone.mkv"), read_frames(tmp_path / "farm.mkv")
    assert np.array_equal(one[0::2], frames) and np.array_equal(other[0::2], frames)
    assert min(psnr(a, b) for a, b in zip(one[1::2], other[1::2], strict=True)) > 45
