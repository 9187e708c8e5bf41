"""The daemon's control target (midframe.daemon.control_target.DaemonControl) over a real worker and an
in-memory store: what the control API and the dashboard read and ask, without the HTTP server."""

from __future__ import annotations

from midframe.daemon.control_target import DaemonControl
from tests.test_worker import Harness


def make(tmp_path) -> tuple[Harness, DaemonControl, list[str]]:
    h = Harness(tmp_path)
    stops: list[str] = []
    control = DaemonControl(store=h.store, worker=h.worker, event_log=h.events, farm=None,
                            request_stop=lambda: stops.append("stop"))
    return h, control, stops


def test_status_follows_the_worker_and_the_store(tmp_path):
    h, control, _ = make(tmp_path)
    h.drop("a.mp4")
    assert control.status() == {"state": "idle", "current": None, "queued": 1, "done": 0, "failed": 0,
                                "paused_reason": None, "farm": None}
    assert control.status_line() == "idle; 1 queued, 0 done, 0 failed"
    paused = control.pause()
    assert paused["state"] == "paused" and paused["paused_reason"].startswith("paused on request")
    assert control.status_line().startswith("paused; 1 queued")
    assert control.resume()["state"] == "idle"
    assert h.worker.run_once()
    assert control.status()["done"] == 1 and control.jobs()[0]["state"] == "done"


def test_retry_cancel_front_and_stop(tmp_path):
    h, control, stops = make(tmp_path)
    first, second = h.drop("a.mp4"), h.drop("b.mp4")
    assert control.move_to_front(second)["id"] == second
    assert control.cancel(first)["state"] == "cancelled"
    assert control.retry(first)["state"] == "queued"
    assert control.stop() == {"state": "stopping"} and stops == ["stop"]


def test_the_news_feed_carries_the_unseen_failures(tmp_path):
    h, control, _ = make(tmp_path)
    h.drop("a.mp4")
    h.convert.errors = [ValueError("boom")] * 2
    h.config = h.config.model_copy(update={"daemon": h.config.daemon.model_copy(update={"max_attempts": 1})})
    h.worker.run_once()
    feed = control.events(0, client="tray")
    assert [event["kind"] for event in feed["events"]][-1] == "failed"
    assert feed["failed_unseen"] == 1 and feed["failed_unseen_names"] == ["a.mp4"]
    assert control.failures_seen() == {"failed_unseen": 0, "failed_unseen_names": []}
