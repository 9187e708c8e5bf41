"""systemd: the sd_notify protocol (a LifecycleListener) and the unit that runs ``midframe watch``.

sd_notify is a datagram of ``KEY=VALUE`` lines sent to the Unix socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract name written with a leading ``@``). Nothing here raises on a lost message:
the service manager's view is a courtesy, the daemon's work is not.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from midframe.commandline import midframe_command

UNIT_NAME = "midframe.service"
# The keep-alive comes every few seconds while the worker moves; it stops when the main loop hangs, or
# when a job has shown no progress for liveness.STUCK_AFTER_S (30 min), so systemd restarts midframe.
WATCHDOG_SEC = 60
STOP_TIMEOUT_SEC = 300  # a graceful stop ends after the current batch, which can be slow on a CPU
START_LIMIT_INTERVAL_SEC = 600
START_LIMIT_BURST = 5


# --- the unit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitPlan:
    """Where the unit goes and what it says, for one scope (``user`` or ``system``)."""

    scope: str
    path: Path
    text: str

    def systemctl(self, *args: str) -> list[str]:
        return ["systemctl", *(["--user"] if self.scope == "user" else []), *args]


def unit_dir(scope: str, environ: Mapping[str, str] = os.environ) -> Path:
    if scope == "system":
        return Path("/etc/systemd/system")
    config_home = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user"


def exec_start(config_path: Path, python: str = sys.executable) -> str:
    """The ExecStart= line: midframe by its console script's absolute path, or ``python -P -m midframe``
    (``commandline``); ``%`` and ``$`` are doubled, since systemd expands specifiers and variables."""
    words = midframe_command("watch", "--config", str(config_path), python=python)
    return shlex.join(word.replace("%", "%%").replace("$", "$$") for word in words)


def unit_text(*, scope: str, config_path: Path, python: str = sys.executable, user: str | None = None) -> str:
    """The unit file: Type=notify with a watchdog, a graceful stop, a restart limit, reload by SIGHUP."""
    service_user = f"User={user}\n" if scope == "system" and user else ""
    wanted_by = "multi-user.target" if scope == "system" else "default.target"
    after = "After=network-online.target local-fs.target\nWants=network-online.target\n" if scope == "system" else ""
    return f"""\
[Unit]
Description=midframe: raises the frame rate of videos dropped into an inbox folder
{after}StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}
StartLimitBurst={START_LIMIT_BURST}

[Service]
Type=notify
NotifyAccess=main
{service_user}ExecStart={exec_start(config_path, python)}
# The user's home: relative folders in the config mean the same as in a shell there.
WorkingDirectory=~
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=10
WatchdogSec={WATCHDOG_SEC}
TimeoutStopSec={STOP_TIMEOUT_SEC}
# SIGTERM to the daemon alone: it finishes the current batch and stops its ffmpeg children itself.
KillMode=mixed
Environment=PYTHONUNBUFFERED=1
Nice=10

[Install]
WantedBy={wanted_by}
"""


def system_service_user(environ: Mapping[str, str] = os.environ) -> str | None:
    """The account a ``--system`` unit runs as: whoever ran ``sudo``, else the current user (not root)."""
    name = environ.get("SUDO_USER")
    if name and name != "root":
        return name
    import pwd  # Unix only; this module is imported on Linux alone, but stays importable anywhere

    current = pwd.getpwuid(os.getuid()).pw_name
    return None if current == "root" else current


def plan(scope: str, config_path: Path, *, environ: Mapping[str, str] = os.environ) -> UnitPlan:
    user = system_service_user(environ) if scope == "system" else None
    text = unit_text(scope=scope, config_path=config_path, user=user)
    return UnitPlan(scope=scope, path=unit_dir(scope, environ) / UNIT_NAME, text=text)
