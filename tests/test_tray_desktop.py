"""The tray on a real (virtual) desktop: Xvfb, an XEmbed tray (trayer), a notification server (dunst).

`midframe run` starts the daemon and the tray; the test finds the icon docked in trayer and drawn,
drives the real GTK menu with xdotool (right click on the icon, arrow keys, Return), drops a small
video, and reads the notifications back from dunst's history. With MIDFRAME_SCREENSHOT_DIR set it
also saves the README's pictures there (tray.png with the menu open, notification.png).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest
from PIL import Image

from tests.media import make_clip

TOOLS = ("Xvfb", "dbus-daemon", "dunst", "dunstctl", "trayer", "xwininfo", "xdotool", "import")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="an X11 desktop test"),
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (scripts/setup.sh --dev installs them)"),
    pytest.mark.skipif(find_spec("gi") is None, reason="needs PyGObject (the tray-linux extra) for pystray's gtk"),
    pytest.mark.timeout(150),
]

SCREEN = (1024, 600)
DUNSTRC = """\
[global]
    origin = top-right
    offset = 8x44
    width = 360
    font = DejaVu Sans 10
    frame_width = 1
    frame_color = "#5a5a5a"
    background = "#2b2b2b"
    foreground = "#f0f0f0"
    history_length = 100
    show_age_threshold = -1
[urgency_low]
    timeout = 30
[urgency_normal]
    timeout = 30
[urgency_critical]
    timeout = 30
"""


class Desktop:
    """Xvfb, a D-Bus session bus, dunst and trayer, each a child process of the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}

    def start(self) -> None:
        self.env["DISPLAY"] = self._start_xvfb()
        runtime = self.root / "runtime"
        runtime.mkdir(mode=0o700)
        self.env.update(XDG_RUNTIME_DIR=str(runtime), NO_AT_BRIDGE="1", GDK_BACKEND="x11")
        bus = self._spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE)
        self.env["DBUS_SESSION_BUS_ADDRESS"] = self._read_line(bus.stdout.fileno(), "the bus address")
        rc = self.root / "dunstrc"
        rc.write_text(DUNSTRC)
        self._spawn(["dunst", "-config", str(rc)])
        self._spawn(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32",
                     "--SetDockType", "true", "--transparent", "false", "--tint", "0x202020", "--expand", "false"])
        wait_for(lambda: self.x(["dunstctl", "count", "history"]).returncode == 0, what="dunst on the bus")
        wait_for(lambda: '"panel"' in self.x(["xwininfo", "-root", "-tree"]).stdout, what="trayer's panel")

    def _start_xvfb(self) -> str:
        read_end, write_end = os.pipe()
        self._spawn(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                     "-nolisten", "tcp"], pass_fds=(write_end,))
        os.close(write_end)
        try:
            return ":" + self._read_line(read_end, "Xvfb's display number")
        finally:
            os.close(read_end)

    def _spawn(self, command: list[str], **options) -> subprocess.Popen:
        log = open(self.root / f"{Path(command[0]).name}.log", "wb")
        options.setdefault("stdout", log)
        process = subprocess.Popen(command, env=self.env, stderr=log, **options)
        log.close()
        self.processes.append(process)
        return process

    @staticmethod
    def _read_line(fd: int, what: str, timeout: float = 15.0) -> str:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"no {what} within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"no {what}: the process ended")
            data += chunk
        return data.decode().splitlines()[0].strip()

    def x(self, command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)

    def screenshot(self, path: Path) -> Image.Image:
        self.x(["import", "-window", "root", str(path)]).check_returncode()
        return Image.open(path).convert("RGB")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    session = Desktop(tmp_path)
    try:
        session.start()
        yield session
    finally:
        session.stop()


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def docked_icon(desktop: Desktop) -> dict[str, int] | None:
    """The geometry of midframe's icon window if it is docked in trayer's panel."""
    tree = desktop.x(["xwininfo", "-root", "-tree"]).stdout
    panel = tree.find('"panel"')
    found = re.search(r'(0x[0-9a-f]+) "midframe[^"]*": .*?(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)',
                      tree[panel:] if panel >= 0 else "")
    if panel < 0 or not found:
        return None
    window, width, height, x, y = found.groups()
    return {"id": int(window, 16), "w": int(width), "h": int(height), "x": int(x), "y": int(y)}


def toplevels(desktop: Desktop) -> dict[int, tuple[int, int, int, int]]:
    """Windows directly under the root: id -> (x, y, w, h)."""
    out = desktop.x(["xwininfo", "-root", "-children"]).stdout
    return {int(m[1], 16): (int(m[4]), int(m[5]), int(m[2]), int(m[3]))
            for m in re.finditer(r"(0x[0-9a-f]+) .*?(\d+)x(\d+)\+(-?\d+)\+(-?\d+)", out)}


def midframe_cli(desktop: Desktop, config: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "midframe", *args, "--config", str(config)], env=desktop.env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def status(desktop: Desktop, config: Path) -> dict:
    return json.loads(midframe_cli(desktop, config, "status", "--json"))


def open_menu(desktop: Desktop, icon: dict[str, int]) -> tuple[int, int, int, int]:
    """Right-click the icon; the geometry of the GTK menu that pops up."""
    before = set(toplevels(desktop))
    desktop.x(["xdotool", "mousemove", str(icon["x"] + icon["w"] // 2), str(icon["y"] + icon["h"] // 2),
               "click", "3"]).check_returncode()

    def popped():
        fresh = [g for wid, g in toplevels(desktop).items() if wid not in before and g[2] > 60 and g[3] > 60]
        return fresh[0] if fresh else None

    return wait_for(popped, timeout=10, what="the tray menu")


def choose(desktop: Desktop, icon: dict[str, int], keys: list[str]) -> tuple[int, int, int, int]:
    """Open the menu and pick an item with the keyboard (insensitive lines are skipped by GTK)."""
    menu = open_menu(desktop, icon)
    time.sleep(0.3)  # the menu grabs the keyboard once it is mapped
    desktop.x(["xdotool", "key", "--delay", "80", *keys, "Return"]).check_returncode()
    return menu


def history(desktop: Desktop) -> list[tuple[str, str]]:
    data = json.loads(desktop.x(["dunstctl", "history"]).stdout)["data"][0]
    return [(n["summary"]["data"], n["body"]["data"]) for n in reversed(data)]


def save_crop(image: Image.Image, box: tuple[int, int, int, int], name: str, tmp_path: Path) -> None:
    left, top, right, bottom = box
    crop = image.crop((max(left, 0), max(top, 0), min(right, SCREEN[0]), min(bottom, SCREEN[1])))
    crop.save(tmp_path / name)
    target = os.environ.get("MIDFRAME_SCREENSHOT_DIR")
    if target:
        crop.save(Path(target) / name)


def test_tray_on_a_real_desktop(desktop: Desktop, tmp_path: Path):
    started = time.monotonic()
    clip = make_clip(tmp_path / "holiday.mp4", seconds=6, size="640x360", fps="25")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inbox: {tmp_path / 'inbox'}\noutbox: {tmp_path / 'outbox'}\n"
        "engine: {name: blend, factor: 2}\n"
        f"daemon: {{state_dir: {tmp_path / 'state'}, settle_seconds: 0.5, rescan_seconds: 2}}\n"
        f"logging: {{dir: {tmp_path / 'log'}, level: DEBUG}}\n"
        "notifications: {progress_interval_s: 1}\n",
        encoding="utf-8",
    )
    log = open(tmp_path / "midframe-run.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "midframe", "run", "--config", str(config)], env=desktop.env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        # the icon docks in trayer and is drawn (the idle picture: a green disc)
        icon = wait_for(lambda: docked_icon(desktop), what="midframe's icon in trayer")
        assert status(desktop, config)["state"] == "idle"
        shot = desktop.screenshot(tmp_path / "idle.png")
        area = shot.crop((icon["x"], icon["y"], icon["x"] + icon["w"], icon["y"] + icon["h"]))
        colours = area.getcolors(maxcolors=4096) or []
        assert len(colours) > 8, "the icon area is blank"
        assert any(g > 100 and g > r + 40 and g > b + 40 for _, (r, g, b) in colours), "no green idle disc"

        # Pause from the menu (first selectable item), with the menu's picture for the README
        menu = choose(desktop, icon, ["Down"])
        wait_for(lambda: status(desktop, config)["state"] == "paused", what="paused after the menu's Pause")

        # a video dropped while paused waits in the queue
        partial = tmp_path / "inbox" / ".holiday.mp4.part"
        shutil.copyfile(clip, partial)
        os.replace(partial, tmp_path / "inbox" / "holiday.mp4")
        wait_for(lambda: status(desktop, config)["queued"] == 1, what="the video queued")
        paused_menu = open_menu(desktop, icon)
        time.sleep(0.5)
        shot = desktop.screenshot(tmp_path / "menu.png")
        box = (min(menu[0], paused_menu[0], icon["x"]) - 12, 0,
               max(paused_menu[0] + paused_menu[2], icon["x"] + icon["w"]) + 12, paused_menu[1] + paused_menu[3] + 12)
        save_crop(shot, box, "tray.png", tmp_path)
        desktop.x(["xdotool", "key", "--delay", "80", "Down", "Return"]).check_returncode()  # Resume
        wait_for(lambda: status(desktop, config)["state"] != "paused", what="resumed after the menu's Resume")

        # the notifications: one at a time, each closed before the next, so dunst's history keeps them
        def progress_on_screen() -> bool:
            """Each bubble is closed when the next comes: a progress entry in the history means a later
            bubble about the video (progress or done) is on screen now."""
            latest = history(desktop)[-1:]
            count = desktop.x(["dunstctl", "count", "displayed"]).stdout.strip()
            return bool(latest) and "holiday.mp4" in latest[0][0] and re.search(r"[1-9]\d*%", latest[0][1]) and count == "1"

        wait_for(progress_on_screen, timeout=60, what="a notification about the video's progress")
        dunst = next(iter(desktop.x(["xdotool", "search", "--class", "Dunst"]).stdout.split()), None)
        shot = desktop.screenshot(tmp_path / "notification-full.png")
        if dunst:  # the bubble and the icon (now the working picture) above it
            geometry = desktop.x(["xdotool", "getwindowgeometry", dunst]).stdout
            x, y = map(int, re.search(r"Position: (-?\d+),(-?\d+)", geometry).groups())
            w, h = map(int, re.search(r"Geometry: (\d+)x(\d+)", geometry).groups())
            save_crop(shot, (min(x, icon["x"]) - 8, 0, max(x + w, icon["x"] + icon["w"]) + 8, y + h + 8),
                      "notification.png", tmp_path)

        finished = wait_for(lambda: (lambda s: s if s["done"] + s["failed"] else None)(status(desktop, config)),
                            timeout=90, what="the conversion")
        assert finished["done"] == 1, (tmp_path / "midframe-run.log").read_text()[-3000:]
        outputs = list((tmp_path / "outbox").glob("holiday*"))
        assert len(outputs) == 1 and outputs[0].stat().st_size > 0
        time.sleep(1.5)  # the poller's next round shows the "done" event
        desktop.x(["dunstctl", "close-all"])
        seen = wait_for(lambda: [n for n in history(desktop) if "holiday.mp4" in n[0] + n[1]]
                        if any("done" in s for s, _ in history(desktop)) else None, what="the done notification")
        progress = [(s, b) for s, b in seen if re.search(r"\d+%", b) and "ETA" in b]
        assert progress, f"no progress notification with percent and ETA in {seen}"
        assert any("done" in s for s, _ in seen), seen

        # Quit from the menu (the last item) stops the daemon it started, and the process ends cleanly
        choose(desktop, icon, ["Up"])
        assert process.wait(timeout=60) == 0
        assert not (tmp_path / "state" / "control.json").exists()
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
    assert time.monotonic() - started < 120
