"""A failure stays news until it is seen: the count in status, and the dashboard in a real browser
(Debian's Chromium through Selenium) against a real daemon, while later jobs run and finish."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from midframe.daemon.store.memory import MemoryJobStore
from midframe.daemon.store.records import Job
from midframe.daemon.unseen import SEEN_FLAG, UnseenFailures
from tests import browser
from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip


def _failed(store: MemoryJobStore, name: str, *, at: float) -> Job:
    job = store.add(Path(f"/in/{name}"), relpath=name, size=1, mtime=1.0, fingerprint=name, now=at)
    store.claim(now=at)
    return store.finish(job.id, "failed", error="not a video", now=at)


def test_failures_are_unseen_until_marked_and_a_retry_takes_one_off():
    store = MemoryJobStore()
    clock = [100.0]
    unseen = UnseenFailures(store, clock=lambda: clock[0])
    assert unseen.status() == {"failed_unseen": 0, "failed_unseen_names": []}
    first = _failed(store, "a.mp4", at=101.0)
    assert unseen.status() == {"failed_unseen": 1, "failed_unseen_names": ["a.mp4"]}
    clock[0] = 102.0
    unseen.mark_seen()
    assert store.get_flag(SEEN_FLAG) == "102.0"
    assert unseen.status()["failed_unseen"] == 0
    for number, name in enumerate(("b.mp4", "c.mp4", "d.mp4", "e.mp4")):
        _failed(store, name, at=103.0 + number)
    assert unseen.status() == {"failed_unseen": 4, "failed_unseen_names": ["e.mp4", "d.mp4", "c.mp4"]}
    store.retry(first.id)  # seen already: no change
    store.retry(next(job.id for job in store.jobs() if job.name == "e.mp4"))
    assert unseen.status() == {"failed_unseen": 3, "failed_unseen_names": ["d.mp4", "c.mp4", "b.mp4"]}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_dashboard_keeps_a_failure_visible_while_later_jobs_run(tmp_path: Path):
    why = browser.missing()
    if why:
        pytest.fail(f"the dashboard's browser test needs Chromium: {why}")
    media = tmp_path / "media"
    media.mkdir()
    long_clip = make_clip(media / "long.mkv", seconds=12, size="320x240", audio=False)
    later = make_clip(media / "later.mp4", seconds=1, size="160x120", audio=False)
    daemon = DaemonProcess(tmp_path / "d", {"daemon": {"settle_seconds": 0.3}})
    try:
        daemon.start()
        with browser.chromium() as driver:
            driver.set_page_load_timeout(30)
            done = daemon.cli("dashboard", "--print-url")
            assert done.returncode == 0, done.stderr
            driver.get(done.stdout.splitlines()[0])
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), timeout=20,
                     what="the dashboard drawn")
            assert not driver.find_element("id", "unseen").is_displayed()

            drop(long_clip, daemon.inbox, "long.mkv")
            wait_for(lambda: (daemon.status()["current"] or {}).get("name") == "long.mkv", timeout=30,
                     what="the long job under way")
            # Held between two batches, so a quiet machine cannot finish it before the failure comes.
            assert daemon.client().pause()["state"] == "paused"
            (daemon.inbox / "notes.mp4").write_text("a shopping list, not a video\n" * 40)

            def banner() -> str | None:
                element = driver.find_element("id", "unseen")
                return element.text if element.is_displayed() else None

            shown = wait_for(banner, timeout=15, what="the unseen failure on the page")
            assert "1 failed, not seen yet: notes.mp4" in shown
            assert driver.find_element("id", "count-unseen").text == "1"
            assert (daemon.status()["current"] or {}).get("name") == "long.mkv"  # it came while a job ran

            assert daemon.client().resume()["state"] in ("working", "idle")
            drop(later, daemon.inbox, "later.mp4")
            wait_for(lambda: daemon.status()["done"] == 2, timeout=120, what="the long job and a later one done")
            driver.refresh()
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), timeout=20,
                     what="the dashboard drawn again")
            assert "notes.mp4" in (wait_for(banner, timeout=10, what="the failure still shown") or "")
            assert daemon.status()["failed"] == 1
            unseen = daemon.client().events(0)
            assert (unseen["failed_unseen"], unseen["failed_unseen_names"]) == (1, ["notes.mp4"])

            driver.find_element("id", "unseen-seen").click()
            wait_for(lambda: not driver.find_element("id", "unseen").is_displayed(), timeout=10,
                     what="the banner gone after Mark seen")
            assert not driver.find_element("id", "unseen-count-box").is_displayed()
            assert daemon.status()["failed"] == 1 and daemon.client().events(0)["failed_unseen"] == 0
            driver.refresh()  # seen is kept by the daemon, not by the page
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready === 'true'"), timeout=20,
                     what="the dashboard drawn once more")
            assert not driver.find_element("id", "unseen").is_displayed()
    finally:
        daemon.stop_if_running()


def drop(source: Path, inbox: Path, name: str) -> None:
    partial = inbox / f".{name}.part"
    shutil.copyfile(source, partial)
    partial.replace(inbox / name)
