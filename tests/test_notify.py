"""Notifications: each event shown exactly once, by the tray that took it or by the daemon itself.

The routing is tested on the real EventLog and Notifier with a recording stand-in for the D-Bus sender
(it evaluates each bubble's "still wanted?" the way the sender thread does when the bubble is due);
the sender itself against a real notification server (dunst on Xvfb with a private session bus).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midframe.daemon.jobs.events import TRAY_GRACE_S, TRAY_TTL_S, EventLog, Notifier
from midframe.desktop_bubbles import DesktopNotifier, notification_id
from midframe.engine.conversion import Progress
from midframe.sentences import format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingDesktop:
    def __init__(self) -> None:
        self.queued: list[tuple[str, str, float, object]] = []
        self.shown: list[tuple[str, str]] = []

    def send(self, title: str, body: str, *, kind: str = "progress", after_s: float = 0.0,
             still_wanted=lambda: True) -> None:
        self.queued.append((title, body, after_s, still_wanted))

    def deliver(self) -> list[tuple[str, str]]:
        """What the sender thread would show now that every queued bubble is due."""
        for title, body, _, still_wanted in self.queued:
            if still_wanted():
                self.shown.append((title, body))
        self.queued.clear()
        return self.shown

    def close(self) -> None:
        pass


def make(clock: Clock, **options):
    log = EventLog(clock=clock)
    desktop = RecordingDesktop()
    return log, desktop, Notifier(log, desktop=desktop, clock=clock, **options)


def test_without_a_tray_the_daemon_shows_each_event_at_once_and_marks_it_shown():
    clock = Clock()
    log, desktop, notifier = make(clock)
    notifier.started(1, "a.mp4")
    assert desktop.queued[0][2] == 0.0
    assert desktop.deliver() == [("midframe: a.mp4", "converting")]
    late_tray = log.since(0, client="tray")["events"]
    assert [e["shown"] for e in late_tray] == [True]  # a tray attaching now does not show it again


def test_an_event_a_tray_takes_is_not_shown_by_the_daemon():
    clock = Clock()
    log, desktop, notifier = make(clock)
    first = log.since(0, client="tray")  # a tray attaches
    notifier.started(1, "a.mp4")
    assert desktop.queued[0][2] == TRAY_GRACE_S  # left to the tray, with a deadline
    taken = log.since(first["last"], client="tray")["events"]
    assert [(e["kind"], e["shown"]) for e in taken] == [("started", False)]
    assert desktop.deliver() == []


def test_a_tray_that_went_away_does_not_swallow_events():
    """The old rule (a tray that polled in the last 15 s shows everything) lost the bubbles of a job
    that started and ended just after the tray quit: nothing reached the desktop."""
    clock = Clock()
    log, desktop, notifier = make(clock)
    log.since(0, client="tray")
    clock.now += 2  # the tray quits; 2 s later a short job runs
    notifier.started(1, "a.mp4")
    notifier.done(1, "a.mp4", "a.50fps.mp4", 4)
    assert log.tray_attached()  # still within TRAY_TTL_S: the daemon defers...
    clock.now += TRAY_GRACE_S
    assert desktop.deliver() == [("midframe: a.mp4", "converting"), ("midframe: a.mp4 done", "a.50fps.mp4 in 4s")]
    clock.now += TRAY_TTL_S
    assert not log.tray_attached()
    assert all(e["shown"] for e in log.since(0, client="tray")["events"])  # a new tray skips them


def test_progress_is_paced_and_disabled_notifications_only_record():
    clock = Clock()
    enabled = [True]
    log, desktop, notifier = make(clock, progress_interval=lambda: 10.0, enabled=lambda: enabled[0])
    notifier.started(2, "b.mkv")
    step = Progress(frames_done=50, frames_total=200, fps=12.5, elapsed_s=4.0, eta_s=125.0)
    assert not notifier.progress(2, "b.mkv", step)  # too soon after "started"
    clock.now += 10
    assert notifier.progress(2, "b.mkv", step)
    assert desktop.deliver()[-1] == ("midframe: b.mkv", "25%, ETA 2m05s (12.5 fps)")
    enabled[0] = False
    notifier.done(2, "b.mkv", "b.50fps.mkv", 3725)
    assert desktop.queued == []
    last = log.since(0, client="tray")["events"][-1]
    assert last["body"] == "b.50fps.mkv in 1h02m" and last["shown"]  # recorded; the tray must not show it
    assert format_duration(None) == "?" and format_duration(59) == "59s"


def test_event_numbers_keep_growing_across_restarts():
    clock = Clock()
    last = EventLog(clock=clock).append("warning", "x").seq
    clock.now += 1
    assert EventLog(clock=clock).append("warning", "y").seq > last


def test_notifications_are_escaped_for_the_desktop_and_the_tray():
    desktop = RecordingDesktop()
    events = EventLog()
    notifier = Notifier(events, desktop=desktop)
    name = os.fsdecode(b"caf\xe9 \xff.mp4")  # a name that is not UTF-8, as the OS gives it
    notifier.failed(1, "a\nb.mp4", f"{name}: is not a video file")
    assert desktop.deliver() == [("midframe: a\\nb.mp4 failed", "caf\\xe9 \\xff.mp4: is not a video file")]
    event = events.since(0)["events"][0]
    assert (event["title"], event["body"]) == desktop.shown[0]


def test_desktop_detect():
    assert DesktopNotifier.detect({}) is None
    found = DesktopNotifier.detect({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", "PATH": os.environ["PATH"]})
    assert found is None or Path(found.command).name in {"gdbus", "notify-send"}


def test_notification_ids_are_read_from_the_answer_not_from_uint32():
    assert notification_id("(uint32 7,)\n") == 7
    assert notification_id("(uint32 1234,)") == 1234
    assert notification_id("42\n") == 42  # notify-send --print-id
    assert notification_id("") is None


DESKTOP_SCRIPT = r"""
import json
from midframe.daemon.jobs.events import EventLog, Notifier
from midframe.desktop_bubbles import DesktopNotifier
desktop = DesktopNotifier.detect()
assert desktop is not None, "no notifier found on the session bus"
notifier = Notifier(EventLog(), desktop=desktop)
notifier.started(1, "clip.mp4")
notifier.done(1, "clip.mp4", "clip.50fps.mp4", 12)
notifier.close()
print(json.dumps(desktop.shown_ids))
"""


@pytest.mark.desktop
def test_desktop_bubbles_reach_a_real_notification_server(tmp_path):
    if not all(map(shutil.which, ("dbus-run-session", "dunst", "dunstctl", "Xvfb", "gdbus"))):
        pytest.skip("needs dbus-run-session, Xvfb, dunst and gdbus")
    script = tmp_path / "notify.py"
    script.write_text(DESKTOP_SCRIPT, encoding="utf-8")
    shell = (
        "Xvfb -displayfd 1 -nolisten tcp > display.txt 2>/dev/null & xvfb=$!; "
        "for i in $(seq 100); do [ -s display.txt ] && break; sleep 0.05; done; export DISPLAY=:$(cat display.txt); "
        "dunst > /dev/null 2>&1 & dunst=$!; "
        "for i in $(seq 50); do dunstctl is-paused >/dev/null 2>&1 && break; sleep 0.1; done; "
        f"{sys.executable} {script} > ids.json; rc=$?; sleep 0.3; dunstctl count displayed > displayed.txt; "
        "dunstctl close-all; sleep 0.2; dunstctl history > history.json; kill $dunst $xvfb; exit $rc"
    )
    done = subprocess.run(["dbus-run-session", "--", "bash", "-c", shell], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    ids = json.loads((tmp_path / "ids.json").read_text())
    assert len(ids) == 2 and len(set(ids)) == 2 and 32 not in ids, ids  # the server's own numbers
    assert (tmp_path / "displayed.txt").read_text().strip() == "1"  # the first bubble was closed by the second
    entries = json.loads((tmp_path / "history.json").read_text())["data"][0]
    bubbles = sorted((n["id"]["data"], n["summary"]["data"], n["body"]["data"]) for n in entries)
    assert bubbles == [(ids[0], "midframe: clip.mp4", "converting"),
                       (ids[1], "midframe: clip.mp4 done", "clip.50fps.mp4 in 12s")]


FAKE_GDBUS = """#!/bin/sh
# Records each call; answers Notify with the next id, as gdbus prints it.
echo "$*" >> "$(dirname "$0")/calls.txt"
case "$*" in *Notify\\ *) n=$(grep -c 'Notifications.Notify ' "$(dirname "$0")/calls.txt"); echo "(uint32 $n,)";; esac
"""


def test_done_and_failed_bubbles_are_never_closed_by_later_ones(tmp_path):
    """A stand-in gdbus (a script that records its arguments): the real server is test_tray_failures's."""
    fake = tmp_path / "gdbus"
    fake.write_text(FAKE_GDBUS)
    fake.chmod(0o755)
    desktop = DesktopNotifier(str(fake))
    for title, kind in (("a.mp4", "started"), ("a.mp4 40%", "progress"), ("a.mp4 failed", "failed"),
                        ("b.mp4", "started"), ("b.mp4 done", "done"), ("c.mp4", "started")):
        desktop._show(title, "", kind)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    closed = [line.rsplit(" ", 1)[1] for line in calls if "CloseNotification" in line]
    assert desktop.shown_ids == [1, 2, 3, 4, 5, 6]
    assert closed == ["1", "2", "4"]  # started and progress only: never 3 (failed) or 5 (done)
    failed = next(line for line in calls if "a.mp4 failed" in line)
    assert "{'urgency': <byte 2>} 0" in failed  # critical, no time-out
    done = next(line for line in calls if "b.mp4 done" in line)
    assert done.endswith("{} 8000")
