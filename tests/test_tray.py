"""The tray without a desktop: pictures, views, menus, backend choice, and TrayApp against a fake daemon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from midframe.config import Config, resolve_paths
from midframe.errors import DaemonNotRunning
from midframe.tray import backend
from midframe.tray.app import Notification, TrayApp
from midframe.tray.icons import SIZE, draw_icon
from midframe.tray.menu import Entry, build_menu, menu_entries
from midframe.tray.view import TOOLTIP_MAX, WHY_MAX, offline_view, view_from_status

WORKING = {
    "state": "working",
    "current": {"id": 3, "name": "holiday.mp4", "frames_done": 420, "frames_total": 1000, "progress": 0.42,
                "fps": 31.5, "elapsed_s": 13.3, "eta_s": 190.0},
    "queued": 2, "done": 5, "failed": 1,
}
IDLE = {"state": "idle", "current": None, "queued": 0, "done": 0, "failed": 0}
PAUSED = {**WORKING, "state": "paused"}


def test_each_state_has_its_own_picture():
    pictures = {state: draw_icon(state, 0.5).tobytes() for state in ("idle", "working", "paused", "offline")}
    assert len(set(pictures.values())) == 4
    image = draw_icon("idle")
    assert image.size == (SIZE, SIZE) and image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((SIZE // 2, 2))[3] == 255  # a disc
    assert draw_icon("working", 0.1).tobytes() != draw_icon("working", 0.9).tobytes()


def test_working_view_names_file_percent_eta_and_queue():
    view = view_from_status(WORKING)
    assert view.state == "working" and view.ring == 40
    assert view.status_line == "Working: holiday.mp4 42% ETA 3m10s · 2 queued"
    assert "holiday.mp4" in view.tooltip and "42%" in view.tooltip and "ETA 3m10s" in view.tooltip
    assert view_from_status(IDLE).status_line == "Idle · 0 queued"
    paused = view_from_status(PAUSED)
    assert paused.state == "paused" and paused.ring is None
    long = view_from_status({**WORKING, "current": {**WORKING["current"], "name": "x" * 300}})
    assert len(long.tooltip) == TOOLTIP_MAX


def test_a_stalled_job_shows_stalled_and_why_instead_of_an_eta():
    why = "the decoder has made no progress for 40 s (stopped at 120 s and tried again)"
    view = view_from_status({**WORKING, "current": {**WORKING["current"], "eta_s": None, "stalled": why}})
    assert view.status_line == "Working: holiday.mp4 42% stalled · 2 queued"
    assert why in view.tooltip and "ETA" not in view.tooltip


def test_names_in_the_view_are_escaped():
    hostile = os.fsdecode(b"caf\xe9\nWorking: forged.mp4")          # as os.listdir hands it over
    view = view_from_status({**WORKING, "current": {**WORKING["current"], "name": hostile}})
    assert view.status_line == "Working: caf\\xe9\\nWorking: forged.mp4 42% ETA 3m10s · 2 queued"
    assert view.tooltip.startswith("midframe working: caf\\xe9\\nWorking: forged.mp4 42%")
    offline = offline_view(f"cannot read {hostile}", line=f"Start failed: {hostile}")
    for text in (view.status_line, view.tooltip, offline.status_line, offline.tooltip):
        assert "\n" not in text
        text.encode("utf-8")                                       # a toolkit can take it
    assert offline.status_line == "Start failed: caf\\xe9\\nWorking: forged.mp4"


def test_a_paused_view_says_why():
    full = "outbox (/srv/vid\x1beos/out): the disk is full; free some space there; midframe resumes by itself"
    view = view_from_status({**IDLE, "state": "paused", "queued": 2, "paused_reason": full})
    assert view.status_line == "Paused · 2 queued"
    shown = full.replace("\x1b", "\\x1b")
    assert view.why_line == f"Why: {shown}"
    assert view.tooltip == f"midframe paused: {shown} · 2 queued"
    menu = menu_entries(view)
    assert [e.text for e in menu[:2]] == ["Paused · 2 queued", f"Why: {shown}"]
    assert not menu[1].enabled and menu[2] is None and "Resume" in [e.text for e in menu if e]
    # Holding a job: the reason still comes first in the tooltip.
    holding = view_from_status({**PAUSED, "paused_reason": "paused on request; `midframe resume` continues"})
    assert holding.tooltip == ("midframe paused: paused on request; `midframe resume` continues · "
                               "holiday.mp4 42% ETA 3m10s, 2 queued")
    assert holding.why_line == "Why: paused on request; `midframe resume` continues"
    long = view_from_status({**PAUSED, "paused_reason": "x" * 500})
    assert len(long.why_line) == WHY_MAX and long.tooltip.startswith("midframe paused: xxx")
    assert view_from_status(WORKING).why_line == "" and len(menu_entries(view_from_status(WORKING))) == len(menu) - 1


def test_menu_follows_the_state():
    def texts(view: Any) -> list[str | None]:
        return [None if e is None else e.text for e in menu_entries(view)]

    working = texts(view_from_status(WORKING))
    assert working[0].startswith("Working: holiday.mp4 42%")
    assert "Pause" in working and "Resume" not in working and "Stop daemon" in working
    paused = texts(view_from_status(PAUSED))
    assert "Resume" in paused and "Pause" not in paused
    offline = texts(offline_view())
    assert offline[0] == "Daemon not answering"
    assert "Start daemon" in offline and "Stop daemon" not in offline and "Pause" not in offline
    for expected in ("Open inbox", "Open outbox", "Open log", "Quit tray"):
        assert expected in offline
    status_line = menu_entries(offline_view())[0]
    assert isinstance(status_line, Entry) and not status_line.enabled


class FakePystray:
    """pystray's Menu and MenuItem signatures (importing pystray itself needs a display)."""

    class MenuItem:
        def __init__(self, text: str, action: Any, *, enabled: bool = True, default: bool = False) -> None:
            self.text, self.action, self.enabled, self.default = text, action, enabled, default

    class Menu:
        SEPARATOR = object()

        def __init__(self, *items: Any) -> None:
            self.items = items


def test_build_menu_maps_entries_to_pystray_items():
    chosen = []
    menu = build_menu(FakePystray, menu_entries(view_from_status(IDLE)), chosen.append)
    items = list(menu.items)
    assert items[0].text == "Idle · 0 queued" and not items[0].enabled
    assert items[1] is FakePystray.Menu.SEPARATOR
    pause = next(item for item in items if item is not FakePystray.Menu.SEPARATOR and item.text == "Pause")
    pause.action(None, pause)
    assert chosen == ["pause"]
    assert [item.text for item in items if getattr(item, "default", False)] == ["Open outbox"]


@pytest.mark.parametrize(
    ("environ", "platform", "sni", "expected"),
    [
        ({"PYSTRAY_BACKEND": "xorg", "DISPLAY": ":1"}, "linux", True, ["xorg"]),
        ({}, "win32", False, ["win32"]),
        ({}, "darwin", False, ["darwin"]),
        ({"DISPLAY": ":1"}, "linux", True, ["appindicator", "gtk", "xorg"]),
        ({"DISPLAY": ":1"}, "linux", False, ["gtk", "xorg", "appindicator"]),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False, ["appindicator", "gtk"]),
    ],
)
def test_backend_choice(environ, platform, sni, expected):
    assert backend.backend_candidates(environ, platform, has_status_notifier_host=lambda: sni) == expected


def test_desktop_session_detection():
    assert backend.desktop_session_available({}, "win32") and backend.desktop_session_available({}, "darwin")
    assert not backend.desktop_session_available({}, "linux")
    assert backend.desktop_session_available({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert backend.desktop_session_available({"DISPLAY": ":0"}, "linux")


def test_no_bus_address_means_no_status_notifier_host(tmp_path):
    assert not backend.session_bus_has_name(backend.SNI_WATCHER, {"XDG_RUNTIME_DIR": str(tmp_path)})


class FakeDaemon:
    """The control API's client side, in memory."""

    def __init__(self) -> None:
        self.status_answer = dict(IDLE)
        self.events_list: list[dict[str, Any]] = []
        self.last = 1000
        self.calls: list[str] = []
        self.answering = True
        self.event_clients: list[str] = []

    def _check(self) -> None:
        if not self.answering:
            raise DaemonNotRunning("gone")

    def status(self) -> dict[str, Any]:
        self._check()
        return self.status_answer

    def events(self, after: int = 0, *, client: str = "cli") -> dict[str, Any]:
        self._check()
        self.event_clients.append(client)
        return {"events": [e for e in self.events_list if e["seq"] > after], "last": self.last}

    def emit(self, kind: str, title: str, body: str, when: float) -> None:
        self.last += 1
        self.events_list.append({"seq": self.last, "kind": kind, "title": title, "body": body,
                                 "job_id": 1, "time": when})

    def pause(self) -> dict[str, Any]:
        self._check()
        self.calls.append("pause")
        self.status_answer = {**self.status_answer, "state": "paused"}
        return {"state": "paused"}

    def resume(self) -> dict[str, Any]:
        self._check()
        self.calls.append("resume")
        self.status_answer = {**self.status_answer, "state": "idle"}
        return {"state": "idle"}

    def stop(self) -> dict[str, Any]:
        self._check()
        self.calls.append("stop")
        self.answering = False
        return {"stopping": True}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def harness(tmp_path: Path):
    daemon = FakeDaemon()
    clock = Clock()
    opened: list[Path] = []
    spawned: list[Path | None] = []

    class Child:
        def poll(self) -> int | None:
            return 0

    def connect() -> FakeDaemon:
        if not daemon.answering:
            raise DaemonNotRunning("no control.json")
        return daemon

    def spawn(config_path: Path | None) -> Child:
        spawned.append(config_path)
        return Child()

    config = Config(inbox=tmp_path / "in", outbox=tmp_path / "out",
                    daemon={"state_dir": tmp_path / "state"}, logging={"dir": tmp_path / "log"})
    app = TrayApp(connect=connect, paths=resolve_paths(config), config_path=tmp_path / "c.yaml",
                  spawn=spawn, opener=opened.append, clock=clock)
    return app, daemon, clock, opened, spawned


def test_poll_shows_status_and_new_events_once(harness):
    app, daemon, clock, _, _ = harness
    daemon.emit("done", "old", "before the tray started", clock.now - 3600)
    assert app.poll_once() == []  # old news is not shown
    assert app.view.state == "idle" and daemon.event_clients == ["tray"]
    daemon.status_answer = WORKING
    daemon.emit("progress", "midframe: holiday.mp4", "42%, ETA 3m10s (31.5 fps)", clock.now)
    shown = app.poll_once()
    assert shown == [Notification("progress", "midframe: holiday.mp4", "42%, ETA 3m10s (31.5 fps)")]
    assert app.view.state == "working"
    assert app.poll_once() == []


def test_menu_actions_reach_the_daemon(harness):
    app, daemon, _, opened, spawned = harness
    app.poll_once()
    app.request("pause")
    assert app.wake.is_set()
    app.poll_once()
    assert daemon.calls == ["pause"] and app.view.state == "paused"
    app.request("resume")
    app.poll_once()
    assert daemon.calls == ["pause", "resume"] and app.view.state == "idle"
    for action in ("open_inbox", "open_outbox", "open_log"):
        app.act(action)
    assert [p.name for p in opened] == ["in", "out", "log"] and all(p.is_dir() for p in opened)
    app.request("stop_daemon")
    app.poll_once()
    assert daemon.calls[-1] == "stop" and app.view.state == "offline"
    assert [e.text for e in app.menu() if e is not None and e.action == "start_daemon"] == ["Start daemon"]
    app.act("start_daemon")
    assert spawned == [app._config_path]
    app.poll_once()
    assert app.view.status_line == "Starting daemon…"


def test_quit_stops_the_daemon_only_for_midframe_run(harness):
    app, daemon, _, _, _ = harness
    app.request("quit")
    assert app.quit_requested.is_set()
    app.finish()
    assert daemon.calls == []
    app.stop_daemon_on_quit = True
    app.finish()
    assert daemon.calls == ["stop"]


def test_a_daemon_that_goes_away_turns_the_icon_to_offline(harness):
    app, daemon, _, _, _ = harness
    app.poll_once()
    assert app.view.online
    daemon.answering = False
    app.poll_once()
    assert app.view.state == "offline" and "not answering" in app.view.tooltip
    daemon.answering = True
    app.poll_once()
    assert app.view.online


def test_the_progress_ring_follows_the_percent():
    """The view keeps percent; the picture must get a 0..1 fraction (a ring full from 5% on was the bug)."""
    from midframe.tray.view import picture

    at_40 = view_from_status(WORKING)
    assert picture(at_40).tobytes() == draw_icon("working", 0.40).tobytes()
    at_5 = view_from_status({**WORKING, "current": {**WORKING["current"], "progress": 0.05}})
    assert at_5.ring == 5
    full = draw_icon("working", 1.0).tobytes()
    assert picture(at_5).tobytes() != full and picture(at_40).tobytes() != full
    assert picture(view_from_status({**WORKING, "current": {**WORKING["current"], "progress": 1.0}})).tobytes() == full
    # the top-left of the ring (drawn last, from 75% on) is white only when nearly done
    point = (int(SIZE * 0.27), int(SIZE * 0.27))
    assert picture(at_40).getpixel(point)[:3] != (255, 255, 255)


def test_events_the_daemon_showed_itself_are_not_shown_again(harness):
    app, daemon, clock, _, _ = harness
    app.poll_once()
    daemon.emit("started", "midframe: a.mp4", "converting", clock.now)
    daemon.events_list[-1]["shown"] = True  # the daemon's own bubble, before this tray attached
    daemon.emit("done", "midframe: a.mp4 done", "a.50fps.mp4 in 4s", clock.now)
    assert [n.kind for n in app.poll_once()] == ["done"]


def test_start_daemon_shows_why_it_did_not_start(tmp_path, monkeypatch):
    """The menu's "Start daemon" with a config that does not load: a real `midframe watch` child exits
    with its one-line error, which the menu's first line and a notification then say. The tray runs in a
    folder holding an impostor `midframe/` package, which the child must not pick up."""
    import time

    impostor = tmp_path / "cwd" / "midframe"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('impostor')\n")
    monkeypatch.chdir(impostor.parent)

    config = tmp_path / "config.yaml"
    config.write_text("engine: {factor: 40}\n", encoding="utf-8")
    paths = resolve_paths(Config(daemon={"state_dir": tmp_path / "state"}, logging={"dir": tmp_path / "log"}))

    def nobody() -> Any:
        raise DaemonNotRunning("no control.json")

    app = TrayApp(connect=nobody, paths=paths, config_path=config)
    app.act("start_daemon")
    assert app.poll_once() == [] and app.view.status_line == "Starting daemon…"
    deadline = time.monotonic() + 60
    shown: list[Notification] = []
    while not shown and time.monotonic() < deadline:
        time.sleep(0.1)
        shown = app.poll_once()
    assert shown and shown[0].title == "midframe: the daemon did not start"
    assert "engine.factor = 40" in shown[0].body and not shown[0].body.startswith("midframe: error")
    assert app.view.status_line.startswith("Start failed: ") and "engine.factor = 40" in app.view.status_line
    assert "Start daemon" in [e.text for e in app.menu() if e is not None]  # one can try again
    assert app.poll_once() == []  # said once


def test_unseen_failures_mark_the_icon_and_lead_the_menu_until_seen(harness):
    app, daemon, _, opened, _ = harness
    daemon.status_answer = WORKING
    unseen = {"failed_unseen": 2, "failed_unseen_names": ["b\n.mp4", "a.mp4"]}
    events = daemon.events
    daemon.events = lambda after=0, client="cli": {**events(after, client=client), **unseen}
    daemon.failures_seen_calls = 0

    def failures_seen() -> dict[str, Any]:
        daemon.failures_seen_calls += 1
        unseen.update(failed_unseen=0, failed_unseen_names=[])
        return dict(unseen)

    daemon.failures_seen = failures_seen
    app.poll_once()
    view = app.view
    assert view.failed_line == "2 failed: b\\n.mp4, a.mp4 — open failed folder"
    assert view.tooltip.startswith("2 failed: b\\n.mp4, a.mp4 · midframe working")
    entries = [e for e in app.menu() if e is not None]
    assert entries[1] == Entry(view.failed_line, "open_failed")  # right under the status line
    plain = draw_icon("working", 0.4)
    marked = draw_icon("working", 0.4, badge=True)
    assert plain.tobytes() != marked.tobytes()
    assert marked.getpixel((SIZE - 10, 10))[:3] == (229, 0, 0)  # the dot, top right
    assert view.icon_key != view_from_status(WORKING).icon_key
    app.act("open_failed")
    assert opened == [app._paths.failed_dir] and daemon.failures_seen_calls == 1
    assert app.view.failed_line == "" and all(e is None or e.action != "open_failed" for e in app.menu())
    app.poll_once()  # the next poll agrees
    assert app.view.failed_line == "" and app.view.state == "working"
    more = view_from_status(WORKING, {"failed_unseen": 5, "failed_unseen_names": ["e.mp4", "d.mp4", "c.mp4"]})
    assert more.failed_line.startswith("5 failed: e.mp4, d.mp4, c.mp4, …")
