"""The job events (midframe.daemon.jobs.events.JobEvents) and their subscribers: the news (Notifier and
its event log), the job's progress on record (ProgressRecord) and the status line (StatusLine); and the
registry of the jobs under way that the worker and the flow share (UnderWay)."""

from __future__ import annotations

import errno
import threading

import pytest

from midframe.daemon.jobs.events import EventLog, JobEvent, JobEvents, Notifier
from midframe.daemon.jobs.progress_sinks import ProgressRecord, StatusLine
from midframe.daemon.jobs.running import Running, UnderWay
from midframe.daemon.jobs.source_identity import GuardedControl, SourceGuard
from midframe.daemon.store.memory import MemoryJobStore
from midframe.engine.children import Children
from midframe.engine.conversion import Progress
from midframe.errors import StoreUnwritable
from midframe.fs.identity import Fingerprint


def step(done: int, total: int = 10, preparing: str | None = None) -> Progress:
    return Progress(frames_done=done, frames_total=total, fps=5.0, elapsed_s=1.0, eta_s=2.0, preparing=preparing)


def test_subscribers_hear_every_event_in_order_and_one_that_fails_does_not_silence_the_others():
    events = JobEvents()
    heard: list[tuple[str, str]] = []

    def broken(event: JobEvent) -> None:
        raise RuntimeError("a bug in a subscriber")

    events.subscribe(lambda event: heard.append(("first", event.kind)))
    events.subscribe(broken)
    events.subscribe(lambda event: heard.append(("last", event.kind)))
    events.started(1, "a.mp4")
    events.progress(1, "a.mp4", step(3))
    events.done(1, "a.mp4", "a.50fps.mp4", 3.0)
    events.failed(2, "b.mp4", "b.mp4 is not a video")
    events.paused("paused on request")
    events.resumed()
    events.stalled(3, "c.mp4", "the decoder has made no progress for 30 s")
    events.warning("the job database was damaged")
    kinds = ["started", "progress", "done", "failed", "paused", "resumed", "stalled", "warning"]
    assert [kind for who, kind in heard if who == "first"] == kinds
    assert [kind for who, kind in heard if who == "last"] == kinds


def test_an_unwritable_store_goes_back_to_the_emitter_and_stops_the_round():
    events = JobEvents()
    heard: list[str] = []

    def record(event: JobEvent) -> None:
        raise StoreUnwritable("/state/jobs.sqlite3", errno.ENOSPC, "database or disk is full")

    events.subscribe(record)
    events.subscribe(lambda event: heard.append(event.kind))
    with pytest.raises(StoreUnwritable):
        events.progress(1, "a.mp4", step(1))
    assert heard == []


def test_the_news_is_the_same_text_as_before():
    log = EventLog()
    events = JobEvents()
    events.subscribe(Notifier(log, progress_interval=lambda: 0.0))
    events.started(1, "a.mp4", resumed_at=0.4)
    events.progress(1, "a.mp4", step(5))
    events.done(1, "a.mp4", "a.50fps.mp4", 125.0)
    events.failed(2, "b.mp4", "b.mp4 is not a video file; check it")
    events.paused("paused on request")
    events.resumed()
    events.stalled(3, "c.mp4", "the encoder has made no progress for 30 s")
    events.warning("c.mp4 waits for room in the outbox")
    said = [(e["kind"], e["title"], e["body"], e["job_id"]) for e in log.since(0)["events"]]
    assert said == [
        ("started", "midframe: a.mp4", "resuming at 40%", 1),
        ("progress", "midframe: a.mp4", "50%, ETA 2s (5.0 fps)", 1),
        ("done", "midframe: a.mp4 done", "a.50fps.mp4 in 2m05s", 1),
        ("failed", "midframe: b.mp4 failed", "b.mp4 is not a video file; check it", 2),
        ("paused", "midframe paused", "paused on request", None),
        ("resumed", "midframe resumed", "", None),
        ("stalled", "midframe: c.mp4 stalled", "the encoder has made no progress for 30 s", 3),
        ("warning", "midframe", "c.mp4 waits for room in the outbox", None),
    ]


def test_progress_goes_on_record_every_second_and_at_its_end():
    store = MemoryJobStore()
    job = store.add(__file__, relpath="a.mp4", size=1, mtime=1.0, fingerprint="x")  # type: ignore[arg-type]
    now = [0.0]
    record = ProgressRecord(store, clock=lambda: now[0])
    events = JobEvents()
    events.subscribe(record)
    events.started(job.id, "a.mp4")
    events.progress(job.id, "a.mp4", step(1))
    assert store.get(job.id).frames_done == 1
    now[0] = 0.5
    events.progress(job.id, "a.mp4", step(2))
    assert store.get(job.id).frames_done == 1            # under a second since the last write
    events.progress(job.id, "a.mp4", step(10))
    assert store.get(job.id).frames_done == 10           # the last report always
    now[0] = 0.6
    events.started(job.id, "a.mp4")                      # the job again (resumed): its pace begins afresh
    events.progress(job.id, "a.mp4", step(4))
    assert store.get(job.id).frames_done == 4


def test_the_status_line_every_five_seconds_and_at_once_while_preparing():
    lines: list[str] = []
    now = [0.0]
    events = JobEvents()
    events.subscribe(StatusLine(lines.append, clock=lambda: now[0]))
    events.started(1, "a.mp4")
    events.progress(1, "a.mp4", step(1))
    now[0] = 4.0
    events.progress(1, "a.mp4", step(2))
    events.progress(1, "a.mp4", step(0, 0, preparing="preparing RIFE for 1920x1080"))
    now[0] = 9.5
    events.progress(1, "a.mp4", step(5))
    events.warning("not about a job's progress")
    assert lines == ["working: a.mp4 10% ETA 2s", "working: a.mp4 preparing RIFE for 1920x1080",
                     "working: a.mp4 50% ETA 2s"]


def _running(tmp_path, store: MemoryJobStore, job_id_name: str = "a.mp4") -> Running:
    path = tmp_path / job_id_name
    path.write_bytes(b"clip")
    info = path.stat()
    job = store.add(path, relpath=job_id_name, size=info.st_size, mtime=info.st_mtime, fingerprint=Fingerprint.of(path).text())
    control = GuardedControl(SourceGuard(job, change=lambda job, info: None), children=Children())
    return Running(job, control, started=0.0, store=store, events=JobEvents(), clock=lambda: 0.0)


def test_a_job_that_begins_after_a_stop_or_during_a_pause_holds_at_once(tmp_path):
    store = MemoryJobStore()
    paused = [True]
    underway = UnderWay(paused=lambda: paused[0])
    first = _running(tmp_path, store)
    underway.begin(first)
    assert first.control.paused and not first.control.aborted
    paused[0] = False
    underway.release()
    assert not first.control.paused
    underway.stop()
    assert first.control.aborted and underway.stopping
    second = _running(tmp_path, store, "b.mp4")
    underway.begin(second)
    assert second.control.aborted
    assert underway.first() is first
    underway.end(first.job.id)
    underway.end(second.job.id)
    assert underway.first() is None and underway.cancel(first.job.id) is None


def test_cancel_reaches_a_job_under_way_from_another_thread(tmp_path):
    store = MemoryJobStore()
    underway = UnderWay()
    running = _running(tmp_path, store)
    underway.begin(running)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (underway.cancel(running.job.id), done.set()))
    thread.start()
    thread.join(5)
    assert done.is_set() and running.cancel_requested and running.control.aborted
