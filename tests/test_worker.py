"""The worker's outcomes. Error routing uses a small stand-in for pipeline.convert (the real pipeline
cannot be made to raise TransientError or OutOfMemory on demand); the success path also runs the real
pipeline on a real clip (the last test)."""

from __future__ import annotations

import errno
import os
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from midframe.config import Config, Paths, config_from_mapping
from midframe.daemon.jobs.events import EventLog, JobEvents, Notifier
from midframe.daemon.jobs.finishing import ReadBack
from midframe.daemon.jobs.naming import format_fps, output_name
from midframe.daemon.jobs.progress_sinks import ProgressRecord
from midframe.daemon.jobs.services import JobServices
from midframe.daemon.jobs.worker import Worker
from midframe.daemon.store.memory import MemoryJobStore
from midframe.engine.conversion import PipelineReport, Progress
from midframe.errors import ConfigError, DeviceError, MediaError, OutOfMemory, OutputError, TransientError
from midframe.fs.identity import Fingerprint


class FakeConvert:
    """Stands in for pipeline.convert: writes a few bytes, reports progress, honours the JobControl."""

    def __init__(self) -> None:
        self.errors: list[BaseException | None] = []
        self.calls: list[dict] = []
        self.during = None        # called with the JobControl half-way through
        self.after = None         # called once the result is in place, after the last checkpoint

    def __call__(self, source, destination, *, work_dir, engine, output, resume, make_interpolator, ffmpeg,
                 control=None, on_progress=None, fingerprint=None):
        self.calls.append({"source": Path(source), "destination": Path(destination), "work_dir": Path(work_dir),
                           "engine": engine.name, "codec": output.codec, "fingerprint": fingerprint})
        data = Path(source).read_bytes()
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        (Path(work_dir) / "manifest.json").write_text("{}")
        on_progress(Progress(frames_done=5, frames_total=10, fps=10.0, elapsed_s=0.5, eta_s=0.5))
        if self.during is not None:
            self.during(control)
        control.checkpoint(poll_s=0.01)
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        assert not Path(destination).exists()
        partial = Path(work_dir) / "joined.tmp"
        partial.write_bytes(b"video:" + data)
        os.replace(partial, destination)
        for leftover in Path(work_dir).iterdir():
            leftover.unlink()
        Path(work_dir).rmdir()
        on_progress(Progress(frames_done=10, frames_total=10, fps=10.0, elapsed_s=1.0, eta_s=0.0))
        if self.after is not None:
            self.after()
        return PipelineReport(source=Path(source), output=Path(destination), engine=engine.name, device="cpu",
                              frames_in=5, frames_out=10, fps_in="25", fps_out=str(25 * engine.factor), wall_s=1.0,
                              model_s=0.1)


class Harness:
    def __init__(self, tmp_path: Path, **daemon_settings) -> None:
        root = tmp_path
        self.paths = Paths(inbox=root / "inbox", outbox=root / "outbox", state_dir=root / "state",
                           done_dir=root / "done", failed_dir=root / "failed", log_dir=root / "logs",
                           cache_dir=root / "cache")
        self.paths.inbox.mkdir()
        self.config = config_from_mapping({"engine": {"name": "blend"},
                                           "daemon": {"min_free_mb": 0, **daemon_settings}})
        self.store = MemoryJobStore()
        self.events = EventLog()
        self.convert = FakeConvert()
        self.free = 10**12
        self.problems: list[str] = []         # what the settings check finds
        self.writers: set[Path] = set()       # files another process holds open for writing
        self.resettled: list[tuple[Path, float]] = []
        self.read_only: set[Path] = set()     # folders whose write test fails (root writes through modes)
        self.tick = 0.0                        # the monotonic clock: recheck periods
        # Added to the wall clock (backoff, stalled copies): files dropped now look an hour old.
        self.skew = 3600.0
        self.job_events = JobEvents()
        self.job_events.subscribe(ProgressRecord(self.store, clock=lambda: self.tick))
        self.job_events.subscribe(Notifier(self.events))
        self.services = JobServices(
            self.store, self.paths, config=lambda: self.config, events=self.job_events, convert=self.convert,
            free_bytes=lambda folder: self.free, check_settings=lambda config: list(self.problems),
            writing=lambda path: Path(path) in self.writers,
            folder_test=lambda folder: "Read-only file system" if any(
                Path(folder) == ro or ro in Path(folder).parents for ro in self.read_only) else None,
            resettle=lambda path, quiet: self.resettled.append((Path(path), quiet)),
            clock=lambda: self.tick, wall_clock=lambda: time.time() + self.skew)
        self.worker = Worker(self.services)
        # FakeConvert's outputs are not videos: reading one back checks its mark, and a duplicate's name
        # comes from the rate its output would have.
        self.worker.finisher._read_back = self.read_back

    def read_back(self, path: Path) -> ReadBack:
        if not Path(path).read_bytes().startswith(b"video:"):
            raise MediaError(path, "is truncated: its video data ends early")
        return ReadBack(Fraction(25 * self.config.engine.factor), 10)

    def drop(self, name: str, content: bytes = b"clip") -> int:
        path = self.paths.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        info = path.stat()
        return self.store.add(path, relpath=name, size=info.st_size, mtime=info.st_mtime,
                              fingerprint=Fingerprint.of(path).text()).id

    def job(self, job_id: int):
        return self.store.get(job_id)

    def kinds(self) -> list[str]:
        return [event["kind"] for event in self.events.since(0)["events"]]

    def outbox_names(self) -> list[str]:
        return sorted(p.name for p in self.paths.outbox.iterdir() if not p.name.startswith("."))

    def later(self, seconds: float) -> None:
        self.tick += seconds
        self.skew += seconds


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path)


def test_success_names_the_output_moves_the_source_and_cleans_up(h):
    job_id = h.drop("show/ep1.mkv")
    assert h.worker.run_once()
    job = h.job(job_id)
    assert job.state == "done" and job.error is None
    output = h.paths.outbox / "show" / "ep1.50fps.mkv"
    assert job.output == str(output) and output.read_bytes() == b"video:clip"
    assert job.path == str(h.paths.done_dir / "show" / "ep1.mkv") and Path(job.path).read_bytes() == b"clip"
    assert not (h.paths.inbox / "show" / "ep1.mkv").exists()
    assert (job.frames_done, job.frames_total) == (10, 10)
    assert list((h.paths.outbox / ".midframe-work").iterdir()) == []
    assert h.convert.calls[0]["work_dir"] == h.paths.outbox / ".midframe-work" / f"job-{job_id}"
    assert h.kinds() == ["started", "done"]
    assert not h.worker.run_once()


def test_each_job_gets_the_config_of_its_start(h):
    h.drop("a.mp4")
    h.worker.run_once()
    h.config = config_from_mapping({"engine": {"name": "dis"}, "output": {"codec": "ffv1"},
                                    "daemon": {"min_free_mb": 0}})
    h.drop("b.mp4", b"other clip")
    h.worker.run_once()
    assert [(c["engine"], c["codec"]) for c in h.convert.calls] == [("blend", "auto"), ("dis", "ffv1")]


def test_never_overwrites_an_output_or_a_done_file(h):
    h.paths.outbox.mkdir()
    (h.paths.outbox / "a.50fps.mp4").write_bytes(b"mine")
    h.paths.done_dir.mkdir()
    (h.paths.done_dir / "a.mp4").write_bytes(b"older")
    job_id = h.drop("a.mp4")
    h.worker.run_once()
    assert Path(h.job(job_id).output).name == "a.50fps (2).mp4"
    assert (h.paths.outbox / "a.50fps.mp4").read_bytes() == b"mine"
    assert Path(h.job(job_id).path).name == "a (2).mp4" and (h.paths.done_dir / "a.mp4").read_bytes() == b"older"


@pytest.mark.parametrize("on_success", ["keep", "delete"])
def test_on_success_keep_or_delete(tmp_path, on_success):
    h = Harness(tmp_path, on_success=on_success)
    job_id = h.drop("a.mp4")
    h.worker.run_once()
    assert h.job(job_id).state == "done"
    assert (h.paths.inbox / "a.mp4").exists() == (on_success == "keep")
    assert not h.paths.done_dir.exists()


def test_bad_input_goes_to_failed_with_its_reason_and_a_retry_never_renames_it(h):
    job_id = h.drop("broken.mkv")
    h.convert.errors = [MediaError(h.paths.inbox / "broken.mkv", "has no video stream"),
                        MediaError(h.paths.failed_dir / "broken.mkv", "has no video stream")]
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.error, job.attempts) == ("failed", "broken.mkv has no video stream", 1)
    moved = h.paths.failed_dir / "broken.mkv"
    assert job.path == str(moved) and moved.read_bytes() == b"clip"
    text = (h.paths.failed_dir / "broken.mkv.error.txt").read_text()
    assert "What went wrong: broken.mkv has no video stream" in text and "check that it plays" in text
    assert f"midframe retry {job_id}" in text and str(h.paths.inbox / "broken.mkv") in text
    assert not (h.paths.outbox / ".midframe-work" / f"job-{job_id}").exists()
    assert h.kinds() == ["started", "failed"]
    h.worker.retry(job_id)
    assert not (h.paths.failed_dir / "broken.mkv.error.txt").exists()
    h.worker.run_once()                                  # fails again: stays broken.mkv, no "broken (2).mkv"
    assert sorted(p.name for p in h.paths.failed_dir.iterdir()) == ["broken.mkv", "broken.mkv.error.txt"]
    h.worker.retry(job_id)
    h.worker.run_once()                                  # then converts from failed_dir, named as it arrived
    job = h.job(job_id)
    assert job.state == "done" and Path(job.path) == h.paths.done_dir / "broken.mkv"
    assert h.outbox_names() == ["broken.50fps.mkv"] and not h.paths.failed_dir.joinpath("broken.mkv").exists()


def test_transient_errors_wait_a_backoff_then_fail(h):
    job_id = h.drop("a.mp4")
    staged = h.paths.outbox / ".midframe-work" / f"job-{job_id}-result.mp4"
    h.convert.errors = [TransientError(f"ffmpeg failed writing {staged} (exit code 1): Broken pipe"),
                        OutOfMemory("cpu ran out of memory; set engine.model_scale: 0.5")]
    before = time.time() + h.skew
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts) == ("queued", 1)
    assert job.error == "ffmpeg failed writing the output of a.mp4 (exit code 1): Broken pipe"
    assert before + 29 < job.not_before < time.time() + h.skew + 31            # 30 s from now, not at once
    assert (h.paths.outbox / ".midframe-work" / f"job-{job_id}").exists()     # kept: the retry resumes
    assert not h.worker.run_once() and len(h.convert.calls) == 1
    h.later(31)
    assert h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.error == "a.mp4 failed 2 times; the last time: cpu ran out of memory; set engine.model_scale: 0.5"
    text = (h.paths.failed_dir / "a.mp4.error.txt").read_text()
    assert "model_scale" in text and "OutOfMemory" not in text and ".midframe-work" not in text
    assert text.count("a.mp4") == 2 and text.startswith("midframe could not convert this file.\n")  # + From:


def test_a_transient_error_then_success(h):
    job_id = h.drop("a.mp4")
    h.convert.errors = [TransientError("pipe lost")]
    h.worker.run_once()
    h.later(31)
    h.worker.run_once()
    assert h.job(job_id).state == "done" and h.outbox_names() == ["a.50fps.mp4"]


def test_a_setting_pauses_keeps_the_job_and_resumes_once_fixed(h):
    from midframe.engine.interpolators.rife.devices import CudaView, resolve_device

    with pytest.raises(DeviceError) as caught:    # the real device check, told there is no CUDA here
        resolve_device("cuda", CudaView(available=False, count=0, build=None))
    job_id = h.drop("a.mp4")
    h.convert.errors = [caught.value]
    h.problems = ["engine.device: cuda: not available; use auto or cpu"]   # and the check sees it too
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0) and (h.paths.inbox / "a.mp4").exists()
    assert h.worker.pause_reason.startswith("engine.device: cuda") and h.kinds() == ["started", "paused"]
    assert not h.worker.run_once()
    h.later(20)
    assert not h.worker.run_once() and h.worker.pause_reason == "engine.device: cuda: not available; use auto or cpu"
    h.problems = []                                   # fixed (a GPU, or engine.device changed)
    h.later(20)
    assert h.worker.run_once() and h.worker.pause_reason is None    # this pass resumes, and converts
    assert h.job(job_id).state == "done"
    assert h.kinds()[-3:] == ["resumed", "started", "done"]


def test_the_settings_check_pauses_before_any_job_and_a_config_change_rechecks_at_once(h):
    h.problems = ["output.codec: 'libx246' cannot encode; change it in the config"]
    assert h.worker.check_settings() == h.problems
    job_id = h.drop("a.mp4")
    assert not h.worker.run_once() and h.job(job_id).state == "queued" and h.convert.calls == []
    assert h.worker.pause_reason == h.problems[0]
    h.problems = []
    h.config = h.config.model_copy(update={"output": h.config.output.model_copy(update={"codec": "libx264"})})
    assert h.worker.run_once() and h.worker.pause_reason is None          # no recheck period needed
    assert h.job(job_id).state == "done"


def test_a_codec_one_container_cannot_hold_waits_for_a_config_change(h):
    job_id = h.drop("a.mp4")
    h.convert.errors = [ConfigError(f"job-{job_id}-result.mp4: a .mp4 file cannot hold ffv1 video (no tag)", key="output.container")]
    h.worker.run_once()
    reason = h.worker.pause_reason
    assert reason.startswith("output.container: the output of a.mp4: a .mp4 file cannot hold ffv1") and "result" not in reason
    h.later(60)
    assert not h.worker.run_once() and h.worker.pause_reason == reason    # the check passes, but nothing changed
    h.config = h.config.model_copy(update={"output": h.config.output.model_copy(update={"container": "mkv"})})
    assert h.worker.run_once() and h.worker.pause_reason is None
    assert h.outbox_names() == ["a.50fps.mkv"]


def test_a_person_resuming_looks_again_at_once(h):
    h.problems = ["engine.name: the engine needs its model weights; run `midframe models fetch`"]
    h.worker.check_settings()
    h.worker.pause()
    assert h.worker.pause_reason.startswith("paused on request") and "engine.name" in h.worker.pause_reason
    h.worker.resume()
    assert h.worker.pause_reason == h.problems[0]     # the person's pause lifts, the setting's stays
    h.problems = []
    h.worker.resume()
    assert h.worker.pause_reason is None and h.kinds() == ["paused", "paused", "resumed"]


def test_a_source_still_open_for_writing_goes_back_to_settling(h):
    job_id = h.drop("a.mp4")
    h.writers.add(h.paths.inbox / "a.mp4")
    assert h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0) and job.not_before > time.time() + h.skew + 60
    assert h.resettled == [(h.paths.inbox / "a.mp4", 0.0)] and h.convert.calls == []
    assert not h.worker.run_once()                    # waits for the watcher to hand the file on again
    h.store.resettled(job_id, size=job.size, mtime=job.mtime, fingerprint=job.fingerprint)
    h.writers.clear()
    assert h.worker.run_once() and h.job(job_id).state == "done"


def test_a_truncated_verdict_on_a_fresh_file_is_a_copy_still_arriving(h):
    h.skew = 0.0                                      # the file was written just now
    job_id = h.drop("a.mkv")
    h.convert.errors = [MediaError(h.paths.inbox / "a.mkv", "is truncated: its video data ends early", incomplete=True)] * 2
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, None) and h.kinds() == ["started"]
    (path, quiet), = h.resettled
    assert path == h.paths.inbox / "a.mkv" and 55 < quiet <= 60
    h.later(61)                                       # quiet for the whole grace: the watcher hands it on
    h.store.resettled(job_id, size=job.size, mtime=job.mtime, fingerprint=job.fingerprint)
    h.worker.run_once()
    assert h.job(job_id).state == "failed" and "is truncated" in h.job(job_id).error
    assert (h.paths.failed_dir / "a.mkv").exists()


def test_output_error_pauses_instead_of_failing_the_input(h):
    job_id = h.drop("a.mp4")
    h.convert.errors = [OutputError(h.paths.outbox, "cannot write it: Read-only file system")]
    h.worker.run_once()
    assert h.job(job_id).state == "queued" and (h.paths.inbox / "a.mp4").exists()
    assert h.worker.pause_reason.startswith(f"outbox ({h.paths.outbox}): cannot write it: Read-only file system")
    h.later(20)                                       # the write test passes again: resumes by itself
    assert h.worker.run_once() and h.worker.pause_reason is None
    assert h.job(job_id).state == "done"


def test_stop_puts_the_job_back_and_keeps_its_work(h):
    job_id = h.drop("a.mp4")
    h.convert.during = lambda control: h.worker.request_stop()
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts, job.frames_done) == ("queued", 0, 5)
    assert (h.paths.outbox / ".midframe-work" / f"job-{job_id}" / "manifest.json").exists()
    assert (h.paths.inbox / "a.mp4").exists() and h.outbox_names() == []


def test_cancel_a_running_job(h):
    job_id = h.drop("a.mp4")
    h.convert.during = lambda control: h.worker.cancel(job_id)
    h.worker.run_once()
    job = h.job(job_id)
    assert job.state == "cancelled" and (h.paths.inbox / "a.mp4").exists()
    assert not (h.paths.outbox / ".midframe-work" / f"job-{job_id}").exists()
    queued = h.drop("b.mp4")
    assert h.worker.cancel(queued).state == "cancelled"


def test_pause_holds_the_running_job_between_batches(h):
    job_id = h.drop("a.mp4")
    held = threading.Event()

    def during(control):
        h.worker.pause()
        assert control.paused
        held.set()

    h.convert.during = during
    runner = threading.Thread(target=h.worker.run_once)
    runner.start()
    assert held.wait(5)
    assert h.worker.current()["id"] == job_id and h.worker.current()["frames_done"] == 5
    assert h.job(job_id).state == "running"
    h.worker.resume()
    runner.join(5)
    assert h.job(job_id).state == "done"
    assert h.kinds() == ["started", "paused", "resumed", "done"]
    h.worker.pause()
    h.drop("b.mp4")
    assert not h.worker.run_once() and h.store.get_flag("paused") == "user"


def test_same_content_and_settings_get_the_earlier_output_under_their_own_name(h):
    first = h.drop("a.mp4", b"same bytes")
    h.worker.run_once()
    again = h.drop("copy of a.mp4", b"same bytes")
    h.worker.run_once()
    job = h.job(again)
    assert (job.state, job.duplicate_of) == ("done", first) and len(h.convert.calls) == 1
    assert h.outbox_names() == ["a.50fps.mp4", "copy of a.50fps.mp4"]
    assert os.path.samefile(job.output, h.job(first).output)            # a hard link, no second copy
    assert (h.paths.done_dir / "copy of a.mp4").exists()
    assert h.kinds()[-1] == "done"


def test_not_duplicates_other_settings_other_middle_or_a_vanished_output(h):
    head, tail = b"H" * (2 << 20), b"T" * (2 << 20)
    first = h.drop("a.mp4", head + b"one middle" + tail)
    h.worker.run_once()
    h.drop("b.mp4", head + b"two middle" + tail)                        # same size, head and tail
    h.worker.run_once()
    assert h.job(first).fingerprint == h.job(2).fingerprint and h.job(2).duplicate_of is None
    h.config = config_from_mapping({"engine": {"name": "blend", "factor": 3}, "daemon": {"min_free_mb": 0}})
    h.drop("c.mp4", head + b"one middle" + tail)                        # same content, factor changed
    h.worker.run_once()
    assert h.job(3).duplicate_of is None
    Path(h.job(3).output).unlink()
    h.drop("d.mp4", head + b"one middle" + tail)                        # same as c, but c's output is gone
    h.worker.run_once()
    assert h.job(4).duplicate_of is None and len(h.convert.calls) == 4
    h.drop("e.mp4", head + b"one middle" + tail)
    h.worker.run_once()
    assert h.job(5).duplicate_of == 4 and len(h.convert.calls) == 4
    assert h.outbox_names() == ["a.50fps.mp4", "b.50fps.mp4", "d.75fps.mp4", "e.75fps.mp4"]


def test_a_twin_of_a_job_whose_output_is_damaged_or_modified_is_converted_afresh(h):
    """Issue 19, finding 5: b.mp4 failed every attempt ("did not read back") and `retry` failed too."""
    first = h.drop("a.mp4", b"same bytes")
    h.worker.run_once()
    made = Path(h.job(first).output)
    made.write_bytes(b"vid")                                            # damaged: does not read back
    twin = h.drop("b.mp4", b"same bytes")
    h.worker.run_once()
    assert (h.job(twin).state, h.job(twin).duplicate_of, len(h.convert.calls)) == ("done", None, 2)
    assert Path(h.job(twin).output).read_bytes() == b"video:same bytes" and made.read_bytes() == b"vid"
    later = h.drop("c.mp4", b"same bytes")                              # b's output stands: c shares it
    h.worker.run_once()
    assert (h.job(later).duplicate_of, len(h.convert.calls)) == (twin, 2)
    assert h.job(later).frames_total == 10
    twin_output = Path(h.job(twin).output)
    twin_output.write_bytes(b"video:other bytes")                       # reads back, but modified since
    os.utime(twin_output, (time.time() + 10, time.time() + 10))
    h.drop("d.mp4", b"same bytes")
    h.worker.run_once()
    assert (h.job(4).state, h.job(4).duplicate_of, len(h.convert.calls)) == ("done", None, 3)
    assert h.outbox_names() == ["a.50fps.mp4", "b.50fps.mp4", "c.50fps.mp4", "d.50fps.mp4"]


def test_a_twin_of_an_output_with_other_frames_than_recorded_is_converted_afresh(h):
    first = h.drop("a.mp4", b"same bytes")
    h.worker.run_once()
    h.store.set_progress(first, frames_done=12, frames_total=12)        # what the job made: not what is there
    h.drop("b.mp4", b"same bytes")
    h.worker.run_once()
    assert (h.job(2).state, h.job(2).duplicate_of, len(h.convert.calls)) == ("done", None, 2)


def settle(h: Harness, job_id: int) -> None:
    """What the watcher does once the file has been quiet for settle_seconds."""
    path = Path(h.job(job_id).path)
    info = path.stat()
    h.store.resettled(job_id, size=info.st_size, mtime=info.st_mtime, fingerprint=Fingerprint.of(path).text())


def test_a_source_that_grew_while_it_was_converted_is_not_published_and_converted_again(tmp_path):
    h = Harness(tmp_path, on_success="delete")
    job_id = h.drop("a.mp4")
    h.convert.during = lambda control: (h.paths.inbox / "a.mp4").write_bytes(b"clip and more of the recording")
    h.worker.run_once()
    first = h.job(job_id)
    assert first.state == "cancelled" and first.output is None
    assert first.error == "a.mp4 grew from 4 to 30 bytes while it was converted; its new content is job 2"
    assert h.outbox_names() == [] and not (h.paths.outbox / ".midframe-work" / f"job-{job_id}").exists()
    assert (h.paths.inbox / "a.mp4").read_bytes() == b"clip and more of the recording"   # never deleted
    new = h.job(2)
    assert (new.state, new.size, new.relpath) == ("queued", 30, "a.mp4") and new.not_before is not None
    assert h.resettled == [(h.paths.inbox / "a.mp4", 0.0)]
    h.convert.during = None
    assert not h.worker.run_once()                     # it waits for the watcher to settle it
    settle(h, 2)
    h.worker.run_once()
    assert h.job(2).state == "done" and h.job(2).duplicate_of is None
    assert Path(h.job(2).output).read_bytes() == b"video:clip and more of the recording"
    assert not (h.paths.inbox / "a.mp4").exists()       # deleted: its output was made from it


def test_a_source_replaced_after_the_last_batch_is_caught_before_publishing(h):
    job_id = h.drop("a.mp4")
    source = h.paths.inbox / "a.mp4"
    original = source.stat()

    def replaced() -> None:                             # same size and mtime: only the inode tells
        (h.paths.inbox / ".swap").write_bytes(b"CLIP")
        os.utime(h.paths.inbox / ".swap", ns=(original.st_atime_ns, original.st_mtime_ns))
        os.replace(h.paths.inbox / ".swap", source)

    h.convert.after = replaced
    h.worker.run_once()
    assert h.job(job_id).state == "cancelled" and "was replaced by another file" in h.job(job_id).error
    assert h.outbox_names() == [] and not Path(h.job(job_id).staged).exists()
    h.convert.after = None
    settle(h, 2)
    h.worker.run_once()
    assert Path(h.job(2).output).read_bytes() == b"video:CLIP"


def test_a_rewrite_that_puts_the_mtime_back_is_found_by_the_hash_and_a_chmod_is_not_a_change(h):
    chmodded = h.drop("a.mp4")
    h.convert.after = lambda: os.chmod(h.paths.inbox / "a.mp4", 0o600)
    h.worker.run_once()
    assert h.job(chmodded).state == "done"             # ctime moved, same content: published

    rewritten = h.drop("b.mp4", b"bbbb")
    source = h.paths.inbox / "b.mp4"
    before = source.stat()

    def rewrite() -> None:
        with open(source, "r+b") as handle:
            handle.write(b"CLIP")
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))

    h.convert.after = rewrite
    h.worker.run_once()
    assert h.job(rewritten).state == "cancelled" and h.job(rewritten).error.startswith("b.mp4 was rewritten")
    assert h.outbox_names() == ["a.50fps.mp4"]


def test_on_success_delete_and_a_duplicate(tmp_path):
    h = Harness(tmp_path, on_success="delete")
    job_id = h.drop("a.mp4")
    h.worker.run_once()
    dup = h.drop("b.mp4", b"clip")                                      # a duplicate of a.mp4
    h.worker.run_once()
    assert h.job(dup).duplicate_of == job_id and not (h.paths.inbox / "b.mp4").exists()
    assert Path(h.job(dup).output).read_bytes() == b"video:clip"


def test_a_job_too_big_for_the_disk_waits_while_the_others_go_on(h):
    big = h.drop("big.mp4", b"x" * (400 << 10))      # estimated at 4 x 400 KiB with factor 2
    small = h.drop("small.mp4", b"y" * (100 << 10))
    h.free = 1 << 20
    assert h.worker.run_once()                          # big does not fit: back in the queue for a while
    assert h.job(big).state == "queued" and h.job(big).attempts == 0
    assert h.job(big).error.startswith(f"outbox ({h.paths.outbox}): 1 MiB free, about 2 MiB needed for big.mp4")
    assert h.worker.pause_reason is None                # not paused: small goes on
    assert h.worker.run_once() and h.job(small).state == "done"
    assert not h.worker.run_once()                      # nothing else could run: the status says why
    assert h.worker.pause_reason == h.job(big).error and h.kinds() == ["warning", "started", "done"]
    h.later(20)
    assert h.worker.run_once() and h.job(big).state == "queued"      # looked at again: still short
    assert not h.worker.run_once() and h.worker.pause_reason.startswith("outbox")
    h.free = 10**9
    assert not h.worker.run_once()                      # not looked at again yet
    h.later(20)
    assert h.worker.run_once() and h.job(big).state == "done" and h.worker.pause_reason is None
    assert h.kinds().count("warning") == 1              # one word about it, not one per look


def test_a_disk_that_fills_up_mid_job_pauses_and_resumes_once_there_is_room(h):
    job_id = h.drop("a.mp4")
    h.convert.errors = [OutputError(h.paths.outbox / ".midframe-work" / "job-1", "disk full: no space left on device",
                                    errno=errno.ENOSPC)]
    h.worker.run_once()
    assert h.job(job_id).state == "queued" and (h.paths.inbox / "a.mp4").exists() and h.job(job_id).attempts == 0
    assert h.worker.pause_reason.startswith(f"outbox ({h.paths.outbox}): disk full")
    h.free = 1000
    h.later(3)
    assert not h.worker.run_once()                      # still full
    h.free = 10**9
    h.later(3)                                           # looked at every few seconds, not every 15
    assert h.worker.run_once() and h.job(job_id).state == "done" and h.worker.pause_reason is None


def test_an_outbox_that_cannot_be_written_pauses_whatever_ffmpeg_said_and_keeps_the_result(h):
    first = h.drop("a.mp4")
    h.read_only.add(h.paths.outbox)
    h.convert.errors = [TransientError("ffmpeg failed encoding seg-0001.mkv (exit code 1): Read-only file system")]
    h.worker.run_once()
    assert h.job(first).state == "queued" and h.job(first).attempts == 0 and not h.paths.failed_dir.exists()
    assert h.worker.pause_reason == (f"outbox ({h.paths.outbox}) cannot be written (Read-only file system); make it "
                                     "writable for the user midframe runs as, or choose another folder; midframe "
                                     "resumes by itself")
    h.later(3)
    assert not h.worker.run_once()                      # still read-only
    h.read_only.clear()
    h.later(3)
    assert h.worker.run_once() and h.job(first).state == "done"

    # Read-only only at the final link: the finished result waits in the work folder meanwhile.
    second = h.drop("b.mp4", b"bbbb")
    finisher = h.worker.finisher
    real_publish = finisher.publish

    def read_only_outbox(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(h.paths.outbox / "b.50fps.mp4"))

    finisher.publish = read_only_outbox
    h.read_only.add(h.paths.outbox)
    h.worker.run_once()
    staged = Path(h.job(second).staged)
    assert h.job(second).state == "queued" and staged.read_bytes() == b"video:bbbb"
    assert h.worker.pause_reason.startswith(f"outbox ({h.paths.outbox}) cannot be written (")
    finisher.publish = real_publish
    h.read_only.clear()
    h.later(3)
    calls = len(h.convert.calls)
    assert h.worker.run_once() and h.job(second).state == "done" and len(h.convert.calls) == calls  # not redone
    assert h.outbox_names() == ["a.50fps.mp4", "b.50fps.mp4"]


def test_trouble_reporting_progress_never_fails_a_job_and_an_internal_error_is_retried(h):
    first = h.drop("a.mp4")
    h.store.set_progress = lambda *args, **kwargs: (_ for _ in ()).throw(OSError("disk I/O error"))
    h.worker.run_once()
    assert h.job(first).state == "done"
    second = h.drop("b.mp4", b"other")
    h.store.set_staged = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("boom"))
    h.worker.run_once()
    assert h.job(second).state == "queued" and h.job(second).error == "an internal error in midframe: boom"
    h.later(31)
    h.worker.run_once()
    assert h.job(second).state == "failed"


def test_vanished_sources_are_dropped_and_changed_ones_settle_again(h):
    gone = h.drop("gone.mp4")
    (h.paths.inbox / "gone.mp4").unlink()
    changed = h.drop("changed.mp4")
    (h.paths.inbox / "changed.mp4").write_bytes(b"different and longer")
    h.worker.run_once()
    h.worker.run_once()
    assert h.job(gone).state == "cancelled" and h.job(gone).error == "gone.mp4 is no longer in the inbox"
    assert (h.job(changed).state, h.job(changed).attempts) == ("queued", 0)
    assert h.resettled == [(h.paths.inbox / "changed.mp4", 0.0)] and h.convert.calls == []


def test_recover_after_a_crash_between_the_final_link_and_the_record(h):
    job_id = h.drop("a.mp4")
    job = h.store.claim()
    staged = h.paths.outbox / ".midframe-work" / f"job-{job_id}-result.mp4"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"finished")
    h.store.set_staged(job_id, str(staged))
    os.link(staged, h.paths.outbox / "a.50fps.mp4")      # the crash came right after this
    (h.paths.outbox / ".midframe-work" / "job-999").mkdir()
    h.worker.recover()
    assert h.job(job_id).state == "queued" and not (h.paths.outbox / ".midframe-work" / "job-999").exists()
    h.worker.finisher.output_name = lambda *args: "a.50fps.mp4"  # no report after a crash: named by probing
    h.worker.run_once()
    assert h.job(job.id).state == "done" and h.outbox_names() == ["a.50fps.mp4"]
    assert h.convert.calls == [] and not staged.exists()


def test_a_job_database_that_refuses_the_final_record_pauses_and_the_job_finishes_once_it_takes_it(h):
    """Issue 19, finding 6, the hard case: the write that records the job done fails (simulated here: the
    in-memory store raises what the SQLite store raises for SQLITE_FULL; tests/test_disks.py fills a real
    state dir). The worker pauses naming daemon.state_dir, shows the job as current (jobs says running),
    and once a write works again the job is queued again and publishes what it made, once."""
    import errno

    from midframe.errors import StoreUnwritable

    real_finish = h.store.finish
    full = {"on": True}

    def finish(job_id, state, **kwargs):
        if full["on"]:
            raise StoreUnwritable(h.paths.state_dir / "jobs.sqlite3", errno.ENOSPC, "database or disk is full")
        return real_finish(job_id, state, **kwargs)

    def set_flag(key, value, real=h.store.set_flag):
        if full["on"] and key == "write-test":
            raise StoreUnwritable(h.paths.state_dir / "jobs.sqlite3", errno.ENOSPC, "database or disk is full")
        return real(key, value)

    h.store.finish, h.store.set_flag = finish, set_flag
    job_id = h.drop("a.mp4")
    assert h.worker.run_once()
    reason = h.worker.pause_reason
    assert reason == (f"daemon.state_dir ({h.paths.state_dir}): the disk is full; free some space there; midframe "
                      "resumes by itself")
    assert h.job(job_id).state == "running" and h.worker.current()["id"] == job_id
    h.later(3)
    assert not h.worker.run_once() and h.worker.pause_reason == reason            # still full
    full["on"] = False
    h.later(3)
    assert h.worker.run_once()                                                     # lifted, queued, claimed
    assert h.job(job_id).state == "done" and h.worker.pause_reason is None and h.worker.current() is None
    assert h.outbox_names() == ["a.50fps.mp4"] and len(h.convert.calls) == 1     # published once, not made again


def test_recover_finishes_a_move_cut_short(h):
    job_id = h.drop("a.mp4")
    h.store.claim()
    h.store.finish(job_id, "done", output=str(h.paths.outbox / "a.50fps.mp4"))
    failed_id = h.drop("b.mkv")
    h.store.claim()
    h.store.finish(failed_id, "failed", error="not a video")
    h.worker.recover()
    assert Path(h.job(job_id).path) == h.paths.done_dir / "a.mp4"
    assert Path(h.job(failed_id).path) == h.paths.failed_dir / "b.mkv"
    assert "not a video" in (h.paths.failed_dir / "b.mkv.error.txt").read_text()


def test_output_names():
    cfg = Config().output
    assert output_name(Path("a.b.mkv"), output=cfg, fps_out=Fraction(50), factor=2, engine="rife") == "a.b.50fps.mkv"
    assert format_fps(Fraction(60000, 1001)) == "59.94" and format_fps("24000/1001") == "23.976"
    assert format_fps("50/1") == "50"
    custom = cfg.model_copy(update={"name": "{stem}-{engine}-x{factor}{ext}", "container": "mkv"})
    assert output_name(Path("a.mp4"), output=custom, fps_out="50", factor=2, engine="dis") == "a-dis-x2.mkv"


def test_config_is_reread_when_the_file_changes_and_a_bad_edit_is_ignored(tmp_path):
    from midframe.config import load_config
    from midframe.daemon.settings import ConfigSource

    path = tmp_path / "config.yaml"
    path.write_text("engine: {name: blend}\n")
    source = ConfigSource(path, load_config(path))
    assert source.refresh().engine.name == "blend"
    path.write_text("engine: {name: dis}\noutput: {codec: ffv1}\n")
    os.utime(path, ns=(1, 1))                               # a different mtime, even on coarse clocks
    assert source.refresh().engine.name == "dis" and source.refresh().output.codec == "ffv1"
    path.write_text("engine: {name: nonsense}\n")
    os.utime(path, ns=(2, 2))
    assert source.refresh().engine.name == "dis"            # invalid: the last good config stays
    path.write_text("engine: {name: blend, factor: 3}\n")
    os.utime(path, ns=(3, 3))
    assert source.reload().engine.factor == 3
    assert ConfigSource(None, Config()).refresh() == Config()


def test_the_real_pipeline_through_the_worker(tmp_path):
    from midframe.daemon.jobs.worker import _pipeline_convert
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator
    from tests.media import make_clip, probe_json

    h = Harness(tmp_path)
    h.worker = Worker(JobServices(h.store, h.paths, config=lambda: h.config, events=h.job_events, ffmpeg=find_ffmpeg(),
                                  make_interpolator=lambda s: create_interpolator(s, models_dir=tmp_path),
                                  convert=_pipeline_convert))
    make_clip(tmp_path / "clip.mp4", seconds=1, size="96x64")
    job_id = h.drop("clip.mp4", (tmp_path / "clip.mp4").read_bytes())
    assert h.worker.run_once()
    job = h.job(job_id)
    assert job.state == "done", job.error
    streams = probe_json(Path(job.output))["streams"]
    assert [s["codec_type"] for s in streams] == ["video", "audio"]
    assert int(streams[0]["nb_read_frames"]) == 50 and Path(job.output).name == "clip.50fps.mp4"
    assert (job.frames_done, job.frames_total, job.resumed_from) == (50, 50, 0)


def test_a_source_replaced_while_its_job_ran_leaves_the_new_content_to_a_new_job(h):
    first = h.drop("a.mp4")

    def replaced(control):
        (h.paths.inbox / "a.mp4").write_bytes(b"the new recording")
        info = (h.paths.inbox / "a.mp4").stat()
        h.store.add(h.paths.inbox / "a.mp4", relpath="a.mp4", size=info.st_size, mtime=info.st_mtime,
                    fingerprint=Fingerprint.of(h.paths.inbox / "a.mp4").text())       # the watcher queued it meanwhile
        raise MediaError(h.paths.inbox / "a.mp4", "is truncated: its video data ends early", incomplete=True)

    h.convert.during = replaced
    h.worker.run_once()
    assert h.job(first).state == "cancelled" and h.job(first).error.endswith("its new content is job 2")
    h.convert.during = None
    h.worker.run_once()
    assert h.job(2).state == "done" and Path(h.job(2).output).read_bytes() == b"video:the new recording"


def test_a_stop_while_the_source_is_hashed_puts_the_job_back(h, monkeypatch):
    from midframe.fs import identity

    job_id = h.drop("a.mp4", b"x" * (9 << 20))                        # three chunks
    real = identity.read_content

    def stop_midway(path, *, keep_going):
        h.worker.request_stop()
        return real(path, keep_going=keep_going)

    monkeypatch.setattr(identity, "read_content", stop_midway)
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts, job.sha256) == ("queued", 0, None) and h.convert.calls == []


def test_the_real_pipeline_names_the_output_after_the_container_it_chose(tmp_path):
    # codec libx264 with container: null, for a .webm source: the plan writes .mkv, and the outbox says so.
    from midframe.daemon.jobs.worker import _pipeline_convert
    from midframe.engine.ffmpeg import find_ffmpeg
    from midframe.engine.interpolators import create_interpolator
    from tests.media import make_clip, probe_json

    h = Harness(tmp_path)
    h.config = config_from_mapping({"engine": {"name": "blend"}, "output": {"codec": "libx264", "preset": "ultrafast"},
                                    "daemon": {"min_free_mb": 0}})
    h.worker = Worker(JobServices(h.store, h.paths, config=lambda: h.config, events=h.job_events, ffmpeg=find_ffmpeg(),
                                  make_interpolator=lambda s: create_interpolator(s, models_dir=tmp_path),
                                  convert=_pipeline_convert))
    make_clip(tmp_path / "clip.webm", seconds=0.6, size="96x64", codec="libvpx-vp9")
    job_id = h.drop("clip.webm", (tmp_path / "clip.webm").read_bytes())
    assert h.worker.run_once()
    job = h.job(job_id)
    assert job.state == "done", job.error
    assert Path(job.output).name == "clip.50fps.mkv" and h.outbox_names() == ["clip.50fps.mkv"]
    assert [s["codec_name"] for s in probe_json(Path(job.output))["streams"]] == ["h264", "opus"]


def test_an_output_that_keeps_failing_verification_leaves_advice_to_act_on(h):
    from midframe.errors import VerificationError

    job_id = h.drop("trim.mp4")
    figures = ("the finished output failed verification: stream #1 (audio) starts 0.300 s away from where it "
               "starts in the source, relative to the video (allowed: under 0.061 s)")
    h.convert.errors = [VerificationError(figures, video_ok=True), VerificationError(figures, video_ok=True)]
    h.worker.run_once()
    assert h.job(job_id).state == "queued"                       # tried again first
    h.later(31)
    h.worker.run_once()
    job = h.job(job_id)
    assert (job.state, job.attempts) == ("failed", 2)
    text = (h.paths.failed_dir / "trim.mp4.error.txt").read_text()
    assert "0.300 s away" in text and "may be fine" not in text
    assert '`ffmpeg -i "trim.mp4" -map 0 -c copy "trim.remux.mkv"`' in text and "into the inbox" in text


def test_the_engine_is_handed_the_fingerprint_the_job_was_queued_with(h):
    """Taken once, as the file settled: the engine records it instead of hashing the source again."""
    job_id = h.drop("a.mp4", b"clip")
    queued = Fingerprint.parse(h.job(job_id).fingerprint)
    h.worker.run_once()
    assert queued is not None and h.convert.calls[0]["fingerprint"] == queued
