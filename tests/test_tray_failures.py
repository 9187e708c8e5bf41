"""A failure stays visible on a real (virtual) desktop while later jobs run: Xvfb, trayer, dunst.

`midframe run` (daemon and tray); a text file named .mp4 fails as it settles, then a video is converted.
Its "converting" and progress bubbles replace one another, but the failure's bubble stays on screen (it
is not in dunst's history, where closed bubbles go, until the test closes everything), the icon carries
a red dot, and the menu's "1 failed: notes.mp4 — open failed folder" line, chosen with the keyboard,
marks it seen: the dot goes and `status --json` says 0 unseen.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midframe.api.control import ControlClient
from tests.media import make_clip
from tests.test_tray_desktop import (
    MISSING,
    Desktop,
    choose,
    desktop,  # noqa: F401 (the fixture)
    docked_icon,
    history,
    status,
    wait_for,
)

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an X11 desktop test"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/setup.sh --dev installs them)"),
    pytest.mark.skipif(shutil.which("gdbus") is None, reason="needs gdbus"),
    pytest.mark.timeout(180),
]


def red_dot(desktop: Desktop, icon: dict[str, int], tmp_path: Path) -> int:
    """How many pixels of the icon are the badge's red (the offline disc is a duller red)."""
    shot = desktop.screenshot(tmp_path / "icon.png")
    area = shot.crop((icon["x"], icon["y"], icon["x"] + icon["w"], icon["y"] + icon["h"]))
    return sum(count for count, (r, g, b) in area.getcolors(maxcolors=1 << 16) or []
               if r > 200 and g < 50 and b < 50)


def unseen(tmp_path: Path) -> int:
    """How many failures the daemon counts as not yet seen (what the tray reads with its events)."""
    return ControlClient.from_state_dir(tmp_path / "state").events(0)["failed_unseen"]


def test_a_failure_stays_on_screen_and_on_the_icon_until_seen(desktop: Desktop, tmp_path: Path):
    clip = make_clip(tmp_path / "later.mp4", seconds=3, size="320x180", audio=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'outbox'}\nengine: {{name: blend, factor: 2}}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, failed_dir: {tmp_path / 'failed'}, settle_seconds: 0.3, "
        "rescan_seconds: 2, min_free_mb: 0}\n"
        f"logging: {{dir: {tmp_path / 'log'}}}\nnotifications: {{progress_interval_s: 1}}\n",
        encoding="utf-8",
    )
    (tmp_path / "inbox").mkdir()
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "midframe", "run", "--config", str(config)], env=desktop.env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        icon = wait_for(lambda: docked_icon(desktop), what="midframe's icon in trayer")
        wait_for(lambda: status(desktop, config)["state"] == "idle", what="the daemon")
        assert red_dot(desktop, icon, tmp_path) == 0

        (tmp_path / "inbox" / "notes.mp4").write_text("a shopping list, not a video\n" * 40)
        wait_for(lambda: unseen(tmp_path) == 1, what="notes.mp4 failed")
        wait_for(lambda: red_dot(desktop, icon, tmp_path) > 20, what="the red dot on the icon")

        partial = tmp_path / "inbox" / ".later.mp4.part"
        shutil.copyfile(clip, partial)
        partial.replace(tmp_path / "inbox" / "later.mp4")
        wait_for(lambda: status(desktop, config)["done"] == 1, timeout=90, what="the later video converted")
        time.sleep(2)  # the tray's next polls show the done bubble

        summaries = [summary for summary, _ in history(desktop)]  # closed bubbles only
        assert "midframe: later.mp4" in summaries, summaries  # its "converting" was replaced by progress
        assert "midframe: notes.mp4 failed" not in summaries, summaries  # never closed: still on screen
        displayed = int(desktop.x(["dunstctl", "count", "displayed"]).stdout.strip())
        assert displayed >= 1, displayed  # the failure (and the done bubble, for its 8 s)
        assert red_dot(desktop, icon, tmp_path) > 20
        assert unseen(tmp_path) == 1

        # The menu's first item is the failure line: choosing it opens failed/ and marks it seen.
        choose(desktop, icon, ["Down"])
        wait_for(lambda: unseen(tmp_path) == 0, what="the failure marked seen")
        assert status(desktop, config)["failed"] == 1
        wait_for(lambda: red_dot(desktop, icon, tmp_path) == 0, what="the red dot gone")

        desktop.x(["dunstctl", "close-all"])
        summaries = [summary for summary, _ in history(desktop)]
        assert "midframe: notes.mp4 failed" in summaries and "midframe: later.mp4 done" in summaries, summaries
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
