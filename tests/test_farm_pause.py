"""The daemon's side of a scheduler that is away: jobs wait in the queue, status says why, they go on
once it is back; an error saying so mid-job is routed by the outcome table like every other error."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from midframe.daemon.jobs.outcomes import Context, SourceFacts, classify
from midframe.daemon.jobs.settings_check import write_problem
from midframe.daemon.jobs.worker import Worker
from midframe.errors import FarmUnavailable
from midframe.farm.remote import FarmTaskError, from_remote
from midframe.fs import incoming
from tests.test_worker import Harness

AWAY = "farm.scheduler: tcp://10.0.0.5:8786 does not answer (timed out)"


def test_the_outcome_of_a_scheduler_that_is_away():
    outcome = classify(FarmUnavailable(AWAY), Context(source=SourceFacts(Path("/in/a.mp4")), name="a.mp4"))
    assert (outcome.kind, outcome.key, outcome.resolved_by) == ("setting", "farm.scheduler", "farm")
    assert outcome.problem == AWAY and "fallback_local" in outcome.advice
    # An error a farm worker sent back is decided by the same table as a local one.
    remote = from_remote(FarmTaskError("MediaError", "x", worker="tcp://w:1", path="/in/a.mp4", reason="is truncated"))
    assert classify(remote, Context(source=SourceFacts(Path("/in/a.mp4")), name="a.mp4")).kind == "input"


def test_jobs_wait_for_the_scheduler_and_go_on_when_it_is_back(tmp_path):
    away: list[str] = [AWAY]
    harness = Harness(tmp_path)
    harness.worker = Worker(replace(
        harness.services, free_bytes=lambda folder: 10**12, check_farm=lambda config: away[0] if away else None,
        check_settings=lambda config: [], writing=incoming.open_for_writing, folder_test=write_problem,
        resettle=lambda path, quiet_s: None, wall_clock=time.time))
    job_id = harness.drop("a.mp4")
    assert harness.worker.run_once() is False
    assert harness.job(job_id).state == "queued" and harness.worker.pause_reason == AWAY
    away.clear()
    harness.worker.recheck_pauses()  # what the farm's monitor calls when it connects again
    assert harness.worker.pause_reason is None
    assert harness.worker.run_once() is True and harness.job(job_id).state == "done"


def test_a_job_that_loses_the_scheduler_is_queued_without_using_an_attempt(tmp_path):
    harness = Harness(tmp_path)
    harness.convert.errors = [FarmUnavailable(AWAY)]
    job_id = harness.drop("a.mp4")
    assert harness.worker.run_once() is True
    job = harness.job(job_id)
    assert job.state == "queued" and job.attempts == 0 and harness.worker.pause_reason.startswith(AWAY)


def test_with_a_farm_several_jobs_are_converted_at_once(tmp_path):
    """``farm.max_jobs`` slots: the first two jobs run side by side (each waits in its conversion until
    the other is in its own), the third waits for a free slot."""
    harness = Harness(tmp_path)
    both_in = threading.Barrier(2, timeout=20)
    calls = iter(range(100))
    harness.convert.during = lambda control: both_in.wait() if next(calls) < 2 else None
    harness.worker = Worker(replace(
        harness.services, free_bytes=lambda folder: 10**12, slots=lambda config: 2,
        check_settings=lambda config: [], writing=incoming.open_for_writing, folder_test=write_problem,
        resettle=lambda path, quiet_s: None, wall_clock=time.time), idle_wait_s=0.05)
    jobs = [harness.drop(name, name.encode()) for name in ("a.mp4", "b.mp4", "c.mp4")]
    assert harness.worker.run_once() and harness.worker.run_once()
    assert harness.worker.run_once() is False  # both slots taken: the third waits in the queue
    assert harness.job(jobs[2]).state == "queued"
    harness.worker.start()
    try:
        deadline = time.monotonic() + 30
        while not all(harness.job(job).state == "done" for job in jobs):
            assert time.monotonic() < deadline, [harness.job(job).state for job in jobs]
            time.sleep(0.05)
    finally:
        harness.worker.request_stop()
        assert harness.worker.join(10)
    assert not both_in.broken


def test_fallback_local_converts_here_while_the_scheduler_is_away(tmp_path):
    import pytest

    from midframe.farm.coordinator import FarmCoordinator

    calls = []

    def convert(source, destination, **kwargs):
        calls.append(kwargs)
        return "converted here"

    def unreachable(address):
        raise OSError(f"connection refused by {address}")

    for fallback in (True, False):
        coordinator = FarmCoordinator("tcp://10.0.0.5:8786", resources={}, fallback_local=fallback, convert=convert,
                                      ffmpeg=None, make_client=unreachable)
        coordinator._refresh()  # one round of its monitor
        state = coordinator.state()
        assert not state["connected"] and "tcp://10.0.0.5:8786 does not answer" in state["problem"]
        if fallback:
            assert coordinator.convert(tmp_path / "a.mp4", tmp_path / "b.mp4", work_dir=tmp_path / "w") == "converted here"
            assert "renderer" not in calls[0]  # the single-machine pipeline, not the farm's renderer
        else:
            with pytest.raises(FarmUnavailable, match="does not answer"):
                coordinator.convert(tmp_path / "a.mp4", tmp_path / "b.mp4", work_dir=tmp_path / "w")
    assert len(calls) == 1
