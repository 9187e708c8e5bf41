"""The dashboard in a real browser (Debian's Chromium through Selenium) against a real daemon process.

Logged in through the link `midframe dashboard --print-url` prints: the page shows a job's progress
moving, pauses and resumes it (and `midframe status --json` follows), cancels it, uploads a small clip
that is then converted, and a page on another origin that posts to the daemon is refused.
"""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests import browser
from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip, probe_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SIZE = "160x90"


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    why = browser.missing()
    if why:
        pytest.fail(f"the dashboard's browser test needs Chromium: {why}")
    with browser.chromium() as driver:
        driver.set_page_load_timeout(30)
        yield driver


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("dashboard")
    process = DaemonProcess(root / "run", {"engine": {"name": "dis"}, "daemon": {"settle_seconds": 0.3}})
    process.start()
    try:
        yield process
    finally:
        process.stop_if_running()


def status(daemon: DaemonProcess) -> dict:
    done = daemon.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def progress(driver) -> float:
    return float(driver.find_element("id", "current-progress").get_attribute("aria-valuenow"))


HISTORY_ROWS = ("return [...document.querySelectorAll('#history tbody tr')]"
                ".map(row => [row.dataset.state, ...[...row.cells].map(cell => cell.innerText)])")


def history_row(driver, name: str) -> dict | None:
    """The history table's row for ``name``, read in one go (the page redraws rows as jobs change)."""
    for state, *cells in driver.execute_script(HISTORY_ROWS):
        if cells and cells[0] == name:
            return {"state": state, "output": cells[3], "cells": cells}
    return None


def login_link(daemon: DaemonProcess) -> str:
    done = daemon.cli("dashboard", "--print-url")
    assert done.returncode == 0, done.stderr
    link = done.stdout.splitlines()[0]
    assert link.startswith(daemon.client().url + "/login?code=")
    return link


class OtherSite:
    """A web page on another origin (another port of 127.0.0.1: the same site, so the browser sends
    the SameSite=Strict cookie along, and only the Origin check stands between it and the daemon)."""

    def __init__(self, target: str) -> None:
        page = f"""<!doctype html><html><body><form id="f" method="post" action="{target}/pause"></form>
<script>
fetch("{target}/pause", {{method: "POST", credentials: "include", mode: "no-cors"}})
  .catch(() => null).then(() => document.getElementById("f").submit());
</script></body></html>""".encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 2  # a connection Chromium opens ahead and never uses must not outlive the test

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = False  # so server_close() waits for the handler threads
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="other-site")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_the_dashboard_in_a_browser(daemon, chromium, tmp_path):
    driver = chromium
    url = daemon.client().url
    # Without the login the API answers 401; the printed link logs the browser in.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "/dashboard/state", timeout=5)
    assert refused.value.code == 401
    link = login_link(daemon)
    driver.get(link)
    wait_for(lambda: driver.find_elements("css selector", "body[data-ready=true]"), timeout=20, what="the page")
    assert driver.current_url == url + "/"
    cookie = next(c for c in driver.get_cookies() if c["name"].startswith("midframe_session_"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert text(driver, "state") == "IDLE"

    # A long clip: its progress moves on the page.
    media = tmp_path / "media"
    media.mkdir()
    long_clip = make_clip(media / "long.mp4", seconds=120, size=SIZE)
    shutil.copy(long_clip, daemon.inbox / "long.mp4")
    wait_for(lambda: text(driver, "current-name") == "long.mp4" and progress(driver) > 0, timeout=60,
             what="the job's progress on the page")
    first = progress(driver)
    wait_for(lambda: progress(driver) > first, timeout=30, what="the progress bar to move")
    assert text(driver, "state") == "WORKING" and "fps" in text(driver, "current-fps")

    # Pause and resume from the page; `status --json` follows.
    driver.find_element("id", "pause").click()
    wait_for(lambda: status(daemon)["state"] == "paused", timeout=20, what="status --json to say paused")
    wait_for(lambda: text(driver, "state") == "PAUSED", timeout=10, what="the page to say paused")
    time.sleep(1.0)                                            # the batch under way when it paused
    held = status(daemon)["current"]["frames_done"]
    time.sleep(1.5)
    assert status(daemon)["current"]["frames_done"] == held
    driver.find_element("id", "resume").click()
    wait_for(lambda: status(daemon)["state"] == "working", timeout=20, what="status --json to say working")
    wait_for(lambda: status(daemon)["current"]["frames_done"] > held, timeout=30, what="the job to go on")

    # A page on another origin posts to the daemon with the browser's cookie: refused.
    other = OtherSite(url)
    try:
        driver.get(other.url)
        wait_for(lambda: "requests from another web site are refused" in driver.page_source, timeout=20,
                 what="the daemon's refusal of the other site's form")
    finally:
        other.close()
    assert status(daemon)["state"] == "working"
    driver.get(url + "/")
    wait_for(lambda: text(driver, "current-name") == "long.mp4", timeout=20, what="the page again")

    # Cancel the long job from the page.
    driver.find_element("id", "current-cancel").click()
    wait_for(lambda: (history_row(driver, "long.mp4") or {}).get("state") == "cancelled", timeout=30,
             what="the cancelled job in the history")

    # Upload a small clip through the drop zone's file input: it is converted.
    small = make_clip(media / "small.mp4", seconds=1, size=SIZE)
    driver.find_element("id", "file-input").send_keys(str(small))
    wait_for(lambda: "saved as small.mp4" in text(driver, "uploads"), timeout=30, what="the upload to be saved")
    wait_for(lambda: (history_row(driver, "small.mp4") or {}).get("state") == "done", timeout=60,
             what="the uploaded clip to be converted")
    row = history_row(driver, "small.mp4")
    assert row["output"] == "small.50fps.mp4"
    output = daemon.outbox / "small.50fps.mp4"
    video = next(s for s in probe_json(output)["streams"] if s["codec_type"] == "video")
    assert video["avg_frame_rate"] == "50/1" and int(video["nb_read_frames"]) == 50
    assert not list(daemon.inbox.glob(".midframe-upload-*"))


def test_a_name_with_a_bidi_override_shows_escaped_as_in_the_cli(daemon, chromium):
    """Issue 19, finding 11: "holiday\u202egpj.mkv" read as "holidayvkm.jpg" on the page."""
    driver = chromium
    driver.get(login_link(daemon))
    wait_for(lambda: driver.find_elements("css selector", "body[data-ready=true]"), timeout=20, what="the page")
    (daemon.inbox / "holiday\u202egpj.mkv").write_bytes(b"not a video\n" * 100)
    shown = "holiday\\u202egpj.mkv"
    row = wait_for(lambda: (found := history_row(driver, shown)) and found["state"] == "failed" and found,
                   timeout=60, what="the failed file in the history")
    assert row["cells"][0] == shown and "\u202e" not in driver.execute_script("return document.body.innerText")
    listed = daemon.cli("jobs")
    assert listed.returncode == 0 and shown in listed.stdout


def test_midframe_dashboard_opens_the_link_in_a_browser(daemon, tmp_path):
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.py"
    script.write_text(f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\n", encoding="utf-8")
    daemon.env["BROWSER"] = f"{sys.executable} {script} %s"
    try:
        done = daemon.cli("dashboard")
    finally:
        del daemon.env["BROWSER"]
    assert done.returncode == 0, done.stderr
    link = opened.read_text()
    assert link.startswith(daemon.client().url + "/login?code=") and link in done.stdout
    # The link works once: it logs this client in, then not again.
    with urllib.request.urlopen(link, timeout=5) as answer:
        assert "HttpOnly" in answer.headers["Set-Cookie"]
    with pytest.raises(urllib.error.HTTPError) as again:
        urllib.request.urlopen(link, timeout=5)
    assert again.value.code == 403


def test_logged_out_linked_duplicates_and_which_rate_applies(daemon, chromium, tmp_path):
    """The logged-out page offers no "Log out"; a linked duplicate says whose output it is instead of a
    conversion time; the settings say which of factor and target_fps applies."""
    driver = chromium
    url = daemon.client().url
    driver.get(url + "/")
    driver.delete_all_cookies()
    driver.get(url + "/")
    wait_for(lambda: driver.find_element("id", "login-needed").is_displayed(), timeout=20, what="the login notice")
    assert not driver.find_element("id", "logout").is_displayed()
    driver.get(login_link(daemon))
    wait_for(lambda: driver.find_elements("css selector", "body[data-ready=true]"), timeout=20, what="the page")
    assert driver.find_element("id", "logout").is_displayed()
    wait_for(lambda: "frame rate" in text(driver, "settings"), timeout=20, what="the settings table")
    assert "factor 2 applies: 2 times the source's frames" in text(driver, "settings")
    assert "null (not used)" in text(driver, "settings")            # target_fps, marked as not used

    media = tmp_path / "media"
    media.mkdir()
    clip = make_clip(media / "twin.mp4", seconds=0.8, size=SIZE)  # content no other test converts
    shutil.copy(clip, daemon.inbox / "twin.mp4")
    wait_for(lambda: (history_row(driver, "twin.mp4") or {}).get("state") == "done", timeout=60,
             what="the first copy to be converted")
    shutil.copy(clip, daemon.inbox / "twin again.mp4")
    wait_for(lambda: (history_row(driver, "twin again.mp4") or {}).get("state") == "done", timeout=60,
             what="the second copy to be linked")
    first = next(job for job in daemon.jobs() if job["name"] == "twin.mp4")
    assert first["duplicate_of"] is None and history_row(driver, "twin.mp4")["cells"][4] != "–"
    cells = history_row(driver, "twin again.mp4")["cells"]
    assert f"linked to the earlier output of job {first['id']} (nothing converted)" in cells[2]
    assert cells[4] == "–"                                             # no conversion time
