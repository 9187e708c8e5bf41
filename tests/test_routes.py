"""The decisions the routes hand back to the worker (midframe.daemon.jobs.routes.decide: pure), and the
worker applying them (a real worker, store in memory, real files)."""

from __future__ import annotations

import pytest

from midframe.daemon.jobs.outcomes import BACKOFF_CAP_S, Outcome
from midframe.daemon.jobs.pauses import DISK, FARM, SETTINGS
from midframe.daemon.jobs.routes import GENERAL_LAST_ADVICE, ROUTES, Decision, Route, decide, pause_name
from midframe.errors import DeviceError, FarmUnavailable, MediaError, OutputError
from tests.test_worker import Harness


def test_every_kind_of_outcome_has_a_route():
    assert set(ROUTES) == {"input", "setting", "changed", "source_changed", "source_gone", "transient"}
    for kind, route in ROUTES.items():
        if kind in ("transient", "setting", "source_changed"):
            continue
        decision = decide(Outcome(kind, "x"), name="a.mp4", attempts=1, max_attempts=2)  # type: ignore[arg-type]
        assert decision == Decision(route, Outcome(kind, "x")) and not decision.wakes  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempts", "wait"), [(0, 30.0), (1, 30.0), (2, 60.0), (3, 120.0), (40, BACKOFF_CAP_S)])
def test_a_transient_failure_is_retried_after_a_growing_backoff(attempts, wait):
    outcome = Outcome("transient", "ffmpeg crashed", "midframe tries again")
    decision = decide(outcome, name="a.mp4", attempts=attempts, max_attempts=100)
    assert (decision.route, decision.outcome, decision.wait_s, decision.wakes) == (Route.RETRY, outcome, wait, True)


def test_the_last_attempt_fails_the_input_and_says_how_often_it_was_tried():
    outcome = Outcome("transient", "ffmpeg crashed", "midframe tries again", last_advice="remux it")
    once = decide(outcome, name="a.mp4", attempts=1, max_attempts=1)
    assert once.route is Route.FAIL and once.outcome == Outcome("transient", "a.mp4 failed: ffmpeg crashed", "remux it")
    twice = decide(Outcome("transient", "ffmpeg crashed"), name="a.mp4", attempts=2, max_attempts=2)
    assert twice.outcome.problem == "a.mp4 failed 2 times; the last time: ffmpeg crashed"
    assert twice.outcome.advice == GENERAL_LAST_ADVICE and not twice.wakes


@pytest.mark.parametrize(("resolved_by", "key", "name"), [
    ("check", "engine.device", SETTINGS), ("config_change", "output.codec", SETTINGS), ("farm", "farm.scheduler", FARM),
    ("space", "outbox", DISK), ("write", "daemon.done_dir", "folder daemon.done_dir"), ("write", None, "folder outbox"),
])
def test_a_setting_pauses_under_the_name_of_its_problem(resolved_by, key, name):
    outcome = Outcome("setting", "p", "a", key=key, resolved_by=resolved_by)
    decision = decide(outcome, name="a.mp4", attempts=5, max_attempts=1)  # attempts do not count for settings
    assert (decision.route, decision.pause, decision.hold) == (Route.PAUSE, name, None)
    assert pause_name(outcome) == name


def test_a_source_that_may_still_be_arriving_settles_again_for_as_long_as_the_outcome_says():
    decision = decide(Outcome("source_changed", "a.mp4 is truncated", wait_s=42.0), name="a.mp4", attempts=0,
                      max_attempts=2)
    assert (decision.route, decision.wait_s) == (Route.RESETTLE, 42.0)


# --- the router carries the decision out and hands it back; the worker applies it --------------------


def test_the_router_hands_a_pause_back_instead_of_pausing_the_worker(tmp_path):
    h = Harness(tmp_path)
    job_id = h.drop("a.mp4")
    job = h.store.claim()
    decision = h.worker.router.route(job, DeviceError("device cuda: not available"), h.config)
    assert decision.route is Route.PAUSE and decision.hold is not None and decision.hold.name == SETTINGS
    assert h.worker.pause_reason is None                      # nothing paused yet: the worker decides when
    assert h.job(job_id).state == "queued" and h.job(job_id).attempts == 0    # no attempt used
    h.worker.apply(decision)
    assert h.worker.pause_reason == decision.hold.reason and "engine.device" in decision.hold.reason
    assert h.kinds() == ["paused"]


def test_a_folder_pause_lifts_by_its_own_recheck(tmp_path):
    h = Harness(tmp_path)
    h.drop("a.mp4")
    job = h.store.claim()
    h.read_only.add(h.paths.outbox)
    decision = h.worker.router.route(job, OutputError(h.paths.outbox / "x.mp4", "Permission denied"), h.config)
    assert decision.pause == "folder outbox" and decision.hold is not None
    assert decision.hold.recheck is not None and decision.hold.recheck(h.config) == decision.hold.reason
    h.read_only.clear()
    assert decision.hold.recheck(h.config) is None


def test_a_farm_pause_rechecks_the_farm(tmp_path):
    h = Harness(tmp_path)
    h.drop("a.mp4")
    job = h.store.claim()
    decision = h.worker.router.route(job, FarmUnavailable("farm.scheduler: tcp://x:1 does not answer"), h.config)
    assert decision.pause == FARM and decision.hold is not None and decision.hold.recheck is not None
    assert decision.hold.recheck(h.config) is None        # the services' default: no farm, nothing to wait for


def test_a_failed_input_is_done_with_before_the_worker_sees_the_decision(tmp_path):
    h = Harness(tmp_path)
    job_id = h.drop("a.mp4")
    job = h.store.claim()
    decision = h.worker.router.route(job, MediaError(h.paths.inbox / "a.mp4", "is not a video file"), h.config)
    assert decision.route is Route.FAIL and not decision.wakes and decision.hold is None
    assert h.job(job_id).state == "failed" and (h.paths.failed_dir / "a.mp4.error.txt").exists()
    assert h.kinds() == ["failed"]
    h.worker.apply(decision)
    assert h.worker.pause_reason is None
