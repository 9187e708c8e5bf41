"""``midframe service install|uninstall|status``: systemd on Linux, a Windows service on Windows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from midframe.fs.safe_write import atomic_write
from midframe.service.config_file import Output, ServiceError, prepare_config, service_config_path

Runner = Callable[[Sequence[str]], int]


def run_command(command: Sequence[str]) -> int:
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(list(command), check=False).returncode


def dispatch(
    action: str,
    *,
    scope: str,
    dry_run: bool,
    config_path: Path | None,
    platform: str = sys.platform,
    run: Runner = run_command,
    out: Output = print,
) -> int:
    if platform == "win32":
        from midframe.service import windows

        return windows.dispatch(action, scope=scope, dry_run=dry_run, config_path=config_path, out=out)
    if platform.startswith("linux"):
        return systemd_dispatch(action, scope=scope, dry_run=dry_run, config_path=config_path, run=run, out=out)
    raise ServiceError(
        f"`midframe service` knows systemd and Windows, not {platform}; start `midframe run` at login instead"
    )


def systemd_dispatch(
    action: str, *, scope: str, dry_run: bool, config_path: Path | None, run: Runner, out: Output
) -> int:
    from midframe.service import systemd

    path = prepare_config(config_path, dry_run=dry_run, out=out) if action == "install" else None
    unit = systemd.plan(scope, path or service_config_path(config_path))
    if action == "install":
        steps = [unit.systemctl("daemon-reload"), unit.systemctl("enable", "--now", systemd.UNIT_NAME)]
    elif action == "uninstall":
        steps = [unit.systemctl("disable", "--now", systemd.UNIT_NAME), unit.systemctl("daemon-reload")]
    else:
        steps = [unit.systemctl("status", "--no-pager", systemd.UNIT_NAME)]

    if dry_run:
        if action == "install":
            out(f"# would write {unit.path}:")
            out(unit.text)
        elif action == "uninstall":
            out(f"# would remove {unit.path}")
        for step in steps:
            out("# would run: " + " ".join(step))
        return 0

    if shutil.which("systemctl") is None:
        raise ServiceError("systemctl is not on PATH: this system does not run systemd")
    if action == "install":
        unit.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(unit.path, unit.text)
        out(f"wrote {unit.path}")
        for step in steps:
            if (code := run(step)) != 0:
                return code
        return 0
    if action == "uninstall":
        if not unit.path.exists():
            out(f"{unit.path} does not exist: nothing to uninstall")
            return 0
        run(steps[0])  # may fail if it was never started; the file goes either way
        unit.path.unlink()
        out(f"removed {unit.path}")
        return run(steps[1])
    return run(steps[0])
