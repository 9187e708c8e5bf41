"""Windows: a pywin32 service that runs the daemon, and the per-user autostart of the tray.

A service runs in session 0 and cannot show an icon, so the tray is a separate process started at
logon from ``HKCU\\...\\Run``; it talks to the service through the control API like any client.

- ``service install --system`` registers the service (administrator) and the tray's autostart.
- ``service install --user`` needs no administrator: ``midframe run`` (daemon and tray) at logon.

The service is hosted by ``python.exe -P -m midframe.service.windows`` (pywin32's single-service
host), so it runs with the same interpreter and packages as the command that installed it (``-P``: a
``midframe`` folder in the working directory cannot shadow the package). Its config path is kept in
the service's registry parameters. It starts the daemon as ``midframe watch`` does
(``host.start_daemon``), logging to the log file only (a service has no console), and keeps telling
the service control manager STOP_PENDING, with a wait hint, while the current batch drains.
pywin32 is imported only when a service is really registered or run, so this module imports
anywhere (the Linux tests import it).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midframe.config import Config, load_config

SERVICE_NAME = "midframe"
DISPLAY_NAME = "midframe video interpolation"
DESCRIPTION = "Raises the frame rate of videos dropped into the midframe inbox folder."
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "midframe"
STOP_WAIT_HINT_MS = 30_000  # told to the SCM with each STOP_PENDING while the batch finishes
STOP_REPORT_S = 5.0  # a fresh STOP_PENDING (its checkpoint moves on) well inside each wait hint


def gui_python(python: str = sys.executable) -> str:
    """pythonw.exe beside python.exe where there is one: no console window at logon."""
    candidate = Path(python).with_name("pythonw.exe")
    return str(candidate) if candidate.exists() else python


def autostart_command(command: str, config_path: Path, python: str = sys.executable) -> str:
    """The command line stored under HKCU\\...\\Run, e.g. ``pythonw.exe -P -m midframe tray --config C``."""
    return subprocess.list2cmdline([gui_python(python), "-P", "-m", "midframe", command, "--config", str(config_path)])


def service_command(python: str = sys.executable) -> tuple[str, str]:
    """(executable, arguments) the service control manager starts."""
    return python, "-P -m midframe.service.windows"


@dataclass(frozen=True)
class WindowsPlan:
    scope: str
    config_path: Path
    autostart: str  # the HKCU Run command
    service: tuple[str, str] | None  # None for --user

    def describe(self) -> list[str]:
        lines = []
        if self.service is not None:
            exe, args = self.service
            lines.append(f"# would register the service {SERVICE_NAME!r} ({DISPLAY_NAME}), automatic start:")
            lines.append(f"#   {exe} {args}   (config {self.config_path})")
        lines.append(f"# would set HKCU\\{RUN_KEY}\\{RUN_VALUE} = {self.autostart}")
        return lines


def plan(scope: str, config_path: Path, python: str = sys.executable) -> WindowsPlan:
    if scope == "system":
        return WindowsPlan(scope, config_path, autostart_command("tray", config_path, python), service_command(python))
    return WindowsPlan(scope, config_path, autostart_command("run", config_path, python), None)


def check_config_for_service(config: Config) -> list[str]:
    """Keys that must be absolute paths for a service: it runs as LocalSystem, with another home."""
    problems = []
    for key, value in (("inbox", config.inbox), ("outbox", config.outbox), ("daemon.state_dir", config.daemon.state_dir)):
        if value is None or str(value).startswith("~") or not Path(value).is_absolute():
            problems.append(key)
    return problems


def dispatch(action: str, *, scope: str, dry_run: bool, config_path: Path | None, out: Callable[[str], None]) -> int:
    from midframe.service.config_file import ServiceError, prepare_config, service_config_path

    path = prepare_config(config_path, dry_run=dry_run, out=out) if action == "install" else service_config_path(config_path)
    steps = plan(scope, path)
    if action == "install" and scope == "system" and path.exists():
        missing = check_config_for_service(load_config(path))
        if missing:
            raise ServiceError(
                f"{path}: a Windows service runs as LocalSystem and cannot see your home folder; "
                f"set {', '.join(missing)} to absolute folders (e.g. under C:\\ProgramData\\midframe)"
            )
    if dry_run:
        if action == "install":
            for line in steps.describe():
                out(line)
        else:
            out(f"# would {action} the service {SERVICE_NAME!r} and HKCU\\{RUN_KEY}\\{RUN_VALUE}")
        return 0
    if action == "install":
        if steps.service is not None:
            _install_service(steps)
            out(f"registered and started the service {SERVICE_NAME!r}")
        _set_autostart(steps.autostart)
        out(f"the tray starts at logon: {steps.autostart}")
        return 0
    if action == "uninstall":
        if scope == "system":
            _remove_service()
            out(f"removed the service {SERVICE_NAME!r}")
        _remove_autostart()
        out("removed the logon autostart")
        return 0
    out(_status_text())
    return 0


# --- pywin32 and winreg, imported when used ---------------------------------------------------


def _install_service(steps: WindowsPlan) -> None:
    import win32service
    import win32serviceutil

    assert steps.service is not None
    exe, args = steps.service
    win32serviceutil.InstallService(
        None,
        SERVICE_NAME,
        DISPLAY_NAME,
        startType=win32service.SERVICE_AUTO_START,
        exeName=exe,
        exeArgs=args,
        description=DESCRIPTION,
    )
    win32serviceutil.SetServiceCustomOption(SERVICE_NAME, "config", str(steps.config_path))
    win32serviceutil.StartService(SERVICE_NAME)


def _remove_service() -> None:
    import pywintypes
    import win32serviceutil

    try:
        win32serviceutil.StopService(SERVICE_NAME)
    except pywintypes.error as exc:  # not running
        print(f"(stop: {exc.strerror})")
    win32serviceutil.RemoveService(SERVICE_NAME)


def _winreg() -> Any:
    """The winreg module, loosely typed: typeshed declares its contents for Windows only, and mypy runs on Linux."""
    import winreg

    return winreg


def _set_autostart(command: str) -> None:
    winreg = _winreg()

    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
        winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, command)


def _remove_autostart() -> None:
    winreg = _winreg()

    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
        try:
            winreg.DeleteValue(key, RUN_VALUE)
        except FileNotFoundError:
            pass


def _status_text() -> str:
    winreg = _winreg()

    import pywintypes
    import win32service
    import win32serviceutil

    lines = []
    try:
        state = win32serviceutil.QueryServiceStatus(SERVICE_NAME)[1]
        names = {win32service.SERVICE_RUNNING: "running", win32service.SERVICE_STOPPED: "stopped",
                 win32service.SERVICE_START_PENDING: "starting", win32service.SERVICE_STOP_PENDING: "stopping"}
        lines.append(f"service {SERVICE_NAME!r}: {names.get(state, state)}")
    except pywintypes.error as exc:  # not installed
        lines.append(f"service {SERVICE_NAME!r}: not installed ({exc.strerror})")
    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
        try:
            lines.append(f"logon autostart: {winreg.QueryValueEx(key, RUN_VALUE)[0]}")
        except FileNotFoundError:
            lines.append("logon autostart: none")
    return "\n".join(lines)


def drain(close: Callable[[], object], *, report: Callable[[], None], every_s: float = STOP_REPORT_S) -> None:
    """Run ``close`` (the daemon finishing its batch) on a thread, calling ``report`` every ``every_s``
    until it returns: the SCM takes a service whose STOP_PENDING checkpoint stops moving for hung."""
    closer = threading.Thread(target=close, name="midframe-drain")
    closer.start()
    while True:
        report()
        closer.join(every_s)
        if not closer.is_alive():
            return


@functools.cache
def service_class() -> type:
    """The pywin32 service class (built on first use, since pywin32 exists only on Windows)."""
    import servicemanager
    import win32service
    import win32serviceutil

    class MidframeService(win32serviceutil.ServiceFramework):
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self._stop_requested = threading.Event()
            self._daemon: Any = None

        def SvcDoRun(self) -> None:  # noqa: N802 (pywin32's names)
            from midframe.daemon.startup import finish, serve, start_daemon
            from midframe.errors import MidframeError

            self.ReportServiceStatus(win32service.SERVICE_START_PENDING)
            config = win32serviceutil.GetServiceCustomOption(SERVICE_NAME, "config", None)
            try:
                daemon = start_daemon(Path(config) if config else None, log_to_stderr=False)
            except MidframeError as exc:
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: cannot start: {exc}")
                return
            self._daemon = daemon
            self.ReportServiceStatus(win32service.SERVICE_RUNNING)
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: running with {config}")
            if self._stop_requested.is_set():
                daemon.request_stop()
            try:
                serve(daemon)
            finally:
                drain(lambda: finish(daemon), report=lambda: self.ReportServiceStatus(
                    win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS))

        def SvcStop(self) -> None:  # noqa: N802
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)
            self._stop_requested.set()
            if self._daemon is not None:
                self._daemon.request_stop()

    return MidframeService


def __getattr__(name: str) -> Any:
    if name == "MidframeService":
        return service_class()
    raise AttributeError(name)


def host_service() -> None:
    """Entry point of the service process (started by the SCM): pywin32's single-service host."""
    import servicemanager

    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(service_class())
    servicemanager.StartServiceCtrlDispatcher()


if __name__ == "__main__":
    host_service()
