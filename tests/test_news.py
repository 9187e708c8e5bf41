"""News that travels: Apprise itself sending to a real HTTP receiver on loopback, and after-job commands,
both from a real daemon (``midframe watch``) converting a real clip and failing a text file named .mp4.

The receiver is a plain ``http.server`` on 127.0.0.1 that records what Apprise's ``json://`` plugin
posts; the after-job command is a small Python script that writes its MIDFRAME_* environment to a file.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess, wait_for
from tests.media import make_clip

pytestmark = pytest.mark.timeout(180)

SECRET = "s3cr3t-webhook-key"  # the part of the URL that must never be shown
ENV_SCRIPT = """\
import json, os, sys
from pathlib import Path
event = os.environ["MIDFRAME_EVENT"]
values = {k: v for k, v in os.environ.items() if k.startswith("MIDFRAME_")}
Path(sys.argv[1], f"{event}-{os.environ['MIDFRAME_NAME']}.json").write_text(json.dumps(values))
print(f"hook saw {event} of {os.environ['MIDFRAME_NAME']}")
"""


class Receiver:
    """An HTTP server on loopback that records every POST: (path, JSON body)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def titles(self) -> list[str]:
        return [body["title"] for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def drop(source: Path, inbox: Path, name: str) -> None:
    partial = inbox / f".{name}.part"
    shutil.copyfile(source, partial)
    partial.replace(inbox / name)


def test_apprise_and_after_job_commands_hear_of_a_done_and_a_failed_job(tmp_path: Path, receiver: Receiver):
    (tmp_path / "media").mkdir()
    clip = make_clip(tmp_path / "media" / "holiday.mp4", seconds=1, size="160x120")
    text = tmp_path / "media" / "notes.mp4"
    text.write_text("a shopping list, not a video\n" * 40)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script = tmp_path / "hook.py"
    script.write_text(ENV_SCRIPT)
    url = f"json://127.0.0.1:{receiver.port}/{SECRET}"
    daemon = DaemonProcess(tmp_path / "d", {
        "notifications": {"enabled": True, "urls": [url],
                          "on_done": [[sys.executable, str(script), str(hooks)]],
                          "on_failed": [f"{sys.executable} {script} {hooks}"]},
        "logging": {"level": "DEBUG"},
    })
    try:
        daemon.start()
        drop(clip, daemon.inbox, "holiday.mp4")
        drop(text, daemon.inbox, "notes.mp4")
        jobs = daemon.wait_jobs_final(2, timeout=90)
        assert sorted(job["state"] for job in jobs) == ["done", "failed"], jobs
        titles = wait_for(lambda: receiver.titles() if len(receiver.received) >= 2 else None, timeout=20,
                          what="two messages at the receiver")
        assert sorted(titles) == ["midframe: holiday.mp4 done", "midframe: notes.mp4 failed"], receiver.received
        bodies = {body["title"]: body for _, body in receiver.received}
        assert bodies["midframe: holiday.mp4 done"]["type"] == "success"
        assert "holiday" in bodies["midframe: holiday.mp4 done"]["message"]  # the output's name
        assert bodies["midframe: notes.mp4 failed"]["type"] == "failure"
        assert "notes.mp4" in bodies["midframe: notes.mp4 failed"]["message"]
        assert "not a video" in bodies["midframe: notes.mp4 failed"]["message"]
        assert all(path == f"/{SECRET}" for path, _ in receiver.received)

        done_env = wait_for(lambda: _read(hooks / "done-holiday.mp4.json"), timeout=20, what="the done hook")
        failed_env = wait_for(lambda: _read(hooks / "failed-notes.mp4.json"), timeout=20, what="the failed hook")
        done_job = next(job for job in jobs if job["state"] == "done")
        assert done_env["MIDFRAME_STATE"] == "done" and done_env["MIDFRAME_JOB_ID"] == str(done_job["id"])
        assert done_env["MIDFRAME_OUTPUT"] == done_job["output"] and Path(done_env["MIDFRAME_OUTPUT"]).is_file()
        assert Path(done_env["MIDFRAME_OUTPUT_DIR"]) == daemon.outbox
        assert Path(done_env["MIDFRAME_SOURCE"]) == daemon.done / "holiday.mp4"
        assert done_env["MIDFRAME_ERROR"] == "" and done_env["MIDFRAME_ERROR_FILE"] == ""
        assert failed_env["MIDFRAME_STATE"] == "failed" and failed_env["MIDFRAME_OUTPUT"] == ""
        assert Path(failed_env["MIDFRAME_SOURCE"]) == daemon.failed / "notes.mp4"
        assert "not a video" in failed_env["MIDFRAME_ERROR"]
        assert Path(failed_env["MIDFRAME_ERROR_FILE"]).read_text().count("not a video") >= 1
        wait_for(lambda: "hook saw failed of notes.mp4" in daemon.log(), timeout=10, what="the hook's output logged")

        # The URL's secret is nowhere a person or another program reads it.
        assert SECRET not in json.dumps(daemon.status())
        assert SECRET not in daemon.cli("status").stdout + daemon.cli("jobs").stdout
        logs = daemon.log() + "".join(p.read_text(errors="replace") for p in daemon.logs.glob("*.log"))
        assert SECRET not in logs
        assert "json://…" in logs  # the sends are logged, by scheme
    finally:
        daemon.stop_if_running()


def test_a_slow_after_job_command_is_killed_and_never_holds_up_the_queue(tmp_path: Path):
    clips = [make_clip(tmp_path / f"c{number}.mp4", seconds=1, size="160x120", audio=False) for number in (1, 2)]
    marker = tmp_path / "slow-finished"
    slow = f"import time, pathlib; time.sleep(30); pathlib.Path({str(marker)!r}).write_text('x')"
    daemon = DaemonProcess(tmp_path / "d", {
        "notifications": {"on_done": [[sys.executable, "-c", slow]], "command_timeout_s": 3},
    })
    try:
        daemon.start()
        started = time.monotonic()
        drop(clips[0], daemon.inbox, "c1.mp4")
        wait_for(lambda: daemon.status()["done"] == 1, timeout=60, what="the first job")
        drop(clips[1], daemon.inbox, "c2.mp4")
        wait_for(lambda: daemon.status()["done"] == 2, timeout=60, what="the second job, while the command sleeps")
        # Both jobs done long before one command's 30 s: the command ran beside the queue.
        assert time.monotonic() - started < 25
        wait_for(lambda: "was killed" in daemon.log(), timeout=20, what="the command killed at its time limit")
        assert "notifications.command_timeout_s (3 s)" in daemon.log()
        time.sleep(1)
        assert not marker.exists()
    finally:
        daemon.stop_if_running()


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_urls_are_shown_by_their_scheme_only():
    from midframe.daemon.apprise_sink import redact, scrub

    assert redact("tgram://123456:AAE-secret/987") == "tgram://…"
    assert redact("  Discord://id/token") == "discord://…"
    assert redact("no scheme at all") == "(not a URL)"
    said = "error sending to tgram://123456:AAE-secret/987 (123456:AAE-secret/987)"
    assert "secret" not in scrub(said, ["tgram://123456:AAE-secret/987"])


def test_a_bad_url_in_the_config_is_named_by_its_place_never_repeated():
    from midframe.config import config_from_mapping
    from midframe.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"notifications": {"urls": ["ntfy://fine", "my-bot-token-1234"]}})
    assert "entry 2 is not an Apprise URL" in str(caught.value)
    assert "my-bot-token-1234" not in str(caught.value)
