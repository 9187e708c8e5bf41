"""The systemd watchdog keep-alive follows the worker: it stops while a job is stuck, and comes back.

A real daemon (in this process, to give it a short stuck bound) converts a real clip with real ffmpeg
children and talks sd_notify to a socket the test owns. The test hangs the job for real by stopping
its ffmpeg children (SIGSTOP, with psutil), then lets them go on.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

import psutil
import pytest

from midframe.daemon.jobs.liveness import StuckWatch
from midframe.daemon.sd_notify import SystemdNotifier
from midframe.daemon.startup import finish, serve, start_daemon
from tests.media import make_clip
from tests.test_systemd import FakeSystemd

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sd_notify is Linux only")


def test_the_stuck_watch_judges_only_a_job_under_way():
    watch = StuckWatch(bound_s=60)
    working = {"state": "working", "current": {"id": 1, "frames_done": 10}, "queued": 0, "done": 0, "failed": 0}
    assert watch.alive(working, now=0)
    assert watch.alive(working, now=59)
    assert not watch.alive(working, now=60) and watch.stuck
    moved = {**working, "current": {"id": 1, "frames_done": 11}}
    assert watch.alive(moved, now=61) and not watch.stuck
    for calm in ({**working, "state": "paused"}, {"state": "idle", "current": None, "queued": 3, "done": 0,
                                                   "failed": 0}):
        quiet = StuckWatch(bound_s=60)
        assert quiet.alive(calm, now=0) and quiet.alive(calm, now=3600)  # paused or idle: never stuck
    assert not StuckWatch().alive(working, now=0, worker_running=False)  # its thread has ended


def collect(systemd: FakeSystemd, seconds: float) -> list[dict[str, str]]:
    """Every message that arrives in the next ``seconds`` (the daemon talks every 0.1 s: never silent)."""
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        systemd.sock.settimeout(left)
        try:
            data = systemd.sock.recv(4096)
        except (TimeoutError, OSError):
            break
        got.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
    return got


def ffmpeg_children() -> list[psutil.Process]:
    return [child for child in psutil.Process().children(recursive=True) if "ffmpeg" in child.name()]


def test_keepalives_stop_while_the_job_is_stuck(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=8, size="640x360", fps="25", audio=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\nengine: {{name: blend}}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, settle_seconds: 0.2, rescan_seconds: 1, min_free_mb: 0}}\n"
        f"logging: {{dir: {tmp_path / 'log'}}}\nnotifications: {{enabled: false}}\n",
        encoding="utf-8",
    )
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    lifecycle = SystemdNotifier(systemd.address, watchdog_usec=200_000)  # a keep-alive every 0.1 s at most
    daemon = start_daemon(config, lifecycle=lifecycle)
    loop = threading.Thread(target=serve, args=(daemon,), name="test-serve",
                            kwargs={"watch": StuckWatch(bound_s=1.5), "heartbeat_s": 0.1})
    loop.start()
    stopped: list[psutil.Process] = []
    try:
        shutil.copyfile(clip, tmp_path / "in" / "clip.mp4")
        deadline = time.monotonic() + 60
        while not ((daemon.status()["current"] or {}).get("frames_done") and ffmpeg_children()):
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        assert any(m.get("WATCHDOG") == "1" for m in collect(systemd, 0.3))  # alive while it moves

        stopped = ffmpeg_children()
        for child in stopped:
            child.suspend()
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + 30  # the frames already queued drain first, then nothing moves
        while not any(m.get("STATUS", "").startswith("stuck:") for m in seen):
            assert time.monotonic() < deadline, f"never said stuck: {seen[-20:]}"
            seen += collect(systemd, 0.2)
        first = next(m for m in seen if m.get("STATUS", "").startswith("stuck:"))
        assert first["STATUS"].startswith("stuck: no progress on clip.mp4 for ")
        after = seen[seen.index(first):] + collect(systemd, 1.5)
        # keep-alives went on until the bound (1.5 s after the last progress), and none since
        assert not [m for m in after if m.get("WATCHDOG") == "1"], after
        assert daemon.status()["state"] == "working"  # (the daemon's API still answers: only the job hangs)

        for child in stopped:
            child.resume()
        stopped = []
        deadline = time.monotonic() + 30
        while not any(m.get("WATCHDOG") == "1" for m in collect(systemd, 0.2)):
            assert time.monotonic() < deadline, "no keep-alive after the job moved again"
    finally:
        for child in stopped:
            child.resume()
        daemon.request_stop()
        loop.join(30)
        finish(daemon)
        lifecycle.close()
        systemd.close()


def test_stall_news_goes_out_once_per_stall_of_a_job():
    from midframe.daemon.startup import StallNews

    said: list[tuple[int, str, str]] = []
    news = StallNews(lambda job_id, name, sentence: said.append((job_id, name, sentence)))
    working = {"id": 3, "name": "a.mp4", "stalled": None}
    stalled = {**working, "stalled": "the decoder has made no progress for 30 s"}
    for current in (None, working, stalled, stalled, stalled):
        news.see(current)
    assert said == [(3, "a.mp4", "the decoder has made no progress for 30 s")]
    news.see(working)  # it moved again; a second stall is news again
    news.see(stalled)
    news.see({**stalled, "id": 4, "name": "b.mp4"})
    assert [item[:2] for item in said] == [(3, "a.mp4"), (3, "a.mp4"), (4, "b.mp4")]
