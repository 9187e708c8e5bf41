"""The Windows service module, as far as Linux can test it.

Tried here: the module imports without pywin32, the command lines it would register (the service host
and the HKCU Run autostart), the dry run through `midframe service`, the check that refuses a
config a LocalSystem service could not use, and the drain that keeps reporting STOP_PENDING (with a
stand-in for pywin32's ReportServiceStatus: a mock, since there is no service control manager here).
Not tried (needs Windows): registering and starting the service with pywin32, SvcDoRun/SvcStop under
the service control manager, and the registry writes.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from midframe.config import Config
from midframe.service import commands, windows


def test_imports_without_pywin32():
    module = importlib.reload(windows)
    assert module.SERVICE_NAME == "midframe"
    if sys.platform != "win32":
        with pytest.raises(ImportError):
            module.MidframeService  # noqa: B018 (built on first use, from pywin32)


def test_command_lines(tmp_path):
    python = tmp_path / "Python311" / "python.exe"
    python.parent.mkdir()
    python.write_text("")
    (python.parent / "pythonw.exe").write_text("")
    config = Path("C:/Users/ann/AppData/Roaming/midframe/config.yaml")
    system = windows.plan("system", config, python=str(python))
    # -P: a "midframe" folder in the working directory (System32 for a service) cannot shadow the package
    assert system.service == (str(python), "-P -m midframe.service.windows")
    tray = subprocess.list2cmdline([str(python.parent / "pythonw.exe"), "-P", "-m", "midframe", "tray",
                                    "--config", str(config)])
    assert system.autostart == tray
    user = windows.plan("user", config, python=str(python))
    assert user.service is None and " -P -m midframe run --config " in user.autostart
    # without pythonw.exe beside it, python.exe itself
    (python.parent / "pythonw.exe").unlink()
    assert windows.gui_python(str(python)) == str(python)


def test_a_service_needs_absolute_folders():
    assert windows.check_config_for_service(Config()) == ["inbox", "outbox", "daemon.state_dir"]
    absolute = Config(inbox=Path("/srv/in"), outbox=Path("/srv/out"), daemon={"state_dir": Path("/srv/state")})
    assert windows.check_config_for_service(absolute) == []


def test_dry_run_install_through_dispatch(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"inbox: {tmp_path / 'in'}\noutbox: {tmp_path / 'out'}\ndaemon: {{state_dir: {tmp_path / 's'}}}\n")
    lines: list[str] = []
    code = commands.dispatch("install", scope="system", dry_run=True, config_path=config, platform="win32",
                             out=lines.append)
    assert code == 0
    text = "\n".join(lines)
    assert "would register the service 'midframe'" in text and "-m midframe.service.windows" in text
    assert "Microsoft\\Windows\\CurrentVersion\\Run\\midframe = " in text and " tray --config " in text


def test_system_install_refuses_home_relative_folders(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("inbox: ~/Videos/in\n")
    with pytest.raises(commands.ServiceError, match="LocalSystem"):
        commands.dispatch("install", scope="system", dry_run=True, config_path=config, platform="win32",
                          out=lambda line: None)


def test_the_drain_keeps_reporting_stop_pending_until_the_batch_is_done():
    """The SCM takes a STOP_PENDING whose checkpoint stops moving for hung: while the daemon finishes
    its batch (here a close that takes 0.8 s), a fresh report comes every interval. (Windows mocked.)"""
    reports: list[float] = []
    finished = threading.Event()

    def slow_close() -> None:
        time.sleep(0.8)
        finished.set()

    started = time.monotonic()
    windows.drain(slow_close, report=lambda: reports.append(time.monotonic() - started), every_s=0.1)
    assert finished.is_set()
    assert len(reports) >= 3 and reports[0] < 0.3 and reports[-1] > 0.5  # from the start, all along
    assert windows.STOP_REPORT_S * 1000 < windows.STOP_WAIT_HINT_MS  # each report lands inside the last hint
