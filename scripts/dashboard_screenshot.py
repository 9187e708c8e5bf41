"""Takes the README's picture of the dashboard (docs/dashboard.png) from a real daemon at work.

A daemon runs on temporary folders with the dis engine and two profiles (60fps, slowmo-4x); a bad file
fails, a short clip is converted, a long one is being converted and two more wait in the profiles'
folders. Chromium (Debian's, through Selenium, as in
the tests) logs in with `midframe dashboard --print-url` and saves the whole page.

    python3 scripts/dashboard_screenshot.py [OUT.png]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import browser  # noqa: E402
from tests.daemon_process import DaemonProcess, wait_for  # noqa: E402
from tests.media import make_clip  # noqa: E402

CONFIG = {
    "engine": {"name": "dis"},
    "daemon": {"settle_seconds": 0.3},
    "profiles": {
        "60fps": {"engine": {"target_fps": 60}},
        "slowmo-4x": {"engine": {"mode": "slowmo", "factor": 4},
                      "output": {"name": "{stem}.slowmo{factor}x{ext}", "slowmo_audio": "stretch"}},
    },
}


def whole_page(driver) -> bytes:
    """A PNG of the whole page, not only the part in the window (Chrome's DevTools protocol)."""
    import base64

    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    return base64.b64decode(shot["data"])


def main(out: Path) -> int:
    why = browser.missing()
    if why:
        print(f"cannot take the picture: {why}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="midframe-shot-") as scratch:
        root = Path(scratch)
        media = root / "media"
        media.mkdir()
        daemon = DaemonProcess(root / "run", CONFIG)
        daemon.start()
        try:
            (daemon.inbox / "notes-renamed.mp4").write_bytes(b"this is a text file, not a video\n" * 40)
            beach = make_clip(media / "beach.mp4", seconds=2, size="320x180")
            shutil.copy(beach, daemon.inbox / "slowmo-4x" / "beach.mp4")
            daemon.wait_jobs_final(2, timeout=120)
            shutil.copy(make_clip(media / "holiday.mp4", seconds=90, size="320x180"), daemon.inbox / "holiday.mp4")
            wait_for(lambda: (daemon.status()["current"] or {}).get("progress", 0) > 0.15, timeout=240,
                     what="the long job to be under way")
            for name in ("60fps/birthday.mkv", "slowmo-4x/skateboard.mp4"):
                shutil.copy(make_clip(media / Path(name).name, seconds=20, size="320x180"), daemon.inbox / name)
            wait_for(lambda: daemon.status()["queued"] == 2, timeout=30, what="two queued jobs")
            link = daemon.cli("dashboard", "--print-url").stdout.splitlines()[0]
            with browser.chromium(width=1280, height=900) as driver:
                driver.get(link)
                wait_for(lambda: driver.find_elements("css selector", "body[data-ready=true]"), timeout=30,
                         what="the page")
                time.sleep(2.5)  # the settings arrive after the first state
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(whole_page(driver))
        finally:
            daemon.stop_if_running()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"))
