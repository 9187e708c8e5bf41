"""One fingerprint format: the daemon takes it once as a file settles, the engine records that one in
its work manifest (without hashing the source again) and every farm task carries it; an older
manifest's or store row's fingerprint is read, or makes the job start afresh, never mistaken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midframe.config import EngineConfig, ResumeConfig
from midframe.daemon.arrivals import Arrivals
from midframe.daemon.store.memory import MemoryJobStore
from midframe.engine import pipeline
from midframe.engine.manifest import load_manifest
from midframe.errors import Aborted
from midframe.farm.renderer import segment_task
from midframe.fs.identity import FINGERPRINT_CHUNK, Fingerprint
from tests.engine_helpers import FF, b_frame_gop_clip, run_convert

ENGINE = EngineConfig(name="blend", device="cpu")


class _Worker:
    def wake(self) -> None:
        pass

    def fail_early(self, job_id: int, error: BaseException) -> None:
        raise AssertionError(f"job {job_id} failed early: {error}")


class _TaskMaker:
    """A farm renderer that makes no segment: it builds the first segment's task as the farm does, then
    stops the job."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.tasks: list = []

    def kept_segments(self, manifest, work_dir, *, ffmpeg):
        return []

    def render(self, job, info, *, work_dir, control, on_progress):
        self.tasks.append(segment_task(job.manifest, work_dir=work_dir, source=self.source, span=(0, 12),
                                       stop_event="stop"))
        raise Aborted("enough")


def test_the_daemons_fingerprint_is_the_manifests_and_every_farm_tasks(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clip = b_frame_gop_clip(inbox / "clip.mp4")
    store = MemoryJobStore()
    Arrivals(store, _Worker(), inbox=inbox, ffmpeg=FF, profiles=dict, sniff=lambda path, ffmpeg: None)(
        clip, clip.stat())
    [job] = store.jobs()
    daemons = Fingerprint.parse(job.fingerprint)
    assert daemons == Fingerprint.of(clip) and daemons is not None

    def hashed_again(*args, **kwargs):
        raise AssertionError("the engine took the fingerprint again")

    monkeypatch.setattr(pipeline.Fingerprint, "of", hashed_again)
    work = tmp_path / "work"
    farm = _TaskMaker(clip)
    with pytest.raises(Aborted):
        run_convert(clip, tmp_path / "out.mkv", engine=ENGINE, resume=ResumeConfig(segment_frames=12),
                    work_dir=work, renderer=farm, fingerprint=daemons)
    manifest = load_manifest(work)
    assert manifest is not None and manifest.fingerprint == daemons
    assert manifest.source_mtime_ns == clip.stat().st_mtime_ns
    [task] = farm.tasks
    assert task.fingerprint == daemons


def test_a_fingerprint_is_of_content_only_and_says_how_two_differ(tmp_path):
    first, copy, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    data = b"H" * FINGERPRINT_CHUNK + b"middle" + b"T" * FINGERPRINT_CHUNK
    first.write_bytes(data)
    copy.write_bytes(data)
    other.write_bytes(data[:-1] + b"X")
    assert Fingerprint.of(first) == Fingerprint.of(copy)                   # another file, another mtime
    assert Fingerprint.of(first).content_change(Fingerprint.of(other)) == "differs in its last MiB"
    # Of the file as the watcher saw it settle, even when more has been written since.
    with open(first, "ab") as handle:
        handle.write(b"appended")
    assert Fingerprint.of(first, size=len(data)) == Fingerprint.of(copy)


def test_text_and_json_round_trip_and_older_forms(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(b"x" * 10)
    print_ = Fingerprint.of(path)
    assert Fingerprint.parse(print_.text()) == print_
    assert Fingerprint.from_json(json.loads(json.dumps(print_.to_json()))) == print_
    # A manifest or farm record of an older midframe kept the mtime inside the fingerprint.
    assert Fingerprint.from_json({**print_.to_json(), "mtime_ns": 5}) == print_
    # A job store row of an older midframe: one hash of both ends, which nothing can be compared with.
    assert Fingerprint.parse(f"10:{'a' * 64}") is None and Fingerprint.parse("f") is None
    assert Fingerprint.parse(None) is None and Fingerprint.parse(f"x:{'a' * 64}:{'b' * 64}") is None


def test_an_older_manifest_is_read_with_its_mtime(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    print_ = {"size": 10, "mtime_ns": 123, "head": "a" * 64, "tail": "b" * 64}
    (work / "manifest.json").write_text(json.dumps({
        "source": "x", "fingerprint": print_, "destination_suffix": ".mkv", "engine": {}, "output": {},
        "resume": {}, "plan": {}, "frames_out": 4, "segments": [], "version": 2}), encoding="utf-8")
    manifest = load_manifest(work)
    assert manifest is not None and manifest.source_mtime_ns == 123
    assert manifest.fingerprint == Fingerprint(size=10, head="a" * 64, tail="b" * 64)
