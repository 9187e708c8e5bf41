"""A short job's started and done bubbles reach the desktop exactly once, tray or no tray.

On the real (virtual) desktop of test_tray_desktop.py: a `midframe watch` daemon and a `midframe tray`
beside it, as with a service. A job while the tray runs is shown by the tray; a job right after the tray
quit is shown by the daemon itself. The second is how bubbles went missing: the daemon took a tray that
had polled in the last 15 s as still there and left every bubble to it, so a job that started and ended
in that window reached nobody (icon shown, job done, nothing in dunst's history).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.media import make_clip
from tests.test_tray_desktop import (
    MISSING,
    Desktop,
    desktop,  # noqa: F401 (the fixture)
    docked_icon,
    history,
    wait_for,
)

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an X11 desktop test"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/setup.sh --dev installs them)"),
    pytest.mark.skipif(shutil.which("gdbus") is None, reason="needs gdbus"),
    pytest.mark.timeout(120),
]


def bubbles(desktop: Desktop) -> Counter:
    """Every bubble shown so far (closing those on screen moves them into the history)."""
    desktop.x(["dunstctl", "close-all"])
    return Counter(history(desktop))


def test_a_short_jobs_bubbles_are_shown_once_with_and_right_after_a_tray(desktop: Desktop, tmp_path: Path):
    clips = {name: make_clip(tmp_path / name, seconds=seconds, size="320x180", audio=False)  # not duplicates
             for name, seconds in (("with-tray.mp4", 1), ("tray-gone.mp4", 1.2))}
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'outbox'}\nengine: {{name: blend, factor: 2}}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, settle_seconds: 0.3, rescan_seconds: 2, min_free_mb: 0}}\n"
        f"logging: {{dir: {tmp_path / 'log'}}}\n",
        encoding="utf-8",
    )
    (tmp_path / "inbox").mkdir()
    env = {**desktop.env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def midframe(*args: str, log: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "midframe", *args, "--config", str(config)], env=env,
                                stdout=open(tmp_path / log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115

    def done_count() -> int:
        answer = subprocess.run([sys.executable, "-m", "midframe", "status", "--json", "--config", str(config)],
                                env=env, capture_output=True, text=True, timeout=30)
        return json.loads(answer.stdout)["done"] if answer.returncode == 0 else -1

    def drop(name: str) -> None:
        partial = tmp_path / "inbox" / f".{name}.part"
        shutil.copyfile(clips[name], partial)
        os.replace(partial, tmp_path / "inbox" / name)

    def expect(name: str, what: str) -> None:
        def both() -> bool:
            seen = bubbles(desktop)
            return bool(seen[(f"midframe: {name}", "converting")]) and any(
                summary == f"midframe: {name} done" for summary, _ in seen)

        wait_for(both, timeout=20, interval=0.3, what=f"{what}: the bubbles of {name} in {history(desktop)}")

    daemon = midframe("watch", log="watch.log")
    tray = midframe("tray", log="tray.log")
    try:
        wait_for(lambda: docked_icon(desktop), what="the tray's icon")
        wait_for(lambda: done_count() == 0, what="the daemon")
        time.sleep(1.5)  # the tray has polled: the daemon leaves bubbles to it

        drop("with-tray.mp4")
        wait_for(lambda: done_count() == 1, what="the first job")
        expect("with-tray.mp4", "shown by the tray")

        tray.terminate()
        assert tray.wait(30) == 0
        drop("tray-gone.mp4")  # within seconds of the tray's last poll
        wait_for(lambda: done_count() == 2, what="the second job")
        expect("tray-gone.mp4", "shown by the daemon once the tray did not take them")
        # each exactly once: by now (more than TRAY_GRACE_S after the first job) a second bubble of the
        # first job from the daemon would have come too
        summaries = Counter(summary for (summary, _), count in bubbles(desktop).items() for _ in range(count))
        assert summaries == Counter({"midframe: with-tray.mp4": 1, "midframe: with-tray.mp4 done": 1,
                                     "midframe: tray-gone.mp4": 1, "midframe: tray-gone.mp4 done": 1}), summaries
    finally:
        for process in (tray, daemon):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    assert daemon.returncode == 0, (tmp_path / "watch.log").read_text()[-2000:]

